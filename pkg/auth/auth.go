// Package auth decides who may change a repository: the htpasswd file (bcrypt, SHA-crypt, apr1, {SHA}) re-read
// when it changes, which connection peers are local or trusted proxies (SO_PEERCRED on the unix socket, addresses over
// TCP), and a per-address limiter of failed logins. It knows net/http but no router: the server wraps
// Authorize and Proxied in its own middleware and maps the sentinels below to statuses.
package auth

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The errors Authorize and Proxied return, wrapped with a one-line message that says how to fix the problem.
// The server maps them with errors.Is. No message ever contains a password or a user name the client sent.
var (
	// ErrUnauthorized means credentials are missing or wrong: 401 with the Challenge header.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden means this peer may not do this whatever it sends: 403.
	ErrForbidden = errors.New("forbidden")
	// ErrTooManyFailures means the client's address failed too often: 429 with Retry-After. The error is a
	// *LimitError, which carries the delay.
	ErrTooManyFailures = errors.New("too many failed logins")
)

// Challenge is the WWW-Authenticate header value that goes with a 401.
const Challenge = `Basic realm="rpm-ingestd"`

// The headers a trusted proxy sets (the shipped nginx snippet does). From anyone but a TrustedProxy peer they are
// ignored, since any client can send them. From a trusted proxy they are believed only where the proxy, not the
// client, sets them; the rule for each:
//
// RealIPHeader picks the key of the failure limiter and the client address of the logs and the audit trail. It
// is believed only on a request that came from a TrustedProxy peer AND either
//   - was marked with Forwarded by the server, which does so only where a correctly configured proxy always
//     overwrites the header: header mode (the request names a spooled file in the upload header, which only the
//     proxy can set) and routes that only the proxy calls (nginx auth_request subrequests);
//   - or reached a daemon without server.htpasswd, where the proxy is the only authenticator and no limiter runs.
//
// On any other request, a direct one with Basic credentials in particular, the peer is the client: a local curl
// from loopback (trusted by default) could otherwise pick a fresh limiter key for every wrong password.
//
// RemoteUserHeader names the user the proxy authenticated. It is believed in header mode (Proxied) and, without
// server.htpasswd, on the requests Authorize lets in from a trusted proxy. With server.htpasswd, Authorize names
// the user from the Basic credentials it checked and never looks at the header.
const (
	RealIPHeader     = "X-Real-IP"     // the client's address, for the failure limiter and the logs
	RemoteUserHeader = "X-Remote-User" // the user the proxy authenticated
)

// forwardedKey marks a request's context as forwarded by a proxy that sets RealIPHeader itself.
type forwardedKey struct{}

// Forwarded returns r marked as forwarded by a proxy in a mode where the proxy, not the client, sets RealIPHeader
// (see the rule above): the server calls it on header-mode uploads and on routes only the proxy calls, such as
// nginx auth_request subrequests. The mark alone trusts nothing: the peer must still be a TrustedProxy.
func Forwarded(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), forwardedKey{}, true))
}

// IsForwarded reports whether r was marked with Forwarded.
func IsForwarded(r *http.Request) bool {
	v, _ := r.Context().Value(forwardedKey{}).(bool)
	return v
}

// LimitError is ErrTooManyFailures with the time until the client may try again.
type LimitError struct {
	RetryAfter time.Duration
}

// Error says when to come back; it is one line and safe to send to the client.
func (e *LimitError) Error() string {
	return "too many failed logins from this address; try again in " + e.RetryAfterHeader() + "s"
}

// Unwrap makes errors.Is(err, ErrTooManyFailures) true.
func (e *LimitError) Unwrap() error { return ErrTooManyFailures }

// RetryAfterHeader is the Retry-After value: whole seconds, rounded up so the client never comes back early,
// and at least 1.
func (e *LimitError) RetryAfterHeader() string {
	s := max(1, math.Ceil(e.RetryAfter.Seconds()))
	return strconv.FormatFloat(s, 'f', 0, 64)
}

// Authenticator combines the three parts into the decisions the server needs for mutating requests. It is
// immutable after NewAuthenticator and safe for concurrent use.
type Authenticator struct {
	htpasswd *Htpasswd
	trust    *Trust
	limiter  *Limiter
}

// PasswordChecks returns the htpasswd file's password checks so far (see Htpasswd.Checks); both 0 without one.
func (a *Authenticator) PasswordChecks() (hashed, cached uint64) {
	if a.htpasswd == nil {
		return 0, 0
	}
	return a.htpasswd.Checks()
}

// NewAuthenticator returns an Authenticator. h is nil when server.htpasswd is not set: then only Local peers
// may change anything. t is required. l may be nil to disable the failure limiter (tests).
func NewAuthenticator(h *Htpasswd, t *Trust, l *Limiter) *Authenticator {
	if l == nil {
		l = NewLimiter(0, 0, nil)
	}
	return &Authenticator{htpasswd: h, trust: t, limiter: l}
}

// Mode describes the policy in force, for the start-up log line: who may upload directly and change the tree,
// and who may upload in header mode (name a spooled file) and speak for the client, the trusted proxies.
func (a *Authenticator) Mode() string {
	direct := "local only: direct uploads, promotions and deletions are accepted from loopback and the unix socket only (set server.htpasswd to accept authenticated clients from elsewhere)"
	if a.htpasswd != nil {
		direct = fmt.Sprintf("htpasswd: direct uploads, promotions and deletions need the Basic credentials of one of the %d users in %s",
			a.htpasswd.Users(), a.htpasswd.Path())
	}
	return direct + "; uploads naming a spooled file (header mode), with the client's X-Real-IP and X-Remote-User, are accepted from " + a.trust.Describe()
}

// Authorize decides a direct upload or a mutating API call and returns the authenticated user ("" when
// htpasswd is off and the peer is local).
//
// With htpasswd, every peer (local ones too) needs Basic credentials: the limiter is consulted first
// (ErrTooManyFailures), then missing or wrong credentials give ErrUnauthorized, and wrong ones count as a
// failure. Missing credentials do not count: clients such as curl and browsers first ask without them. A
// success does not clear the count, or one known password would let an attacker keep guessing others.
//
// Without htpasswd, Local peers are allowed and all others get ErrForbidden naming server.htpasswd. The user is
// then the RemoteUserHeader of a local peer that is also a TrustedProxy (nginx on the socket, which authenticated
// the client with auth_basic), "" for anyone else.
//
// The request's peer comes from ConnContext; a request without one is from an unknown, untrusted peer.
func (a *Authenticator) Authorize(r *http.Request) (user string, err error) {
	peer, _ := PeerFrom(r.Context())
	if a.htpasswd == nil {
		if a.trust.Local(peer) {
			if a.trust.TrustedProxy(peer) {
				return strings.TrimSpace(r.Header.Get(RemoteUserHeader)), nil
			}
			return "", nil
		}
		return "", fmt.Errorf("%w: %s is not local; without server.htpasswd only loopback and the unix socket may upload or change anything, so set server.htpasswd on the daemon",
			ErrForbidden, peer)
	}
	return a.checkBasic(r, a.clientKey(r, peer))
}

// checkBasic is the password check of Authorize and ProxyLogin, with key as the limiter's key: the limiter first
// (a *LimitError), then missing credentials (ErrUnauthorized, not counted: clients such as curl and browsers
// first ask without them), then wrong ones (ErrUnauthorized, counted as a failure).
func (a *Authenticator) checkBasic(r *http.Request, key string) (user string, err error) {
	if ok, wait := a.limiter.Allow(key); !ok {
		return "", &LimitError{RetryAfter: wait}
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", fmt.Errorf("%w: send the Basic credentials of a user in server.htpasswd (curl -u USER)", ErrUnauthorized)
	}
	if !a.htpasswd.Check(user, pass) {
		a.limiter.Fail(key)
		return "", fmt.Errorf("%w: wrong user name or password", ErrUnauthorized)
	}
	// A copy: BasicAuth's user is a substring of the decoded "user:password", and the user goes on into the
	// audit record and the registry's in-memory index, which would keep every uploader's password in the heap.
	return strings.Clone(user), nil
}

// Proxied decides a request in header mode, where the proxy names a file it spooled (and authenticated the
// uploader itself). Only a TrustedProxy peer may do that: anyone else could name another client's spooled
// file, whose names are sequential. It returns the user the proxy reported in RemoteUserHeader ("" if none),
// or ErrForbidden; the caller must then leave the named file alone.
func (a *Authenticator) Proxied(r *http.Request) (user string, err error) {
	peer, _ := PeerFrom(r.Context())
	if !a.trust.TrustedProxy(peer) {
		return "", fmt.Errorf("%w: %s is not a trusted proxy, so it may not name a spooled file; connect through the unix socket as the daemon's user, or add the proxy's address to server.trusted_proxies",
			ErrForbidden, peer)
	}
	// Trimmed as Authorize does: a name of blanks is no name, not a user that a "*" rule would cover.
	return strings.TrimSpace(r.Header.Get(RemoteUserHeader)), nil
}

// ClientAddr returns the address the limiter counts failures against, also used in logs and the audit trail: the
// RealIPHeader when a trusted proxy sent a valid one under the rule at RealIPHeader (else every client behind the
// proxy would share one count, and one attacker could lock all of them out), otherwise the peer itself.
func (a *Authenticator) ClientAddr(r *http.Request) string {
	peer, _ := PeerFrom(r.Context())
	return a.clientKey(r, peer)
}

// ReportedAddr returns the client address a trusted proxy sent in RealIPHeader on a request where ClientAddr does
// not believe it (a Basic-auth promotion or deletion through nginx, whose client is then nginx itself): for the
// record only, never a limiter key, so that the audit trail still says where such a request came from. "" when the
// peer is no trusted proxy, the header is missing or invalid, or ClientAddr already is that address.
func (a *Authenticator) ReportedAddr(r *http.Request) string {
	peer, _ := PeerFrom(r.Context())
	if !a.trust.TrustedProxy(peer) {
		return ""
	}
	ip, ok := realIP(r)
	if !ok {
		return ""
	}
	if reported := cleanAddr(ip).String(); reported != a.clientKey(r, peer) {
		return reported
	}
	return ""
}

// clientKey is ClientAddr with the peer already looked up. IPv6 clients are counted per /64, the block one
// host usually gets: counting single addresses would give an attacker 2^64 fresh tries.
func (a *Authenticator) clientKey(r *http.Request, peer Peer) string {
	if a.trust.TrustedProxy(peer) && (IsForwarded(r) || a.htpasswd == nil) {
		if ip, ok := realIP(r); ok {
			return addrKey(cleanAddr(ip))
		}
	}
	switch {
	case peer.Addr.IsValid():
		return addrKey(cleanAddr(peer.Addr))
	case peer.Unix && peer.Cred:
		return "unix uid " + strconv.Itoa(peer.UID) // not the pid: each connection has its own
	}
	return peer.String() // "unix (no credentials)" or "unknown": such peers share one count
}

// realIP is the address in RealIPHeader, if it holds a valid one. A missing header is not parsed: ParseAddr's
// error for "" is an allocation, and ClientAddr runs several times per request (issue 20).
func realIP(r *http.Request) (netip.Addr, bool) {
	h := strings.TrimSpace(r.Header.Get(RealIPHeader))
	if h == "" {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(h)
	return ip, err == nil
}

func addrKey(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64) // cannot fail for a valid IPv6 address
		return p.String()
	}
	return a.String()
}
