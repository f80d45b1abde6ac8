// Package fstree is the fs backend of pkg/tree: the repository tree as directories under repo.top_dir, with
// today's guarantees: packages placed by link(2) (never replacing a name that appeared meanwhile), fsync of every
// file and directory entry before an answer, dirty markers written before a package enters a repository, flock(2)
// for placement and publish locks (held against other processes sharing the tree and dropped by the kernel when a
// process dies), per-process staging directories, and metadata published with renameat2(RENAME_EXCHANGE).
package fstree

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/internal/durable"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

const (
	stagingName = ".rpm-ingestd-tmp"   // under TopDir; the leading dot keeps nginx from serving it
	locksName   = ".rpm-ingestd-locks" // under TopDir: placement locks, kept across restarts (see nameLocks)
	packagesDir = "Packages"
)

// Options configure a Tree.
type Options struct {
	TopDir string
	// MarkDirty records a pending change for a repository directory (absolute); nil means MarkDirty of this
	// package (the dirty marker). Tests record the calls with it.
	MarkDirty func(repoDir string) error
	Log       *zap.Logger
}

// Tree is the fs backend. Create it with New; Close it when no operation is in flight any more.
type Tree struct {
	top       string
	staging   *staging
	locks     *nameLocks
	topDir    *os.File      // the top, opened O_PATH for openat2 lookups (resolve.go)
	seq       atomic.Uint64 // makes staging names unique within the process
	ready     sync.Map      // Packages/ directories (absolute) made sure of durably: prepare skips them
	markDirty func(repoDir string) error
	log       *zap.Logger
	fdLinks   bool // a name can be linked from an open descriptor (/proc/self/fd): Stage stages lazily
	emptyPath bool // linkat(AT_EMPTY_PATH) links a descriptor of ours without /proc (see link)
	// plainMarker: markDirty is MarkDirty, so a repository whose DirtyMarker exists needs no marking (markedAlready).
	plainMarker bool

	// Test seams: the filesystem calls whose failure or timing tests provoke. Set them before first use.
	Link    func(oldname, newname string) error // os.Link; an old name /proc/self/fd/N is followed (see link)
	SyncDir func(dir string) error              // durable.SyncDir, through ring where there is one
	Now     func() time.Time                    // time.Now: replacement mtimes, metadata mtime refresh

	// dirSync shares the fsync of Packages/ that makes new links durable among concurrent uploads (group
	// commit); it calls SyncDir.
	dirSync *groupSync
	// ring runs the fsyncs of uploads and of Packages/ without holding a thread in the call (durable.Ring); nil
	// where io_uring is refused: plain fsync(2). Made with the tree (two descriptors and a goroutine, held until
	// Close), so an upload opens nothing that outlives it.
	ring *durable.Ring
}

var _ tree.Tree = (*Tree)(nil)

// New creates this process's staging directory and the lock directory under opts.TopDir, which must exist.
func New(opts Options) (*Tree, error) {
	if opts.TopDir == "" || !filepath.IsAbs(opts.TopDir) {
		return nil, fmt.Errorf("fstree: top dir %q is not an absolute path", opts.TopDir)
	}
	top := filepath.Clean(opts.TopDir)
	stage, err := openStaging(filepath.Join(top, stagingName))
	if err != nil {
		return nil, err
	}
	locks, err := newNameLocks(filepath.Join(top, locksName))
	if err != nil {
		stage.close()
		return nil, err
	}
	topDir, err := openTop(top)
	if err != nil {
		stage.close()
		locks.close()
		return nil, fmt.Errorf("open top dir: %w", err)
	}
	t := &Tree{top: top, staging: stage, locks: locks, topDir: topDir, markDirty: opts.MarkDirty, log: opts.Log,
		Now: time.Now}
	ring, ringErr := durable.NewRing() // nil where io_uring is refused: plain fsync(2)
	t.ring = ring
	t.SyncDir = func(dir string) error { return t.ring.SyncDir(dir) }
	t.Link = t.link
	t.fdLinks, t.emptyPath = stage.probeFDLinks()
	t.dirSync = newGroupSync(func(dir string) error { return t.SyncDir(dir) }) // SyncDir read at call time: a seam
	if t.markDirty == nil {
		t.markDirty, t.plainMarker = MarkDirty, true
	}
	if t.log == nil {
		t.log = zap.NewNop()
	}
	if ringErr != nil {
		// Not an error: the same fsyncs, made directly (an old kernel, kernel.io_uring_disabled, a seccomp or
		// SELinux policy that refuses io_uring_setup).
		t.log.Info("fsyncs are made directly, not through io_uring", zap.String("top_dir", top), zap.Error(ringErr))
	}
	return t, nil
}

// Close removes this process's staging directory. Call it when nothing is staged any more.
func (t *Tree) Close() error {
	err := t.staging.close()
	t.locks.close()
	t.topDir.Close()
	t.ring.Close()
	return err
}

// TopDir is the tree's top directory.
func (t *Tree) TopDir() string { return t.top }

// StagingDir is this process's staging directory (for tests and for Cleanup of the legacy layout).
func (t *Tree) StagingDir() string { return t.staging.dir }

// RepoDir is the absolute directory of repo.
func (t *Tree) RepoDir(repo string) string { return filepath.Join(t.top, filepath.FromSlash(repo)) }

// Rel is the repository name of an absolute repository directory under the top; ok is false outside it.
func (t *Tree) Rel(repoDir string) (string, bool) {
	rel, err := filepath.Rel(t.top, filepath.Clean(repoDir))
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// segOK reports whether s is a harmless path segment: ^[A-Za-z0-9_+][A-Za-z0-9._+~^-]*$. A loop, not a regexp:
// every placement and every Stat checks each segment of its path, several per upload.
func segOK(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '+':
		case i > 0 && (c == '.' || c == '~' || c == '^' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// checkRepo refuses repository names that are not plain relative paths of harmless segments. "." is the top.
func checkRepo(repo string) error {
	if repo == "." {
		return nil
	}
	for s := range strings.SplitSeq(repo, "/") {
		if !segOK(s) || s == "." || s == ".." {
			return fmt.Errorf("%w: repository %.200q", tree.ErrInvalid, repo)
		}
	}
	return nil
}

// checkRef refuses refs that are not <repo>/Packages/<plain name>.rpm.
func checkRef(r tree.Ref) error {
	if err := checkRepo(r.Repo); err != nil {
		return err
	}
	if !segOK(r.Name) || !strings.HasSuffix(r.Name, ".rpm") {
		return fmt.Errorf("%w: package file name %.200q", tree.ErrInvalid, r.Name)
	}
	return nil
}

// pkgPath is the absolute path of a ref.
func (t *Tree) pkgPath(r tree.Ref) string {
	return filepath.Join(t.RepoDir(r.Repo), packagesDir, r.Name)
}

// notFound maps fs.ErrNotExist to tree.ErrNotFound, keeping the cause.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", tree.ErrNotFound, err)
	}
	return err
}

// classify marks ENOSPC and EDQUOT as tree.ErrNoSpace.
func classify(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%s: %w: %w", what, tree.ErrNoSpace, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func stampOf(fi os.FileInfo) tree.Stamp {
	return tree.Stamp{Size: fi.Size(), ModTime: fi.ModTime()}
}

// Stat looks at the package as Remove does: a regular file reached through real directories inside the top. A
// symbolic link on the way (or as the file) or a non-directory on the way is ErrInvalid naming the culprit, so
// that no caller judges, or asks permission for, a path that leads elsewhere than it says.
func (t *Tree) Stat(_ context.Context, ref tree.Ref) (tree.Stamp, error) {
	if err := checkRef(ref); err != nil {
		return tree.Stamp{}, err
	}
	if st, ok := t.fastStat(ref.Path()); ok {
		return st, nil
	}
	root, err := os.OpenRoot(t.top)
	if err != nil {
		return tree.Stamp{}, fmt.Errorf("open top_dir: %w", err)
	}
	defer root.Close()
	if err := checkStored(root, ref.Path()); err != nil {
		return tree.Stamp{}, err
	}
	fi, err := root.Lstat(filepath.FromSlash(ref.Path()))
	if err != nil {
		return tree.Stamp{}, notFound(err)
	}
	return stampOf(fi), nil
}

// Open opens a stored package.
func (t *Tree) Open(_ context.Context, ref tree.Ref) (tree.Object, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	return openObject(t.pkgPath(ref))
}

// object is an open regular file.
type object struct {
	*os.File
	st tree.Stamp
}

func (o *object) Stamp() tree.Stamp { return o.st }

// LocalFile is the open file itself, for readers that need an *os.File (rpmmeta); it is closed with the object.
func (o *object) LocalFile() *os.File { return o.File }

// openObject opens path read-only (O_NONBLOCK: a FIFO must not hang the caller) and refuses non-regular files.
func openObject(p string) (*object, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, notFound(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is not a regular file", tree.ErrNotFound, p)
	}
	return &object{File: f, st: stampOf(fi)}, nil
}

// List lists the *.rpm files directly in Packages/: hidden ".x.rpm" files count (createrepo_c indexes them), and
// symlinks count by their target (createrepo_c follows them); dangling ones and non-regular files are left out.
func (t *Tree) List(_ context.Context, repo string) ([]tree.Entry, error) {
	if err := checkRepo(repo); err != nil {
		return nil, err
	}
	dir := filepath.Join(t.RepoDir(repo), packagesDir)
	snap, err := snapshot(dir)
	if err != nil {
		return nil, err
	}
	return packageEntries(dir, snap)
}

// Repos walks the top for directories with a Packages/ subdirectory; hidden directories, repodata/ and
// Packages/ are not descended into.
func (t *Tree) Repos(ctx context.Context) ([]string, error) {
	var out []string
	err := WalkRepos(ctx, t.top, func(repoDir string) {
		if rel, ok := t.Rel(repoDir); ok {
			out = append(out, rel)
		}
	})
	return out, err
}

// WalkRepos calls fn for every repository directory under topDir (topDir included): directories with a
// Packages/ subdirectory. Hidden directories, repodata/ and Packages/ are not descended into. Unreadable
// subdirectories are skipped and reported in the joined error after the walk; an unreadable topDir is an error at
// once. A done ctx stops the walk with its error.
func WalkRepos(ctx context.Context, topDir string, fn func(repoDir string)) error {
	top := filepath.Clean(topDir)
	var errs []error
	err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err != nil {
			if p == top {
				return err
			}
			errs = append(errs, err)
			return nil // skip what cannot be read, keep walking the rest
		}
		if !d.IsDir() {
			return nil
		}
		if p != top {
			name := d.Name()
			if strings.HasPrefix(name, ".") || name == "repodata" || name == packagesDir {
				return fs.SkipDir
			}
		}
		if fi, err := os.Stat(filepath.Join(p, packagesDir)); err != nil || !fi.IsDir() {
			return nil
		}
		fn(p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", top, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: %w", top, errors.Join(errs...))
	}
	return nil
}
