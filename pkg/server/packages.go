package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/registry"
)

// PackageLister lists the packages in the tree with their registry records; *registry.Index implements it. List
// must not block on the disk, and be safe for concurrent use.
type PackageLister interface {
	List(q registry.Query) (registry.Page, error)
}

// packageItem is one entry of GET /api/v1/packages: the registry's entry plus where clients download it.
type packageItem struct {
	registry.Entry
	URL string `json:"url"`
}

// packagesPage is the body of GET /api/v1/packages. Next is the URL of the next page ("" on the last), the same
// query with cursor set to NextCursor.
type packagesPage struct {
	Items      []packageItem `json:"items"`
	NextCursor string        `json:"next_cursor"`
	Next       string        `json:"next"`
}

// packageParams are the query parameters GET /api/v1/packages knows; any other is refused, so that a typo such
// as ?os=9 is not silently an unfiltered list.
var packageParams = []string{"name", "os_release", "arch", "since", "limit", "cursor"}

// packages answers GET /api/v1/packages?name=&os_release=&arch=&since=&limit=&cursor=: one page of the packages
// in the tree, in path order, each with its upload record (null fields for a file nobody uploaded through us).
func (s *Server) packages(w http.ResponseWriter, r *http.Request) {
	if s.opts.Packages == nil {
		s.writeError(w, r, http.StatusNotFound, errors.New("the package list is not enabled here"))
		return
	}
	q, err := parsePackageQuery(r.URL.Query())
	if err == nil {
		var page registry.Page
		if page, err = s.opts.Packages.List(q); err == nil {
			writeJSON(w, http.StatusOK, s.packagesPage(r, page))
			return
		}
	}
	if errors.Is(err, errBadQuery) || errors.Is(err, registry.ErrBadCursor) {
		s.writeError(w, r, http.StatusBadRequest, err)
		return
	}
	s.writeError(w, r, http.StatusInternalServerError, err)
}

// parsePackageQuery reads and checks the query parameters; every problem is one line naming the parameter.
func parsePackageQuery(v url.Values) (registry.Query, error) {
	var q registry.Query
	for k, vals := range v {
		if !slices.Contains(packageParams, k) {
			return q, fmt.Errorf("%w: unknown parameter %.40q: use %s", errBadQuery, k, strings.Join(packageParams, ", "))
		}
		if len(vals) > 1 {
			return q, fmt.Errorf("%w: %s is given %d times: give it once", errBadQuery, k, len(vals))
		}
	}
	q.Name, q.OSRelease, q.Arch, q.Cursor = v.Get("name"), v.Get("os_release"), v.Get("arch"), v.Get("cursor")
	for _, f := range []struct{ key, val string }{{"name", q.Name}, {"os_release", q.OSRelease}, {"arch", q.Arch}} {
		if len(f.val) > 255 || strings.ContainsAny(f.val, "/\x00") {
			return q, fmt.Errorf("%w: %s is not a plain name", errBadQuery, f.key)
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > registry.MaxLimit {
			return q, fmt.Errorf("%w: limit %.20q must be a number from 1 to %d", errBadQuery, s, registry.MaxLimit)
		}
		q.Limit = n
	}
	if s := v.Get("since"); s != "" {
		t, err := parseSince(s)
		if err != nil {
			return q, fmt.Errorf("%w: since %.40q must be a time like 2026-11-30T12:00:00Z or a date like 2026-11-30 (UTC)", errBadQuery, s)
		}
		q.Since = t
	}
	return q, nil
}

// parseSince reads an RFC 3339 time or a date (midnight UTC).
func parseSince(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, s)
}

// packagesPage adds the download URL to each entry and the next page's URL.
func (s *Server) packagesPage(r *http.Request, page registry.Page) packagesPage {
	out := packagesPage{Items: make([]packageItem, len(page.Items)), NextCursor: page.NextCursor}
	for i, e := range page.Items {
		out.Items[i] = packageItem{Entry: e, URL: s.opts.RepoURL + "/" + e.Path}
	}
	if page.NextCursor != "" {
		next := r.URL.Query()
		next.Set("cursor", page.NextCursor)
		out.Next = r.URL.Path + "?" + next.Encode()
	}
	return out
}
