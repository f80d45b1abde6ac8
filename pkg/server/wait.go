package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// Upload and wait: ?wait=visible holds an upload's answer until dnf can see the package, ?publish=now has its
// repositories indexed without the quiet period, and GET /api/v1/uploads/{sha256} tells a polling client where a
// package is and whether each copy is visible yet. The indexer does the waiting (Publisher); this file only
// decides what to wait for, for how long, and how to say so.

// Publisher is the indexer's publishing side; *indexer.Scheduler implements it. PublishNow must not block.
// Visible reports whether repoDir's published metadata lists href with the checksum sha256 (new bytes under a
// name that is already published are not visible until their own checksum is); it may read the metadata once
// per publish, and is otherwise a map lookup. WaitVisible blocks until Visible (nil) or until ctx ends (an error
// wrapping the context's cause).
type Publisher interface {
	PublishNow(repoDir string)
	Visible(repoDir, href, sha256 string) bool
	WaitVisible(ctx context.Context, repoDir, href, sha256 string) error
}

// LookupFunc returns the paths (relative to TopDir, slash-separated, "9/x86_64/Packages/x.rpm") of the packages
// whose file has this sha256 (lowercase hex). It is called concurrently and must not block for long.
type LookupFunc func(sha256 string) []string

// DefaultMaxWait is Options.MaxWait when it is zero.
const DefaultMaxWait = 5 * time.Minute

// recentUploads is how many uploads the fallback lookup remembers: far more than any CI job polls for, and a
// few hundred kilobytes at most.
const recentUploads = 4096

var (
	// errBadParam is a malformed ?wait, ?publish or ?timeout (or their headers): 400, before anything is stored.
	errBadParam = errors.New("bad request parameter")
	// errUnknownUpload is a sha256 no known package has: 404.
	errUnknownUpload = errors.New("unknown upload")
)

// waitOptions are what an upload asked for beyond storing the package.
type waitOptions struct {
	wait       bool          // hold the answer until visible
	publishNow bool          // index without the quiet period
	timeout    time.Duration // how long to hold it, capped by MaxWait
}

// waiting is the state the wait feature keeps in Server. Build it with newWaiting.
type waiting struct {
	// ctx ends when the server stops waiting (StopWaiting): held answers go out at once as 202, so a stop does
	// not spend its drain time on clients that are only waiting.
	ctx    context.Context
	cancel context.CancelFunc
	recent *recent
}

func newWaiting() waiting {
	ctx, cancel := context.WithCancel(context.Background())
	return waiting{ctx: ctx, cancel: cancel, recent: newRecent(recentUploads)}
}

// StopWaiting answers every upload that is waiting for visibility at once (202, with the state), and every
// later one without waiting. Call it when the HTTP server begins to shut down (http.Server.RegisterOnShutdown):
// the packages are stored, and the stop publishes them.
func (s *Server) StopWaiting() { s.wait.cancel() }

// parseWait reads ?wait=visible / X-Wait, ?publish=now / X-Publish and ?timeout= (Go duration text like 90s, or
// whole seconds). The query wins over the header. Anything else is refused before the upload is stored, so a
// typo never turns a waiting CI job into one that races dnf.
func (s *Server) parseWait(r *http.Request, q url.Values) (waitOptions, error) {
	get := func(param, header string) string {
		if v := q.Get(param); v != "" {
			return v
		}
		return r.Header.Get(header)
	}
	wo := waitOptions{timeout: s.maxWait()}
	switch v := get("wait", "X-Wait"); v {
	case "":
	case "visible":
		wo.wait = true
	default:
		return wo, fmt.Errorf("%w: wait=%q: the only value is wait=visible", errBadParam, v)
	}
	switch v := get("publish", "X-Publish"); v {
	case "":
	case "now":
		wo.publishNow = true
	default:
		return wo, fmt.Errorf("%w: publish=%q: the only value is publish=now", errBadParam, v)
	}
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if n, nerr := strconv.Atoi(v); nerr == nil {
			d, err = time.Duration(n)*time.Second, nil
		}
		if err != nil || d <= 0 {
			return wo, fmt.Errorf("%w: timeout=%q: write a positive duration like 60s or 2m", errBadParam, v)
		}
		wo.timeout = min(d, s.maxWait()) // capped, not refused: the server's bound is not the client's business
	}
	return wo, nil
}

func (s *Server) maxWait() time.Duration {
	if s.opts.MaxWait > 0 {
		return s.opts.MaxWait
	}
	return DefaultMaxWait
}

// schedule tells the indexer about an upload's repositories: Trigger, or with publish=now (after a successful
// upload) PublishNow. PublishNow also goes to a repository the upload did not change (the package was already
// there) whose copy is not visible yet: the client asked for it to be published now, and an earlier upload
// without the flag may still sit in the quiet period.
func (s *Server) schedule(res *ingest.Result, err error, wo waitOptions) {
	now := wo.publishNow && err == nil && s.opts.Publisher != nil
	done := map[string]bool{}
	for _, repo := range res.Dirty {
		done[repo] = true
		if now {
			s.opts.Publisher.PublishNow(repo)
		} else {
			s.idx.Trigger(repo)
		}
	}
	if !now {
		return
	}
	for _, c := range s.copies(res) {
		if !done[c.repoDir] && !s.opts.Publisher.Visible(c.repoDir, c.href, c.sum) {
			done[c.repoDir] = true
			s.opts.Publisher.PublishNow(c.repoDir)
		}
	}
}

// allVisible reports whether every copy of res is in its repository's published metadata; false without a
// Publisher, which is the only one who knows.
func (s *Server) allVisible(res *ingest.Result) bool {
	if s.opts.Publisher == nil {
		return false
	}
	cs := s.copies(res)
	for _, c := range cs {
		if !s.opts.Publisher.Visible(c.repoDir, c.href, c.sum) {
			return false
		}
	}
	return len(cs) > 0 && len(cs) == len(res.Paths)
}

// pkgCopy is one placed file of an upload: its repository and its href there ("Packages/x.rpm").
type pkgCopy struct {
	repoDir, href string
	path          string // relative to TopDir, slash-separated
	sum           string // the package's sha256: visible means published with these bytes
}

// copies lists res's placed files.
func (s *Server) copies(res *ingest.Result) []pkgCopy {
	out := make([]pkgCopy, 0, len(res.Paths))
	for i, p := range res.Paths {
		if c, ok := s.copyOf(p); ok && i < len(res.Repos) && c.repoDir == filepath.Clean(res.Repos[i]) {
			if res.Package != nil {
				c.sum = res.Package.SHA256
			}
			out = append(out, c)
		}
	}
	return out
}

// copyOf splits a package path relative to TopDir ("9/x86_64/Packages/x.rpm") into its repository directory and
// href. Upload paths are canonical (<repo>/Packages/<file>); anything else is not ours and reports false.
func (s *Server) copyOf(p string) (pkgCopy, bool) {
	p = path.Clean(p)
	dir, file := path.Split(p)
	repo, pk := path.Split(strings.TrimSuffix(dir, "/"))
	if pk != "Packages" || file == "" || strings.HasPrefix(p, "../") || path.IsAbs(p) || repo == "" {
		return pkgCopy{}, false
	}
	return pkgCopy{repoDir: filepath.Join(s.opts.TopDir, filepath.FromSlash(repo)), href: "Packages/" + file, path: p}, true
}

// copyState is one copy of a package in an answer: where it is and whether dnf sees it yet.
type copyState struct {
	Repo    string `json:"repo"` // repository URL
	URL     string `json:"url"`  // package URL
	Visible bool   `json:"visible"`
	// ExpectedAt is when the indexer expects to publish it; absent once visible.
	ExpectedAt *time.Time `json:"expected_at,omitempty"`
}

// visibility is the outcome of a wait, or the answer of GET /api/v1/uploads/{sha256}.
type visibility struct {
	Visible bool        `json:"visible"` // every copy is visible
	Copies  []copyState `json:"copies"`
}

// state reports each copy's visibility now.
func (s *Server) state(cs []pkgCopy) *visibility {
	v := &visibility{Visible: len(cs) > 0, Copies: make([]copyState, 0, len(cs))}
	for _, c := range cs {
		st := copyState{Repo: s.url(c.repoDir), URL: s.opts.RepoURL + "/" + c.path, Visible: s.opts.Publisher.Visible(c.repoDir, c.href, c.sum)}
		if !st.Visible {
			t := s.idx.ExpectedAt(c.repoDir).UTC()
			st.ExpectedAt = &t
			v.Visible = false
		}
		v.Copies = append(v.Copies, st)
	}
	return v
}

// await holds an upload until every copy is visible, the timeout passes, the client leaves or the server stops
// waiting, and returns the state then; nil when the upload did not ask to wait or failed.
func (s *Server) await(r *http.Request, res *ingest.Result, err error, wo waitOptions) *visibility {
	if !wo.wait || err != nil || res == nil || s.opts.Publisher == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), wo.timeout)
	defer cancel()
	defer context.AfterFunc(s.wait.ctx, cancel)()
	cs := s.copies(res)
	for _, c := range cs {
		// One repository at a time under one deadline: the total wait is bounded by the timeout all the same.
		if werr := s.opts.Publisher.WaitVisible(ctx, c.repoDir, c.href, c.sum); werr != nil {
			s.log.Debug("upload not visible in time", zap.String("req_id", middleware.GetReqID(r.Context())),
				zap.String("repo", c.repoDir), zap.Duration("timeout", wo.timeout), zap.Error(werr))
			break
		}
	}
	return s.state(cs)
}

// uploadStatus answers GET /api/v1/uploads/{sha256}: where the package with that sha256 is and whether each copy
// is visible to dnf yet, for clients that poll instead of waiting (or whose wait ended with 202).
func (s *Server) uploadStatus(w http.ResponseWriter, r *http.Request) {
	sum := strings.ToLower(chi.URLParam(r, "sha256"))
	if !isSHA256(sum) {
		s.writeError(w, r, http.StatusBadRequest, fmt.Errorf("%w: %q is not a sha256 (64 hex digits, as sha256sum prints)", errBadParam, sum))
		return
	}
	seen := map[string]bool{}
	cs, err := s.storedCopies(r.Context(), sum, s.lookup(sum), seen)
	if err == nil && len(cs) == 0 {
		// Not known to this daemon: on a tree that several daemons share, another one may have taken it.
		var paths []string
		if paths, err = s.findShared(r.Context(), sum); err == nil {
			cs, err = s.storedCopies(r.Context(), sum, paths, seen)
		}
	}
	if err != nil {
		s.writeError(w, r, errorStatus(err), err) // errBusy or tree.ErrUnavailable: 503
		return
	}
	if len(cs) == 0 {
		s.writeError(w, r, http.StatusNotFound, fmt.Errorf("%w: no package with sha256 %s is known here", errUnknownUpload, sum))
		return
	}
	v := s.state(cs)
	writeJSON(w, http.StatusOK, struct {
		SHA256 string `json:"sha256"`
		*visibility
	}{sum, v})
}

// storedCopies turns the paths found for sum into the copies that are still stored with these bytes, skipping
// those in seen (and adding the rest to it). On a shared tree each check is a bucket request, spent from the
// lookup budget like findShared's listing: the sha256 of every published package is public in primary.xml.
func (s *Server) storedCopies(ctx context.Context, sum string, paths []string, seen map[string]bool) ([]pkgCopy, error) {
	var cs []pkgCopy
	for _, p := range paths {
		c, ok := s.copyOf(p)
		if !ok || seen[c.path] {
			continue
		}
		seen[c.path] = true
		c.sum = sum
		if err := s.spendLookup(); err != nil {
			return nil, err
		}
		// Deleted or replaced since (retention, a manual rm, overwrite): not a copy any more, whatever the
		// lookup remembers.
		if !s.stored(ctx, c.path, sum) {
			continue
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// spendLookup takes one bucket request from the lookup budget on a tree several daemons share (tree.Finder); on
// a tree one daemon owns (fs) lookups are local and free. Out of budget: errBusy, a 503 with Retry-After.
func (s *Server) spendLookup() error {
	if _, shared := s.opts.Tree.(tree.Finder); !shared {
		return nil
	}
	if !s.lookups.take(s.now()) {
		return fmt.Errorf("%w: too many lookups of uploads in the bucket (over %d a second, each a request to it); retry in a few seconds",
			errBusy, sharedLookupRate)
	}
	return nil
}

// findShared asks the tree for the copies of sum when several daemons share it (tree.Finder: s3's sha256
// markers, one listing request); nil on a tree that one daemon owns (fs), whose registry knows every upload.
func (s *Server) findShared(ctx context.Context, sum string) ([]string, error) {
	f, ok := s.opts.Tree.(tree.Finder)
	if !ok {
		return nil, nil
	}
	if err := s.spendLookup(); err != nil {
		return nil, err
	}
	refs, err := f.FindSHA256(ctx, sum)
	if err != nil {
		return nil, fmt.Errorf("find sha256 %s in the tree: %w", sum, err)
	}
	paths := make([]string, 0, len(refs))
	for _, r := range refs {
		paths = append(paths, r.Path())
	}
	return paths, nil
}

// lookup returns the paths known for sum: from Options.Lookup (the registry) and from the uploads this process
// answered, which covers what the registry may not know (no audit file configured) and the moments before it is
// told.
func (s *Server) lookup(sum string) []string {
	var out []string
	if s.opts.Lookup != nil {
		out = append(out, s.opts.Lookup(sum)...)
	}
	return append(out, s.wait.recent.get(sum)...)
}

func isSHA256(v string) bool {
	if len(v) != 64 {
		return false
	}
	for _, c := range v {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// remember records a stored upload for the fallback lookup.
func (s *Server) remember(res *ingest.Result) {
	if res != nil && res.Package != nil && len(res.Paths) > 0 {
		s.wait.recent.add(res.Package.SHA256, res.Paths)
	}
}

// recent maps sha256 to paths for the last n uploads, oldest forgotten first. Safe for concurrent use.
type recent struct {
	mu    sync.Mutex
	n     int
	paths map[string][]string
	order []string // sha256 in insertion order, for eviction
}

func newRecent(n int) *recent { return &recent{n: n, paths: map[string][]string{}} }

func (r *recent) add(sum string, paths []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.paths[sum]; !ok {
		r.order = append(r.order, sum)
	}
	r.paths[sum] = append([]string(nil), paths...)
	if len(r.order) > r.n {
		delete(r.paths, r.order[0])
		r.order = r.order[1:]
	}
}

func (r *recent) get(sum string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.paths[sum]...)
}

// statusURL is where a client polls for an upload's visibility.
func statusURL(sum string) string { return "/api/v1/uploads/" + sum }

// writeVisibleText is the plain-text answer of a waiting upload: one line, as CI logs show it.
func writeVisibleText(w http.ResponseWriter, status int, urls []string, vis *visibility, sum string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	what := "OK"
	switch {
	case status == http.StatusOK:
		what = "OK (already present)"
	case !vis.Visible:
		var waiting []string
		for _, c := range vis.Copies {
			if !c.Visible {
				waiting = append(waiting, c.Repo)
			}
		}
		fmt.Fprintf(w, "Accepted - stored as %s, not yet visible to dnf in %s; poll %s\n",
			strings.Join(urls, " "), strings.Join(waiting, " "), statusURL(sum))
		return
	}
	fmt.Fprintf(w, "%s - Accessible as %s (visible to dnf now)\n", what, strings.Join(urls, " "))
}

// stored reports whether the package at p (slash path relative to the top, <repo>/Packages/<name>) is still
// stored with the bytes sum: through Options.Tree when set (a symlinked or odd entry, tree.ErrInvalid, still
// counts, as os.Stat follows it; a stamp that knows its sha256, s3's, must match), else by a stat under TopDir.
func (s *Server) stored(ctx context.Context, p, sum string) bool {
	if s.opts.Tree == nil {
		_, err := os.Stat(filepath.Join(s.opts.TopDir, filepath.FromSlash(p)))
		return err == nil
	}
	st, err := s.opts.Tree.Stat(ctx, tree.Ref{Repo: path.Dir(path.Dir(p)), Name: path.Base(p)})
	return err == nil && (st.SHA256 == "" || st.SHA256 == sum) || errors.Is(err, tree.ErrInvalid)
}
