package fstree

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// TestStageStatTakesCallersStat (issue 20): StageStat stages with the caller's fstat of the file instead of one of
// its own, and what it places is the same as Stage's: the file, made 0644 and durable, whose new name's stamp
// (tree.PlaceOptions.Made) is the file's size and mtime as they stand after the placement.
func TestStageStatTakesCallersStat(t *testing.T) {
	e := newLazyEnv(t)
	const content = "package bytes"
	p := filepath.Join(e.spool, "up")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	var _ tree.StatStager = e.tr
	s, err := e.tr.StageStat(context.Background(), f, fi)
	if err != nil {
		t.Fatal(err)
	}
	if s.(*staged).fi != fi || s.Size() != int64(len(content)) {
		t.Fatalf("staged with %v (size %d), want the caller's stat (size %d)", s.(*staged).fi, s.Size(), len(content))
	}
	h := sha256.Sum256([]byte(content))
	var made []tree.Stamp
	if _, err := e.tr.Place(context.Background(), []tree.Unit{{Staged: s, SHA256: hex.EncodeToString(h[:]), Name: "p-1-1.el9.x86_64.rpm",
		Repos: []string{"9/x86_64"}}}, tree.PlaceOptions{Made: func(_ tree.Ref, st tree.Stamp) { made = append(made, st) }}); err != nil {
		t.Fatal(err)
	}
	got, err := os.Lstat(e.dst())
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode().Perm() != 0o644 || !os.SameFile(got, fi) {
		t.Errorf("placed %v, want the spooled inode made 0644", got.Mode())
	}
	if len(made) != 1 || made[0].Size != got.Size() || !made[0].ModTime.Equal(got.ModTime()) {
		t.Errorf("Made reported %v, want the placed file's %d %v", made, got.Size(), got.ModTime())
	}
}

// TestStageFsyncsThroughRing (issue 20, fifth pass): Stage's fsync of the upload runs through the tree's io_uring
// (durable.Ring), so the goroutine waiting for it holds no thread in a blocking call; one fsync per staged file.
func TestStageFsyncsThroughRing(t *testing.T) {
	e := newLazyEnv(t)
	r := e.tr.ring
	if r == nil {
		t.Fatal("the tree has no io_uring for its fsyncs (durable.NewRing failed: see TestRingFsync)")
	}
	before := r.Fsyncs()
	s, _, _ := e.stage(t, "up", "package bytes")
	if got := r.Fsyncs() - before; got != 1 {
		t.Errorf("Stage made %d fsyncs through the ring, want 1", got)
	}
	// The placement's fsync of Packages/ (through the group commit) goes the same way.
	before = r.Fsyncs()
	if _, err := e.tr.Place(context.Background(), []tree.Unit{{Staged: s, SHA256: hex.EncodeToString(make([]byte, 32)),
		Name: "p-1-1.el9.x86_64.rpm", Repos: []string{"9/x86_64"}}}, tree.PlaceOptions{}); err != nil {
		t.Fatal(err)
	}
	if r.Fsyncs() == before {
		t.Error("Place fsynced no directory through the ring")
	}
}

// TestStageWithoutRing: where io_uring is refused (New keeps a nil ring), Stage and Place make their fsyncs
// directly and still work, and Close closes no ring.
func TestStageWithoutRing(t *testing.T) {
	e := newLazyEnv(t)
	if err := e.tr.ring.Close(); err != nil {
		t.Fatal(err)
	}
	e.tr.ring = nil // as New leaves it when durable.NewRing fails
	s, _, _ := e.stage(t, "up", "package bytes")
	if _, err := e.tr.Place(context.Background(), []tree.Unit{{Staged: s, SHA256: hex.EncodeToString(make([]byte, 32)),
		Name: "p-1-1.el9.x86_64.rpm", Repos: []string{"9/x86_64"}}}, tree.PlaceOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.tr.TopDir(), "9", "x86_64", "Packages", "p-1-1.el9.x86_64.rpm")); err != nil {
		t.Errorf("not placed without a ring: %v", err)
	}
}
