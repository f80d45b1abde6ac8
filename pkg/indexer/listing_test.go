package indexer

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
)

// TestPublishedSetFromSnapshotEqualsListing: the set Createrepo takes from the fs tree's listing (the Work's
// Packages, from its one snapshot of Packages/) is the set listPackages lists: regular and hidden *.rpm files, symlinks by their target, and no other file, directory
// or dangling symlink.
func TestPublishedSetFromSnapshotEqualsListing(t *testing.T) {
	repo := t.TempDir()
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	writePkg(t, repo, "a-1-1.x86_64.rpm", 10, t0)
	writePkg(t, repo, ".hidden-1-1.x86_64.rpm", 11, t0.Add(time.Hour))
	writePkg(t, repo, "notes.txt", 12, t0)
	pkgs := filepath.Join(repo, "Packages")
	if err := os.Mkdir(filepath.Join(pkgs, "dir.rpm"), 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "elsewhere.rpm")
	if err := os.WriteFile(target, make([]byte, 13), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, to := range map[string]string{"linked-1-1.x86_64.rpm": target, "dangling-1-1.x86_64.rpm": "/nonexistent.rpm"} {
		if err := os.Symlink(to, filepath.Join(pkgs, link)); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := fstree.New(fstree.Options{TopDir: filepath.Dir(repo)})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	entries, err := tr.List(t.Context(), filepath.Base(repo))
	if err != nil {
		t.Fatal(err)
	}
	got := pkgSet{}
	for _, e := range entries {
		got["Packages/"+e.Name] = stamp{size: e.Size, mtime: e.ModTime.Unix()}
	}
	want, err := listPackages(repo)
	if err != nil {
		t.Fatal(err)
	}
	if !got.equal(want) || len(got) != 3 {
		t.Fatalf("from the snapshot %v, listPackages %v (want 3 entries)", got, want)
	}
}

// listingFake is a Runner that reports a listing of its own, and counts its runs.
type listingFake struct {
	set  pkgSet
	runs atomic.Int32
}

func (f *listingFake) Run(context.Context, string) error { panic("the scheduler must call RunListing") }

func (f *listingFake) RunListing(context.Context, string) (pkgSet, error) {
	f.runs.Add(1)
	return f.set, nil
}

// TestSchedulerTakesRunnersListing: with a runner that lists Packages/ itself, the scheduler publishes that
// listing (and counts its packages) without listing the directory again: a name the directory does not hold
// shows up, one it holds does not.
func TestSchedulerTakesRunnersListing(t *testing.T) {
	repo := t.TempDir()
	writePkg(t, repo, "on-disk-1-1.x86_64.rpm", 10, time.Now())
	f := &listingFake{set: pkgSet{"Packages/from-runner-1-1.x86_64.rpm": {size: 1, mtime: 2}}}
	pubs := make(chan Published, 1)
	opts := Options{QuietPeriod: time.Millisecond, MaxDelay: time.Second, Timeout: time.Minute, ShutdownTimeout: time.Minute,
		Workers: 1, OnPublish: func(p Published) { pubs <- p }}
	s := NewScheduler(f, opts, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	s.Trigger(repo)
	p := expectPublished(t, pubs)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Packages, []string{"Packages/from-runner-1-1.x86_64.rpm"}) {
		t.Errorf("published %v, want the runner's listing", p.Packages)
	}
	for _, st := range s.Status() {
		if st.Dir == repo && st.Packages != 1 {
			t.Errorf("status counts %d packages, want the runner's 1", st.Packages)
		}
	}
}
