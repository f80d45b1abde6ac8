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
	"strings"

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

// retention answers GET /api/v1/retention?channel=&os_release=&arch= with what the retention rules would remove
// now, and why, per repository; nothing is removed. One dry run at a time: each reads every package header in the
// tree, and a second one at once is answered 503 rather than doubling that work.
func (s *Server) retention(w http.ResponseWriter, r *http.Request) {
	f, err := retentionFilter(r)
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, err)
		return
	}
	if !s.planning.TryLock() {
		s.writeError(w, r, http.StatusServiceUnavailable, fmt.Errorf("%w: a retention dry run is already running; retry in a few seconds", errBusy))
		return
	}
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
