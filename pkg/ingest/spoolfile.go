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

// Where openat2 is missing (kernels before 5.6: ENOSYS) or refused by a seccomp filter (EPERM), the spool is
// opened as an os.Root instead, which confines the same way one component at a time: slower, not weaker.

// spoolResolve is the confinement of every lookup in the spool.
const spoolResolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// openSpoolDir opens dir (SpoolDir) as the handle lookups start from (O_PATH: nothing is read through it).
func openSpoolDir(dir string) (*os.File, error) {
	return os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// openat2Works reports whether openat2 with the spool's confinement works beneath dir: false on ENOSYS or EPERM.
func openat2Works(dir *os.File) bool {
	rc, err := dir.SyscallConn()
	if err != nil {
		return false
	}
	var oerr error
	if err := rc.Control(func(fd uintptr) {
		var nfd int
		if nfd, oerr = openat2(int(fd), ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC); oerr == nil {
			unix.Close(nfd)
		}
	}); err != nil {
		return false
	}
	return !errors.Is(oerr, unix.ENOSYS) && !errors.Is(oerr, unix.EPERM)
}

// useSpoolRoot switches the lookups in the spool from openat2 to an os.Root of SpoolDir.
func (in *Ingester) useSpoolRoot() error {
	root, err := os.OpenRoot(in.opts.SpoolDir)
	if err != nil {
		return err
	}
	in.spoolRoot = root
	return nil
}

// spoolName is the name of an open spooled file: the directory holding it (held open, so that removing the name
// needs no lookup of its own) and its last component.
type spoolName struct {
	dirfd int // -1: the file is directly in the spool (in.spoolDir)
	spool *os.File
	base  string
	path  string   // absolute, for messages
	root  *os.Root // set (with rel) when the spool is looked up through os.Root instead of openat2
	rel   string
}

// remove removes the name and lets go of the directory; call remove or release exactly once.
func (n *spoolName) remove() error {
	var err error
	switch {
	case n.root != nil:
		if err = n.root.Remove(n.rel); err != nil {
			return err // already a *fs.PathError
		}
	case n.dirfd < 0:
		var rc syscall.RawConn
		if rc, err = n.spool.SyscallConn(); err == nil {
			var uerr error
			if err = rc.Control(func(fd uintptr) { uerr = unix.Unlinkat(int(fd), n.base, 0) }); err == nil {
				err = uerr
			}
		}
	default:
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
	if in.spoolRoot != nil {
		n.root, n.rel = in.spoolRoot, rel
		f, err := in.spoolRoot.OpenFile(rel, os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return nil, nil, err
		}
		return f, n, nil
	}
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
