package indexer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
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

// Recover lists the repositories of the tree at topDir (tree.Repos: on fs the directories with a Packages/
// subdirectory; hidden directories, repodata/ and Packages/ itself are not descended into) and Triggers each one
// that needs indexing: it has pending changes (tree.HasPending: on fs a dirty or indexing marker, an upload or a
// run was interrupted), or no published repomd.xml yet. It returns how many it triggered.
//
// The tree is Options.Tree when topDir is Options.TopDir, else the fs tree on topDir. It may be called before Run
// (the runs wait for Run's workers) or after. Unreadable parts are skipped and reported in the joined error
// along with the count of what was triggered; an unreadable topDir is an error.
func (s *Scheduler) Recover(topDir string) (int, error) {
	return s.recover(topDir, false)
}

// RecoverAll is Recover that Triggers every repository under topDir, indexed or not: for changes that invalidate
// all published metadata at once, such as metadata signing turned on or a new signing key.
func (s *Scheduler) RecoverAll(topDir string) (int, error) {
	return s.recover(topDir, true)
}

// treeAt returns the tree whose top is topDir and the function that lets go of it: Options.Tree for
// Options.TopDir, else an fs tree made for the call.
func (s *Scheduler) treeAt(topDir string) (tree.Tree, func(), error) {
	top, err := filepath.Abs(topDir)
	if err != nil {
		return nil, nil, err
	}
	if s.opts.Tree != nil && s.opts.TopDir != "" && filepath.Clean(s.opts.TopDir) == top {
		return s.opts.Tree, func() {}, nil
	}
	fi, err := os.Stat(top)
	if err != nil {
		return nil, nil, err
	}
	if !fi.IsDir() {
		return nil, nil, fmt.Errorf("%s is not a directory", top)
	}
	t, err := fstree.New(fstree.Options{TopDir: top, Log: s.log})
	if err != nil {
		return nil, nil, err
	}
	return t, func() { t.Close() }, nil
}

// repoOf returns repoDir's repository name in Options.Tree; false without a Tree or outside Options.TopDir.
func (s *Scheduler) repoOf(repoDir string) (string, bool) {
	if s.opts.Tree == nil || s.opts.TopDir == "" {
		return "", false
	}
	rel, err := filepath.Rel(filepath.Clean(s.opts.TopDir), filepath.Clean(repoDir))
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// metadata opens repoDir's published metadata: through Options.Tree (tree.OpenMetadata, any backend) when
// repoDir is one of its repositories, else from repoDir/repodata.
func (s *Scheduler) metadata(repoDir string) metaOpener {
	if repo, ok := s.repoOf(repoDir); ok {
		return func(name string) (tree.Object, error) {
			return s.opts.Tree.OpenMetadata(context.Background(), repo, name)
		}
	}
	return dirMetadata(repoDir)
}

// register makes a repository that already has published metadata known to Status and the metrics, without
// indexing it: when it was last published (repomd.xml's stamp) and how many packages it holds. Without it, a
// restarted daemon would list no repository (and export no per-repository series) until each one's next run. The
// published package set itself is still read lazily (ensurePublished). A repository without a published
// repomd.xml is not registered here: Recover triggers its first run, which registers it. It reports whether
// repomd.xml is there (any doubt counts as no: an extra run is cheap, a missed one leaves packages unpublished).
func (s *Scheduler) register(ctx context.Context, tr tree.Tree, repo, repoDir string) bool {
	md, err := tr.OpenMetadata(ctx, repo, "repomd.xml")
	if err != nil {
		return false
	}
	published := md.Stamp().ModTime
	md.Close()
	pkgs, err := tr.List(ctx, repo)
	if err != nil {
		pkgs = nil // informational: counted as zero, as before
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stateLocked(filepath.Clean(repoDir))
	if st.lastSuccess.IsZero() {
		st.lastSuccess = published
	}
	if st.runs == 0 {
		st.packages = len(pkgs)
	}
	return true
}

func (s *Scheduler) recover(topDir string, all bool) (int, error) {
	ctx := context.Background()
	tr, done, err := s.treeAt(topDir)
	if err != nil {
		return 0, fmt.Errorf("recover %s: %w", topDir, err)
	}
	defer done()
	repos, err := tr.Repos(ctx)
	n := 0
	for _, repo := range repos {
		dir := filepath.Join(topDir, filepath.FromSlash(repo))
		indexed := s.register(ctx, tr, repo, dir)
		// Any doubt about pending changes counts as yes.
		pending, perr := tr.HasPending(ctx, repo)
		if all || !indexed || pending || perr != nil {
			s.Trigger(dir)
			n++
		}
	}
	if err != nil {
		return n, fmt.Errorf("recover %w", err)
	}
	return n, nil
}
