package fstree

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rpm-ingestd/rpm-ingestd/internal/durable"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// Names of the files the fs tree keeps in a repository directory. None ends in ".rpm": createrepo_c indexes
// hidden *.rpm files too.
const (
	// LockFile is the advisory flock(2) held for a whole publish. Anything else that runs createrepo_c on our
	// repositories should take it too.
	LockFile = ".rpm-ingestd.lock"
	// DirtyMarker exists while changes have not been claimed by a run.
	DirtyMarker = ".rpm-ingestd-dirty"
	// IndexingMarker is the claimed DirtyMarker; it is removed only after a successful run.
	IndexingMarker = ".rpm-ingestd-indexing"
)

// MarkDirty durably records that repoDir is about to change, so that a crash (kill -9) anywhere between an
// upload and its index run loses nothing: the uploader calls it BEFORE moving a package into Packages/, and
// the next start finds the marker. It creates repoDir (and its parents) if needed and <repoDir>/.rpm-ingestd-dirty
// if absent, fsyncing the file and the directories it created or changed. If the marker already exists it is a
// cheap no-op (one lstat): the run that claims it happens after our caller's move or is detected by the
// publisher's before/after listing.
func MarkDirty(repoDir string) error {
	marker := filepath.Join(repoDir, DirtyMarker)
	var st unix.Stat_t // unix.Lstat: os.Lstat would allocate a FileInfo on every upload
	if unix.Lstat(marker, &st) == nil {
		return nil
	}
	if err := durable.MkdirAll(repoDir, durable.SyncDir); err != nil {
		return err
	}
	f, err := os.OpenFile(marker, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create dirty marker: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dirty marker: %w", err)
	}
	// The directory entry is what makes the marker survive a power loss.
	return durable.SyncDir(repoDir)
}

// RecordPending writes repo's dirty marker (through Options.MarkDirty when set).
func (t *Tree) RecordPending(_ context.Context, repo string) error {
	if err := checkRepo(repo); err != nil {
		return err
	}
	return classify(t.markDirty(t.RepoDir(repo)), "mark repository dirty")
}

// HasPending reports whether repo has a dirty or an indexing marker. Any doubt (an lstat error other than "not
// found") counts as yes: an extra run is cheap, a missed one leaves packages unpublished.
func (t *Tree) HasPending(_ context.Context, repo string) (bool, error) {
	if err := checkRepo(repo); err != nil {
		return false, err
	}
	return HasMarker(t.RepoDir(repo)), nil
}

// HasMarker reports whether repoDir has a dirty or indexing marker (or cannot tell).
func HasMarker(repoDir string) bool {
	for _, m := range []string{DirtyMarker, IndexingMarker} {
		if _, err := os.Lstat(filepath.Join(repoDir, m)); !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}

type claim struct{ repo string }

func (c claim) Repo() string { return c.repo }

// ClaimPending renames DirtyMarker onto IndexingMarker. A leftover IndexingMarker from a crashed run is simply
// replaced: both just mean "unindexed changes exist". No fsync: whichever name survives a crash, the repository
// is published at the next start.
func (t *Tree) ClaimPending(_ context.Context, repo string) (tree.Claim, error) {
	if err := checkRepo(repo); err != nil {
		return nil, err
	}
	return claim{repo}, ClaimMarker(t.RepoDir(repo))
}

// ClaimMarker is ClaimPending for a repository directory.
func ClaimMarker(repoDir string) error {
	err := os.Rename(filepath.Join(repoDir, DirtyMarker), filepath.Join(repoDir, IndexingMarker))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("claim dirty marker: %w", err)
	}
	return nil
}

// ConsumePending removes IndexingMarker; a dirty marker written after the claim stays. No directory fsync: if
// the removal is lost in a crash the only effect is one extra run at the next start.
func (t *Tree) ConsumePending(_ context.Context, c tree.Claim) error {
	cl, ok := c.(claim)
	if !ok {
		return fmt.Errorf("%w: claim %T is not an fs claim", tree.ErrInvalid, c)
	}
	return ConsumeMarker(t.RepoDir(cl.repo))
}

// ConsumeMarker is ConsumePending for a repository directory.
func ConsumeMarker(repoDir string) error {
	if err := os.Remove(filepath.Join(repoDir, IndexingMarker)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove indexing marker: %w", err)
	}
	return nil
}

// Remove removes refs under the placement locks of their names: each must be a regular file reached through real
// directories (a symbolic link can neither lead the removal out of the tree nor into another repository than the
// one that is then re-indexed). Every repository is marked dirty before the first removal and again after.
func (t *Tree) Remove(ctx context.Context, refs []tree.Ref) ([]string, error) {
	var names, repos []string
	for _, r := range refs {
		if err := checkRef(r); err != nil {
			return nil, err
		}
		names = append(names, r.Name)
		if !containsStr(repos, r.Repo) {
			repos = append(repos, r.Repo)
		}
	}
	root, err := os.OpenRoot(t.top)
	if err != nil {
		return nil, fmt.Errorf("open top_dir: %w", err)
	}
	defer root.Close()
	unlock, err := t.locks.lockAll(names)
	if err != nil {
		return nil, classify(err, "lock package name")
	}
	defer unlock()
	for _, r := range refs {
		if err := checkStored(root, r.Path()); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := t.markRepos(repos); err != nil {
		return repos, err
	}
	for i, r := range refs {
		if err := root.Remove(filepath.FromSlash(r.Path())); err != nil {
			return repos, fmt.Errorf("remove %s (%d of %d files removed): %w", r, i, len(refs), notFound(err))
		}
		if err := t.SyncDir(filepath.Join(t.RepoDir(r.Repo), packagesDir)); err != nil {
			return repos, err
		}
	}
	// As after a placement: a run that claimed the marker before the removals may have scanned the old files.
	return repos, t.markRepos(repos)
}

// CheckStored looks at the slash path rel inside the top like Remove does: nil for a regular file reached
// through real directories, an error wrapping tree.ErrNotFound when something on the way is missing, and one
// wrapping tree.ErrInvalid (naming the culprit) for a symbolic link or a non-directory on the way.
func (t *Tree) CheckStored(rel string) error {
	root, err := os.OpenRoot(t.top)
	if err != nil {
		return fmt.Errorf("open top_dir: %w", err)
	}
	defer root.Close()
	return checkStored(root, rel)
}

func checkStored(root *os.Root, rel string) error {
	segs := strings.Split(rel, "/")
	for i := range segs {
		p := filepath.Join(segs[:i+1]...)
		fi, err := root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("%w: %s is not stored", tree.ErrNotFound, rel)
		case err != nil:
			return fmt.Errorf("%w: %s cannot be looked at inside repo.top_dir: %v", tree.ErrInvalid, rel, unwrapPath(err))
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: %s passes through the symbolic link %s: nothing was deleted", tree.ErrInvalid, rel, filepath.ToSlash(p))
		case i < len(segs)-1 && !fi.IsDir():
			return fmt.Errorf("%w: %s: %s is not a directory", tree.ErrInvalid, rel, filepath.ToSlash(p))
		case i == len(segs)-1 && !fi.Mode().IsRegular():
			return fmt.Errorf("%w: %s is not a regular file", tree.ErrInvalid, rel)
		}
	}
	return nil
}

func containsStr(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
