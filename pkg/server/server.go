// Package server is rpm-ingestd's HTTP layer: the routes table, middleware, the upload handler that composes
// the ingester and the indexer, the status API, optional read-only serving of the tree, and the one place that
// maps errors to HTTP statuses.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/indexer"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// Ingester places one upload; *ingest.Ingester implements it.
type Ingester interface {
	Ingest(ctx context.Context, req ingest.Request) (*ingest.Result, error)
}

// Indexer learns of changed repositories and reports on them; *indexer.Scheduler implements it. Trigger must
// not block: the upload handler calls it before answering.
type Indexer interface {
	Trigger(repoDir string)
	ExpectedAt(repoDir string) time.Time
	Status() []indexer.RepoStatus
}

// Options configure the HTTP side; they mirror the server section of the configuration.
type Options struct {
	UploadPath    string // PUT/POST here and below; no trailing slash
	UploadHeader  string // the proxy names the spooled file in this header
	DirectUpload  bool   // accept request bodies when the header is absent
	MaxUploadSize int64
	RepoURL       string // URL prefix of TopDir, for links in responses and for ServeRepo
	ServeRepo     bool
	// RepoObjects, with ServeRepo, serves the repositories from this bucket (storage.backend s3) instead of
	// TopDir; names directly under RepoURL still come from TopDir.
	RepoObjects RepoObjects
	TopDir      string
	// Tree, if set, is the repository tree TopDir names: GET /api/v1/uploads/{sha256} asks it (tree.Stat)
	// whether each copy is still stored, so the answer holds on every backend, and, when it is a tree.Finder (a
	// tree several daemons share), where the copies of a sha256 this daemon does not know are. Nil: files
	// under TopDir.
	Tree tree.Tree

	// MaxConcurrentUploads caps uploads in progress (received, checked or placed); one more waits for a slot
	// for up to QueueTimeout, before its body is read, and gets 503 with Retry-After when none came free. 0
	// means no cap; QueueTimeout 0 means no wait (503 at once).
	MaxConcurrentUploads int
	QueueTimeout         time.Duration
	// UploadIdleTimeout and UploadMinRate (bytes/s, 0 off) bound how slowly a direct upload may send its body;
	// a slower one is cut off with 408 and its partial spool file removed. UploadIdleTimeout 0 means no bound.
	UploadIdleTimeout time.Duration
	UploadMinRate     int64

	// Auth decides every request that changes the tree (see mutating). Required: New refuses a nil Auth, so a
	// forgotten wiring can never mean "open to everyone".
	Auth Authorizer
	// Permissions decide who may upload, promote and delete where (server.permissions); nil lets every
	// authenticated user do everything.
	Permissions *auth.Permissions
	// Refusals bounds what refused requests cost, per client (Auth.ClientAddr): each refusal by Auth (401, 403,
	// 429) counts as a failure; a refusal while the client is over the limit is answered 429 and is neither
	// written to the audit trail nor logged above debug, only counted in rpm_ingestd_refusals_dropped_total.
	// nil means DefaultRefusalLimit per DefaultRefusalWindow.
	Refusals *auth.Limiter

	// SpoolDir and IndexerProgram (indexer.command[0]) are what GET /readyz checks besides TopDir: both
	// directories must take a new file and the program must be on PATH. Empty ones are not checked.
	SpoolDir       string
	IndexerProgram string
	// Registerer receives the HTTP layer's metrics; nil means none. Gatherer, when set, is served at GET
	// /metrics: main passes the one registry that every part registers with.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Web serves the status page (GET /) and the package pages (GET /packages/*); *web.Handler implements it.
	// nil leaves both routes unregistered (404).
	Web http.Handler
	// Retention answers GET /api/v1/retention, the retention dry run; nil leaves the route out.
	Retention RetentionPlanner

	// Publisher (the indexer) enables ?wait=visible, ?publish=now and GET /api/v1/uploads/{sha256} (wait.go);
	// nil leaves the flags without effect and the route out.
	Publisher Publisher
	// MaxWait caps how long ?wait=visible holds an answer (server.max_wait); 0 means DefaultMaxWait.
	MaxWait time.Duration
	// Lookup finds packages by sha256 for GET /api/v1/uploads/{sha256} (the registry); nil leaves only the
	// uploads this process answered.
	Lookup LookupFunc
	// Channels are repo.channels: with them, an upload path may name a channel (PUT /upload/stable/). Empty: no
	// channel routes, exactly the upload paths there were before channels.
	Channels []string
	// Lifecycle promotes and deletes stored packages (see lifecycle.go); nil answers those routes 501.
	Lifecycle Lifecycle
	// Registry records every upload decision before it is answered (see audit.go); nil records nothing.
	Registry Recorder
	// Packages answers GET /api/v1/packages; nil answers it 404.
	Packages PackageLister
}

// Authorizer decides who may change the tree; *auth.Authenticator implements it. Its methods are called
// concurrently, never block on anything but CPU (a password hash) and return errors wrapping auth.ErrUnauthorized,
// auth.ErrForbidden or auth.ErrTooManyFailures (a *auth.LimitError), which errorStatus maps.
type Authorizer interface {
	// Authorize decides a direct request: Basic credentials against server.htpasswd, or, without htpasswd, a
	// local peer. It returns the user ("" for a local peer without htpasswd).
	Authorize(r *http.Request) (user string, err error)
	// Proxied decides a request that names a spooled file: only a trusted proxy may. It returns the user the
	// proxy authenticated ("" if it sent none).
	Proxied(r *http.Request) (user string, err error)
	// ClientAddr is the client's address for the logs: what a trusted proxy reports, else the peer's.
	ClientAddr(r *http.Request) string
	// ReportedAddr is the address a trusted proxy reported where ClientAddr does not believe it, for the record
	// only ("" otherwise).
	ReportedAddr(r *http.Request) string
}

// Server holds the handlers' dependencies. Build it with New; it is safe for concurrent use.
type Server struct {
	opts Options
	ing  Ingester
	idx  Indexer
	log  *zap.Logger
	repo http.Handler // nil unless ServeRepo
	now  func() time.Time

	slots    slots // uploads in progress, capped by MaxConcurrentUploads
	refusals *auth.Limiter
	plans    retentionCache
	inflight inflight // running handlers, for Wait
	// logFields holds logUpload's field slices (*[]zap.Field), reused: 1 KiB per upload otherwise.
	logFields sync.Pool

	planning    sync.Mutex   // held by the one retention dry run that may run at a time
	metrics     *metrics     // nil without Options.Registerer
	promHandler http.Handler // GET /metrics
	stopping    atomic.Bool  // set by ShuttingDown; /readyz answers 503
	wait        waiting      // uploads waiting for visibility, and the uploads remembered for their status
	lookups     *rateBudget  // lookups of unknown sha256s in a shared tree (limits.go)
}

// New builds a Server. With ServeRepo it opens TopDir for read-only serving.
func New(opts Options, ing Ingester, idx Indexer, log *zap.Logger) (*Server, error) {
	if opts.Auth == nil {
		return nil, errors.New("server: Options.Auth is required")
	}
	s := &Server{opts: opts, ing: ing, idx: idx, log: log, now: time.Now, slots: newSlots(opts.MaxConcurrentUploads), wait: newWaiting(),
		refusals: opts.Refusals, lookups: &rateBudget{perSecond: sharedLookupRate, burst: sharedLookupBurst}}
	if s.refusals == nil {
		s.refusals = auth.NewLimiter(DefaultRefusalLimit, DefaultRefusalWindow, nil)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("server metrics: %w", err)
	}
	s.metrics, s.promHandler = m, metricsHandler(opts.Gatherer, opts.Registerer, log)
	if opts.ServeRepo {
		root, err := os.OpenRoot(opts.TopDir)
		if err != nil {
			return nil, fmt.Errorf("serve_repo: %w", err)
		}
		// os.Root keeps symlinks and ".." inside the tree; dotless hides our own files, as the nginx snippet does.
		s.repo = http.StripPrefix(opts.RepoURL, http.FileServerFS(dotless{root.FS()}))
		if opts.RepoObjects != nil { // the tree is in a bucket: top_dir keeps only the .repo file and the key
			s.repo = &bucketRepo{objects: opts.RepoObjects, local: http.FileServerFS(dotless{root.FS()}),
				prefix: opts.RepoURL, log: log, onError: s.writeError}
		}
	}
	return s, nil
}

// Routes returns the HTTP handler. Middleware order: the in-flight count outermost so Wait covers everything a
// handler does, a request ID so every later line can carry it, the access log next so it sees the final status,
// the recoverer innermost so a panic becomes a logged 500.
// There is no RealIP: it would let any direct client forge its logged address; we log the peer address and,
// separately, what the proxy says about the client.
func (s *Server) Routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.track, middleware.RequestID, s.accessLog, middleware.Recoverer)

	r.Get("/healthz", s.healthz)    // GET /healthz - liveness: 200 "ok"
	r.Get("/api/v1/repos", s.repos) // GET /api/v1/repos - index status of every known repository (JSON)
	// Probes and metrics for balancers and Prometheus: read-only, open to every peer like the two above.
	r.Get("/readyz", s.readyz)                 // GET /readyz - readiness: 200 "ready", or 503 and the reasons in one line
	r.Get("/metrics", s.promHandler.ServeHTTP) // GET /metrics - Prometheus exposition (404 without a Gatherer)
	if s.opts.Web != nil {
		r.Get("/", s.opts.Web.ServeHTTP)           // GET / - the status page (HTML)
		r.Get("/packages/*", s.opts.Web.ServeHTTP) // GET /packages/{path} - one package's page (HTML)
	}
	if s.opts.Retention != nil {
		r.Get("/api/v1/retention", s.retention) // GET /api/v1/retention?channel=&os_release=&arch= - retention dry run (JSON)
	}
	if s.opts.Publisher != nil {
		r.Get("/api/v1/uploads/{sha256}", s.uploadStatus) // GET /api/v1/uploads/{sha256} - where a package is, visible yet? (JSON)
	}

	r.Get("/api/v1/whoami", s.whoami)     // GET /api/v1/whoami - the authenticated user and the permissions that apply (JSON)
	r.Get("/api/v1/packages", s.packages) // GET /api/v1/packages - the packages in the tree with their upload records (JSON, paginated)
	r.Get(AuthCheckPath, s.authCheck)     // GET /api/v1/auth - login check for nginx's auth_request, trusted proxies only (authcheck.go)
	// Everything that changes the tree goes in the two groups below, behind s.uploading (uploads: the only routes
	// where a trusted proxy may name a spooled file) or s.mutating (everything else: always Authorize). Read-only
	// routes stay outside. A test walks this router and fails on any route that changes the tree unguarded.
	r.Group(func(r chi.Router) {
		r.Use(s.uploading)
		up := s.opts.UploadPath
		r.Put(up, s.upload)                // PUT /upload - upload an RPM (body, or spooled file named by the proxy)
		r.Put(up+"/", s.upload)            // PUT /upload/ - the same
		r.Put(up+"/{filename}", s.upload)  // PUT /upload/{filename} - the same; curl -T appends the file name, ignored
		r.Post(up, s.upload)               // POST /upload - the same, for clients that cannot PUT
		r.Post(up+"/", s.upload)           // POST /upload/ - the same
		r.Post(up+"/{filename}", s.upload) // POST /upload/{filename} - the same (curl -X POST -T)
		if len(s.opts.Channels) > 0 {
			// With channels, a last segment not ending in .rpm (above) names the channel; see uploadChannel.
			r.Put(up+"/{channel}/", s.upload)            // PUT /upload/{channel}/ - upload into a channel
			r.Put(up+"/{channel}/{filename}", s.upload)  // PUT /upload/{channel}/{file}.rpm - the same, as curl -T sends it
			r.Post(up+"/{channel}/", s.upload)           // POST /upload/{channel}/ - the same
			r.Post(up+"/{channel}/{filename}", s.upload) // POST /upload/{channel}/{file}.rpm - the same
		}
	})
	r.Group(func(r chi.Router) {
		r.Use(s.mutating)
		r.Post("/api/v1/promote", s.promote)            // POST /api/v1/promote - copy a build into another channel (JSON)
		r.Delete("/api/v1/packages/*", s.deletePackage) // DELETE /api/v1/packages/{path} - remove a package (?all_arches=1: its noarch copies too)
	})
	if s.repo != nil {
		r.Get(s.opts.RepoURL, http.RedirectHandler(s.opts.RepoURL+"/", http.StatusMovedPermanently).ServeHTTP) // GET /repo - to /repo/
		r.Get(s.opts.RepoURL+"/*", s.repo.ServeHTTP)                                                           // GET /repo/* - the tree, read-only, with listings
		r.Head(s.opts.RepoURL+"/*", s.repo.ServeHTTP)                                                          // HEAD /repo/* - the same
	}
	return r
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// repoStatus is one entry of GET /api/v1/repos: the indexer's view plus where clients find the repository.
type repoStatus struct {
	indexer.RepoStatus
	URL string `json:"url"`
}

func (s *Server) repos(w http.ResponseWriter, _ *http.Request) {
	st := s.idx.Status()
	out := make([]repoStatus, 0, len(st))
	for _, r := range st {
		out = append(out, repoStatus{RepoStatus: r, URL: s.url(r.Dir)})
	}
	writeJSON(w, http.StatusOK, out)
}

// url returns the URL path under which clients see the absolute path p inside TopDir.
func (s *Server) url(p string) string {
	rel, err := filepath.Rel(s.opts.TopDir, p)
	if err != nil {
		return ""
	}
	return path.Join(s.opts.RepoURL, filepath.ToSlash(rel)) + "/"
}

// uploadResponse is the JSON body of a successful upload (Accept: application/json).
type uploadResponse struct {
	Name      string   `json:"name"`
	Epoch     *uint32  `json:"epoch"`
	Version   string   `json:"version"`
	Release   string   `json:"release"`
	Arch      string   `json:"arch"`
	OSRelease string   `json:"os_release"`
	Repos     []string `json:"repos"` // repository URLs
	Paths     []string `json:"paths"` // package URLs
	SHA256    string   `json:"sha256"`
	Size      int64    `json:"size"`
	Status    string   `json:"status"`
	SignedBy  string   `json:"signed_by,omitempty"` // key id of a signer verified against repo.keyring
	// ClaimedKeyID: the key id of a signature that was not verified (require_signature off).
	ClaimedKeyID string    `json:"claimed_key_id,omitempty"`
	Pruned       []string  `json:"pruned,omitempty"` // package URLs retention removed after this upload
	VisibleBy    time.Time `json:"visible_by"`       // when the indexer expects to have published it
	// With ?wait=visible: whether every copy is visible to dnf, each copy's state, and where to poll.
	Visible   *bool       `json:"visible,omitempty"`
	Copies    []copyState `json:"copies,omitempty"`
	StatusURL string      `json:"status_url,omitempty"`
}

// upload handles PUT/POST of one package. Behind the proxy the body was spooled to a file named by the upload
// header, and the body is never read: the proxy may announce a Content-Length and send nothing.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	r = s.trackDecision(r)
	query := r.URL.Query() // parsed once: parseWait reads it too
	req := ingest.Request{OSRelease: query.Get("os_release"), Commit: s.commitFunc(r)}
	if req.OSRelease == "" {
		req.OSRelease = r.Header.Get("X-OS-Release")
	}
	req.Checksums = clientChecksums(r.Header)
	channel, err := s.uploadChannel(r)
	if err != nil {
		// Before the body is read: a typo in the channel costs no upload.
		s.finish(w, r, start, nil, err)
		return
	}
	req.Channel = channel
	// Before the body is read: a user who may not upload anywhere costs no upload. The repositories are judged
	// once the package is routed, before anything is placed (noarch: every arch's repository must be allowed).
	if err := s.permit(r, auth.ActionUpload, nil); err != nil {
		s.finish(w, r, start, nil, err)
		return
	}
	req.Allow = s.allowFunc(r, auth.ActionUpload)
	switch spooled := r.Header.Get(s.opts.UploadHeader); {
	case spooled != "":
		req.SpoolPath = spooled
		req.Spooled = s.metrics.spooled // what the proxy received, counted once the file is open (no stat of its own)
		if r.ContentLength != 0 {
			// Close instead of keep-alive: net/http would otherwise wait to drain a body that never comes.
			w.Header().Set("Connection", "close")
		}
	case !s.opts.DirectUpload:
		// nginx leaves the header out when there was no body to spool, so say that first: it is the usual cause.
		s.finish(w, r, start, nil, fmt.Errorf("%w: the %s header is missing: no body was sent (send the package as the body: curl -T hello.rpm URL), or the request did not come through the proxy (server.direct_upload is off)", errMissingHeader, s.opts.UploadHeader))
		return
	case isMultipart(r.Header.Get("Content-Type")):
		s.finish(w, r, start, nil, &ingest.Error{Kind: ingest.ErrBadUpload, Msg: multipartHint})
		return
	case r.ContentLength == 0:
		s.finish(w, r, start, nil, &ingest.Error{Kind: ingest.ErrBadUpload, Msg: noBodyHint})
		return
	case r.ContentLength > s.opts.MaxUploadSize:
		s.finish(w, r, start, nil, &http.MaxBytesError{Limit: s.opts.MaxUploadSize})
		return
	}
	wo, err := s.parseWait(r, query)
	if err != nil {
		s.finish(w, r, start, nil, err)
		return
	}
	// The cap covers receiving too: a direct upload's spool file and connection are what it protects, as well as
	// the memory an inspection takes.
	// An upload over the cap waits here, before its body is read: at most the cap are received and parsed.
	waited, err := s.slots.acquire(r.Context(), s.opts.QueueTimeout, s.metrics.queueWait)
	if errors.Is(err, errQueueTimeout) {
		if waited {
			s.metrics.queueTimeout()
		}
		err = busyError(s.opts.MaxConcurrentUploads, s.opts.QueueTimeout)
	}
	if err != nil {
		s.finish(w, r, start, nil, err)
		return
	}
	release := sync.OnceFunc(s.slots.release) // released before a wait for visibility: waiting takes no slot
	defer release()
	if req.SpoolPath == "" {
		// The deadline stays after a failed read on purpose: net/http then cannot wait for the rest of the body
		// before answering, and closes the connection.
		req.Body = newRateBody(w, http.MaxBytesReader(w, r.Body, s.opts.MaxUploadSize), s.opts.UploadIdleTimeout, s.opts.UploadMinRate, s.now)
		req.Body = s.metrics.countBody(req.Body) // counted as read, so a cut-off upload shows what it cost
	}

	res, err := s.ing.Ingest(r.Context(), req)
	err = explainBody(err)
	if res != nil {
		// Trigger (or PublishNow) also after a failure: a marked repository must not wait for a restart.
		s.schedule(res, err, wo)
		if len(res.Dirty) > 0 {
			s.plans.changed()
		}
	}
	if err == nil {
		s.remember(res)
	}
	release()
	s.finishVisible(w, r, start, res, err, s.await(r, res, err, wo))
}

var errMissingHeader = errors.New("missing upload header")

// What to tell a client that sent a form (curl -F) or nothing at all (curl -X PUT without -T) instead of the
// package as the body.
const (
	multipartHint = "this is a multipart form upload (curl -F), not an rpm: send the package itself as the request body, with curl -T hello.rpm URL"
	noBodyHint    = "no body: the request carried no package; send one as the request body, with curl -T hello.rpm URL"
)

// isMultipart reports whether a Content-Type is a multipart form (curl -F sends multipart/form-data).
func isMultipart(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(mt)), "multipart/")
}

// explainBody turns the inspection's findings about the body as a whole (empty, or a multipart form, which a
// proxy spools as is) into what the client should do instead; both stay 400s.
func explainBody(err error) error {
	switch {
	case errors.Is(err, rpmmeta.ErrEmpty):
		return &ingest.Error{Kind: ingest.ErrBadUpload, Msg: noBodyHint}
	case errors.Is(err, rpmmeta.ErrMultipart):
		return &ingest.Error{Kind: ingest.ErrBadUpload, Msg: multipartHint}
	}
	return err
}

// checksumHeaders are the headers in which clients (Artifactory's among them) send the body's checksum.
var checksumHeaders = map[string]string{"X-Checksum-Sha256": "sha256", "X-Checksum-Sha1": "sha1", "X-Checksum-Md5": "md5"}

// clientChecksums returns the checksums the client sent, by algorithm; nil when none.
func clientChecksums(h http.Header) map[string]string {
	var sums map[string]string
	for header, algo := range checksumHeaders {
		if v := h.Get(header); v != "" {
			if sums == nil {
				sums = map[string]string{}
			}
			sums[algo] = v
		}
	}
	return sums
}

// uploading guards the upload routes. A request that names a spooled file in the upload header is the proxy's,
// decided by Proxied: only a trusted proxy may name one, since the names are sequential and anyone else could
// file another client's upload as their own. Any other upload is decided by Authorize (htpasswd, or local peers
// only). A refusal is answered before the handler runs, so a named spooled file is left alone and a body is never
// read. The user goes into the request's context for the handler's log line and the audit trail.
//
// It runs before the direct_upload check on purpose: a peer that may not upload learns nothing about the
// configuration, and a local client (the usual case) still gets the 400 that says the header is missing.
func (s *Server) uploading(next http.Handler) http.Handler {
	direct, proxied := s.authorize(next, s.opts.Auth.Authorize), s.authorize(next, s.opts.Auth.Proxied) // once, not per request
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(s.opts.UploadHeader) == "" {
			direct.ServeHTTP(w, r)
			return
		}
		// Header mode: the proxy, not the client, set X-Real-IP (see auth.RealIPHeader for the rule).
		proxied.ServeHTTP(w, auth.Forwarded(r))
	})
}

// mutating guards the routes that change the tree other than uploads: promotion and deletion. They are always
// decided by Authorize. The upload header changes nothing here: it names a spooled file, which these routes never
// take, and letting it switch to Proxied would let anyone a trusted proxy forwards (or any local process, with
// loopback trusted) promote and delete without credentials.
func (s *Server) mutating(next http.Handler) http.Handler {
	return s.authorize(next, s.opts.Auth.Authorize)
}

// The default refusal limit (Options.Refusals): a client refused this many times within the window gets 429 for
// every further refusal, which is not recorded. A client that asks once without credentials and then with them
// uses two; a CI job never comes close.
const (
	DefaultRefusalLimit  = 30
	DefaultRefusalWindow = time.Minute
)

// authorize runs decide on every request and lets the ones it accepts through with their user in the context.
// Good credentials always get through decide, also from a client over the refusal limit: the limit bounds what
// refusals cost (an fsynced audit line each), not who may log in; failed logins have auth's own limiter.
func (s *Server) authorize(next http.Handler, decide func(*http.Request) (string, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, err := decide(r)
		if err != nil {
			key := s.opts.Auth.ClientAddr(r)
			if ok, wait := s.refusals.Allow(key); !ok {
				s.dropRefusal(w, r, err, wait)
				return
			}
			s.refusals.Fail(key)
			s.refuse(w, r, err)
			return
		}
		if user == "" {
			// Every reader takes a missing value as "" (a local peer without htpasswd): no copy of the request.
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, user)))
	})
}

// userKey is the context key of the user that mutating let in.
type userKey struct{}

// refuse answers a request that mutating turned away, and logs it. Client mistakes are Info; a flood of them
// is what the limiter is for. Nothing the client sent is logged but its path: the error texts of auth never
// carry a password or the user name the client tried.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	status := errorStatus(err)
	if r.ContentLength != 0 {
		// The body (or, in header mode, a Content-Length with no body) is never read: without this, net/http
		// would wait to drain it before the connection could be reused.
		w.Header().Set("Connection", "close")
	}
	peer, _ := auth.PeerFrom(r.Context())
	s.log.Info("request refused", zap.String("req_id", middleware.GetReqID(r.Context())),
		zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Stringer("peer", peer),
		zap.String("client", s.opts.Auth.ClientAddr(r)), zap.Int("status", status), zap.String("reason", err.Error()))
	s.metrics.refused(r, s.opts.UploadPath, status, err)
	s.recordRefusal(r, status, nil, err)
	s.writeError(w, r, status, err)
}

// dropRefusal answers a refusal from a client over the refusal limit: 429 with Retry-After, counted, logged at
// debug level only and not written to the audit trail, so that a flood of refused requests costs no fsync each.
func (s *Server) dropRefusal(w http.ResponseWriter, r *http.Request, err error, wait time.Duration) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close") // the body is never read
	}
	s.log.Debug("request refused, not recorded: too many refusals from this client",
		zap.String("req_id", middleware.GetReqID(r.Context())), zap.String("method", r.Method), zap.String("path", r.URL.Path),
		zap.String("client", s.opts.Auth.ClientAddr(r)), zap.String("reason", err.Error()))
	limited := &refusalLimitError{auth.LimitError{RetryAfter: wait}}
	s.metrics.refused(r, s.opts.UploadPath, http.StatusTooManyRequests, limited)
	s.metrics.droppedRefusal()
	s.writeError(w, r, http.StatusTooManyRequests, limited)
}

// refusalLimitError is the answer to a client over the refusal limit: a *auth.LimitError (429, Retry-After) with
// its own message.
type refusalLimitError struct{ auth.LimitError }

func (e *refusalLimitError) Error() string {
	return "too many refused requests from this address; try again in " + e.RetryAfterHeader() + "s"
}

// As lets errors.As find the *auth.LimitError inside, for the Retry-After header.
func (e *refusalLimitError) As(target any) bool {
	if p, ok := target.(**auth.LimitError); ok {
		*p = &e.LimitError
		return true
	}
	return false
}

// finish writes the upload's response and its one log line.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, start time.Time, res *ingest.Result, err error) {
	s.finishVisible(w, r, start, res, err, nil)
}

// finishVisible is finish with the outcome of a wait for visibility (nil when none was asked): 202 when the
// package is stored but not yet visible everywhere.
func (s *Server) finishVisible(w http.ResponseWriter, r *http.Request, start time.Time, res *ingest.Result, err error, vis *visibility) {
	err = withCause(r, err)
	status := http.StatusCreated
	switch {
	case err != nil:
		status = errorStatus(err)
	case res.Status == ingest.Present:
		status = http.StatusOK
	}
	// The metrics' result says what became of the bytes (created, or already there); a 202 only says that the
	// wait for visibility ended first.
	s.metrics.observe(status, err, s.now().Sub(start))
	if err == nil && vis != nil && !vis.Visible {
		status = http.StatusAccepted
	}
	s.recordDecision(r, status, res, err) // before the answer, which a client may act on
	if res != nil && len(res.Pruned) > 0 {
		s.recordPruned(r, res.Pruned)
	}
	s.logUpload(r, start, status, res, err)
	if err != nil {
		s.writeError(w, r, status, err)
		return
	}

	var visible time.Time
	urls := make([]string, len(res.Paths))
	for i := range res.Paths {
		urls[i] = s.opts.RepoURL + "/" + res.Paths[i]
		if t := s.idx.ExpectedAt(res.Repos[i]); t.After(visible) {
			visible = t
		}
	}
	if status == http.StatusCreated || status == http.StatusAccepted {
		w.Header().Set("Location", urls[0])
	}
	p := res.Package
	if wantsJSON(r) {
		repos := make([]string, len(res.Repos)) // only the JSON answer names them
		for i, repo := range res.Repos {
			repos[i] = s.url(repo)
		}
		resp := uploadResponse{
			Name: p.Name, Epoch: p.Epoch, Version: p.Version, Release: p.Release, Arch: p.FileArch(),
			OSRelease: res.OSRelease, Repos: repos, Paths: urls, SHA256: p.SHA256, Size: p.Size,
			Status: string(res.Status), SignedBy: res.SignedBy, ClaimedKeyID: res.ClaimedKeyID, VisibleBy: visible.UTC(),
			Pruned: prunedURLs(s.opts.RepoURL, res.Pruned),
		}
		if vis != nil {
			resp.Visible, resp.Copies, resp.StatusURL = &vis.Visible, vis.Copies, statusURL(p.SHA256)
		}
		writeJSON(w, status, resp)
		return
	}
	if vis != nil {
		writeVisibleText(w, status, urls, vis, p.SHA256)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	what := "OK"
	if res.Status == ingest.Present {
		what = "OK (already present)"
	}
	when := "published to dnf now"
	switch d := visible.Sub(s.now()).Round(time.Second); {
	case res.Status == ingest.Present && s.allVisible(res):
		when = "already visible to dnf"
	case d > 0:
		when = "published to dnf in about " + d.String()
	}
	fmt.Fprintf(w, "%s - Accessible as %s (%s)\n", what, strings.Join(urls, " "), when)
}

// errorStatus is the one mapping from errors to HTTP statuses.
func errorStatus(err error) int {
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, auth.ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, auth.ErrTooManyFailures):
		return http.StatusTooManyRequests
	case errors.Is(err, errClientGone): // before ErrStopping: neither wraps the other, and a gone client is not a stop
		return statusClientClosed
	case errors.Is(err, errBusy), errors.Is(err, ErrStopping): // a bare context.Canceled is ours: a 500 below
		return http.StatusServiceUnavailable
	case errors.Is(err, ingest.ErrUnavailable), errors.Is(err, tree.ErrUnavailable): // S3 down or timing out
		return http.StatusServiceUnavailable
	case errors.Is(err, errSlowUpload): // before the body errors it is wrapped in
		return http.StatusRequestTimeout
	case errors.As(err, &tooBig), errors.Is(err, ingest.ErrTooLarge): // first: a capped body is also a body error
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, rpmmeta.ErrInvalidPackage), errors.Is(err, ingest.ErrBadUpload), errors.Is(err, errMissingHeader):
		return http.StatusBadRequest
	case errors.Is(err, ingest.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ingest.ErrExists):
		return http.StatusConflict
	case errors.Is(err, ingest.ErrUnknownChannel), errors.Is(err, ingest.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, errNoLifecycle):
		return http.StatusNotImplemented
	case errors.Is(err, ingest.ErrRejected):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ingest.ErrNoSpace):
		return http.StatusInsufficientStorage
	case errors.Is(err, errBadParam):
		return http.StatusBadRequest
	case errors.Is(err, errUnknownUpload):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// writeError answers with one line naming the problem. A 500's detail stays in the log, under the request ID.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, status int, err error) {
	msg := err.Error()
	var tooBig *http.MaxBytesError
	var limited *auth.LimitError
	switch {
	case status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", auth.Challenge)
	case errors.As(err, &limited):
		w.Header().Set("Retry-After", limited.RetryAfterHeader())
	case status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfter)
		switch {
		case errors.Is(err, errBusy):
		case errors.Is(err, ingest.ErrUnavailable):
		case errors.Is(err, tree.ErrUnavailable): // a delete, promotion or read: the tree's own detail stays in the log
			msg = "the package storage is unavailable; retry in a few seconds"
		default:
			msg = "the daemon is stopping; retry in a few seconds"
		}
	case status == statusClientClosed:
		msg = "the client closed the request before it was answered"
	case status == http.StatusInternalServerError:
		msg = "internal error; the daemon's log has the details under request id " + middleware.GetReqID(r.Context())
	case errors.As(err, &tooBig):
		msg = fmt.Sprintf("upload is larger than server.max_upload_size (%d bytes)", tooBig.Limit)
	}
	msg = strings.ReplaceAll(msg, "\n", "; ")
	if wantsJSON(r) {
		writeJSON(w, status, map[string]string{"error": msg})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

// logUpload writes the one line that answers "what happened to my upload?".
func (s *Server) logUpload(r *http.Request, start time.Time, status int, res *ingest.Result, err error) {
	// Room for every field below, reused (s.logFields): zap encodes the fields before Info returns and keeps
	// none of them (its observer for tests copies them).
	fp, _ := s.logFields.Get().(*[]zap.Field)
	if fp == nil {
		fs := make([]zap.Field, 0, 16)
		fp = &fs
	}
	defer func() {
		clear((*fp)[:cap(*fp)])
		s.logFields.Put(fp)
	}()
	fields := (*fp)[:0]
	fields = append(fields,
		zap.String("req_id", middleware.GetReqID(r.Context())),
		zap.String("remote", r.RemoteAddr),
		zap.Int("status", status),
		zap.Duration("took", s.now().Sub(start)),
	)
	// The client and the user come from the Authorizer, never straight from headers: from anyone but a trusted
	// proxy, X-Real-IP and X-Remote-User are whatever the client chose to send.
	fields = append(fields, zap.String("client", s.opts.Auth.ClientAddr(r)))
	if user, _ := r.Context().Value(userKey{}).(string); user != "" {
		fields = append(fields, zap.String("user", user))
	}
	if res != nil && res.Package != nil {
		fields = append(fields, zap.String("nevra", res.Package.NEVRA()), zap.String("sha256", res.Package.SHA256),
			zap.Int64("bytes", res.Package.Size))
		if len(res.Paths) > 0 {
			fields = append(fields, zap.Strings("paths", res.Paths))
		}
		if res.Status != "" {
			fields = append(fields, zap.String("result", string(res.Status)))
		}
		if res.SignedBy != "" {
			fields = append(fields, zap.String("signed_by", res.SignedBy))
		}
		if res.ClaimedKeyID != "" {
			fields = append(fields, zap.String("claimed_key_id", res.ClaimedKeyID))
		}
		if len(res.Pruned) > 0 { // retention removed these after the upload; ingest logs each with its reasons
			fields = append(fields, zap.Strings("pruned", res.Pruned))
		}
	}
	switch {
	case status == statusClientClosed:
		s.log.Info("upload abandoned by the client", append(fields, zap.String("reason", err.Error()))...)
	case status == http.StatusServiceUnavailable:
		// Busy or stopping: nothing is broken, but a steady stream of these means max_concurrent_uploads is low.
		s.log.Warn("upload refused", append(fields, zap.String("reason", err.Error()))...)
	case status >= 500:
		s.log.Error("upload failed", append(fields, zap.Error(err))...)
	case err != nil:
		s.log.Info("upload rejected", append(fields, zap.String("reason", err.Error()))...)
	default:
		s.log.Info("upload stored", fields...)
	}
}

// accessLog logs every request at debug level; uploads also get their own info line from logUpload.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.log.Core().Enabled(zap.DebugLevel) {
			next.ServeHTTP(w, r) // no line to write: no wrapper to count the status and bytes (debug is off by default)
			return
		}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		start := s.now()
		next.ServeHTTP(ww, r)
		// Check first: the fields would be built (and their slice allocated) for every request even when debug
		// logging is off, which it is by default.
		if ce := s.log.Check(zap.DebugLevel, "request"); ce != nil {
			ce.Write(zap.String("req_id", middleware.GetReqID(r.Context())),
				zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr),
				zap.Int("status", ww.Status()), zap.Int("bytes", ww.BytesWritten()), zap.Duration("took", s.now().Sub(start)))
		}
	})
}

func wantsJSON(r *http.Request) bool {
	for v := range strings.SplitSeq(r.Header.Get("Accept"), ",") { // no slice: every upload's answer asks
		if strings.HasPrefix(strings.TrimSpace(v), "application/json") {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the status is sent; a failed write means the client left
}

// dotless hides every name starting with a dot: such paths do not exist and listings leave them out. That keeps
// our staging directory, lock and marker files and createrepo_c's temporary .repodata out of clients' sight.
type dotless struct{ fs.FS }

func (d dotless) Open(name string) (fs.File, error) {
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") && part != "." {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
	}
	f, err := d.FS.Open(name)
	if dir, ok := f.(fs.ReadDirFile); ok && err == nil && isDir(f) {
		return dotlessDir{dir}, nil
	}
	// Files pass unwrapped: an *os.File is a ReadDirFile too, and the wrapper would hide its Seek, which
	// net/http needs to sniff the type of a name without a known extension (rpm-ingestd.repo, the GPG key).
	return f, err
}

func isDir(f fs.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.IsDir()
}

type dotlessDir struct{ fs.ReadDirFile }

func (d dotlessDir) ReadDir(n int) ([]fs.DirEntry, error) {
	entries, err := d.ReadDirFile.ReadDir(n)
	return slices.DeleteFunc(entries, func(e fs.DirEntry) bool { return strings.HasPrefix(e.Name(), ".") }), err
}
