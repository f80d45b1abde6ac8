package fstree

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/treetest"
)

// ctimeOf is path's change time (the entry itself, symlinks not followed).
func ctimeOf(t *testing.T, path string) time.Time {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return time.Unix(st.Ctim.Unix())
}

// waitTick returns once the filesystem of dir stamps changes later than every file in files: the clock that sets
// change times may be coarse (a few ms), and a file changed in the tick of Begin's mark counts as changed.
func waitTick(t *testing.T, dir string, files ...string) {
	t.Helper()
	var latest time.Time
	for _, f := range files {
		if c := ctimeOf(t, f); c.After(latest) {
			latest = c
		}
	}
	probe := filepath.Join(dir, "probe")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if err := os.WriteFile(probe, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if ctimeOf(t, probe).After(latest) {
			os.Remove(probe)
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the filesystem clock did not advance")
}

// newMarkRepo makes a tree with repository "r" holding a.rpm (3 bytes), b.rpm (5 bytes) and a symlink l.rpm to
// b.rpm, all changed at least one clock tick before it returns.
func newMarkRepo(t *testing.T) (*Tree, string) {
	t.Helper()
	top := t.TempDir()
	pkgs := filepath.Join(top, "r", packagesDir)
	if err := os.MkdirAll(pkgs, 0o755); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for name, body := range map[string]string{"a.rpm": "aaa", "b.rpm": "bbbbb"} {
		p := filepath.Join(pkgs, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("b.rpm", filepath.Join(pkgs, "l.rpm")); err != nil {
		t.Fatal(err)
	}
	tr, err := New(Options{TopDir: top})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	waitTick(t, top, filepath.Join(pkgs, "a.rpm"), filepath.Join(pkgs, "b.rpm"), filepath.Join(pkgs, "l.rpm"), pkgs)
	return tr, pkgs
}

// TestBeginListsNamesOnly: Begin hands over the package names without a stamp for the regular files (no stat
// per package before createrepo_c; a symlink is followed, as createrepo_c does, which gives its stamp), and
// after Publish every package has the stamp Lstat (Stat for the symlink) gives.
func TestBeginListsNamesOnly(t *testing.T) {
	tr, pkgs := newMarkRepo(t)
	ctx := context.Background()
	w, done := treetest.Begin(t, tr, "r")
	defer done()
	got := w.Packages()
	if len(got) != 3 || got[0].Name != "a.rpm" || got[1].Name != "b.rpm" || got[2].Name != "l.rpm" {
		t.Fatalf("Begin's packages %+v, want a.rpm, b.rpm, l.rpm in that order", got)
	}
	if !got[0].ModTime.IsZero() || got[0].Size != 0 || !got[1].ModTime.IsZero() {
		t.Errorf("Begin stat'ed regular files: %+v", got[:2])
	}
	if got[2].Size != 5 {
		t.Errorf("symlinked package without its target's stamp at Begin: %+v", got[2])
	}
	if err := w.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range w.Packages() {
		fi, err := os.Stat(filepath.Join(pkgs, e.Name))
		if err != nil {
			t.Fatal(err)
		}
		if e.Size != fi.Size() || !e.ModTime.Equal(fi.ModTime()) {
			t.Errorf("after Publish %s has %+v, Stat says size %d mtime %v", e.Name, e.Stamp, fi.Size(), fi.ModTime())
		}
	}
	if HasMarker(filepath.Dir(pkgs)) {
		t.Error("a pending change recorded although nothing changed during the run")
	}
}

// TestPublishRecordsChangesDuringRun: whatever changes Packages/ between Begin and Publish leaves a pending
// change, including a file replaced by one of the same size and mtime (which a size and mtime comparison
// misses: only the change time tells); nothing changed leaves none.
func TestPublishRecordsChangesDuringRun(t *testing.T) {
	old := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		change func(t *testing.T, pkgs string)
		want   bool
	}{
		{"nothing", func(*testing.T, string) {}, false},
		{"package added", func(t *testing.T, pkgs string) {
			if err := os.WriteFile(filepath.Join(pkgs, "c.rpm"), []byte("c"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"package removed", func(t *testing.T, pkgs string) {
			if err := os.Remove(filepath.Join(pkgs, "a.rpm")); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"other file added", func(t *testing.T, pkgs string) {
			if err := os.WriteFile(filepath.Join(pkgs, "README"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"rewritten in place, same size and mtime", func(t *testing.T, pkgs string) {
			p := filepath.Join(pkgs, "a.rpm")
			if err := os.WriteFile(p, []byte("AAA"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"replaced by rename, same size and mtime", func(t *testing.T, pkgs string) {
			tmp := filepath.Join(pkgs, ".a.tmp")
			if err := os.WriteFile(tmp, []byte("AAA"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(tmp, old, old); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(pkgs, "a.rpm")); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"symlinked package's target rewritten", func(t *testing.T, pkgs string) {
			p := filepath.Join(pkgs, "b.rpm")
			if err := os.WriteFile(p, []byte("BBBBB"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, pkgs := newMarkRepo(t)
			ctx := context.Background()
			w, done := treetest.Begin(t, tr, "r")
			defer done()
			tc.change(t, pkgs)
			if err := w.Publish(ctx); err != nil {
				t.Fatal(err)
			}
			if got := HasMarker(filepath.Dir(pkgs)); got != tc.want {
				t.Errorf("pending change recorded: %t, want %t", got, tc.want)
			}
		})
	}
}

// TestListNamesMatchesReadDir: the names listing that reads getdents records itself lists what os.ReadDir
// lists, sorted, with the same kinds, across several getdents batches (more record bytes than its buffer).
func TestListNamesMatchesReadDir(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("x", 60)
	n := direntBuf/(19+len(long)+12) + 500 // record bytes beyond one buffer
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%06d-%s.rpm", i, long)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("p000000-"+long+".rpm", filepath.Join(dir, "link.rpm")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.rpm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "fifo.rpm"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := listNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		t.Fatal(err)
	}
	if len(got.entries) != len(want) {
		t.Fatalf("listNames: %d entries, os.ReadDir %d", len(got.entries), len(want))
	}
	for i, w := range want {
		if g := got.entries[i]; g.name != w.Name() || g.kind != kind(w.Type()) {
			t.Fatalf("entry %d: listNames %q %v, os.ReadDir %q %v", i, g.name, g.kind, w.Name(), kind(w.Type()))
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil || got.dev != st.Dev {
		t.Errorf("listNames device %d, stat %d (%v)", got.dev, st.Dev, err)
	}
	// What createrepo_c indexes: the regular *.rpm files and the symlink to one, not the directory or the FIFO.
	pkgs, err := packageNames(dir, got)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != n+1 {
		t.Errorf("packageNames: %d packages, want %d", len(pkgs), n+1)
	}
}
