package indexer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
)

// MarkDirty durably records that repoDir is about to change (the dirty
// marker), so that a crash (kill -9) anywhere between an upload and its index
// run loses nothing: see fstree.MarkDirty, which it is. The uploader (the fs
// tree's placement) calls it BEFORE moving a package into Packages/, and
// Recover at the next start finds the marker.
//
// Safe for concurrent use; it does not touch the Scheduler.
func MarkDirty(repoDir string) error { return fstree.MarkDirty(repoDir) }

// Recover walks topDir for repository directories (directories with a
// Packages/ subdirectory; hidden directories, repodata/ and Packages/ itself
// are not descended into) and Triggers each one that needs indexing: it has
// a dirty or indexing marker (an upload or a run was interrupted), or it has
// no repodata/repomd.xml yet. It returns how many it triggered.
//
// It may be called before Run (the runs wait for Run's workers) or after.
// Unreadable subdirectories are skipped and reported in the joined error
// along with the count of what was triggered; an unreadable topDir is an
// error.
func (s *Scheduler) Recover(topDir string) (int, error) {
	return s.recover(topDir, needsIndex)
}

// RecoverAll is Recover that Triggers every repository under topDir, indexed or not: for changes that invalidate
// all published metadata at once, such as metadata signing turned on or a new signing key.
func (s *Scheduler) RecoverAll(topDir string) (int, error) {
	return s.recover(topDir, func(string) bool { return true })
}

// register makes a repository that already has published metadata known to Status and the metrics, without
// indexing it: when it was last published (repomd.xml's mtime) and how many packages Packages/ holds. Without
// it, a restarted daemon would list no repository (and export no per-repository series) until each one's next
// run. The published package set itself is still read lazily (ensurePublished). A repository without
// repodata/repomd.xml is not registered here: Recover triggers its first run, which registers it.
func (s *Scheduler) register(repoDir string) {
	fi, err := os.Stat(filepath.Join(repoDir, "repodata", "repomd.xml"))
	if err != nil || !fi.Mode().IsRegular() {
		return
	}
	pkgs := countPackages(repoDir)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stateLocked(filepath.Clean(repoDir))
	if st.lastSuccess.IsZero() {
		st.lastSuccess = fi.ModTime()
	}
	if st.runs == 0 {
		st.packages = pkgs
	}
}

func (s *Scheduler) recover(topDir string, needsIndex func(repoDir string) bool) (int, error) {
	n := 0
	err := walkRepos(context.Background(), topDir, func(repoDir string) {
		s.register(repoDir)
		if needsIndex(repoDir) {
			s.Trigger(repoDir)
			n++
		}
	})
	if err != nil {
		return n, fmt.Errorf("recover %w", err)
	}
	return n, nil
}

// walkRepos calls fn for every repository directory under topDir (fstree.WalkRepos).
func walkRepos(ctx context.Context, topDir string, fn func(repoDir string)) error {
	return fstree.WalkRepos(ctx, topDir, fn)
}

// needsIndex reports whether repoDir has unindexed changes or no metadata.
// Any doubt (a stat error other than "not found") counts as yes: an extra
// run is cheap, a missed one leaves packages unpublished.
func needsIndex(repoDir string) bool {
	exists := func(name string) bool {
		_, err := os.Lstat(filepath.Join(repoDir, name))
		return !errors.Is(err, fs.ErrNotExist)
	}
	return exists(DirtyMarker) || exists(IndexingMarker) || !exists(filepath.Join("repodata", "repomd.xml"))
}
