package ingest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// TestCommitSeesStampsOfCreatedNames (issue 20): when Commit runs, Result.Stamps gives the size and mtime of each
// name the upload created (the package index describes the new file from it instead of a stat), and a zero Stamp
// for a name found present or replaced. A stamp given must be what the file has once Ingest returns: a replacement
// under overwrite sets a new mtime on the staged inode, which a name created by the same upload shares.
func TestCommitSeesStampsOfCreatedNames(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Overwrite = true })
	first := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "noarch"})
	rebuilt := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "noarch", Salt: "rebuilt"})
	const x86, arm = "9/x86_64/Packages/hello-1.0-1.el9.noarch.rpm", "9/aarch64/Packages/hello-1.0-1.el9.noarch.rpm"

	upload := func(data []byte) ([]string, []tree.Stamp) {
		t.Helper()
		var paths []string
		var stamps []tree.Stamp
		_, err := e.in.Ingest(context.Background(), Request{SpoolPath: e.spoolFile(t, data), Commit: func(res *Result) error {
			paths, stamps = append([]string(nil), res.Paths...), append([]tree.Stamp(nil), res.Stamps...)
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		// Every stamp given is the file's as it stands now.
		for i, st := range stamps {
			if st == (tree.Stamp{}) {
				continue
			}
			fi, err := os.Lstat(filepath.Join(e.top, paths[i]))
			if err != nil {
				t.Fatal(err)
			}
			if st.Size != fi.Size() || !st.ModTime.Equal(fi.ModTime()) {
				t.Errorf("%s: stamp %d %v, the file has %d %v", paths[i], st.Size, st.ModTime, fi.Size(), fi.ModTime())
			}
		}
		return paths, stamps
	}
	given := func(paths []string, stamps []tree.Stamp, p string) bool {
		for i := range paths {
			if paths[i] == p {
				return i < len(stamps) && stamps[i] != (tree.Stamp{})
			}
		}
		t.Fatalf("%s not among the paths %v", p, paths)
		return false
	}

	// Created in both repositories: both stamped.
	paths, stamps := upload(first)
	if !given(paths, stamps, x86) || !given(paths, stamps, arm) {
		t.Errorf("first upload: stamps %v for %v, want both given", stamps, paths)
	}
	// A retry: both present, none stamped.
	paths, stamps = upload(first)
	if given(paths, stamps, x86) || given(paths, stamps, arm) {
		t.Errorf("retry: stamps %v for %v, want none", stamps, paths)
	}
	// One name gone, the other replaced by different bytes: the created one shares the replacement's new mtime,
	// pushed a second past the old file's, which it did not have when the tree
	// staged it; whatever is given must match the file (checked in upload).
	if err := os.Remove(filepath.Join(e.top, arm)); err != nil {
		t.Fatal(err)
	}
	paths, stamps = upload(rebuilt)
	if given(paths, stamps, x86) {
		t.Errorf("replacement: stamp given for the replaced name %s", x86)
	}
}
