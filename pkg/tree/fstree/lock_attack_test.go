package fstree

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// heldAtPath reports whether the flock of the file now at path is held by someone (a non-blocking try fails).
func heldAtPath(t *testing.T, path string) bool {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return false
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatal(err)
	}
	return true
}

// TestLockFileMovedAwayByHand: a bucket lock file that an operator moves away (mv place-07.lock elsewhere, or the
// whole lock directory: mv .locks .locks.old) keeps its name there, so nlink does not reveal it; a second daemon
// started since creates a new file at the path. The kept-open descriptor must not go on locking the moved file:
// every lock is taken on the file at the path, as when the file was opened for every lock.
func TestLockFileMovedAwayByHand(t *testing.T) {
	for _, moveDir := range []bool{false, true} {
		t.Run(map[bool]string{false: "file", true: "directory"}[moveDir], func(t *testing.T) {
			top := t.TempDir()
			one, err := New(Options{TopDir: top})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { one.Close() })
			const b = 7
			path := one.locks.path(b)
			if moveDir {
				dir := filepath.Dir(path)
				if err := os.Rename(dir, dir+".old"); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Rename(path, path+".old"); err != nil {
				t.Fatal(err)
			}
			two, err := New(Options{TopDir: top}) // creates the bucket files at the path again
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { two.Close() })
			unlock, err := one.locks.lockBucket(b)
			if err != nil {
				t.Fatal(err)
			}
			held := heldAtPath(t, path)
			unlock()
			if !held {
				t.Fatal("the first tree's lock does not hold the file at the path: it locked the moved-away file, a second daemon would not be excluded")
			}
			if heldAtPath(t, path) {
				t.Error("still held after unlock")
			}
		})
	}
}

// TestLockDirRemovedByHand: the whole lock directory removed by hand (rm -r .locks) while the tree is open: the
// next placement recreates it and its file, as it would one removed file, instead of failing every upload of the
// bucket until a restart; and the lock it takes is on the file now at the path.
func TestLockDirRemovedByHand(t *testing.T) {
	tr, err := New(Options{TopDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	const b = 12
	if err := os.RemoveAll(filepath.Dir(tr.locks.path(b))); err != nil {
		t.Fatal(err)
	}
	unlock, err := tr.locks.lockBucket(b)
	if err != nil {
		t.Fatalf("lock after the lock directory was removed: %v", err)
	}
	held := heldAtPath(t, tr.locks.path(b))
	unlock()
	if !held {
		t.Error("the lock is not on the file at the path")
	}
}
