package server

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
)

// allowAll is the Authorizer of the tests that are not about authentication: everyone may do everything.
type allowAll struct{}

func (allowAll) Authorize(*http.Request) (string, error) { return "", nil }
func (allowAll) Proxied(*http.Request) (string, error)   { return "", nil }
func (allowAll) ClientAddr(*http.Request) string         { return "test" }
func (allowAll) ReportedAddr(*http.Request) string       { return "" }

// The daemon's uid in these tests, and peers to send from.
const ownUID = 990

var (
	loopback  = auth.Peer{Addr: netip.MustParseAddr("127.0.0.1")}
	loopback2 = auth.Peer{Addr: netip.MustParseAddr("127.0.0.2")} // loopback, but not in trusted_proxies below
	remote    = auth.Peer{Addr: netip.MustParseAddr("192.0.2.7")}
	ownSocket = auth.Peer{Unix: true, Cred: true, UID: ownUID, PID: 4242}
	otherUser = auth.Peer{Unix: true, Cred: true, UID: ownUID + 1, PID: 4243}
)

// htpasswdFile writes a user file made by the real htpasswd tool with bcrypt (-B), as an admin would.
func htpasswdFile(t *testing.T, userPass ...string) string {
	t.Helper()
	tool, err := exec.LookPath("htpasswd")
	if err != nil {
		t.Fatal("htpasswd not on PATH: install apache2-utils (Debian) or httpd-tools (RHEL), or run `make deps`")
	}
	var buf bytes.Buffer
	for i := 0; i+1 < len(userPass); i += 2 {
		out, err := exec.Command(tool, "-nbB", "-C", "4", userPass[i], userPass[i+1]).Output()
		if err != nil {
			t.Fatalf("htpasswd: %v", err)
		}
		buf.Write(bytes.TrimSpace(out))
		buf.WriteByte('\n')
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(p, buf.Bytes(), 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

// newAuthenticator builds the real Authenticator as main does: htpasswd when file is not "", loopback
// 127.0.0.1 as the only trusted TCP proxy, and a limiter of 10 failures per minute on a clock that stands still,
// so that no failure ever leaves the window while the test runs.
func newAuthenticator(t *testing.T, file string) *auth.Authenticator {
	t.Helper()
	var h *auth.Htpasswd
	if file != "" {
		var err error
		if h, err = auth.LoadHtpasswd(file, zaptest.NewLogger(t)); err != nil {
			t.Fatal(err)
		}
	}
	trust, err := auth.NewTrust([]string{"127.0.0.1/32"}, ownUID)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return auth.NewAuthenticator(h, trust, auth.NewLimiter(10, time.Minute, func() time.Time { return now }))
}

// newAuthFixture is a fixture with the real Authenticator a, whose log is also recorded.
func newAuthFixture(t *testing.T, a Authorizer, mod func(*Options)) (*fixture, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core()))
	f := newFixtureLog(t, func(o *Options) {
		o.Auth = a
		if mod != nil {
			mod(o)
		}
	}, log)
	return f, logs
}

// call is one request from a peer; user "" sends no credentials.
type call struct {
	peer       *auth.Peer // nil: no peer recorded (a server built without ConnContext)
	method     string
	target     string
	body       []byte
	user, pass string
	hdr        map[string]string
}

func (f *fixture) call(t *testing.T, c call) *httptest.ResponseRecorder {
	t.Helper()
	if c.method == "" {
		c.method = "PUT"
	}
	req := httptest.NewRequest(c.method, c.target, bytes.NewReader(c.body))
	if c.peer != nil {
		req = req.WithContext(auth.WithPeer(req.Context(), *c.peer))
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	for k, v := range c.hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

// stored lists the packages in the tree.
func (f *fixture) stored(t *testing.T) []string {
	t.Helper()
	got, err := filepath.Glob(filepath.Join(f.top, "*", "*", "Packages", "*.rpm"))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestNewRequiresAuth(t *testing.T) {
	_, err := New(Options{UploadPath: "/upload", UploadHeader: "X-Package-Name", RepoURL: "/repo"}, failingIngester{}, &recordingIndexer{}, zaptest.NewLogger(t))
	if err == nil || !strings.Contains(err.Error(), "Auth is required") {
		t.Fatalf("New without Auth: %v", err)
	}
}

// TestAuthHtpasswd: with server.htpasswd every peer, local ones included, needs good Basic credentials to
// upload; read-only endpoints stay open to anyone.
func TestAuthHtpasswd(t *testing.T) {
	f, _ := newAuthFixture(t, newAuthenticator(t, htpasswdFile(t, "alice", "s3cret-pw", "bob", "other-pw")), nil)
	tests := []struct {
		name   string
		c      call
		status int
		line   string
	}{
		{"no credentials", call{peer: &loopback, target: "/upload/", body: hello(t, "")}, 401, "unauthorized: send the Basic credentials of a user in server.htpasswd"},
		{"wrong password", call{peer: &loopback, target: "/upload/", body: hello(t, ""), user: "alice", pass: "guess"}, 401, "unauthorized: wrong user name or password"},
		{"unknown user", call{peer: &loopback, target: "/upload/", body: hello(t, ""), user: "mallory", pass: "s3cret-pw"}, 401, "unauthorized: wrong user name or password"},
		{"another user's password", call{peer: &loopback, target: "/upload/", body: hello(t, ""), user: "bob", pass: "s3cret-pw"}, 401, "unauthorized"},
		{"unix socket, no credentials", call{peer: &ownSocket, target: "/upload/", body: hello(t, "")}, 401, "unauthorized"},
		{"no peer, no credentials", call{target: "/upload/", body: hello(t, "")}, 401, "unauthorized"},
		{"health from anywhere", call{peer: &remote, method: "GET", target: "/healthz"}, 200, "ok"},
		{"status API from anywhere", call{peer: &remote, method: "GET", target: "/api/v1/repos"}, 200, "[]"},
		{"good credentials", call{peer: &loopback, target: "/upload/", body: hello(t, ""), user: "alice", pass: "s3cret-pw"}, 201, "OK - Accessible as"},
		{"good credentials from afar", call{peer: &remote, method: "POST", target: "/upload", body: hello(t, "b"), user: "bob", pass: "other-pw", hdr: map[string]string{"X-OS-Release": "8"}}, 201, "OK - Accessible as"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.stored(t))
			rec := f.call(t, tc.c)
			if rec.Code != tc.status || !strings.HasPrefix(rec.Body.String(), tc.line) {
				t.Fatalf("got %d %q, want %d %q…", rec.Code, rec.Body, tc.status, tc.line)
			}
			challenge := rec.Header().Get("WWW-Authenticate")
			if (tc.status == 401) != (challenge == `Basic realm="rpm-ingestd"`) {
				t.Errorf("status %d with WWW-Authenticate %q", rec.Code, challenge)
			}
			if after := len(f.stored(t)); tc.status >= 400 && after != before {
				t.Errorf("a refused upload was stored: %v", f.stored(t))
			}
		})
	}
	if entries, _ := os.ReadDir(f.spool); len(entries) != 0 {
		t.Errorf("spool not empty: %v", entries)
	}
}

// TestAuthLimiter: after 10 failed logins from one address, the 11th attempt gets 429 with Retry-After even
// with good credentials, while other addresses are not affected.
func TestAuthLimiter(t *testing.T) {
	f, _ := newAuthFixture(t, newAuthenticator(t, htpasswdFile(t, "alice", "s3cret-pw")), nil)
	attacker := auth.Peer{Addr: netip.MustParseAddr("192.0.2.66")}
	for i := range 10 {
		rec := f.call(t, call{peer: &attacker, target: "/upload", body: hello(t, ""), user: "alice", pass: fmt.Sprint("guess", i)})
		if rec.Code != 401 {
			t.Fatalf("failure %d: got %d %s", i+1, rec.Code, rec.Body)
		}
	}
	rec := f.call(t, call{peer: &attacker, target: "/upload", body: hello(t, ""), user: "alice", pass: "s3cret-pw"})
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "60" || !strings.HasPrefix(rec.Body.String(), "too many failed logins from this address; try again in 60s") {
		t.Fatalf("11th attempt: %d (Retry-After %q) %q, want 429 with Retry-After 60", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if got := f.stored(t); len(got) != 0 {
		t.Fatalf("stored while limited: %v", got)
	}
	// Missing credentials are not failures (clients ask without them first), and a neighbour is not limited.
	neighbour := auth.Peer{Addr: netip.MustParseAddr("192.0.2.67")}
	for range 12 {
		if rec := f.call(t, call{peer: &neighbour, target: "/upload", body: hello(t, "")}); rec.Code != 401 {
			t.Fatalf("neighbour without credentials: %d %s", rec.Code, rec.Body)
		}
	}
	if rec := f.call(t, call{peer: &neighbour, target: "/upload", body: hello(t, ""), user: "alice", pass: "s3cret-pw"}); rec.Code != 201 {
		t.Fatalf("neighbour with good credentials: %d %s", rec.Code, rec.Body)
	}
}

// TestAuthLocalOnly: without server.htpasswd, direct uploads are accepted from loopback and the unix socket
// only; anyone else gets 403 naming server.htpasswd, and nothing is stored.
func TestAuthLocalOnly(t *testing.T) {
	f, _ := newAuthFixture(t, newAuthenticator(t, ""), nil)
	tests := []struct {
		name   string
		c      call
		status int
		line   string
	}{
		{"remote peer", call{peer: &remote, target: "/upload", body: hello(t, "")}, 403, "forbidden: 192.0.2.7 is not local; without server.htpasswd only loopback and the unix socket may upload"},
		{"remote peer with credentials", call{peer: &remote, target: "/upload", body: hello(t, ""), user: "alice", pass: "x"}, 403, "forbidden: 192.0.2.7 is not local"},
		{"no peer", call{target: "/upload", body: hello(t, "")}, 403, "forbidden: unknown is not local"},
		{"remote peer reads", call{peer: &remote, method: "GET", target: "/healthz"}, 200, "ok"},
		{"loopback", call{peer: &loopback2, target: "/upload", body: hello(t, "")}, 201, "OK - Accessible as"},
		{"unix socket, any uid", call{peer: &otherUser, target: "/upload", body: hello(t, "u"), hdr: map[string]string{"X-OS-Release": "8"}}, 201, "OK - Accessible as"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.stored(t))
			rec := f.call(t, tc.c)
			if rec.Code != tc.status || !strings.HasPrefix(rec.Body.String(), tc.line) {
				t.Fatalf("got %d %q, want %d %q…", rec.Code, rec.Body, tc.status, tc.line)
			}
			if after := len(f.stored(t)); tc.status >= 400 && after != before {
				t.Errorf("a refused upload was stored: %v", f.stored(t))
			}
		})
	}
}

// TestAuthProxied: a request naming a spooled file is honoured only from a trusted proxy (the daemon's uid on
// the unix socket, or an address in trusted_proxies); from anyone else it gets 403 and the file is left alone.
// htpasswd plays no part: the proxy authenticated the uploader.
func TestAuthProxied(t *testing.T) {
	f, logs := newAuthFixture(t, newAuthenticator(t, htpasswdFile(t, "alice", "s3cret-pw")), nil)
	data := hello(t, "")
	for _, peer := range []auth.Peer{loopback2, remote, otherUser, {Unix: true}, {}} {
		t.Run("untrusted "+peer.String(), func(t *testing.T) {
			spooled := f.spoolFile(t, data)
			rec := f.call(t, call{peer: &peer, target: "/upload/x.rpm", user: "alice", pass: "s3cret-pw",
				hdr: map[string]string{"X-Package-Name": spooled, "X-Remote-User": "alice", "X-Real-IP": "203.0.113.9"}})
			if rec.Code != 403 || !strings.Contains(rec.Body.String(), "is not a trusted proxy, so it may not name a spooled file") {
				t.Fatalf("got %d %q, want 403", rec.Code, rec.Body)
			}
			if got, err := os.ReadFile(spooled); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("the spooled file was touched: %v", err)
			}
			os.Remove(spooled)
			if got := f.stored(t); len(got) != 0 {
				t.Fatalf("stored: %v", got)
			}
		})
	}
	// A forged X-Real-IP from an untrusted peer must not become the logged client.
	if n := logs.FilterField(zap.String("client", "203.0.113.9")).Len(); n != 0 {
		t.Errorf("%d log lines believe an untrusted peer's X-Real-IP", n)
	}

	spooled := f.spoolFile(t, data)
	rec := f.call(t, call{peer: &ownSocket, target: "/upload/x.rpm",
		hdr: map[string]string{"X-Package-Name": spooled, "X-Remote-User": "carol", "X-Real-IP": "198.51.100.4"}})
	if rec.Code != 201 {
		t.Fatalf("from the daemon's uid on the socket: %d %s", rec.Code, rec.Body)
	}
	stored := logs.FilterMessage("upload stored").AllUntimed()
	if len(stored) != 1 || stored[0].ContextMap()["user"] != "carol" || stored[0].ContextMap()["client"] != "198.51.100.4" {
		t.Errorf("upload line: %+v, want user carol and client 198.51.100.4 (what the trusted proxy said)", stored)
	}
	data2 := hello(t, "2")
	if rec := f.call(t, call{peer: &loopback, target: "/upload", hdr: map[string]string{"X-Package-Name": f.spoolFile(t, data2), "X-OS-Release": "8"}}); rec.Code != 201 {
		t.Fatalf("from trusted_proxies 127.0.0.1: %d %s", rec.Code, rec.Body)
	}
}

// TestAuthLogs: the user is logged with each upload, and no password ever reaches the log, neither a right nor
// a wrong one, nor the Authorization header.
func TestAuthLogs(t *testing.T) {
	const good, wrong = "pw-Correct-Horse-42", "pw-Wrong-Battery-17"
	f, logs := newAuthFixture(t, newAuthenticator(t, htpasswdFile(t, "alice", good)), nil)
	if rec := f.call(t, call{peer: &remote, target: "/upload", body: hello(t, ""), user: "alice", pass: wrong}); rec.Code != 401 {
		t.Fatalf("wrong password: %d %s", rec.Code, rec.Body)
	}
	if rec := f.call(t, call{peer: &remote, target: "/upload", body: hello(t, ""), user: "alice", pass: good}); rec.Code != 201 {
		t.Fatalf("good password: %d %s", rec.Code, rec.Body)
	}
	stored := logs.FilterMessage("upload stored").AllUntimed()
	if len(stored) != 1 || stored[0].ContextMap()["user"] != "alice" || stored[0].ContextMap()["client"] != "192.0.2.7" {
		t.Fatalf("upload line: %+v, want user alice and client 192.0.2.7", stored)
	}
	refused := logs.FilterMessage("request refused").AllUntimed()
	if len(refused) != 1 || refused[0].ContextMap()["status"] != int64(401) || refused[0].ContextMap()["peer"] != "192.0.2.7" {
		t.Fatalf("refusal line: %+v", refused)
	}
	for _, e := range logs.AllUntimed() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, secret := range []string{good, wrong, "Basic ", "Authorization"} {
			if strings.Contains(line, secret) {
				t.Errorf("log line contains %q: %s", secret, line)
			}
		}
	}
}

// denyWith is an Authorizer that refuses everything with err.
type denyWith struct{ err error }

func (d denyWith) Authorize(*http.Request) (string, error) { return "", d.err }
func (d denyWith) Proxied(*http.Request) (string, error)   { return "", d.err }
func (denyWith) ClientAddr(*http.Request) string           { return "test" }
func (denyWith) ReportedAddr(*http.Request) string         { return "" }

// TestAuthErrorMapping: the auth sentinels go through the one errorStatus/writeError map, with their headers,
// in text and JSON; the refused request's body is not read, so the connection is not kept.
func TestAuthErrorMapping(t *testing.T) {
	tests := []struct {
		err          error
		status       int
		header, want string
	}{
		{fmt.Errorf("%w: send credentials", auth.ErrUnauthorized), 401, "WWW-Authenticate", `Basic realm="rpm-ingestd"`},
		{fmt.Errorf("%w: not local", auth.ErrForbidden), 403, "WWW-Authenticate", ""},
		{&auth.LimitError{RetryAfter: 1500 * time.Millisecond}, 429, "Retry-After", "2"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			f, _ := newAuthFixture(t, denyWith{tc.err}, nil)
			for _, accept := range []string{"text/plain", "application/json"} {
				rec := f.call(t, call{peer: &loopback, target: "/upload", body: hello(t, ""), hdr: map[string]string{"Accept": accept}})
				if rec.Code != tc.status || rec.Header().Get(tc.header) != tc.want || !strings.Contains(rec.Body.String(), tc.err.Error()) {
					t.Errorf("%s: got %d %s=%q %q", accept, rec.Code, tc.header, rec.Header().Get(tc.header), rec.Body)
				}
				if rec.Header().Get("Connection") != "close" {
					t.Errorf("%s: Connection %q, want close: the unread body must not be drained", accept, rec.Header().Get("Connection"))
				}
			}
		})
	}
	if !errors.Is(&auth.LimitError{}, auth.ErrTooManyFailures) {
		t.Fatal("LimitError does not wrap ErrTooManyFailures")
	}
}

// TestAuthLimiterRealIP (issue 18 item 7): a direct Basic-auth client on a trusted peer (loopback is trusted by
// default) cannot pick the limiter's key with X-Real-IP: 15 wrong passwords, each claiming another address, are
// limited after 10. A header-mode upload from the same peer still logs the address the proxy reported.
func TestAuthLimiterRealIP(t *testing.T) {
	f, logs := newAuthFixture(t, newAuthenticator(t, htpasswdFile(t, "alice", "s3cret-pw")), nil)
	var codes []int
	for i := range 15 {
		rec := f.call(t, call{peer: &loopback, target: "/upload", body: hello(t, ""), user: "alice", pass: "guess",
			hdr: map[string]string{"X-Real-IP": fmt.Sprintf("203.0.113.%d", i+1)}})
		codes = append(codes, rec.Code)
	}
	if codes[9] != 401 || codes[10] != 429 || codes[14] != 429 {
		t.Fatalf("statuses of 15 wrong passwords with a rotating X-Real-IP: %v, want 10 × 401 then 429", codes)
	}
	for _, e := range logs.FilterMessage("request refused").AllUntimed() {
		if c := e.ContextMap()["client"]; c != "127.0.0.1" {
			t.Fatalf("a refusal logs client %v, the address the client claimed, not the peer 127.0.0.1", c)
		}
	}
	rec := f.call(t, call{peer: &loopback, target: "/upload", hdr: map[string]string{"X-Package-Name": f.spoolFile(t, hello(t, "p")), "X-Real-IP": "198.51.100.4"}})
	if rec.Code != 201 {
		t.Fatalf("header mode from the trusted proxy: %d %s", rec.Code, rec.Body)
	}
	if stored := logs.FilterMessage("upload stored").AllUntimed(); len(stored) != 1 || stored[0].ContextMap()["client"] != "198.51.100.4" {
		t.Errorf("header-mode upload line %+v, want client 198.51.100.4 (what the proxy said)", stored)
	}
}
