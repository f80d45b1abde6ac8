package fstree

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/rpm-ingestd/rpm-ingestd/internal/durable"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

const (
	// TmpRepodata is createrepo_c's own lock and work directory.
	TmpRepodata = ".repodata"
	// OutputDir is where createrepo_c writes the next generation (--outputdir), to be exchanged with
	// repodata/ in one renameat2(RENAME_EXCHANGE). createrepo_c's own publishing is two renames (repodata →
	// repodata.old.*, then .repodata → repodata) with a moment between them in which a client fetching
	// repomd.xml gets 404.
	OutputDir = ".rpm-ingestd-out"
)

// fsLock is a held flock on <repo>/.rpm-ingestd.lock.
type fsLock struct {
	t    *Tree
	repo string
	fl   *flock.Flock
}

func (l *fsLock) Repo() string                { return l.repo }
func (l *fsLock) Renew(context.Context) error { return nil } // the kernel holds it until Release or death
func (l *fsLock) Release() error {
	// Unlock's error is ignored: it also closes the fd, which releases the lock in any case.
	_ = l.fl.Unlock()
	return nil
}

// TryLock creates the repository's Packages/ if needed (a brand-new repository publishes valid, empty metadata)
// and takes its LockFile without waiting: tree.ErrLocked when another process, or another goroutine of this
// one, holds it.
func (t *Tree) TryLock(_ context.Context, repo string) (tree.Lock, error) {
	if err := checkRepo(repo); err != nil {
		return nil, err
	}
	fl, err := lockRepoDir(t.RepoDir(repo))
	if err != nil {
		return nil, err
	}
	return &fsLock{t: t, repo: repo, fl: fl}, nil
}

// LockRepoDir is TryLock for a repository directory: it returns the function that releases the lock.
func LockRepoDir(repoDir string) (release func(), err error) {
	fl, err := lockRepoDir(repoDir)
	if err != nil {
		return nil, err
	}
	// Unlock's error is ignored: it also closes the fd, which releases the lock in any case.
	return func() { _ = fl.Unlock() }, nil
}

func lockRepoDir(dir string) (*flock.Flock, error) {
	if err := os.MkdirAll(filepath.Join(dir, packagesDir), 0o755); err != nil {
		return nil, fmt.Errorf("create packages dir: %w", err)
	}
	lockPath := filepath.Join(dir, LockFile)
	fl := flock.New(lockPath, flock.SetPermissions(0o644))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s is held", tree.ErrLocked, lockPath)
	}
	return fl, nil
}

// OpenMetadata opens <repo>/repodata/<name>.
func (t *Tree) OpenMetadata(_ context.Context, repo, name string) (tree.Object, error) {
	if err := checkRepo(repo); err != nil {
		return nil, err
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\") {
		return nil, fmt.Errorf("%w: metadata file name %.200q", tree.ErrInvalid, name)
	}
	return openObject(filepath.Join(t.RepoDir(repo), "repodata", name))
}

// work is a publish in the repository directory itself.
type work struct {
	t     *Tree
	lock  *fsLock
	dir   string
	out   string
	pkgs  []tree.Entry
	armed bool // Output exists and must be removed by Close
}

func (w *work) Dir() string                   { return w.dir }
func (w *work) Output() string                { return w.out }
func (w *work) Packages() []tree.Entry        { return w.pkgs }
func (w *work) Close() error                  { return os.RemoveAll(w.out) }
func (w *work) Publish(context.Context) error { return Exchange(w.dir, w.out, w.t.log) }

// Begin prepares a publish in the repository directory: it removes a stale .repodata/ left by a killed
// createrepo_c (the lock proves no run of ours owns it), refreshes the mtime of the files the current repomd.xml
// names (so --retain-old-md-by-age counts from the moment they are superseded), lists Packages/ and seeds
// <repo>/.rpm-ingestd-out/repodata with hard links to the current repodata/.
func (t *Tree) Begin(ctx context.Context, l tree.Lock) (tree.Work, error) {
	lock, ok := l.(*fsLock)
	if !ok || lock.t != t {
		return nil, fmt.Errorf("%w: lock %T is not this tree's", tree.ErrInvalid, l)
	}
	dir := t.RepoDir(lock.repo)
	stale := filepath.Join(dir, TmpRepodata)
	if _, err := os.Lstat(stale); err == nil {
		if err := os.RemoveAll(stale); err != nil {
			return nil, fmt.Errorf("remove stale %s: %w", stale, err)
		}
		t.log.Warn("removed stale createrepo lock directory", zap.String("repo", dir), zap.String("path", stale))
	}
	if err := RefreshMetadataTimes(dir, t.Now()); err != nil {
		// Not fatal: the worst case is that old metadata is dropped at once, which is createrepo_c's own
		// default behaviour.
		t.log.Warn("cannot refresh metadata mtimes, old metadata may vanish at once", zap.String("repo", dir), zap.Error(err))
	}
	pkgs, err := t.List(ctx, lock.repo)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(pkgs, func(a, b tree.Entry) int { return strings.Compare(a.Name, b.Name) })
	out := filepath.Join(dir, OutputDir)
	if err := PrepareOutput(dir, out, nil); err != nil {
		return nil, err
	}
	return &work{t: t, lock: lock, dir: dir, out: out, pkgs: pkgs, armed: true}, nil
}

// PrepareOutput makes out/repodata a copy, by hard links, of repoDir/repodata (if any): createrepo_c --update
// reads the previous generation from its output directory, and retains old files from there. Whatever a
// previous, interrupted run left in out is discarded first; the publish lock makes that safe.
//
// With only set, just the files it names are seeded.
func PrepareOutput(repoDir, out string, only map[string]bool) error {
	if err := os.RemoveAll(out); err != nil {
		return fmt.Errorf("clear %s: %w", out, err)
	}
	dst := filepath.Join(out, "repodata")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	src := filepath.Join(repoDir, "repodata")
	entries, err := os.ReadDir(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || only != nil && !only[e.Name()] {
			continue
		}
		if err := os.Link(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return fmt.Errorf("seed %s: %w", out, err)
		}
	}
	return nil
}

// Exchange swaps out/repodata in as repoDir/repodata atomically (renameat2(RENAME_EXCHANGE)), makes that durable
// and removes out, which then holds the old directory (its files that must stay readable were retained, by
// createrepo_c or the indexer, in the new one).
func Exchange(repoDir, out string, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	src, dst := filepath.Join(out, "repodata"), filepath.Join(repoDir, "repodata")
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	switch {
	case errors.Is(err, unix.ENOENT):
		// No repodata/ yet: a plain rename is atomic too.
		err = os.Rename(src, dst)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		// A filesystem without RENAME_EXCHANGE (NFS, old kernels): fall back to createrepo_c's own two
		// renames, with the short window that implies.
		log.Warn("filesystem cannot exchange directories atomically; publishing with two renames",
			zap.String("repo", repoDir), zap.Error(err))
		old := filepath.Join(out, "old")
		if err = os.Rename(dst, old); err == nil || errors.Is(err, fs.ErrNotExist) {
			err = os.Rename(src, dst)
		}
	}
	if err != nil {
		return fmt.Errorf("publish %s: %w", dst, err)
	}
	if err := durable.SyncDir(repoDir); err != nil {
		return err
	}
	return os.RemoveAll(out)
}

// repomd is the part of repodata/repomd.xml we need.
type repomd struct {
	Data []struct {
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
	} `xml:"data"`
}

// RefreshMetadataTimes sets the mtime of every file named by the current repodata/repomd.xml to now, so that
// --retain-old-md-by-age counts from the moment they are superseded. Contents are untouched; only files inside
// repodata/ are considered. A missing repomd.xml is fine.
func RefreshMetadataTimes(repoDir string, now time.Time) error {
	repodata := filepath.Join(repoDir, "repodata")
	b, err := os.ReadFile(filepath.Join(repodata, "repomd.xml"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var md repomd
	if err := xml.Unmarshal(b, &md); err != nil {
		return fmt.Errorf("parse repomd.xml: %w", err)
	}
	var errs []error
	for _, d := range md.Data {
		href := d.Location.Href
		name := filepath.Base(href)
		// Only plain "repodata/<name>" entries: never touch anything a crafted href could point at outside
		// repodata/.
		if filepath.Clean(href) != "repodata/"+name || name == "." || name == ".." {
			continue
		}
		err := os.Chtimes(filepath.Join(repodata, name), now, now)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
