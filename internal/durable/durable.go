// Package durable makes directory changes survive a power loss: an fsync of a file's data is not enough, the
// directory entries that name it (and every directory created on the way) must be synced too. ingest and
// indexer both rely on it and may not import each other, so it lives here, below both.
package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// SyncDir fsyncs dir, making the entries created, renamed or removed in it durable.
// It uses the bare descriptor: os.Open would also try (and fail) to register a directory with the poller, three
// more system calls on every upload's path.
func SyncDir(dir string) error { return syncDir(dir, unix.Fsync) }

// syncDir is SyncDir with fsync the call that syncs the open directory.
func syncDir(dir string, fsync func(fd int) error) error {
	fd, err := ignoringEINTR(func() (int, error) { return unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) })
	if err != nil {
		return fmt.Errorf("open %s for sync: %w", dir, &fs.PathError{Op: "open", Path: dir, Err: err})
	}
	_, err = ignoringEINTR(func() (int, error) { return 0, fsync(fd) })
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// ignoringEINTR retries f while it fails with EINTR, as package os does for its own calls.
func ignoringEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != unix.EINTR {
			return n, err
		}
	}
}

// MkdirAll is os.MkdirAll (mode 0755) that also syncs, with sync (SyncDir, or a recorder in tests), the parent of
// every directory it creates, top-down, so a new path is durable before anything inside it is relied upon. When
// dir already exists it costs one stat.
func MkdirAll(dir string, sync func(dir string) error) error {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		_, err := os.Stat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	// Parents first: a synced child entry is of no use inside a parent whose own entry is lost.
	for i := len(missing) - 1; i >= 0; i-- {
		if err := sync(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}
