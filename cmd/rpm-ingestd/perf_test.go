package main

import (
	"fmt"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
)

// TestCachedLayout: the remembered layout gives what RenderLayout gives, errors included, on first and later
// calls, and stops remembering at layoutCacheSize.
func TestCachedLayout(t *testing.T) {
	cfg := config.Default()
	cfg.Repo.Layout = "{{.Channel}}/{{.OSAbbr}}{{.OSRelease}}/{{.Arch}}"
	cfg.Repo.Channels, cfg.Repo.DefaultChannel = []string{"testing", "stable"}, "testing"
	layout := cachedLayout(cfg)
	for range 2 {
		for _, f := range []config.LayoutFields{
			{OSAbbr: "el", OSRelease: "9", Arch: "x86_64", Channel: "stable"},
			{OSAbbr: "", OSRelease: "9", Arch: "x86_64", Channel: "stable"}, // the layout needs the abbreviation
			{OSAbbr: "el", OSRelease: "9", Arch: "x86_64", Channel: "nope"}, // not a channel
		} {
			wantRel, wantErr := cfg.RenderLayout(f)
			rel, err := layout(f.Channel, f.OSAbbr, f.OSRelease, f.Arch)
			if rel != wantRel || fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Errorf("%+v: %q, %v; want %q, %v", f, rel, err, wantRel, wantErr)
			}
		}
	}
	for i := range layoutCacheSize + 10 {
		rel, err := layout("stable", "el", fmt.Sprint(i), "x86_64")
		if want := fmt.Sprintf("stable/el%d/x86_64", i); rel != want || err != nil {
			t.Fatalf("release %d: %q, %v; want %q", i, rel, err, want)
		}
	}
}

// TestRetentionPolicyPerChannel: the remembered retention rule of a repository is its channel's, and the
// top-level rule without channels, on first and later calls.
func TestRetentionPolicyPerChannel(t *testing.T) {
	cfg := config.Default()
	cfg.Repo.Layout = "{{.Channel}}/{{.OSRelease}}/{{.Arch}}"
	cfg.Repo.Arches = []string{"x86_64"}
	cfg.Repo.Channels, cfg.Repo.DefaultChannel = []string{"testing", "stable"}, "testing"
	cfg.Repo.Retention = config.Retention{RetentionRule: config.RetentionRule{KeepVersions: 5},
		Channels: map[string]config.RetentionRule{"testing": {KeepVersions: 2, KeepDays: 7}}}
	policy := retentionPolicy(cfg)
	for range 2 {
		if got := policy("testing/9/x86_64"); got != (ingest.Retention{KeepVersions: 2, KeepDays: 7}) {
			t.Errorf("testing: %+v", got)
		}
		if got := policy("stable/9/x86_64"); got != (ingest.Retention{KeepVersions: 5}) {
			t.Errorf("stable: %+v", got)
		}
	}
	cfg.Repo.Channels, cfg.Repo.DefaultChannel = nil, ""
	cfg.Repo.Layout = "{{.OSRelease}}/{{.Arch}}"
	if got := retentionPolicy(cfg)("9/x86_64"); got != (ingest.Retention{KeepVersions: 5}) {
		t.Errorf("without channels: %+v", got)
	}
}

// TestCachedLocate: the remembered answers are LocateRepo's, on first and later calls, and past the cache's
// bound too.
func TestCachedLocate(t *testing.T) {
	cfg := config.Default()
	cfg.Repo.Layout = "{{.Channel}}/{{.OSAbbr}}{{.OSRelease}}/{{.Arch}}"
	cfg.Repo.Channels, cfg.Repo.DefaultChannel = []string{"testing", "stable"}, "testing"
	locate := cachedLocate(cfg)
	for range 2 {
		for _, rel := range []string{"stable/el9/x86_64", "testing/el8/SRPMS", "nope/el9/x86_64", "stable/9"} {
			c, r, a, ok := cfg.LocateRepo(rel)
			gc, gr, ga, gok := locate(rel)
			if gc != c || gr != r || ga != a || gok != ok {
				t.Errorf("%s: %q %q %q %v; want %q %q %q %v", rel, gc, gr, ga, gok, c, r, a, ok)
			}
		}
	}
	for i := range layoutCacheSize + 10 {
		if _, r, _, ok := locate(fmt.Sprintf("stable/el%d/x86_64", i)); r != fmt.Sprint(i) || !ok {
			t.Fatalf("release %d: %q, %v", i, r, ok)
		}
	}
}
