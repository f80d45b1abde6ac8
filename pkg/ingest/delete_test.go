package ingest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

func TestDelete(t *testing.T) {
	e := newChannelEnv(t, nil)
	e.build(t)
	e.put(t, testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "noarch"}), "stable")
	tests := []struct {
		name      string
		req       DeleteRequest
		removed   []string
		dirtyRepo []string
	}{
		{"one arch", DeleteRequest{Path: "testing/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"},
			[]string{"testing/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"}, []string{"testing/9/x86_64"}},
		{"source package", DeleteRequest{Path: "testing/9/SRPMS/Packages/hello-1.0-1.el9.src.rpm", AllArches: true},
			[]string{"testing/9/SRPMS/Packages/hello-1.0-1.el9.src.rpm"}, []string{"testing/9/SRPMS"}},
		{"one noarch copy", DeleteRequest{Path: "stable/9/aarch64/Packages/hello-1.0-1.el9.noarch.rpm"},
			[]string{"stable/9/aarch64/Packages/hello-1.0-1.el9.noarch.rpm"}, []string{"stable/9/aarch64"}},
		{"noarch, all arches", DeleteRequest{Path: "testing/9/aarch64/Packages/hello-1.0-1.el9.noarch.rpm", AllArches: true},
			[]string{"testing/9/aarch64/Packages/hello-1.0-1.el9.noarch.rpm", "testing/9/x86_64/Packages/hello-1.0-1.el9.noarch.rpm"},
			[]string{"testing/9/aarch64", "testing/9/x86_64"}},
		// The aarch64 copy is gone already: the x86_64 one goes, the missing one is no error.
		{"noarch, all arches, one copy left", DeleteRequest{Path: "stable/9/x86_64/Packages/hello-1.0-1.el9.noarch.rpm", AllArches: true},
			[]string{"stable/9/x86_64/Packages/hello-1.0-1.el9.noarch.rpm"}, []string{"stable/9/x86_64"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.treeFiles(t)
			e.dirty = nil
			res, err := e.in.Delete(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Paths, tc.removed) {
				t.Errorf("removed %v, want %v", res.Paths, tc.removed)
			}
			var wantDirty []string
			for _, r := range tc.dirtyRepo {
				wantDirty = append(wantDirty, filepath.Join(e.top, r))
			}
			if !slices.Equal(res.Dirty, wantDirty) || !slices.Equal(slices.Compact(slices.Sorted(slices.Values(e.dirty))), wantDirty) {
				t.Errorf("Dirty %v, MarkDirty %v; want %v", res.Dirty, e.dirty, wantDirty)
			}
			want := slices.DeleteFunc(before, func(f string) bool { return slices.Contains(tc.removed, f) })
			if got := e.treeFiles(t); !slices.Equal(got, want) {
				t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
	_, err := e.in.Delete(context.Background(), DeleteRequest{Path: "testing/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "testing/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm is not stored") {
		t.Errorf("deleting it again: %v, want ErrNotFound", err)
	}
}

// TestDeleteConfinement: every path that is not a regular <repo>/Packages/<file>.rpm inside the tree is refused
// with nothing touched, inside the tree or out, and no repository marked.
func TestDeleteConfinement(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.upload(t, testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"}), true, ""); err != nil {
		t.Fatal(err)
	}
	base := filepath.Dir(e.top)
	// Victims outside the tree, each reachable by a path that looks like a package path.
	victims := []string{filepath.Join(base, "victim.rpm"), filepath.Join(base, "out", "Packages", "victim.rpm")}
	for _, v := range victims {
		os.MkdirAll(filepath.Dir(v), 0o755)
		if err := os.WriteFile(v, []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustSymlink := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(e.top, name)); err != nil {
			t.Fatal(err)
		}
	}
	mustSymlink(filepath.Join(base, "out"), "escape")                                // a repository that is a link out
	mustSymlink(victims[0], "9/x86_64/Packages/link-1.0-1.el9.x86_64.rpm")           // a package that is a link out
	mustSymlink("9", "alias")                                                        // a link inside the tree
	mustSymlink("hello-1.0-1.el9.x86_64.rpm", "9/x86_64/Packages/ln-1-1.x86_64.rpm") // a package linking to another
	os.WriteFile(filepath.Join(e.top, "9/x86_64/Packages/notes.txt"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(e.top, "9/x86_64/Packages/dir.rpm"), 0o755)

	tests := []struct {
		path string
		kind error
		msg  string
	}{
		{"../victim.rpm", ErrForbidden, "has a path segment that is empty, hidden, '..'"},
		{"9/x86_64/Packages/../../../../victim.rpm", ErrForbidden, "'..'"},
		{"9/x86_64/../../../out/Packages/victim.rpm", ErrForbidden, "'..'"},
		{"%2e%2e/out/Packages/victim.rpm", ErrForbidden, "has characters no repository path has"}, // double-encoded, decoded once
		{"9/x86_64/Packages/%2e%2e%2f%2e%2e%2fvictim.rpm", ErrForbidden, "has characters no repository path has"},
		{"/" + victims[0], ErrForbidden, "empty"},
		{"9//x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", ErrForbidden, "empty"},
		{"./9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", ErrForbidden, "hidden"},
		{"9/x86_64/Packages/.hello.rpm", ErrForbidden, "hidden"},
		{".rpm-ingestd-tmp/Packages/x.rpm", ErrForbidden, "hidden"},
		{"escape/Packages/victim.rpm", ErrForbidden, "passes through the symbolic link escape"},
		{"alias/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", ErrForbidden, "passes through the symbolic link alias"},
		{"9/x86_64/Packages/link-1.0-1.el9.x86_64.rpm", ErrForbidden, "passes through the symbolic link"},
		{"9/x86_64/Packages/ln-1-1.x86_64.rpm", ErrForbidden, "passes through the symbolic link"},
		{"9/x86_64/Packages/notes.txt", ErrForbidden, "is not an .rpm file"},
		{"9/x86_64/repodata/repomd.xml", ErrForbidden, "is not in a Packages directory"},
		{"9/x86_64/hello-1.0-1.el9.x86_64.rpm", ErrForbidden, "is not in a Packages directory"},
		{"Packages/hello.rpm", ErrForbidden, "is not in a Packages directory"},
		{"9/x86_64/Packages/dir.rpm", ErrForbidden, "is not a regular file"},
		{"9/x86_64/Packages", ErrForbidden, "is not in a Packages directory"},
		{"", ErrForbidden, "empty"},
		{"9/x86_64/Packages/absent-1.0-1.el9.x86_64.rpm", ErrNotFound, "is not stored"},
		{"8/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", ErrNotFound, "is not stored"},
	}
	before := e.treeFiles(t)
	e.dirty = nil
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			_, err := e.in.Delete(context.Background(), DeleteRequest{Path: tc.path, AllArches: true})
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v saying %q", err, tc.kind, tc.msg)
			}
		})
	}
	if after := e.treeFiles(t); !slices.Equal(after, before) {
		t.Errorf("a refused deletion changed the tree:\nbefore %v\nafter  %v", before, after)
	}
	for _, v := range victims {
		if b, err := os.ReadFile(v); err != nil || string(b) != "precious" {
			t.Errorf("%s: %q, %v", v, b, err)
		}
	}
	if len(e.dirty) != 0 {
		t.Errorf("refusals marked %v dirty", e.dirty)
	}
}

func TestDeleteAllArchesNeedsLocate(t *testing.T) {
	e := newEnv(t, nil) // no Locate
	if _, err := e.upload(t, testrpm.Build(t, testrpm.Spec{Name: "data", Release: "1.el9", Arch: "noarch"}), true, ""); err != nil {
		t.Fatal(err)
	}
	_, err := e.in.Delete(context.Background(), DeleteRequest{Path: "9/x86_64/Packages/data-1.0-1.el9.noarch.rpm", AllArches: true})
	if !errors.Is(err, ErrRejected) || len(e.treeFiles(t)) != 2 {
		t.Fatalf("err = %v, tree %v; want ErrRejected and both copies kept", err, e.treeFiles(t))
	}
	e.in.opts.Locate = func(string) (string, string, string, bool) { return "", "", "", false }
	_, err = e.in.Delete(context.Background(), DeleteRequest{Path: "9/x86_64/Packages/data-1.0-1.el9.noarch.rpm", AllArches: true})
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "is not a repository repo.layout renders") {
		t.Fatalf("unlocatable repository: %v", err)
	}
}
