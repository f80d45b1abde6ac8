package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
)

// Lifecycle changes what is stored, beyond uploads; *ingest.Ingester implements it. Both methods are safe for
// concurrent use, take the same per-name locks as uploads, and return the repositories they marked dirty in the
// result's Dirty also on failure, which the handler triggers as it does after an upload.
type Lifecycle interface {
	Promote(ctx context.Context, req ingest.PromoteRequest) (*ingest.PromoteResult, error)
	Delete(ctx context.Context, req ingest.DeleteRequest) (*ingest.DeleteResult, error)
}

var (
	errBadRequest  = errors.New("bad request")     // a request body or path the API cannot use: 400
	errNoLifecycle = errors.New("not implemented") // Options.Lifecycle is nil: 501
)

// maxAPIBody caps the JSON body of an API call; a promotion request is a few hundred bytes.
const maxAPIBody = 64 << 10

// uploadChannel returns the channel an upload path names: the segment after the upload path, unless it is the
// last one and ends in .rpm (curl -T appends the file name). "" means the default channel. Without channels
// the path is not looked at, as before channels existed. A channel that is not configured is refused here,
// before the body is read.
func (s *Server) uploadChannel(r *http.Request) (string, error) {
	if len(s.opts.Channels) == 0 {
		return "", nil
	}
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, s.opts.UploadPath), "/")
	if rest == "" {
		return "", nil
	}
	segs := strings.Split(rest, "/")
	isFile := func(seg string) bool { return strings.HasSuffix(strings.ToLower(seg), ".rpm") }
	switch {
	case len(segs) > 2:
		// Only an encoded slash gets here: the router matched one segment (/upload/testing%2F..%2Fstable/), and
		// taking the first of the decoded ones would file the upload under a channel the client may not have meant.
		return "", fmt.Errorf("%w: %.200q: an upload path is %s/<channel>/ or %s/<channel>/<file>.rpm, with no more segments", ingest.ErrUnknownChannel, r.URL.Path, s.opts.UploadPath, s.opts.UploadPath)
	case len(segs) == 1 && isFile(segs[0]):
		return "", nil
	case len(segs) == 2 && !isFile(segs[1]):
		return "", fmt.Errorf("%w: %s: after the channel %q comes a file name ending in .rpm, not %q", ingest.ErrUnknownChannel, r.URL.Path, segs[0], segs[1])
	case isFile(segs[0]):
		return "", fmt.Errorf("%w: %s: %q ends in .rpm, so it cannot name a channel (one of %s)", ingest.ErrUnknownChannel, r.URL.Path, segs[0], strings.Join(s.opts.Channels, ", "))
	}
	return segs[0], ingest.CheckChannel(segs[0], s.opts.Channels)
}

// promoteRequest is the JSON body of POST /api/v1/promote.
type promoteRequest struct {
	From      string  `json:"from"`
	To        string  `json:"to"`
	Name      string  `json:"name"`
	Version   string  `json:"version"`
	Release   string  `json:"release"`
	Epoch     *uint32 `json:"epoch,omitempty"`
	Arch      string  `json:"arch,omitempty"`
	OSRelease string  `json:"os_release,omitempty"`
}

// promoteResponse is the JSON answer of a promotion.
type promoteResponse struct {
	Status  string   `json:"status"` // created, present (all identical already) or replaced (overwrite)
	From    string   `json:"from"`
	To      string   `json:"to"`
	NEVRAs  []string `json:"nevras"`
	Sources []string `json:"sources"` // package URLs in the source channel
	Paths   []string `json:"paths"`   // package URLs in the target channel, parallel to sources
	Repos   []string `json:"repos"`   // repository URLs of the target, re-indexed
	// Pruned lists the package URLs the target channel's retention rule removed after the promotion.
	Pruned []string `json:"pruned,omitempty"`
	// VisibleBy is when the indexer expects to have published the target repositories.
	VisibleBy time.Time `json:"visible_by"`
}

// deleteResponse is the JSON answer of a deletion.
type deleteResponse struct {
	Deleted []string `json:"deleted"` // package URLs removed
	Repos   []string `json:"repos"`   // repository URLs, re-indexed
	// VisibleBy is when the indexer expects to have published the repositories without the package.
	VisibleBy time.Time `json:"visible_by"`
}

// promote handles POST /api/v1/promote: decode, Promote, trigger what it marked, answer with the paths.
func (s *Server) promote(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	if s.opts.Lifecycle == nil {
		s.finishLifecycle(w, r, start, "promote", nil, nil, errNoLifecycle, nil, nil)
		return
	}
	var body promoteRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAPIBody))
	dec.DisallowUnknownFields() // a misspelt "realease" must not promote something else
	if err := dec.Decode(&body); err != nil {
		s.finishLifecycle(w, r, start, "promote", nil, nil, fmt.Errorf("%w: the body must be JSON like {\"from\":\"testing\",\"to\":\"stable\",\"name\":\"hello\",\"version\":\"1.0\",\"release\":\"1.el9\"}: %v", errBadRequest, err), nil, nil)
		return
	}
	if err := s.permit(r, auth.ActionPromote, nil); err != nil {
		s.finishLifecycle(w, r, start, "promote", body, nil, err, nil, nil)
		return
	}
	res, err := s.opts.Lifecycle.Promote(r.Context(), ingest.PromoteRequest{
		From: body.From, To: body.To, Name: body.Name, Version: body.Version, Release: body.Release,
		Epoch: body.Epoch, Arch: body.Arch, OSRelease: body.OSRelease, Allow: s.allowFunc(r, auth.ActionPromote),
	})
	var dirty, paths []string
	var result any // a nil *PromoteResult must not become a non-nil interface
	if res != nil {
		dirty, paths, result = res.Dirty, res.Paths, res
	}
	s.finishLifecycle(w, r, start, "promote", body, result, err, dirty, func(visible time.Time) (int, any) {
		status := http.StatusCreated
		if res.Status == ingest.Present {
			status = http.StatusOK
		}
		out := promoteResponse{Status: string(res.Status), From: res.From, To: res.To, NEVRAs: res.NEVRAs,
			Sources: s.packageURLs(res.Sources), Paths: s.packageURLs(res.Paths), VisibleBy: visible,
			Pruned: prunedURLs(s.opts.RepoURL, res.Pruned)}
		for _, d := range res.Dirty {
			out.Repos = append(out.Repos, s.url(d))
		}
		return status, out
	}, zap.Any("request", body), zap.Strings("paths", paths))
	if err == nil && res != nil && len(res.Pruned) > 0 {
		s.recordPruned(r, res.Pruned) // after the promotion's own lines, as after an upload
	}
}

// deletePackage handles DELETE /api/v1/packages/{path}. The path is taken from the URL once decoded, never
// decoded again: %2e%2e arrives as "..", %252e%252e as the literal "%2e%2e", and ingest refuses both.
func (s *Server) deletePackage(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	if s.opts.Lifecycle == nil {
		s.finishLifecycle(w, r, start, "delete", nil, nil, errNoLifecycle, nil, nil)
		return
	}
	rel := strings.TrimPrefix(r.URL.Path, "/api/v1/packages/")
	all := r.URL.Query().Get("all_arches")
	req := ingest.DeleteRequest{Path: rel, AllArches: all == "1" || all == "true"}
	if err := s.permit(r, auth.ActionDelete, nil); err != nil {
		s.finishLifecycle(w, r, start, "delete", req, nil, err, nil, nil)
		return
	}
	req.Allow = s.allowFunc(r, auth.ActionDelete)
	res, err := s.opts.Lifecycle.Delete(r.Context(), req)
	var dirty, removed []string
	var result any
	if res != nil {
		dirty, removed, result = res.Dirty, res.Paths, res
	}
	s.finishLifecycle(w, r, start, "delete", req, result, err, dirty, func(visible time.Time) (int, any) {
		out := deleteResponse{Deleted: s.packageURLs(res.Paths), VisibleBy: visible}
		for _, d := range res.Dirty {
			out.Repos = append(out.Repos, s.url(d))
		}
		return http.StatusOK, out
	}, zap.String("path", rel), zap.Bool("all_arches", req.AllArches), zap.Strings("removed", removed))
}

// lifecycleEvent is who did what, for the log line and the audit trail.
type lifecycleEvent struct {
	Action string // "promote" or "delete"
	User   string // see actingUser
	Client string // the client's address as the Authorizer sees it (a trusted proxy's X-Real-IP, else the peer)
	// ForwardedFor is the address a trusted proxy reported where it is not believed as Client (ReportedAddr).
	ForwardedFor string
	ReqID        string
	Status       int
	Err          error
	// Request is what was asked (promoteRequest, or the deleted path and all_arches); Result what was done:
	// *ingest.PromoteResult or *ingest.DeleteResult, nil when refused before anything was looked at.
	Request any
	Result  any
}

// finishLifecycle triggers the repositories an operation marked (also after a failure: a marked repository must
// not wait for a restart), writes its log line and its answer. ok builds the success answer given the time the
// indexer expects to publish.
func (s *Server) finishLifecycle(w http.ResponseWriter, r *http.Request, start time.Time, action string, request, result any,
	err error, dirty []string, ok func(visible time.Time) (int, any), fields ...zap.Field) {
	err = withCause(r, err)
	var visible time.Time
	if len(dirty) > 0 {
		s.plans.changed()
	}
	for _, d := range dirty {
		s.idx.Trigger(d)
		if t := s.idx.ExpectedAt(d); t.After(visible) {
			visible = t
		}
	}
	ev := lifecycleEvent{Action: action, User: s.actingUser(r), Client: s.opts.Auth.ClientAddr(r), ForwardedFor: s.opts.Auth.ReportedAddr(r),
		ReqID: middleware.GetReqID(r.Context()), Err: err, Request: request, Result: result}
	var body any
	if err != nil {
		ev.Status = errorStatus(err)
	} else {
		ev.Status, body = ok(visible.UTC())
	}
	s.recordLifecycle(ev)
	fields = append(fields, zap.String("req_id", ev.ReqID), zap.String("client", ev.Client), zap.String("forwarded_for", ev.ForwardedFor), zap.String("user", ev.User),
		zap.Int("status", ev.Status), zap.Duration("took", s.now().Sub(start)))
	switch {
	case ev.Status >= 500:
		s.log.Error(action+" failed", append(fields, zap.Error(err))...)
	case err != nil:
		s.log.Info(action+" refused", append(fields, zap.String("reason", err.Error()))...)
	default:
		s.log.Info(action+" done", fields...)
	}
	if err != nil {
		s.writeError(w, r, ev.Status, err)
		return
	}
	writeJSON(w, ev.Status, body)
}

// permit asks server.permissions whether the acting user may do action on targets (none: anywhere at all).
func (s *Server) permit(r *http.Request, action string, targets []ingest.Target) error {
	ts := make([]auth.Target, len(targets))
	for i, t := range targets {
		ts[i] = auth.Target{Channel: t.Channel, OSRelease: t.OSRelease}
	}
	return s.opts.Permissions.Allowed(s.actingUser(r), action, ts...)
}

// allowFunc is the ingest Allow hook of action for r: the repositories it would change, judged by permit. Nil
// without permissions.
func (s *Server) allowFunc(r *http.Request, action string) func([]ingest.Target) error {
	if s.opts.Permissions == nil {
		return nil
	}
	return func(targets []ingest.Target) error { return s.permit(r, action, targets) }
}

// actingUser is who the audit trail names and server.permissions judges: the user mutating let in, as Authorize
// named it (the htpasswd user, or without server.htpasswd the user a trusted proxy authenticated).
func (s *Server) actingUser(r *http.Request) string {
	user, _ := r.Context().Value(userKey{}).(string)
	return user
}

// packageURLs turns paths relative to TopDir into URLs under RepoURL.
func (s *Server) packageURLs(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = s.opts.RepoURL + "/" + p
	}
	return out
}
