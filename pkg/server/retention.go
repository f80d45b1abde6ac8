package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
)

// RetentionPlanner answers the retention dry run; *ingest.Ingester implements it. PlanRetention reads the headers
// of every package in the selected repositories (and their noarch siblings), removes nothing, and stops when ctx
// is done. It is called concurrently with uploads.
type RetentionPlanner interface {
	PlanRetention(ctx context.Context, f ingest.RetentionFilter) ([]ingest.RetentionPlan, error)
}

// retentionEntry is one repository in the answer of GET /api/v1/retention: the plan plus where clients see it.
type retentionEntry struct {
	ingest.RetentionPlan
	URL string `json:"url"`
}

// filterValueRe is what a channel, OS release or arch filter may look like: the characters those names use.
var filterValueRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// errBadQuery is answered 400: a query parameter the handler does not know or cannot use.
var errBadQuery = errors.New("bad query")

// RetentionCacheTTL is how long a retention dry run is answered from memory. Every change the daemon makes
// (an upload, promotion or deletion that marked a repository) drops the cache at once; only packages copied in or
// removed by hand can go unseen, for this long at most.
const RetentionCacheTTL = 30 * time.Second

// retentionCacheSize bounds the cached answers: one per distinct filter. Only filters that select repositories
// cost a read, and there are few of those; the map is emptied when full.
const retentionCacheSize = 64

// retentionCache holds recent dry runs by filter. The route is read-only and open to every reader, as the status
// page is; the cache bounds what it costs: at most one read of the selected headers per filter and
// RetentionCacheTTL, however often it is called.
type retentionCache struct {
	mu      sync.Mutex
	gen     uint64 // bumped by every change the server makes
	entries map[ingest.RetentionFilter]cachedPlans
}

type cachedPlans struct {
	plans []ingest.RetentionPlan
	at    time.Time
	gen   uint64
}

// get returns the cached plans of f that are younger than RetentionCacheTTL and no change has outdated.
func (c *retentionCache) get(f ingest.RetentionFilter, now time.Time) (cachedPlans, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[f]
	if !ok || e.gen != c.gen || now.Sub(e.at) >= RetentionCacheTTL || now.Before(e.at) {
		return cachedPlans{}, false
	}
	return e, true
}

// generation is read before a dry run starts, so that a change during the run outdates its result.
func (c *retentionCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *retentionCache) put(f ingest.RetentionFilter, e cachedPlans) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= retentionCacheSize {
		c.entries = map[ingest.RetentionFilter]cachedPlans{}
	}
	c.entries[f] = e
}

// changed drops every cached plan: the tree changed.
func (c *retentionCache) changed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.entries = nil
}

// retention answers GET /api/v1/retention?channel=&os_release=&arch= with what the retention rules would remove
// now, and why, per repository; nothing is removed. One dry run at a time: each reads every package header in the
// repositories it selects, and a second one at once is answered 503 rather than doubling that work. Answers are
// cached (see retentionCache); the Age header says how old the answer is, in seconds.
func (s *Server) retention(w http.ResponseWriter, r *http.Request) {
	f, err := retentionFilter(r)
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, err)
		return
	}
	if e, ok := s.plans.get(f, s.now()); ok {
		w.Header().Set("Age", strconv.Itoa(int(s.now().Sub(e.at).Seconds())))
		s.writePlans(w, e.plans)
		return
	}
	if !s.planning.TryLock() {
		s.writeError(w, r, http.StatusServiceUnavailable, fmt.Errorf("%w: a retention dry run is already running; retry in a few seconds", errBusy))
		return
	}
	gen, at := s.plans.generation(), s.now()
	plans, err := s.opts.Retention.PlanRetention(r.Context(), f)
	s.planning.Unlock()
	if err != nil {
		err = withCause(r, err)
		status := errorStatus(err) // a stop is 503, a client gone 499, anything else 500 with the detail logged
		if status >= 500 && !errors.Is(err, ErrStopping) {
			s.log.Error("retention dry run failed", zap.String("req_id", middleware.GetReqID(r.Context())), zap.Error(err))
		}
		s.writeError(w, r, status, err)
		return
	}
	s.plans.put(f, cachedPlans{plans: plans, at: at, gen: gen})
	w.Header().Set("Age", "0")
	s.writePlans(w, plans)
}

func (s *Server) writePlans(w http.ResponseWriter, plans []ingest.RetentionPlan) {
	out := make([]retentionEntry, 0, len(plans))
	for _, p := range plans {
		out = append(out, retentionEntry{RetentionPlan: p, URL: path.Join(s.opts.RepoURL, p.Repo) + "/"})
	}
	writeJSON(w, http.StatusOK, out)
}

// retentionParams are the query parameters of GET /api/v1/retention.
var retentionParams = []string{"channel", "os_release", "arch"}

// retentionFilter reads the filter from the query. Unknown parameters are refused, so that a typo ("os-release")
// does not silently widen the answer to every repository.
func retentionFilter(r *http.Request) (ingest.RetentionFilter, error) {
	var f ingest.RetentionFilter
	q := r.URL.Query()
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(retentionParams, k) {
			return f, fmt.Errorf("%w: unknown parameter %.40q: use %s", errBadQuery, k, strings.Join(retentionParams, ", "))
		}
		if len(q[k]) > 1 {
			return f, fmt.Errorf("%w: %s is given %d times: give it once", errBadQuery, k, len(q[k]))
		}
		if v := q.Get(k); v != "" && !filterValueRe.MatchString(v) {
			return f, fmt.Errorf("%w: %s %.40q is not a valid value: use letters, digits and ._-", errBadQuery, k, v)
		}
	}
	f.Channel, f.OSRelease, f.Arch = q.Get("channel"), q.Get("os_release"), q.Get("arch")
	return f, nil
}

// prunedURLs turns Result.Pruned (paths relative to TopDir) into package URLs under repoURL; nil for none.
func prunedURLs(repoURL string, pruned []string) []string {
	var out []string
	for _, p := range pruned {
		out = append(out, repoURL+"/"+p)
	}
	return out
}
