package fstree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rpm-ingestd/rpm-ingestd/internal/ownlock"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// Staging files of several processes on one tree (issue 18 item 15). Two daemons may share a tree, so a starting
// daemon must remove only what no live process owns. Staged names live in a per-process directory
// .rpm-ingestd-tmp/p<pid>-<random>/ whose .lock file the owner keeps flock'ed until Close (see internal/ownlock).

// StagingLock is the lock file in each per-process staging directory; it does not end in ".rpm". It is held
// open read-only: flock needs no write access, and a file open for writing would keep an operator from
// remounting the tree read-only ("mount point is busy").
const StagingLock = ".lock"

// StagingName is the directory under the top that holds the per-process staging directories.
const StagingName = stagingName

// LocksName is the directory under the top that holds the placement lock files.
const LocksName = locksName

// legacyStagedAge is how old a file directly in .rpm-ingestd-tmp (where versions before per-process directories
// staged) must be before Cleanup removes it: a staged name lives for milliseconds, and such a file may belong to
// an older daemon still running on the tree.
const legacyStagedAge = time.Hour

// staging is this process's staging directory and the lock that marks it as owned.
type staging struct {
	dir  string
	lock *os.File
	dev  uint64 // st_dev of dir: Stage stages a file on another device eagerly
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
		lock, err := ownlock.Open(filepath.Join(dir, StagingLock), os.O_RDONLY|os.O_CREATE)
		if err == nil {
			var st unix.Stat_t
			if err = unix.Fstat(int(lock.Fd()), &st); err == nil {
				return &staging{dir: dir, lock: lock, dev: uint64(st.Dev)}, nil
			}
			lock.Close()
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

// Cleanup removes the staging directories that no live process owns, and legacy staged files older than an
// hour. It returns how many staged files went.
func (t *Tree) Cleanup(context.Context) (int, error) {
	return cleanStaging(filepath.Join(t.top, stagingName), t.staging.dir)
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
		lock, err := ownlock.Open(filepath.Join(p, StagingLock), os.O_RDONLY|os.O_CREATE)
		if err != nil {
			if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, ownlock.ErrNotOwned) && !errors.Is(err, fs.ErrNotExist) {
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

// staged is bytes to place, read through r: a name in this process's staging directory, or (Stage, lazy staging)
// only the caller's open file until a name is really needed.
//
// Lazy staging (issue 20, third pass): a new package name is linked straight from the open descriptor
// (linkat with AT_EMPTY_PATH, or /proc/self/fd/N: Tree.link), so an upload that only creates names makes no
// staging name at all: no linkat into the staging directory before the placement and no unlinkat after it.
// Nothing the staging name did is lost:
//   - durability: the name linked into Packages/ is the same inode the staging name was, fsynced by Stage, and
//     the directory is fsynced after the link as before;
//   - kill -9: a staging name was only a leftover for Cleanup; without one nothing is left behind at all (the spool
//     name stays the caller's, removed by its own cleanup as before);
//   - "what lands is exactly what was checked": the descriptor is the checked inode, as the staging link was;
//   - the file losing its last name before the placement (nlink 0: a link from the descriptor fails with ENOENT):
//     the bytes are copied from the descriptor into a staging name first (ensureName), exactly as when f is on
//     another filesystem.
//
// A staging name is still made when one is needed: for a replacement under overwrite (it is renamed over the old
// file; ensureName, then the replacement name, as before), where a link from the descriptor fails with EXDEV (a
// bind mount, or f on another filesystem, which Stage detects from st_dev and stages eagerly), and for promotion
// (StageStored keeps the eager name: the bytes must survive a replacement or removal of the stored file between
// staging and placement, and the descriptor of a removed file cannot be linked).
type staged struct {
	t    *Tree
	name string // the staged name; "" while only file holds the bytes (lazy staging)
	r    io.ReaderAt
	file *os.File
	size int64
	fi   os.FileInfo // the staged file, for the identity of the names Place links to it
	own  *os.File    // closed with the staged name, when Stage did not get the file from the caller
}

func (s *staged) ReadAt(p []byte, off int64) (int, error) { return s.r.ReadAt(p, off) }
func (s *staged) Size() int64                             { return s.size }
func (s *staged) File() *os.File                          { return s.file }

// Name is the staged file's path, "" while it has none (for tests).
func (s *staged) Name() string { return s.name }

func (s *staged) Close() error {
	var err error
	if s.name != "" {
		if err = os.Remove(s.name); errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	}
	if s.own != nil {
		s.own.Close()
	}
	return err
}

// ensureName gives s a name in the staging directory if it has none yet: a link to its inode, or a copy of its
// bytes where no link can be made (then s.fi becomes the copy's identity).
func (t *Tree) ensureName(s *staged) error {
	if s.name != "" {
		return nil
	}
	name, copied, err := t.stage(s.file, s.size)
	if err != nil {
		return classify(err, "stage package")
	}
	if copied {
		fi, err := os.Lstat(name)
		if err != nil {
			os.Remove(name)
			return err
		}
		s.fi = fi
	}
	s.name = name
	return nil
}

// fdPath is the /proc name of f's descriptor, which linkat with AT_SYMLINK_FOLLOW (Tree.Link's default, for this
// prefix only) resolves to f's inode: no privilege needed, unlike AT_EMPTY_PATH on kernels before 6.10.
func fdPath(f *os.File) string { return procFDPrefix + strconv.Itoa(int(f.Fd())) }

const procFDPrefix = "/proc/self/fd/"

// link is Tree.Link's default: os.Link, except that a /proc/self/fd/N name (fdPath) stands for the open file N.
// Only our own descriptors are named so; every other old name is linked as itself (never followed).
//
// The descriptor is linked with AT_EMPTY_PATH where New found that to work (t.emptyPath: Linux 6.10 allows it
// without privilege for a file this process opened, and always with CAP_DAC_READ_SEARCH): it skips the /proc
// lookup (/proc, self, fd, N, and a ptrace access check), which under load cost as much as the link itself. Any
// ENOENT from it (its answer both to "not allowed" and to a missing directory or a file without a name) is
// retried through /proc/self/fd, whose answer stands.
func (t *Tree) link(oldname, newname string) error {
	if !strings.HasPrefix(oldname, procFDPrefix) {
		return os.Link(oldname, newname)
	}
	var err error = unix.ENOENT
	if fd, perr := strconv.Atoi(oldname[len(procFDPrefix):]); perr == nil && t.emptyPath {
		err = ignoringEINTR(func() error { return unix.Linkat(fd, "", unix.AT_FDCWD, newname, unix.AT_EMPTY_PATH) })
	}
	if err == unix.ENOENT {
		err = ignoringEINTR(func() error {
			return unix.Linkat(unix.AT_FDCWD, oldname, unix.AT_FDCWD, newname, unix.AT_SYMLINK_FOLLOW)
		})
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: err}
	}
	return nil
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

// Stage makes f (made readable for the web server: 0644) durable and makes its bytes placeable on the top's
// filesystem. Where f is on the staging directory's filesystem and /proc/self/fd works, it gets no staging name:
// Place links new names straight from f's descriptor (lazy staging, see staged). Otherwise it gets one now: a hard
// link to f's inode (so what lands is exactly what was checked; through /proc/self/fd, which needs no privilege
// where AT_EMPTY_PATH would), or, when f is on another filesystem, one fsynced copy.
func (t *Tree) Stage(ctx context.Context, f *os.File) (tree.Staged, error) {
	return t.StageStat(ctx, f, nil)
}

// StageStat is Stage with the caller's fstat of f (tree.StatStager; nil: f is stat'ed here, after its fsync).
// What the staged file is taken from it: its identity (device and inode, fixed for an open descriptor), its size
// and mtime, which neither the chmod nor the fsync change; not its mode, which nothing reads.
func (t *Tree) StageStat(_ context.Context, f *os.File, fi os.FileInfo) (tree.Staged, error) {
	if err := f.Chmod(0o644); err != nil { // the proxy spools 0600; clients read through the web server
		return nil, fmt.Errorf("chmod spool file: %w", err)
	}
	// Neither nginx nor our own spooling fsyncs: do it once here, so the package survives a power loss once
	// it has a name in the tree.
	if err := t.ring.Fsync(f); err != nil {
		return nil, classify(err, "sync upload")
	}
	if fi == nil {
		var err error
		if fi, err = f.Stat(); err != nil {
			return nil, err
		}
	}
	s := &staged{t: t, r: f, file: f, size: fi.Size(), fi: fi}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && t.fdLinks && uint64(st.Dev) == t.staging.dev {
		return s, nil // lazy: Place links from the descriptor
	}
	if err := t.ensureName(s); err != nil {
		return nil, err
	}
	return s, nil
}

// stage links or copies (copied) f, of size bytes as staged, into a new staging name.
func (t *Tree) stage(f *os.File, size int64) (name string, copied bool, err error) {
	name = t.stagingName("stage")
	err = t.link(fdPath(f), name)
	if err == nil {
		return name, false, nil
	}
	// EXDEV (f on another filesystem), or no /proc: copy.
	if err := copyInto(f, name, size); err != nil {
		return "", true, err
	}
	return name, true, nil
}

// StageStored opens the stored package inside the top only (os.Root: no path component may lead out), refuses a
// symbolic link or anything but a regular file, and stages the very inode it looked at.
func (t *Tree) StageStored(_ context.Context, ref tree.Ref) (tree.Staged, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(t.top)
	if err != nil {
		return nil, fmt.Errorf("open top_dir: %w", err)
	}
	defer root.Close()
	rel := filepath.FromSlash(ref.Path())
	// os.Root keeps every component inside the top but follows a last-component symlink that stays inside (it
	// does not honour O_NOFOLLOW), so the file itself is looked at first, and the opened one must be it.
	lfi, err := root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, notFound(err)
	case err != nil:
		return nil, fmt.Errorf("%w: %s cannot be opened inside repo.top_dir: %v", tree.ErrInvalid, ref, unwrapPath(err))
	case lfi.Mode()&fs.ModeSymlink != 0:
		return nil, fmt.Errorf("%w: %s is a symbolic link, not a stored package", tree.ErrInvalid, ref)
	case !lfi.Mode().IsRegular():
		return nil, fmt.Errorf("%w: %s is not a regular file", tree.ErrInvalid, ref)
	}
	// O_NONBLOCK: a FIFO swapped in after the Lstat must not hang the request; the identity check refuses it.
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %s cannot be opened inside repo.top_dir: %v", tree.ErrInvalid, ref, unwrapPath(err))
	}
	if fi, err := f.Stat(); err != nil || !os.SameFile(fi, lfi) {
		f.Close()
		return nil, fmt.Errorf("%w: %s changed while it was opened; try again", tree.ErrInvalid, ref)
	}
	name, copied, err := t.stage(f, lfi.Size())
	if err != nil {
		f.Close()
		return nil, classify(err, "stage package")
	}
	fi := lfi // the opened file is the looked-at one (checked above)
	if copied {
		if fi, err = os.Lstat(name); err != nil {
			os.Remove(name)
			f.Close()
			return nil, err
		}
	}
	return &staged{t: t, name: name, r: f, file: f, size: lfi.Size(), fi: fi, own: f}, nil
}

// unwrapPath drops the path from a *fs.PathError, for messages that already name it.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// probeFDLinks reports whether a new name can be linked from an open descriptor through /proc/self/fd here (no
// /proc in a minimal container: Stage then stages every file eagerly, by copy, as before), and whether
// linkat(AT_EMPTY_PATH) can do it without /proc (see Tree.link).
func (s *staging) probeFDLinks() (fdLinks, emptyPath bool) {
	probe := filepath.Join(s.dir, "probe-"+pidString)
	if unix.Linkat(unix.AT_FDCWD, fdPath(s.lock), unix.AT_FDCWD, probe, unix.AT_SYMLINK_FOLLOW) == nil {
		fdLinks = true
		os.Remove(probe)
	}
	if unix.Linkat(int(s.lock.Fd()), "", unix.AT_FDCWD, probe, unix.AT_EMPTY_PATH) == nil {
		emptyPath = true
		os.Remove(probe)
	}
	return fdLinks, emptyPath
}

// copyInto writes the size bytes of f that were checked to the new file name, 0644 and fsynced, and removes it
// again on failure. A file found shorter than size (cut since it was checked, by a writer still holding it) is an
// error, never a shorter copy: a lazily staged file is copied only at placement (ensureName), when it lost its
// name after Stage, so the copy must not trust the size the file has by then.
func copyInto(f *os.File, name string, size int64) error {
	tmp, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	var n int64
	n, err = io.Copy(tmp, io.NewSectionReader(f, 0, size))
	if err == nil && n != size {
		err = fmt.Errorf("%s is %d bytes, not the %d checked: it changed after it was checked", f.Name(), n, size)
	}
	if err == nil {
		err = tmp.Chmod(0o644) // against the umask
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
	}
	return err
}

// copyFile is copyInto for a source named by its path, of size bytes.
func copyFile(src, dst string, size int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return copyInto(f, dst, size)
}

// pidString is this process's id, for staging names (os.Getpid is a system call each time).
var pidString = strconv.Itoa(os.Getpid())

// stagingName returns a new, unused name in the staging directory.
func (t *Tree) stagingName(kind string) string {
	return filepath.Join(t.staging.dir, kind+"-"+pidString+"-"+strconv.FormatUint(t.seq.Add(1), 10))
}
