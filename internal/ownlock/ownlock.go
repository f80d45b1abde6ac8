// Package ownlock marks files as owned by a live process with flock(2): the kernel drops the lock when the owner
// dies (kill -9 included), so a non-blocking lock succeeds on exactly the leftovers of dead processes. The spool
// (pkg/ingest) and the fs tree's staging directories (pkg/tree/fstree) both clean up that way.
//
// flock locks belong to an open file description, so a second open and lock of the same file conflicts inside one
// process too: a cleanup never takes this process's own files.
package ownlock

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrNotOwned means the lock was taken on a file that another process removed meanwhile.
var ErrNotOwned = errors.New("file removed while it was being locked")

// ErrBusy is the error of a lock that a live process holds (EWOULDBLOCK).
var ErrBusy = unix.EWOULDBLOCK

// Open opens path (with flag), takes an exclusive flock without waiting, and checks that the locked file is still
// the one at path. The returned file holds the lock until it is closed.
func Open(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, err
	}
	if err := Lock(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Lock takes an exclusive, non-blocking flock on f and checks that f is still the file at its name.
func Lock(f *os.File) error {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	held, err := f.Stat()
	if err != nil {
		return err
	}
	now, err := os.Lstat(f.Name())
	if err != nil || !os.SameFile(held, now) {
		return fmt.Errorf("lock %s: %w", f.Name(), ErrNotOwned)
	}
	return nil
}
