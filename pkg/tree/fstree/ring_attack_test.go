package fstree

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStageFsyncErrorThroughRing: many uploads staged at once (so most fsyncs go through the ring, not directly),
// some of them from a pipe, whose fsync fails with EINVAL: each pipe's Stage fails with that error, each file's
// succeeds; no fsync error is lost or handed to another upload.
func TestStageFsyncErrorThroughRing(t *testing.T) {
	tr, err := New(Options{TopDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if tr.ring == nil {
		t.Fatal("no io_uring here: this test is about fsyncs through it")
	}
	// Two fsyncs at once are what sends one through the ring: with one P (-cpu 1) that takes the scheduler handing
	// the P on while a direct fsync blocks, so more Ps, and rounds until one did (each round checks every result).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	for round := 0; round < 20 && tr.ring.Submitted() == 0; round++ {
		stageRound(t, tr)
	}
	if tr.ring.Submitted() == 0 {
		t.Error("no fsync went through the ring")
	}
}

// stageRound stages 200 uploads at once, one in three from a pipe, and checks each one's result.
func stageRound(t *testing.T, tr *Tree) {
	t.Helper()
	spool := t.TempDir()
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		var f *os.File
		if i%3 == 1 {
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pr.Close()
			f = pw
		} else {
			var err error
			if f, err = os.Create(filepath.Join(spool, strconv.Itoa(i)+".rpm")); err != nil {
				t.Fatal(err)
			}
			f.WriteString("data")
		}
		defer f.Close()
		wg.Go(func() {
			s, err := tr.Stage(context.Background(), f)
			errs[i] = err
			if err == nil {
				s.Close()
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i%3 == 1 {
			if !errors.Is(err, unix.EINVAL) {
				t.Errorf("Stage %d of a pipe: %v, want the fsync's EINVAL", i, err)
			}
		} else if err != nil {
			t.Errorf("Stage %d of a file: %v", i, err)
		}
	}
}

// TestTreeSyncDirErrorsThroughRing: concurrent Tree.SyncDir of existing directories succeed, of a missing one fail.
func TestTreeSyncDirErrorsThroughRing(t *testing.T) {
	top := t.TempDir()
	tr, err := New(Options{TopDir: top})
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if i%5 == 0 {
				errs[i] = tr.SyncDir(filepath.Join(top, "missing"))
			} else {
				errs[i] = tr.dirSync.Sync(top)
			}
		})
	}
	// Close races the last of them: those after it fsync directly.
	wg.Go(func() { tr.Close() })
	wg.Wait()
	for i, err := range errs {
		if (i%5 == 0) != (err != nil) {
			t.Errorf("sync %d: %v", i, err)
		}
	}
}
