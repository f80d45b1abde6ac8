package indexer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// Visible reports whether repoDir's published metadata lists href
// ("Packages/x.rpm", relative to repoDir, as in primary.xml) with the
// checksum sha256 (lowercase hex): whether dnf, reading the metadata now,
// gets these bytes under that name. A name that is published with other
// bytes (the same file name uploaded again after a DELETE, or replaced with
// overwrite on) is not visible until a run has published the new checksum.
//
// The names come from the published set (see listed); the checksums from
// the published primary.xml, read once per publish and only when someone
// asks (see ensureSums), so the first call after a publish of a large
// repository may take a moment. A package whose published checksum is not
// SHA-256 (createrepo_c -s sha1) is compared by stamp instead: the file now
// at href must have the size and mtime the metadata was built from. Safe for
// concurrent use; it never waits for a run.
func (s *Scheduler) Visible(repoDir, href, sha256 string) bool {
	st := s.state(repoDir)
	ok, _ := s.visible(st, href, sha256)
	return ok
}

// visible is Visible for st, also returning the publish channel that was
// current when the answer was found: a publish after the answer closes it.
func (s *Scheduler) visible(st *repoState, href, sum string) (bool, chan struct{}) {
	s.refresh(st)
	for {
		s.mu.Lock()
		ch, gen := st.pubCh, st.gen
		s.mu.Unlock()
		published := s.ensurePublished(st)
		pst, ok := published[href]
		if !ok {
			return false, ch
		}
		sums, sgen := s.ensureSums(st)
		if sgen != gen {
			continue // a publish meanwhile: ask the new generation
		}
		if want, ok := sums[href]; ok {
			return want == strings.ToLower(sum), ch
		}
		// No SHA-256 in the metadata for it: the stored file must be the
		// one the metadata was built from.
		now, err := s.stamp(st.dir, href)
		return err == nil && now == pst, ch
	}
}

// WaitVisible blocks until repoDir's published metadata lists href with
// the checksum sha256 (see Visible) and returns nil, or until ctx is done and
// returns an error wrapping context.Cause(ctx) (so errors.Is(err,
// context.DeadlineExceeded) works for a timeout). It wakes on each publish
// of repoDir rather than polling. It does not itself cause a run: the caller
// has Triggered (or PublishNow'ed) the change it waits for. A failing
// repository keeps it waiting (runs are retried with backoff) until ctx ends.
func (s *Scheduler) WaitVisible(ctx context.Context, repoDir, href, sha256 string) error {
	st := s.state(repoDir)
	for {
		ok, ch := s.visible(st, href, sha256)
		if ok {
			return nil
		}
		// On a shared tree another daemon's publish closes no channel here: look again every refresh period.
		var tick chan struct{}
		stop := func() bool { return false }
		if s.opts.RefreshPublished > 0 {
			tick = make(chan struct{})
			stop = s.clock.AfterFunc(s.opts.RefreshPublished, func() { close(tick) }).Stop
		}
		select {
		case <-ctx.Done():
			stop()
			return fmt.Errorf("wait for %s (sha256 %s) to be published in %s: %w", href, sha256, st.dir, context.Cause(ctx))
		case <-ch:
			stop()
		case <-tick:
		}
	}
}

// refresh notices a publish by another process (Options.RefreshPublished): at most once per period per
// repository it reads repomd.xml's stamp, and when that is not the stamp the cached published set and checksums
// were read under, it drops them (the next reader reads the new generation) and wakes WaitVisible. One caller
// reads; the others wait for that read rather than answer from a cache it may be about to drop. A repomd.xml
// that cannot be read changes nothing.
func (s *Scheduler) refresh(st *repoState) {
	if s.opts.RefreshPublished <= 0 {
		return
	}
	repo, ok := s.repoOf(st.dir)
	if !ok {
		return
	}
	now := s.clock.Now()
	s.mu.Lock()
	if wait := st.refreshing; wait != nil {
		s.mu.Unlock()
		<-wait
		return
	}
	if !st.checkedAt.IsZero() && now.Sub(st.checkedAt) < s.opts.RefreshPublished {
		s.mu.Unlock()
		return
	}
	done := make(chan struct{})
	st.refreshing = done
	gen := st.gen
	s.mu.Unlock()

	var stamp tree.Stamp
	md, err := s.opts.Tree.OpenMetadata(context.Background(), repo, "repomd.xml")
	if err == nil {
		stamp = md.Stamp()
		md.Close()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	st.refreshing = nil
	close(done)
	st.checkedAt = now
	if err != nil || st.gen != gen {
		return // unreadable, or this process published meanwhile (which reset the stamp): look next time
	}
	if sameStamp(st.mdStamp, stamp) {
		return
	}
	known := !st.mdStamp.ModTime.IsZero() || st.mdStamp.ETag != ""
	st.mdStamp = stamp
	if !known && st.published == nil && st.sums == nil && st.loading == nil && st.sumsLoading == nil {
		return // nothing cached or being read: the first read will be of this generation or a later one
	}
	// Another generation than the cached one (or one we cannot tell apart from it): read it afresh.
	st.published, st.sums = nil, nil
	st.gen++
	close(st.pubCh)
	st.pubCh = make(chan struct{})
}

// sameStamp reports whether two stamps of repomd.xml name the same stored version: by ETag where the backend has
// one (s3), else by size and mtime.
func sameStamp(a, b tree.Stamp) bool {
	if a.ETag != "" || b.ETag != "" {
		return a.ETag == b.ETag
	}
	return a.Size == b.Size && a.ModTime.Equal(b.ModTime) && !a.ModTime.IsZero()
}

// listed reports whether href is in repoDir's published set, by name only:
// the set is the listing of Packages/ taken when the last successful run
// started; a repository this process has not indexed yet is read from its
// repodata/ once (see ensurePublished).
//
// A file deleted from Packages/ after its run started stays listed until
// the run that its deletion triggered has published.
func (s *Scheduler) listed(repoDir, href string) bool {
	st := s.state(repoDir)
	_, ok := s.ensurePublished(st)[href]
	return ok
}

// waitListed blocks until every href is listed (see listed) or ctx ends.
func (s *Scheduler) waitListed(ctx context.Context, repoDir string, hrefs []string) error {
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

// ensureSums returns st's published checksums and the generation they
// belong to, reading them from repodata/ (outside the mutex) if nobody has
// since the last publish. Concurrent callers share one read. Unreadable
// metadata counts as no checksums (logged): Visible then falls back to
// stamps. Never nil.
func (s *Scheduler) ensureSums(st *repoState) (pkgSums, uint64) {
	s.mu.Lock()
	for st.sums == nil && st.sumsLoading != nil {
		ch := st.sumsLoading
		s.mu.Unlock()
		<-ch
		s.mu.Lock()
	}
	if st.sums != nil {
		defer s.mu.Unlock()
		return st.sums, st.gen
	}
	gen := st.gen
	done := make(chan struct{})
	st.sumsLoading = done
	s.mu.Unlock()

	_, sums, _, err := readPublishedFrom(s.metadata(st.dir))

	s.mu.Lock()
	defer s.mu.Unlock()
	st.sumsLoading = nil
	close(done)
	if err != nil {
		st.log.Warn("cannot read the published checksums; comparing by size and mtime", zap.Error(err))
		sums = pkgSums{}
	}
	if st.gen == gen && st.sums == nil {
		st.sums = sums
	}
	// Read before a publish that happened meanwhile: the caller sees the
	// generation differ and asks again.
	return sums, gen
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
	gen := st.gen
	s.mu.Unlock()

	set, sums, mtime, err := readPublishedFrom(s.metadata(st.dir))

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
	if st.gen != gen {
		// refresh dropped the generation this read may belong to: use it once, cache nothing.
		return set
	}
	st.published = set
	if err == nil && st.sums == nil && st.gen == gen {
		st.sums = sums // the same parse: no second read when Visible asks
	}
	if st.lastSuccess.IsZero() {
		st.lastSuccess = mtime
	}
	return set
}

// stamp is the size and mtime of the package at href ("Packages/<name>") in repoDir: through Options.Tree
// (tree.Open, which like List and createrepo_c follows a symlinked package on fs; tree.Stat refuses one) when repoDir
// is one of its repositories, else from the local file.
func (s *Scheduler) stamp(repoDir, href string) (stamp, error) {
	if repo, ok := s.repoOf(repoDir); ok {
		name, _ := strings.CutPrefix(href, packagesDir+"/")
		obj, err := s.opts.Tree.Open(context.Background(), tree.Ref{Repo: repo, Name: name})
		if err != nil {
			return stamp{}, err
		}
		ts := obj.Stamp()
		obj.Close()
		return stamp{size: ts.Size, mtime: ts.ModTime.Unix()}, nil
	}
	fi, err := os.Stat(filepath.Join(repoDir, filepath.FromSlash(href)))
	if err != nil {
		return stamp{}, err
	}
	return stamp{size: fi.Size(), mtime: fi.ModTime().Unix()}, nil
}
