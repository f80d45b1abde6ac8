package server

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5/middleware"
	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/registry"
)

// The login check for the proxy: GET /api/v1/auth, which nginx's auth_request calls over the unix socket before
// it lets an upload, a promotion or a deletion through (nginx/rpm-ingestd.conf). The daemon's htpasswd, failure
// limiter, metrics and audit trail thus see every login made through nginx, not only direct ones.
//
// The answers, shaped for auth_request, which passes only 2xx (allow), 401 and 403 and turns anything else into
// a 500:
//   - 204 with X-Remote-User: the user; nginx forwards it to the upload with auth_request_set.
//   - 401 with WWW-Authenticate: missing or wrong credentials (a wrong password counts against the client).
//   - 403 with AuthRetryAfterHeader: the client's address failed too often. nginx's error_page turns exactly
//     these into 429 with Retry-After.
//   - 403 without it: the asker is not a trusted proxy, sent no client address, or server.htpasswd is unset.

// AuthCheckPath is the route of the login check.
const AuthCheckPath = "/api/v1/auth"

// The headers of the login check. nginx sets the original ones from the client's request; the daemon believes
// them (for counting and the audit record) only once the asker has passed as a trusted proxy.
const (
	AuthRetryAfterHeader = "X-Rpm-Ingestd-Retry-After" // on a 403: the client is rate-limited; seconds to wait
	OriginalURIHeader    = "X-Original-URI"            // nginx: $request_uri
	OriginalMethodHeader = "X-Original-Method"         // nginx: $request_method
)

// ProxyLoginAuthorizer decides a login a trusted proxy asks about; *auth.Authenticator implements it. client is
// the limiter's key for the address the proxy reported (or the asker itself when it is refused before that).
type ProxyLoginAuthorizer interface {
	ProxyLogin(r *http.Request) (user, client string, err error)
}

// authCheck answers GET /api/v1/auth.
func (s *Server) authCheck(w http.ResponseWriter, r *http.Request) {
	fa, ok := s.opts.Auth.(ProxyLoginAuthorizer)
	if !ok {
		s.writeError(w, r, http.StatusNotImplemented, errors.New("this daemon's authorizer cannot check logins for a proxy"))
		return
	}
	user, client, err := fa.ProxyLogin(r)
	if err == nil {
		w.Header().Set(auth.RemoteUserHeader, user)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	status := errorStatus(err)
	orig := r
	forbidden := errors.Is(err, auth.ErrForbidden)
	if !forbidden {
		// The asker is a trusted proxy: what it says the client asked for is what the refusal is about.
		orig = originalRequest(r)
	}
	s.log.Info("login refused", zap.String("req_id", middleware.GetReqID(r.Context())),
		zap.String("method", orig.Method), zap.String("path", orig.URL.Path), zap.String("client", client),
		zap.Int("status", status), zap.String("reason", err.Error()))
	if !forbidden {
		// A client's failed login through the proxy: counted and recorded like a direct one. A refused check
		// (an untrusted asker, no client address, no htpasswd) is no client's login, only logged: recording it
		// would let any peer that reaches the daemon cost an fsync per request.
		s.metrics.refused(orig, s.opts.UploadPath, status, err) // an upload refused at the proxy counts as one
		// The refusal bound of direct requests (see authorize): past it a refusal is counted, not recorded, so
		// a flood of wrong passwords through the proxy costs no fsync each either.
		if ok, _ := s.refusals.Allow(client); ok {
			s.refusals.Fail(client)
			s.recordLogin(orig, client, status, err)
		} else {
			s.metrics.droppedRefusal()
		}
	}

	var limited *auth.LimitError
	if errors.As(err, &limited) {
		// auth_request would turn a 429 into a 500: a 403 with the marker, which nginx maps back to 429.
		w.Header().Set(AuthRetryAfterHeader, limited.RetryAfterHeader())
		s.writeError(w, r, http.StatusForbidden, err)
		return
	}
	s.writeError(w, r, status, err)
}

// originalRequest is r with the method and path of the client's request as nginx reported them; r itself when
// nginx sent none.
func originalRequest(r *http.Request) *http.Request {
	uri := r.Header.Get(OriginalURIHeader)
	u, err := url.ParseRequestURI(uri)
	if uri == "" || err != nil {
		return r
	}
	o := r.Clone(r.Context())
	o.URL = u
	if m := r.Header.Get(OriginalMethodHeader); m != "" {
		o.Method = m
	}
	return o
}

// recordLogin writes the audit record of a login refused at the proxy, with the client's address as the limiter
// counted it. A failure to write is logged and changes nothing.
func (s *Server) recordLogin(orig *http.Request, client string, status int, err error) {
	if s.opts.Registry == nil {
		return
	}
	rec := s.newRecord(orig, status, uploadResult(status, err), nil, err)
	rec.Client = client
	switch p := orig.URL.Path; {
	case p == "/api/v1/promote":
		rec.Action, rec.FileName = registry.ActionPromote, ""
	case strings.HasPrefix(p, "/api/v1/packages/"):
		rec.Action, rec.FileName = registry.ActionDelete, ""
	}
	if werr := s.opts.Registry.Record(rec); werr != nil {
		s.log.Error("audit record of a refused login not written", zap.String("req_id", rec.RequestID),
			zap.Int("status", status), zap.Error(werr))
	}
}
