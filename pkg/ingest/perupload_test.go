package ingest

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// TestLocateOnlyForAllow: an upload locates its repositories (Options.Locate, which inverts the layout with
// regexps) only to ask Request.Allow; without an Allow hook (no server.permissions) it never calls Locate, and
// with one it still gets the located Targets.
func TestLocateOnlyForAllow(t *testing.T) {
	var calls atomic.Int64
	e := newEnv(t, func(o *Options) {
		o.Locate = func(rel string) (string, string, string, bool) {
			calls.Add(1)
			return "", "9", "x86_64", true
		}
	})
	data := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"})
	if _, err := e.in.Ingest(context.Background(), Request{SpoolPath: e.spoolFile(t, data)}); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("Locate called %d times for an upload without Allow, want 0", n)
	}
	var got []Target
	data = testrpm.Build(t, testrpm.Spec{Name: "other", Release: "1.el9", Arch: "x86_64"})
	req := Request{SpoolPath: e.spoolFile(t, data), Allow: func(ts []Target) error { got = ts; return nil }}
	if _, err := e.in.Ingest(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if want := (Target{OSRelease: "9", Arch: "x86_64"}); len(got) != 1 || got[0] != want || calls.Load() != 1 {
		t.Errorf("with Allow: targets %v after %d Locate calls, want [%v] after 1", got, calls.Load(), want)
	}
}

// TestPackagesDirRemovedMeanwhile: the tree makes sure of a repository's Packages/ once, not on every upload; an
// operator who removes it afterwards does not break later uploads, which make it again and place the package.
func TestPackagesDirRemovedMeanwhile(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.upload(t, testrpm.Build(t, testrpm.Spec{Name: "a", Release: "1.el9", Arch: "x86_64"}), true, ""); err != nil {
		t.Fatal(err)
	}
	pk := filepath.Join(e.top, "9", "x86_64", "Packages")
	if err := os.RemoveAll(pk); err != nil {
		t.Fatal(err)
	}
	res, err := e.upload(t, testrpm.Build(t, testrpm.Spec{Name: "b", Release: "1.el9", Arch: "x86_64"}), true, "")
	if err != nil || res.Status != Created {
		t.Fatalf("upload after Packages/ was removed: %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(pk, "b-1.0-1.el9.x86_64.rpm")); err != nil {
		t.Error(err)
	}
	e.assertSpoolEmpty(t)
}
