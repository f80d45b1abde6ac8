package indexer

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
)

// TestSchedulerReadsThroughTree: with Options.Tree, Recover, Status and Visible know a repository only through
// the tree (tree.Repos, HasPending, OpenMetadata, Open), not through files under TopDir: here the tree lives in
// another directory than TopDir, as an s3 tree would, and TopDir holds nothing.
func TestSchedulerReadsThroughTree(t *testing.T) {
	remote, local := t.TempDir(), t.TempDir()
	mtime := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	indexed := mkRepo(t, remote, "9/x86_64")
	st := writePkg(t, indexed, "a-1-1.x86_64.rpm", 10, mtime)
	writeRepodata(t, indexed, "", gz(t, primaryXML(pkgSet{"Packages/a-1-1.x86_64.rpm": st})))
	mkRepo(t, remote, "9/aarch64", DirtyMarker) // pending, never published
	tr, err := fstree.New(fstree.Options{TopDir: remote})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	opts := testOptions()
	opts.TopDir, opts.Tree = local, tr
	h := newHarness(t, opts)

	n, err := h.s.Recover(local)
	if err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want the one pending repository", n, err)
	}
	var dirs []string
	for _, rs := range h.s.Status() {
		dirs = append(dirs, rs.Dir)
		if rs.Dir == filepath.Join(local, "9", "x86_64") && (rs.Packages != 1 || rs.LastPublished == nil) {
			t.Errorf("indexed repository registered as %+v", rs)
		}
	}
	if want := []string{filepath.Join(local, "9", "aarch64"), filepath.Join(local, "9", "x86_64")}; !slices.Equal(dirs, want) {
		t.Fatalf("Status lists %v, want %v", dirs, want)
	}
	dir := filepath.Join(local, "9", "x86_64")
	if !h.s.Visible(dir, "Packages/a-1-1.x86_64.rpm", "0000") {
		t.Error("a package published in the tree is not visible")
	}
	if h.s.Visible(dir, "Packages/b-1-1.x86_64.rpm", "0000") {
		t.Error("an unpublished package is visible")
	}
	// The stored file changed since the publish (no sha256 in this metadata: compared by stamp).
	writePkg(t, indexed, "a-1-1.x86_64.rpm", 11, mtime)
	if h.s.Visible(dir, "Packages/a-1-1.x86_64.rpm", "0000") {
		t.Error("a package replaced after the publish is visible")
	}
}

// TestVisibleNoticesAnotherPublisher: on a tree another daemon publishes into (Options.RefreshPublished), a
// package that daemon published becomes visible here, and a WaitVisible here returns, without a run of this
// Scheduler; without RefreshPublished the cached published set would hide it until this process's next run.
func TestVisibleNoticesAnotherPublisher(t *testing.T) {
	remote, local := t.TempDir(), t.TempDir()
	mtime := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	repoDir := mkRepo(t, remote, "9/x86_64")
	a := writePkg(t, repoDir, "a-1-1.x86_64.rpm", 10, mtime)
	writeRepodata(t, repoDir, "one-primary.xml.gz", gz(t, primaryXML(pkgSet{"Packages/a-1-1.x86_64.rpm": a})))
	tr, err := fstree.New(fstree.Options{TopDir: remote})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	opts := testOptions()
	opts.TopDir, opts.Tree, opts.RefreshPublished = local, tr, 2*time.Second
	h := newHarness(t, opts)
	dir := filepath.Join(local, "9", "x86_64")
	if !h.s.Visible(dir, "Packages/a-1-1.x86_64.rpm", "0000") || h.s.Visible(dir, "Packages/b-1-1.x86_64.rpm", "0000") {
		t.Fatal("first generation misread")
	}
	waited := make(chan error, 1)
	go func() { waited <- h.s.WaitVisible(t.Context(), dir, "Packages/b-1-1.x86_64.rpm", "0000") }()

	// The other daemon publishes b (a new repomd.xml: another size and mtime).
	b := writePkg(t, repoDir, "b-1-1.x86_64.rpm", 12, mtime)
	writeRepodata(t, repoDir, "two-primary.xml.gz", gz(t, primaryXML(pkgSet{"Packages/a-1-1.x86_64.rpm": a, "Packages/b-1-1.x86_64.rpm": b})))
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(repoDir, "repodata", "repomd.xml"), later, later); err != nil {
		t.Fatal(err)
	}
	if h.s.Visible(dir, "Packages/b-1-1.x86_64.rpm", "0000") {
		t.Error("visible before the refresh period passed: the period does not bound the reads of repomd.xml")
	}
	h.clock.Advance(opts.RefreshPublished)
	if !h.s.Visible(dir, "Packages/b-1-1.x86_64.rpm", "0000") {
		t.Fatal("a package another daemon published is not visible after the refresh period")
	}
	deadline := time.After(30 * time.Second)
	for { // WaitVisible's own timer runs on the fake clock too
		select {
		case err := <-waited:
			if err != nil {
				t.Fatal(err)
			}
			return
		case <-time.After(10 * time.Millisecond):
			h.clock.Advance(opts.RefreshPublished)
		case <-deadline:
			t.Fatal("WaitVisible did not return after another daemon's publish")
		}
	}
}
