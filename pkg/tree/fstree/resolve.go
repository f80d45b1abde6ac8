package fstree

import (
	"errors"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// The per-upload fast path of Stat (the package index looks at every file an upload placed). os.Root checks a path
// one component at a time (an open and a stat per directory, again for every prefix in checkStored: over twenty
// system calls for <release>/<arch>/Packages/<name>). openat2(2) does the same check in the kernel in one call:
// RESOLVE_BENEATH keeps the lookup inside the top and RESOLVE_NO_SYMLINKS refuses a symbolic link anywhere on the
// way, the last component included (with O_PATH|O_NOFOLLOW it opens the link itself, which fstat then shows as
// not a regular file). Whatever it cannot decide falls back to the step-by-step path, which also names the
// culprit in its error.

// openTop opens the top directory as a handle for openat2 (O_PATH: no read access needed, nothing to poll).
func openTop(top string) (*os.File, error) {
	return os.OpenFile(top, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// resolveHow is the lookup checkStored performs: inside the top, no symbolic link on the way or at the end.
var resolveHow = unix.OpenHow{
	Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
	Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
}

// fastStat returns the stamp of the regular file at rel (a slash path inside the top) if openat2 finds it through
// real directories; ok is false when it cannot say so (an error of any kind, something else than a regular file,
// a kernel without openat2, a closed tree), and then the caller must take the step-by-step path.
func (t *Tree) fastStat(rel string) (st tree.Stamp, ok bool) {
	rc, err := t.topDir.SyscallConn()
	if err != nil {
		return tree.Stamp{}, false
	}
	how := resolveHow
	// Control keeps the descriptor open while the lookup runs, so a concurrent Close cannot hand its number to
	// another file.
	cerr := rc.Control(func(dirfd uintptr) {
		fd, err := openat2(int(dirfd), filepath.FromSlash(rel), &how)
		if err != nil {
			return
		}
		defer unix.Close(fd)
		var s unix.Stat_t
		if unix.Fstat(fd, &s) != nil || s.Mode&unix.S_IFMT != unix.S_IFREG {
			return
		}
		st, ok = tree.Stamp{Size: s.Size, ModTime: time.Unix(s.Mtim.Unix())}, true
	})
	return st, ok && cerr == nil
}

// openat2 retries EINTR and EAGAIN (which openat2 returns when a rename raced the RESOLVE_BENEATH lookup).
func openat2(dirfd int, path string, how *unix.OpenHow) (int, error) {
	for range 3 {
		fd, err := unix.Openat2(dirfd, path, how)
		if !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
			return fd, err
		}
	}
	return -1, unix.EAGAIN
}
