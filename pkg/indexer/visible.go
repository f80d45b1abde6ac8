package indexer

import (
	"context"
	"fmt"
	"path/filepath"

	"go.uber.org/zap"
)

// Visible reports whether href ("Packages/x.rpm", relative to repoDir, as in
// primary.xml) is listed by repoDir's published metadata. The published set
// is the listing of Packages/ taken when the last successful run started; a
// repository this process has not indexed yet is read from its repodata/
// once (see ensurePublished), so the first call for a large repository may
// take a moment. Safe for concurrent use; it never waits for a run.
//
// A file deleted from Packages/ after its run started stays "visible" until
// the run that its deletion triggered has published.
func (s *Scheduler) Visible(repoDir, href string) bool {
	st := s.state(repoDir)
	_, ok := s.ensurePublished(st)[href]
	return ok
}

// WaitVisible blocks until every href is listed by repoDir's published
// metadata (see Visible) and returns nil, or until ctx is done and returns an
// error wrapping context.Cause(ctx) (so errors.Is(err,
// context.DeadlineExceeded) works for a timeout). It wakes on each publish of
// repoDir rather than polling. It does not itself cause a run: the caller
// has Triggered (or PublishNow'ed) the change it waits for. A failing
// repository keeps it waiting (runs are retried with backoff) until ctx ends.
func (s *Scheduler) WaitVisible(ctx context.Context, repoDir string, hrefs []string) error {
	st := s.state(repoDir)
	for {
		s.ensurePublished(st)
		s.mu.Lock()
		// Checked under the mutex together with taking pubCh, so a publish
		// between the check and the wait cannot be missed.
		missing := ""
		for _, h := range hrefs {
			if _, ok := st.published[h]; !ok {
				missing = h
				break
			}
		}
		ch := st.pubCh
		s.mu.Unlock()
		if missing == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to be published in %s: %w", missing, st.dir, context.Cause(ctx))
		case <-ch:
		}
	}
}

// state returns repoDir's state, creating it.
func (s *Scheduler) state(repoDir string) *repoState {
	dir := filepath.Clean(repoDir)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stateLocked(dir)
}

// ensurePublished returns st's published set, reading it from repodata/
// (outside the mutex) if no run of this process has set it yet. Concurrent
// callers share one read. If the metadata cannot be read (corrupt, or
// compressed with xz), that is logged and the set counts as empty: a
// Rescan then sees the packages as unpublished and triggers a run, whose
// own listing replaces it. Never nil.
func (s *Scheduler) ensurePublished(st *repoState) pkgSet {
	s.mu.Lock()
	for st.published == nil && st.loading != nil {
		ch := st.loading
		s.mu.Unlock()
		<-ch
		s.mu.Lock()
	}
	if st.published != nil {
		p := st.published
		s.mu.Unlock()
		return p
	}
	done := make(chan struct{})
	st.loading = done
	s.mu.Unlock()

	set, mtime, err := readPublished(st.dir)

	s.mu.Lock()
	defer s.mu.Unlock()
	st.loading = nil
	close(done)
	if st.published != nil {
		// A run published meanwhile; its set is newer than what was read.
		return st.published
	}
	if err != nil {
		st.log.Warn("cannot read the published package set; treating it as empty", zap.Error(err))
		set = pkgSet{}
	}
	st.published = set
	if st.lastSuccess.IsZero() {
		st.lastSuccess = mtime
	}
	return set
}
