package ingest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/rpm-ingestd/rpm-ingestd/internal/ownlock"
)

// Spool files of several processes (issue 18 item 15). Two daemons may share a spool directory, so a starting
// daemon must remove only what no live process owns: a direct upload's .part file in the spool is flock'ed through
// the descriptor it is written with (internal/ownlock), and the kernel drops that lock when the owner dies. The
// tree's own leftovers (staged copies) are the tree's to clean (tree.Tree.Cleanup).

// lockFile takes an exclusive, non-blocking flock on f and checks that f is still the file at its name.
func lockFile(f *os.File) error { return ownlock.Lock(f) }

// errNotOwned means the lock was taken on a file that another process removed meanwhile.
var errNotOwned = ownlock.ErrNotOwned

// cleanSpool removes the direct-upload files matching pattern that no live process is still receiving.
func cleanSpool(pattern string) (int, error) {
	names, _ := filepath.Glob(pattern) // the pattern is constant and valid
	n := 0
	var errs []error
	for _, name := range names {
		f, err := ownlock.Open(name, os.O_RDONLY)
		if err != nil {
			if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, ownlock.ErrNotOwned) && !errors.Is(err, fs.ErrNotExist) {
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
