package fstree

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLockFileRemovedByHand: the bucket lock files stay open between placements (issue 20), and one removed by
// hand must still exclude a second tree on the same top (a second daemon): the first tree notices on its next
// lock that its open file has no name left and meets the second on the file at the path.
func TestLockFileRemovedByHand(t *testing.T) {
	top := t.TempDir()
	newTree := func() *Tree {
		tr, err := New(Options{TopDir: top})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	one := newTree()
	const b = 7
	unlock, err := one.locks.lockBucket(b)
	if err != nil {
		t.Fatal(err)
	}
	unlock() // its file stays open
	if err := os.Remove(one.locks.path(b)); err != nil {
		t.Fatal(err)
	}
	two := newTree() // creates the bucket files again
	unlockTwo, err := two.locks.lockBucket(b)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		u, err := one.locks.lockBucket(b)
		if err != nil {
			t.Error(err)
			u = func() {}
		}
		got <- u
	}()
	select {
	case u := <-got:
		u()
		unlockTwo()
		t.Fatal("the first tree took the lock the second holds: it locked the removed file")
	case <-time.After(200 * time.Millisecond):
	}
	unlockTwo()
	(<-got)()
	if _, err := os.Stat(filepath.Join(top, LocksName, "place-07.lock")); err != nil {
		t.Errorf("lock file: %v", err)
	}
}

// TestLockFilesClosed: Close closes the bucket lock files it keeps open.
func TestLockFilesClosed(t *testing.T) {
	tr, err := New(Options{TopDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	fd := tr.locks.fds[3]
	if fd < 0 {
		t.Fatal("bucket 3 has no open lock file")
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if tr.locks.fds[3] != -1 {
		t.Errorf("bucket 3 still open: %d", tr.locks.fds[3])
	}
}
