package ingest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Opening and removing a file the proxy spooled, confined to SpoolDir. os.Root would do it one path component at
// a time, for the open and again for the removal: with nginx's `levels=1 2` (<d>/<dd>/<name>) five opens and four
// closes per upload. openat2(2) with RESOLVE_BENEATH does the same confinement in the kernel in one call: ".." and
// symbolic links may not lead out of the spool (symbolic links inside it are followed, as os.Root follows them),
// and RESOLVE_NO_MAGICLINKS refuses /proc-style links. The file's directory is opened once, beneath the spool,
// and held until the removal, which then needs no lookup of its own.

// spoolResolve is the confinement of every lookup in the spool.
const spoolResolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// openSpoolDir opens dir (SpoolDir) as the handle lookups start from (O_PATH: nothing is read through it).
func openSpoolDir(dir string) (*os.File, error) {
	return os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// spoolName is the name of an open spooled file: the directory holding it (held open, so that removing the name
// needs no lookup of its own) and its last component.
type spoolName struct {
	dirfd int // -1: the file is directly in the spool (in.spoolDir)
	spool *os.File
	base  string
	path  string // absolute, for messages
}

// remove removes the name and lets go of the directory; call remove or release exactly once.
func (n *spoolName) remove() error {
	var err error
	if n.dirfd < 0 {
		var rc syscall.RawConn
		if rc, err = n.spool.SyscallConn(); err == nil {
			var uerr error
			if err = rc.Control(func(fd uintptr) { uerr = unix.Unlinkat(int(fd), n.base, 0) }); err == nil {
				err = uerr
			}
		}
	} else {
		err = unix.Unlinkat(n.dirfd, n.base, 0)
	}
	n.release()
	if err != nil {
		return &fs.PathError{Op: "remove", Path: n.path, Err: err}
	}
	return nil
}

// release lets go of the directory without removing the name.
func (n *spoolName) release() {
	if n.dirfd >= 0 {
		unix.Close(n.dirfd)
		n.dirfd = -1
	}
}

// openInSpool opens rel (a cleaned relative path inside the spool; name is its absolute form, for messages)
// read-only and O_NONBLOCK (a FIFO planted in the spool must not block the open; the caller refuses anything but
// a regular file), and returns its name for the removal. A returned error is a *fs.PathError whose Err is the
// errno, with EXDEV (the kernel's answer to a path leading out) said in words.
func (in *Ingester) openInSpool(rel, name string) (*os.File, *spoolName, error) {
	dir, base := filepath.Split(rel)
	n := &spoolName{dirfd: -1, spool: in.spoolDir, base: base, path: name}
	var f *os.File
	var err error
	rc, cerr := in.spoolDir.SyscallConn()
	if cerr == nil {
		cerr = rc.Control(func(spoolfd uintptr) { // keeps the spool's descriptor open while the lookups run
			dirfd := int(spoolfd)
			if dir != "" {
				if dirfd, err = openat2(dirfd, dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC); err != nil {
					return
				}
				n.dirfd = dirfd
			}
			var fd int
			if fd, err = openat2(dirfd, base, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
				n.release()
				return
			}
			f = os.NewFile(uintptr(fd), name)
		})
	}
	if err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, unix.EXDEV) {
			err = errors.New("path escapes from parent")
		}
		return nil, nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return f, n, nil
}

// openat2 opens path beneath dirfd with the spool's confinement, retrying EINTR and EAGAIN (the kernel's answer
// when a rename raced a RESOLVE_BENEATH lookup).
func openat2(dirfd int, path string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags), Resolve: spoolResolve}
	for range 3 {
		fd, err := unix.Openat2(dirfd, path, &how)
		if err != unix.EINTR && err != unix.EAGAIN {
			return fd, err
		}
	}
	return -1, fmt.Errorf("openat2 %s: %w", path, unix.EAGAIN)
}
