package ingest

import (
	"context"
	"errors"
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

// openFDs is how many descriptors this process has open.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestSpoolNested: files in nginx's levelled spool (<d>/<dd>/<name>) are taken and their names removed; a
// directory symlink that leads out of the spool, or a name that is not a regular file, is refused and left alone;
// and no upload, taken or refused, keeps a descriptor open (the directory held for the removal included).
func TestSpoolNested(t *testing.T) {
	forEachSpoolLookup(t, testSpoolNested)
}

func testSpoolNested(t *testing.T, e *env) {
	level := filepath.Join(e.spool, "3", "07")
	outside := t.TempDir()
	for _, d := range []string{level, filepath.Join(e.spool, "4", "08", "sub")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(e.spool, "5")); err != nil {
		t.Fatal(err)
	}
	data := testrpm.Build(t, testrpm.Spec{Name: "nested", Release: "1.el9", Arch: "x86_64"})
	if err := os.WriteFile(filepath.Join(outside, "0000000009"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	before := openFDs(t)
	for _, tc := range []struct {
		name      string
		path      string
		forbidden bool
	}{
		{"levelled", filepath.Join(level, "0000000007"), false},
		{"through a symlink out of the spool", filepath.Join(e.spool, "5", "0000000009"), true},
		{"a directory", filepath.Join(e.spool, "4", "08", "sub"), true},
		{"missing", filepath.Join(level, "0000000008"), true},
	} {
		if !tc.forbidden {
			if err := os.WriteFile(tc.path, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		_, err := e.in.Ingest(context.Background(), Request{SpoolPath: tc.path})
		if tc.forbidden != errors.Is(err, ErrForbidden) || (!tc.forbidden && err != nil) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if _, err := os.Lstat(tc.path); tc.forbidden != (err == nil) && tc.name != "missing" {
			t.Errorf("%s: after the upload the name is there: %v, want %v", tc.name, err == nil, tc.forbidden)
		}
	}
	if _, err := os.Stat(filepath.Join(e.top, "9", "x86_64", "Packages", "nested-1.0-1.el9.x86_64.rpm")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "0000000009")); err != nil {
		t.Errorf("file outside the spool touched: %v", err)
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open before the uploads, %d after", before, after)
	}
}
