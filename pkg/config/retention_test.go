package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestRetentionLoad(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "testdata", "config", "retention.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rt := cfg.Repo.Retention
	tests := []struct {
		channel string
		want    RetentionRule
	}{
		{"", RetentionRule{KeepVersions: 5, KeepDays: 30}},
		{"stable", RetentionRule{KeepVersions: 5, KeepDays: 30}}, // no override: the repository-wide rule
		{"testing", RetentionRule{KeepVersions: 2, KeepDays: 0}}, // the override replaces the whole rule
	}
	for _, tc := range tests {
		if got := rt.For(tc.channel); got != tc.want {
			t.Errorf("For(%q) = %+v, want %+v", tc.channel, got, tc.want)
		}
	}
}

func TestRetentionDefaultKeepsAll(t *testing.T) {
	rt := Default().Repo.Retention
	if rt.For("").Active() || rt.For("stable").Active() {
		t.Errorf("default retention %+v removes builds; it must keep every one", rt)
	}
}

func TestRetentionActive(t *testing.T) {
	tests := []struct {
		rule RetentionRule
		want bool
	}{
		{RetentionRule{}, false},
		{RetentionRule{KeepVersions: 1}, true},
		{RetentionRule{KeepDays: 1}, true},
	}
	for _, tc := range tests {
		if got := tc.rule.Active(); got != tc.want {
			t.Errorf("%+v.Active() = %v, want %v", tc.rule, got, tc.want)
		}
	}
}

func TestRetentionRejects(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"bad-retention.yaml", []string{
			"line 5: repo.retention: keep_versions -1 is negative: use 0 (no limit)",
			"line 5: repo.retention: keep_days 40000 is out of range: use 0 (no limit) or a number of days up to 36500",
			`line 5: repo.retention: channels: "" is not a channel name`,
			"line 5: repo.retention: channels.stable.keep_days -3 is out of range",
		}},
		{"unknown-retention-key.yaml", []string{"line 6: repo.retention.keep_builds: unknown key"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load(filepath.Join("..", "..", "testdata", "config", tc.file))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
