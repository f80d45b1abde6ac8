package ingest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Staging and spool files of several processes on one tree (issue 18 item 15). Two daemons may share a tree
// (the S3 work assumes several) and a spool directory, so a starting daemon must remove only what no live process
// owns. Ownership is an flock(2) held for as long as the files may be in use:
//   - staged names live in a per-process directory .rpm-ingestd-tmp/p<pid>-<random>/ whose .lock file the owner
//     keeps locked until Close;
//   - a direct upload's .part file in the spool is locked through the descriptor it is written with.
//
// The kernel drops the locks when the owner dies (kill -9 included), so Cleanup's non-blocking lock succeeds on
// exactly the leftovers of dead processes. flock locks belong to an open file description, so a second open and
// lock of the same file conflicts inside one process too: Cleanup also never takes this process's own files.

// stagingLock is the lock file in each per-process staging directory; it does not end in ".rpm". It is held
// open read-only: flock needs no write access, and a file open for writing would keep an operator from
// remounting the tree read-only ("mount point is busy").
const stagingLock = ".lock"

// legacyStagedAge is how old a file directly in .rpm-ingestd-tmp (where versions before per-process directories
// staged) must be before Cleanup removes it: a staged name lives for milliseconds, and such a file may belong to
// an older daemon still running on the tree.
const legacyStagedAge = time.Hour

// staging is this process's staging directory and the lock that marks it as owned.
type staging struct {
	dir  string
	lock *os.File
}

// openStaging creates and locks a new per-process directory under base. A concurrent Cleanup of another process
// can take the lock between the directory's creation and ours, and remove the directory: the lock is then held on
// a file that is no longer at the path, which the inode check catches, and a new directory is made.
func openStaging(base string) (*staging, error) {
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, fmt.Errorf("create staging dir: %w", err)
	}
	var lastErr error
	for range 10 {
		dir, err := os.MkdirTemp(base, "p"+strconv.Itoa(os.Getpid())+"-")
		if err != nil {
			return nil, fmt.Errorf("create staging dir: %w", err)
		}
		lock, err := lockOwned(filepath.Join(dir, stagingLock), os.O_RDONLY|os.O_CREATE)
		if err == nil {
			return &staging{dir: dir, lock: lock}, nil
		}
		lastErr = err
		os.RemoveAll(dir) // ours, or already removed by the Cleanup that raced us
	}
	return nil, fmt.Errorf("create staging dir: %w", lastErr)
}

// close removes the directory (nothing may be staged any more) and releases the lock.
func (s *staging) close() error {
	err := os.RemoveAll(s.dir)
	if cerr := s.lock.Close(); err == nil {
		err = cerr
	}
	return err
}

// errNotOwned means the lock was taken on a file that another process removed meanwhile.
var errNotOwned = errors.New("file removed while it was being locked")

// lockOwned opens path (with flag), takes an exclusive flock without waiting, and checks that the locked file is
// still the one at path. The returned file holds the lock until it is closed.
func lockOwned(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// lockFile takes an exclusive, non-blocking flock on f and checks that f is still the file at its name.
func lockFile(f *os.File) error {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	held, err := f.Stat()
	if err != nil {
		return err
	}
	now, err := os.Lstat(f.Name())
	if err != nil || !os.SameFile(held, now) {
		return fmt.Errorf("lock %s: %w", f.Name(), errNotOwned)
	}
	return nil
}

// cleanStaging removes the staging directories under base that no live process owns, and legacy files directly in
// base older than legacyStagedAge. It returns how many staged files went.
func cleanStaging(base, own string) (int, error) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range entries {
		p := filepath.Join(base, e.Name())
		if !e.IsDir() {
			fi, err := e.Info()
			if err != nil || time.Since(fi.ModTime()) < legacyStagedAge {
				continue
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			n++
			continue
		}
		if p == own {
			continue
		}
		// O_CREATE: a directory whose owner has not made its lock yet gets ours, and the owner retries.
		lock, err := lockOwned(filepath.Join(p, stagingLock), os.O_RDONLY|os.O_CREATE)
		if err != nil {
			if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, errNotOwned) && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			continue // a live process owns it (or it is gone)
		}
		files, _ := os.ReadDir(p)
		err = os.RemoveAll(p)
		lock.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n += max(len(files)-1, 0) // the lock file is not a leftover
	}
	return n, errors.Join(errs...)
}

// cleanSpool removes the direct-upload files matching pattern that no live process is still receiving.
func cleanSpool(pattern string) (int, error) {
	names, _ := filepath.Glob(pattern) // the pattern is constant and valid
	n := 0
	var errs []error
	for _, name := range names {
		f, err := lockOwned(name, os.O_RDONLY)
		if err != nil {
			if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, errNotOwned) && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		err = os.Remove(name)
		f.Close()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
