package fstree

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSnapshotBig: a directory large enough for the two-goroutine listing is listed completely, each
// entry with its own size, mtime and type, as os.Lstat sees it.
func TestSnapshotBig(t *testing.T) {
	repo := t.TempDir()
	dir := filepath.Join(repo, "Packages")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := parallelStatFrom + 7
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("p%05d.rpm", i))
		if err := os.WriteFile(p, make([]byte, i%97), 0o644); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(time.Duration(i) * time.Second)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("p00000.rpm", filepath.Join(dir, "link.rpm")); err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap) != n+1 {
		t.Fatalf("%d entries, want %d", len(snap), n+1)
	}
	for name, e := range snap {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if e.size != fi.Size() || !e.modTime.Equal(fi.ModTime()) || e.mode.Type() != fi.Mode().Type() {
			t.Errorf("%s: %+v, Lstat size %d mtime %v mode %v", name, e, fi.Size(), fi.ModTime(), fi.Mode())
		}
	}
}
