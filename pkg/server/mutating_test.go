package server

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap/zaptest"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/registry"
)

// memRecorder keeps audit records in memory.
type memRecorder struct {
	mu   sync.Mutex
	recs []registry.Record
}

func (m *memRecorder) Record(rec registry.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, rec)
	return nil
}

func (m *memRecorder) all() []registry.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.recs)
}

// setupAuth is allowAll while a fixture is being filled, then the real Authorizer.
type setupAuth struct {
	Authorizer
	setup *bool
}

func (a setupAuth) Authorize(r *http.Request) (string, error) {
	if *a.setup {
		return "", nil
	}
	return a.Authorizer.Authorize(r)
}

func (a setupAuth) Proxied(r *http.Request) (string, error) {
	if *a.setup {
		return "", nil
	}
	return a.Authorizer.Proxied(r)
}

// Peers of TestMutatingRoutesAuth: trusted_proxies is 127.0.0.1/32 and 192.0.2.0/24 (a container network).
var (
	proxyNet  = auth.Peer{Addr: netip.MustParseAddr("192.0.2.7")}    // a trusted proxy, not local
	untrusted = auth.Peer{Addr: netip.MustParseAddr("198.51.100.9")} // anyone else
)

// routeKind is what a route that changes the tree does, so the test knows how to call it and what success is.
type routeKind int

const (
	kindUpload routeKind = iota
	kindPromote
	kindDelete
)

// mutatingRoutes walks the router and returns every route that is not read-only, with its kind. A route the test
// does not know fails it: a new route that changes the tree must be added here, and so gets tested.
func mutatingRoutes(t *testing.T, h http.Handler) map[string]routeKind {
	t.Helper()
	routes := map[string]routeKind{}
	err := chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if method == http.MethodGet || method == http.MethodHead {
			return nil
		}
		key := method + " " + route
		switch {
		case strings.HasPrefix(route, "/upload") && (method == http.MethodPut || method == http.MethodPost):
			routes[key] = kindUpload
		case method == http.MethodPost && route == "/api/v1/promote":
			routes[key] = kindPromote
		case method == http.MethodDelete && route == "/api/v1/packages/*":
			routes[key] = kindDelete
		default:
			return fmt.Errorf("route %s is not read-only and this test does not know it: add it", key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return routes
}

// target fills a route pattern with values the fixture's tree has.
func target(route string, kind routeKind) string {
	if kind == kindDelete {
		return strings.TrimSuffix(route, "*") + "testing/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"
	}
	return strings.NewReplacer("{channel}", "testing", "{filename}", "other.rpm").Replace(route)
}

// TestMutatingRoutesAuth (issue 18 item 1): every route that changes the tree, taken from the router itself, ×
// every way in. The upload header switches only the upload routes to header mode; promote and delete always need
// what Authorize needs, whatever headers come with them. A refusal leaves the tree and the spool alone, and the
// audit trail names the user only as Authorize or a trusted proxy in header mode established it.
func TestMutatingRoutesAuth(t *testing.T) {
	pwFile := htpasswdFile(t, "alice", "s3cret-pw")
	type way struct {
		name     string
		htpasswd bool
		peer     auth.Peer
		user     string // Basic credentials: alice with pass
		pass     string
		header   bool   // name a spooled file in the upload header
		remote   string // X-Remote-User
		// Expected status per kind; upload success is 201, promote 201, delete 200.
		upload, other int
		auditUser     string // the user the success's audit record names
	}
	ways := []way{
		{name: "no credentials", htpasswd: true, peer: loopback, upload: 401, other: 401},
		{name: "wrong password", htpasswd: true, peer: loopback, user: "alice", pass: "guess", upload: 401, other: 401},
		{name: "right password", htpasswd: true, peer: untrusted, user: "alice", pass: "s3cret-pw", upload: 201, other: 0, auditUser: "alice"},
		{name: "header from the daemon's uid on the socket", htpasswd: true, peer: ownSocket, header: true, upload: 201, other: 401},
		{name: "header from loopback", htpasswd: true, peer: loopback, header: true, upload: 201, other: 401},
		{name: "header and X-Remote-User from a trusted proxy network", htpasswd: true, peer: proxyNet, header: true, remote: "bob", upload: 201, other: 401, auditUser: "bob"},
		{name: "header from an untrusted peer", htpasswd: true, peer: untrusted, header: true, remote: "bob", upload: 403, other: 401},
		{name: "header from another uid on the socket", htpasswd: true, peer: otherUser, header: true, upload: 403, other: 401},
		{name: "X-Remote-User forged from an untrusted peer", htpasswd: true, peer: untrusted, remote: "alice", upload: 401, other: 401},
		{name: "X-Remote-User from a trusted peer without header mode", htpasswd: true, peer: loopback, remote: "alice", upload: 401, other: 401},
		{name: "X-Remote-User from a trusted peer beside good credentials", htpasswd: true, peer: loopback, user: "alice", pass: "s3cret-pw", remote: "bob", upload: 201, other: 0, auditUser: "alice"},
		{name: "local only: header and X-Remote-User from a trusted proxy network", peer: proxyNet, header: true, remote: "bob", upload: 201, other: 403, auditUser: "bob"},
		{name: "local only: header from an untrusted peer", peer: untrusted, header: true, upload: 403, other: 403},
		{name: "local only: credentials from afar", peer: untrusted, user: "alice", pass: "s3cret-pw", upload: 403, other: 403},
		{name: "local only: X-Remote-User forged from afar", peer: untrusted, remote: "alice", upload: 403, other: 403},
		{name: "local only: loopback", peer: loopback, upload: 201, other: 0},
		{name: "local only: X-Remote-User from the proxy on the socket", peer: ownSocket, remote: "bob", upload: 201, other: 0, auditUser: "bob"},
		{name: "local only: X-Remote-User from another uid on the socket", peer: otherUser, remote: "bob", upload: 201, other: 0},
		{name: "local only: X-Remote-User from loopback outside trusted_proxies", peer: loopback2, remote: "bob", upload: 201, other: 0},
	}

	build := func(t *testing.T, w way) (*fixture, *memRecorder, *bool) {
		file := ""
		if w.htpasswd {
			file = pwFile
		}
		var h *auth.Htpasswd
		if file != "" {
			var err error
			if h, err = auth.LoadHtpasswd(file, zaptest.NewLogger(t)); err != nil {
				t.Fatal(err)
			}
		}
		trust, err := auth.NewTrust([]string{"127.0.0.1/32", "192.0.2.0/24"}, ownUID)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		a := auth.NewAuthenticator(h, trust, auth.NewLimiter(10, time.Minute, func() time.Time { return now }))
		setup := true
		rec := &memRecorder{}
		f := newChannelFixture(t, func(o *Options) {
			o.Auth = setupAuth{Authorizer: a, setup: &setup}
			o.Registry = rec
		})
		f.uploadBuild(t)
		setup = false
		rec.recs = nil
		return f, rec, &setup
	}

	probe, _, _ := build(t, ways[0])
	routes := mutatingRoutes(t, probe.h)
	if len(routes) < 3 {
		t.Fatalf("only %d routes that change the tree: %v", len(routes), routes)
	}
	other := testrpm.Build(t, testrpm.Spec{Name: "other", Release: "1.el9", Arch: "x86_64"})
	for _, route := range slices.Sorted(func(yield func(string) bool) {
		for r := range routes {
			if !yield(r) {
				return
			}
		}
	}) {
		kind := routes[route]
		method, pattern, _ := strings.Cut(route, " ")
		for _, w := range ways {
			t.Run(route+"/"+w.name, func(t *testing.T) {
				f, audit, _ := build(t, w)
				want := w.other
				success := map[routeKind]int{kindUpload: 201, kindPromote: 201, kindDelete: 200}[kind]
				if kind == kindUpload {
					want = w.upload
				}
				if want == 0 {
					want = success
				}
				var body []byte
				switch kind {
				case kindUpload:
					if !w.header {
						body = other
					}
				case kindPromote:
					body = []byte(promoteHello)
				}
				req := httptest.NewRequest(method, target(pattern, kind), bytes.NewReader(body))
				req = req.WithContext(auth.WithPeer(req.Context(), w.peer))
				if w.user != "" {
					req.SetBasicAuth(w.user, w.pass)
				}
				var spooled string
				if w.header {
					spooled = f.spoolFile(t, other)
					req.Header.Set("X-Package-Name", spooled)
				}
				if w.remote != "" {
					req.Header.Set("X-Remote-User", w.remote)
				}
				before := treeSums(t, f.top)
				rec := httptest.NewRecorder()
				f.h.ServeHTTP(rec, req)
				if rec.Code != want {
					t.Fatalf("got %d %q, want %d", rec.Code, rec.Body, want)
				}
				after := treeSums(t, f.top)
				if rec.Code >= 400 {
					if fmt.Sprint(after) != fmt.Sprint(before) {
						t.Errorf("refused, but the tree changed:\nbefore %v\nafter  %v", before, after)
					}
					if spooled != "" {
						if got, err := os.ReadFile(spooled); err != nil || !bytes.Equal(got, other) {
							t.Errorf("refused, but the spooled file was touched: %v", err)
						}
					}
				} else if fmt.Sprint(after) == fmt.Sprint(before) {
					t.Errorf("%d, but the tree did not change", rec.Code)
				}
				recs := audit.all()
				if len(recs) == 0 {
					t.Fatal("no audit record")
				}
				for _, r := range recs {
					wantUser := ""
					if rec.Code < 400 {
						wantUser = w.auditUser
					}
					if r.User != wantUser {
						t.Errorf("audit record %s %d names user %q, want %q", r.Action, r.Status, r.User, wantUser)
					}
				}
			})
		}
	}
}
