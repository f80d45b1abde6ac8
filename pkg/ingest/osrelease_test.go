package ingest

import (
	"context"
	"errors"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// TestOSReleasesRestrictRouting: with repo.os_releases listed, an upload routed to any other release is refused
// with ErrRejected (422) naming the list, and nothing is created; without the list any release goes, as before.
func TestOSReleasesRestrictRouting(t *testing.T) {
	el9 := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"})
	bare := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1", Arch: "noarch"})
	fc39 := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.fc39", Arch: "x86_64"})
	tests := []struct {
		name      string
		data      []byte
		osRelease string
		want      string // the path created, or "" for a refusal
	}{
		{"dist tag el9", el9, "", "9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"},
		{"os_release=9", bare, "9", "9/x86_64/Packages/hello-1.0-1.noarch.rpm"},
		{"os_release=el10", bare, "el10", "10/x86_64/Packages/hello-1.0-1.noarch.rpm"},
		{"os_release=nine", bare, "nine", ""},
		{"os_release=EL9", bare, "EL9", ""},
		{"os_release=rhel9", bare, "rhel9", ""},
		{"os_release=9.2", bare, "9.2", ""},
		{"os_release overrides a good dist tag", el9, "7", ""},
		{"dist tag fc39", fc39, "", ""},
	}
	for _, tc := range tests {
		for _, viaSpool := range []bool{true, false} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t, func(o *Options) { o.OSReleases = []string{"8", "9", "10"} })
				res, err := e.upload(t, tc.data, viaSpool, tc.osRelease)
				if tc.want != "" {
					if err != nil || res.Paths[0] != tc.want {
						t.Fatalf("got %+v, %v; want %s", res, err, tc.want)
					}
					return
				}
				if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "is not one of repo.os_releases (8, 9, 10)") {
					t.Fatalf("err = %v, want ErrRejected naming repo.os_releases (8, 9, 10)", err)
				}
				entries, _ := os.ReadDir(e.top)
				for _, ent := range entries {
					if ent.Name() != fstree.StagingName && ent.Name() != fstree.LocksName {
						t.Errorf("refused upload left %s in the tree", ent.Name())
					}
				}
				if len(e.dirty) != 0 {
					t.Errorf("refused upload marked %v dirty", e.dirty)
				}
				e.assertSpoolEmpty(t)
			})
		}
	}

	// Without the list, today's behaviour: any release named creates its repository.
	e := newEnv(t, nil)
	if res, err := e.upload(t, bare, false, "nine"); err != nil || res.Paths[0] != "nine/x86_64/Packages/hello-1.0-1.noarch.rpm" {
		t.Fatalf("without repo.os_releases: %+v, %v", res, err)
	}
}

// TestOSReleasesRestrictPromotion: a build copied by hand into a release that repo.os_releases does not list is
// not promoted, and no repository of that release appears in the target channel.
func TestOSReleasesRestrictPromotion(t *testing.T) {
	e := newChannelEnv(t, func(o *Options) { o.OSReleases = []string{"9"} })
	dir := filepath.Join(e.top, "testing", "7", "x86_64", "Packages")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1", Arch: "x86_64"})
	if err := os.WriteFile(filepath.Join(dir, "hello-1.0-1.x86_64.rpm"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := e.in.Promote(context.Background(), PromoteRequest{From: "testing", To: "stable", Name: "hello", Version: "1.0", Release: "1", OSRelease: "7"})
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), `OS release "7" is not one of repo.os_releases (9)`) {
		t.Fatalf("err = %v, want ErrRejected naming repo.os_releases", err)
	}
	if _, err := os.Stat(filepath.Join(e.top, "stable")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused promotion created stable/: %v", err)
	}
}
