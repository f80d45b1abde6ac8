package main

import (
	"context"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/indexer"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/registry"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
	pkgtree "github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/web"
)

// webSource is what the status page reads: the indexer's state and the registry's index, adapted to the view
// types of package web (which imports neither). Every method is an in-memory snapshot.
type webSource struct {
	cfg     *config.Config
	sched   *indexer.Scheduler
	index   *registry.Index
	audited bool // log.audit_file is on: the recent uploads survive restarts and the page shows them
	tree    pkgtree.Tree
	// summaries bounds the package pages' header reads (nil: every page reads, for tests of headerSummary alone).
	summaries *summaryCache
}

func (s webSource) Repos() []web.Repo {
	st := s.sched.Status()
	out := make([]web.Repo, 0, len(st))
	for _, r := range st {
		rel, err := filepath.Rel(s.cfg.Repo.TopDir, r.Dir)
		if err != nil {
			continue
		}
		rel = filepath.ToSlash(rel)
		out = append(out, web.RepoFromStatus(r, rel, path.Join(s.cfg.Server.RepoURL, rel)+"/"))
	}
	return out
}

func (s webSource) RecentUploads(n int) []web.Upload {
	if !s.audited {
		return nil
	}
	recent := s.index.Recent(n)
	out := make([]web.Upload, 0, len(recent))
	for _, r := range recent {
		if !shownPublicly(r) {
			continue
		}
		u := web.Upload{Time: r.Time, User: r.User, NEVRA: r.NEVRA, Result: r.Action + " " + r.Result, Status: r.Status}
		if r.Action == registry.ActionUpload {
			u.Result = r.Result
		}
		if len(r.Paths) > 0 && r.Status/100 == 2 && !r.Removed() {
			u.Path = r.Paths[0]
		}
		out = append(out, u)
	}
	return out
}

// Search walks the index page by page: a substring match cannot use the index's order, and 50,000 entries
// take about a millisecond.
func (s webSource) Search(name string, limit int) []web.Package {
	name = strings.ToLower(name)
	var out []web.Package
	q := registry.Query{Limit: registry.MaxLimit}
	for len(out) < limit {
		page, err := s.index.List(q)
		if err != nil {
			return out
		}
		for _, e := range page.Items {
			if strings.Contains(strings.ToLower(e.Name), name) && len(out) < limit {
				out = append(out, s.pkg(e))
			}
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	return out
}

func (s webSource) Package(p string) (web.Package, bool) {
	e, ok := s.index.Get(p)
	if !ok {
		return web.Package{}, false
	}
	out := s.pkg(e)
	out.Summary = s.summaries.summary(context.Background(), s.tree, e.Path)
	return out, true
}

// summaryCache bounds what the package pages cost the tree. They are open to anyone, and reading a summary opens
// the package (on s3 a GET of the whole object, up to summaryMaxSize, spooled to local disk): so a summary is read
// once per stored version (the Stat's size, mtime and ETag), and one read runs at a time; a page asked for while
// another read runs shows no summary rather than start a second download. At most maxSummaries are remembered
// (then the memory starts over): a client walking every package's page costs one read of each.
type summaryCache struct {
	busy chan struct{} // one slot: the read in progress
	mu   sync.Mutex
	m    map[summaryKey]string
}

type summaryKey struct {
	rel  string
	size int64
	mod  time.Time
	etag string
}

const maxSummaries = 4096

func newSummaryCache() *summaryCache {
	return &summaryCache{busy: make(chan struct{}, 1), m: map[summaryKey]string{}}
}

// summary is headerSummary through the cache; a nil cache reads every time.
func (c *summaryCache) summary(ctx context.Context, tr pkgtree.Tree, rel string) string {
	if c == nil {
		return headerSummary(ctx, tr, rel)
	}
	ref, st, ok := summaryStat(ctx, tr, rel)
	if !ok {
		return ""
	}
	k := summaryKey{rel, st.Size, st.ModTime, st.ETag}
	c.mu.Lock()
	s, known := c.m[k]
	c.mu.Unlock()
	if known {
		return s
	}
	select {
	case c.busy <- struct{}{}:
	default:
		return "" // another page's read is under way
	}
	defer func() { <-c.busy }()
	s = readSummary(ctx, tr, ref)
	c.mu.Lock()
	if len(c.m) >= maxSummaries {
		clear(c.m)
	}
	c.m[k] = s
	c.mu.Unlock()
	return s
}

// summaryMaxSize bounds the package a page reads its summary from: on s3 tree.Open fetches the whole object, and
// anyone may load the page. A larger package's page shows no summary.
const summaryMaxSize = 128 << 20

// headerSummary reads the summary from the package's header: the registry keeps no summary (its records are
// upload decisions), and the header is the one source that also covers packages copied in by hand. It reads
// through the tree (tr.Stat, then tr.Open), so it works on every backend: on fs, Stat refuses a symlink or any
// other non-regular entry, so a link planted in the tree cannot make the page read a file elsewhere. Only the lead
// and headers are parsed, under the same bounds as at upload (rpmmeta.Identify), and only for the one package
// page, never for a list. Any failure leaves the summary out.
func headerSummary(ctx context.Context, tr pkgtree.Tree, rel string) string {
	ref, _, ok := summaryStat(ctx, tr, rel)
	if !ok {
		return ""
	}
	return readSummary(ctx, tr, ref)
}

// summaryStat locates rel in the tree and stats it: ok false when it is no package there or too large to read.
func summaryStat(ctx context.Context, tr pkgtree.Tree, rel string) (pkgtree.Ref, pkgtree.Stamp, bool) {
	repo, name, ok := strings.Cut(rel, "/Packages/")
	if !ok || strings.Contains(name, "/") {
		return pkgtree.Ref{}, pkgtree.Stamp{}, false
	}
	ref := pkgtree.Ref{Repo: repo, Name: name}
	st, err := tr.Stat(ctx, ref)
	if err != nil || st.Size > summaryMaxSize {
		return pkgtree.Ref{}, pkgtree.Stamp{}, false
	}
	return ref, st, true
}

// readSummary opens ref (stat by summaryStat) and reads the summary from its header; "" on any failure.
func readSummary(ctx context.Context, tr pkgtree.Tree, ref pkgtree.Ref) string {
	obj, err := tr.Open(ctx, ref)
	if err != nil {
		return ""
	}
	defer obj.Close()
	f, ok := obj.(interface{ LocalFile() *os.File }) // a local open file: its headers are read in place
	var file *os.File
	if ok {
		file = f.LocalFile()
	} else {
		tmp, err := os.CreateTemp("", "rpm-ingestd-summary-*.rpm")
		if err != nil {
			return ""
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		if _, err := io.Copy(tmp, io.LimitReader(obj, summaryMaxSize)); err != nil {
			return ""
		}
		file = tmp
	}
	p, err := rpmmeta.Identify(file)
	if err != nil {
		return ""
	}
	return p.Summary
}

// pkg describes an index entry for the pages; fields the registry has no record of stay empty.
func (s webSource) pkg(e registry.Entry) web.Package {
	p := web.Package{Path: e.Path, NEVRA: strings.TrimSuffix(path.Base(e.Path), ".rpm"), Size: e.Size,
		UploadedAt: e.UploadedAt, Repos: []string{path.Join(s.cfg.Server.RepoURL, e.Repo) + "/"},
		URL: path.Join(s.cfg.Server.RepoURL, e.Path)}
	for dst, src := range map[*string]*string{&p.NEVRA: e.NEVRA, &p.SHA256: e.SHA256, &p.SignedBy: e.SignedBy, &p.ClaimedKeyID: e.ClaimedKeyID, &p.UploadedBy: e.UploadedBy} {
		if src != nil {
			*dst = *src
		}
	}
	if s.cfg.ClientURL() != "" { // the daemon writes the .repo file only then
		p.RepoFile = s.cfg.Server.RepoURL + "/" + s.cfg.Server.RepoFile
	}
	return p
}

// shownPublicly reports whether the status page, which anyone may read, lists the decision r. Refusals by
// authentication and permissions (401, 403, 429) are left out: they say which users tried what they may not do
// (server.permissions) and let anyone fill the list with their failed attempts. The audit trail keeps them.
func shownPublicly(r registry.Record) bool {
	switch r.Status {
	case 401, 403, 429:
		return false
	}
	return true
}
