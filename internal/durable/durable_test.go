package durable

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestMkdirAllSyncsEveryNewEntry: each created directory's entry is synced in its parent, parents first, and an
// existing path syncs nothing.
func TestMkdirAllSyncsEveryNewEntry(t *testing.T) {
	base := t.TempDir()
	var synced []string
	record := func(dir string) error { synced = append(synced, dir); return SyncDir(dir) }
	dir := filepath.Join(base, "a", "b", "c")
	if err := MkdirAll(dir, record); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("not created: %v", err)
	}
	want := []string{base, filepath.Join(base, "a"), filepath.Join(base, "a", "b")}
	if !slices.Equal(synced, want) {
		t.Errorf("synced %v, want %v", synced, want)
	}
	synced = nil
	if err := MkdirAll(dir, record); err != nil || len(synced) != 0 {
		t.Errorf("existing path: err %v, synced %v; want a no-op", err, synced)
	}
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o644)
	if err := MkdirAll(filepath.Join(file, "sub"), record); err == nil {
		t.Error("MkdirAll under a regular file succeeded")
	}
	if err := SyncDir(filepath.Join(base, "missing")); err == nil {
		t.Error("SyncDir of a missing directory succeeded")
	}
}
