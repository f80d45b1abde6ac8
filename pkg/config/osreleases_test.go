package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestOSReleasesValidation(t *testing.T) {
	path := filepath.Join("..", "..", "testdata", "config", "bad-os-releases.yaml")
	_, err := Load(path)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	want := []string{
		`line 5: repo.os_releases: an entry is empty`,
		`line 5: repo.os_releases: "9" is listed twice`,
		`line 5: repo.os_releases: "../x" is not a release`,
		`line 5: repo.os_releases: "el9" is a dist tag: uploads are routed by the bare release (an el9 package goes to "9"), so list "9"`,
		`line 5: repo.os_releases: ".hidden" is not a release`,
	}
	got := strings.Split(strings.TrimPrefix(err.Error(), path+": "), "\n")
	if len(got) != len(want) {
		t.Errorf("%d problems, want %d:\n%v", len(got), len(want), err)
	}
	for i, w := range want {
		if i >= len(got) || !strings.Contains(got[i], w) {
			t.Errorf("problem %d: want %q; got:\n%v", i+1, w, err)
		}
	}
}

func TestConfiguredRepos(t *testing.T) {
	cfg := Default()
	if repos, err := cfg.ConfiguredRepos(); repos != nil || err != nil {
		t.Fatalf("without os_releases: %v, %v; want none", repos, err)
	}
	// YAML numbers are fine as releases.
	parsed, err := Parse([]byte("repo:\n  os_releases: [9, 10]\n  arches: [x86_64, aarch64]\n  channels: [testing, stable]\n  default_channel: testing\n  layout: '{{.Channel}}/{{.OSRelease}}/{{.Arch}}'\n"))
	if err != nil {
		t.Fatal(err)
	}
	repos, err := parsed.ConfiguredRepos()
	if err != nil {
		t.Fatal(err)
	}
	var rels []string
	for _, r := range repos {
		rels = append(rels, r.Rel)
	}
	want := "testing/9/x86_64 testing/9/aarch64 testing/9/SRPMS testing/10/x86_64 testing/10/aarch64 testing/10/SRPMS " +
		"stable/9/x86_64 stable/9/aarch64 stable/9/SRPMS stable/10/x86_64 stable/10/aarch64 stable/10/SRPMS"
	if strings.Join(rels, " ") != want {
		t.Errorf("repos:\n%s\nwant\n%s", strings.Join(rels, " "), want)
	}
	if repos[4].Channel != "testing" || repos[4].OSRelease != "10" || repos[4].Arch != "aarch64" {
		t.Errorf("repos[4] = %+v", repos[4])
	}

	abbr := Default()
	abbr.Repo.OSReleases = []string{"9"}
	abbr.Repo.Layout = "{{.OSAbbr}}{{.OSRelease}}/{{.Arch}}"
	if _, err := abbr.ConfiguredRepos(); !errors.Is(err, ErrNoOSAbbr) {
		t.Errorf("layout with OSAbbr: err = %v, want ErrNoOSAbbr", err)
	}
	notes := strings.Join(abbr.Notes(), "\n")
	if !strings.Contains(notes, "no empty repositories are created at start") {
		t.Errorf("notes lack the os_releases remark: %s", notes)
	}
}
