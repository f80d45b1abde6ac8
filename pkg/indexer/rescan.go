package indexer

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"go.uber.org/zap"
)

// errNoTopDir is returned by Rescan without Options.TopDir.
var errNoTopDir = errors.New("indexer: Rescan needs Options.TopDir")

// Rescan finds changes made behind the daemon's back and Triggers the
// repositories they touch. It lists the tree's repositories like Recover and, for
// every repository directory that is neither pending, queued nor being
// indexed (those will publish their current files anyway), Triggers it if it
// has pending changes no run has claimed, and otherwise compares the
// *.rpm files in Packages/ (names, sizes, mtimes to the second) with the
// published set: a package copied in, deleted or replaced by hand, or a
// repository directory created by hand with packages in it, differs and is
// Triggered (debounced like an upload, so a copy still in progress settles
// first). A repository without metadata and without packages is left alone.
//
// It returns how many repositories it triggered. Unreadable directories are
// skipped and reported in the joined error. Run calls it every
// Options.RescanInterval; it is exported for tests and for a SIGHUP handler.
//
// Cost: one readdir and one stat per package, and, once per repository per
// process, a parse of its primary.xml.gz to learn the published set (see
// ensurePublished).
func (s *Scheduler) Rescan() (int, error) { return s.rescan(context.Background()) }

func (s *Scheduler) rescan(ctx context.Context) (int, error) {
	if s.opts.TopDir == "" {
		return 0, errNoTopDir
	}
	tr, done, err := s.treeAt(s.opts.TopDir)
	if err != nil {
		return 0, fmt.Errorf("rescan %s: %w", s.opts.TopDir, err)
	}
	defer done()
	repos, err := tr.Repos(ctx)
	n := 0
	var errs []error
	for _, repo := range repos {
		if ctx.Err() != nil {
			errs = append(errs, context.Cause(ctx))
			break
		}
		repoDir := filepath.Join(s.opts.TopDir, filepath.FromSlash(repo))
		st := s.state(repoDir)
		s.mu.Lock()
		busy := st.dirty || st.running || st.queued
		s.mu.Unlock()
		if busy {
			continue
		}
		if pending, perr := tr.HasPending(ctx, repo); pending || perr != nil {
			// Unclaimed changes no Trigger of this process covers: an
			// operator's request for a run (touch .rpm-ingestd-dirty after
			// modifyrepo_c, see the docs), or an upload of another process.
			st.log.Info("rescan found pending changes no run has claimed", zap.NamedError("doubt", perr))
			s.Trigger(repoDir)
			n++
			continue
		}
		published := s.ensurePublished(st)
		entries, err := tr.List(ctx, repo)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		current := make(pkgSet, len(entries))
		for _, e := range entries {
			current[packagesDir+"/"+e.Name] = stamp{size: e.Size, mtime: e.ModTime.Unix()}
		}
		if current.equal(published) {
			continue
		}
		added, removed := diff(published, current)
		st.log.Info("rescan found changes made outside the daemon",
			zap.Int("added", len(added)), zap.Int("removed", len(removed)),
			zap.Int("replaced", countChanged(published, current)))
		s.Trigger(repoDir)
		n++
	}
	if err = errors.Join(err, errors.Join(errs...)); err != nil {
		return n, fmt.Errorf("rescan %w", err)
	}
	return n, nil
}

// countChanged counts hrefs in both sets whose stamps differ (a file
// replaced in place).
func countChanged(a, b pkgSet) int {
	n := 0
	for h, st := range a {
		if o, ok := b[h]; ok && o != st {
			n++
		}
	}
	return n
}

// rescanLoop calls rescan every Options.RescanInterval until ctx is done.
// The first rescan comes one interval after start: Recover (called by main
// at start) has already queued the repositories with interrupted work or no
// metadata, and one interval is the promised bound for the rest.
func (s *Scheduler) rescanLoop(ctx context.Context) {
	tick := make(chan struct{}, 1) // one pending tick is enough: rescans don't queue up
	for {
		t := s.clock.AfterFunc(s.opts.RescanInterval, func() {
			select {
			case tick <- struct{}{}:
			default:
			}
		})
		if s.rescanArmed != nil {
			s.rescanArmed()
		}
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-tick:
		}
		n, err := s.rescan(ctx)
		if err != nil && ctx.Err() == nil {
			// Permissions an operator must fix; the other repositories were
			// still rescanned.
			s.log.Error("rescan incomplete", zap.Error(err), zap.Int("triggered", n))
		} else if n > 0 {
			s.log.Info("rescan triggered repositories", zap.Int("triggered", n))
		}
		if s.rescanDone != nil {
			s.rescanDone(n, err)
		}
	}
}
