package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const ownUID = 990

var (
	remotePeer   = Peer{Addr: netip.MustParseAddr("192.0.2.10")}
	loopbackPeer = Peer{Addr: netip.MustParseAddr("127.0.0.1")}
	proxyPeer    = Peer{Unix: true, Cred: true, UID: ownUID, PID: 7} // nginx's worker on the unix socket
	otherUnix    = Peer{Unix: true, Cred: true, UID: 1001, PID: 8}   // another local user on the socket
)

// request builds an upload request from peer, with Basic credentials when user is not empty and the given
// extra headers.
func request(peer *Peer, user, pass string, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPut, "/upload/x.rpm", nil)
	if peer != nil {
		r = r.WithContext(WithPeer(r.Context(), *peer))
	}
	if user != "" {
		r.SetBasicAuth(user, pass)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	return r
}

func newAuthenticator(t *testing.T, withHtpasswd bool, clk *fakeClock) *Authenticator {
	t.Helper()
	var h *Htpasswd
	if withHtpasswd {
		var err error
		h, err = LoadHtpasswd(writeFile(t, t.TempDir(), "users", htpasswdEntry(t, "alice", "a-pass", "-B", "-C", "4")+"\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	tr, err := NewTrust(DefaultTrustedProxies(), ownUID)
	if err != nil {
		t.Fatal(err)
	}
	return NewAuthenticator(h, tr, NewLimiter(3, time.Minute, clk.now))
}

// TestAuthorize is the table of single requests: each mode, each kind of peer, with and without credentials.
func TestAuthorize(t *testing.T) {
	tests := []struct {
		name      string
		htpasswd  bool
		req       *http.Request
		wantUser  string
		wantErr   error
		wantInMsg string
	}{
		{"htpasswd: good credentials", true, request(&remotePeer, "alice", "a-pass"), "alice", nil, ""},
		{"htpasswd: no credentials", true, request(&remotePeer, "", ""), "", ErrUnauthorized, "curl -u USER"},
		{"htpasswd: wrong password", true, request(&remotePeer, "alice", "nope"), "", ErrUnauthorized, "wrong user name or password"},
		{"htpasswd: unknown user", true, request(&remotePeer, "mallory", "a-pass"), "", ErrUnauthorized, "wrong user name or password"},
		{"htpasswd: loopback needs credentials too", true, request(&loopbackPeer, "", ""), "", ErrUnauthorized, "server.htpasswd"},
		{"htpasswd: unix socket needs credentials too", true, request(&proxyPeer, "", ""), "", ErrUnauthorized, "server.htpasswd"},
		{"htpasswd: unix socket with credentials", true, request(&otherUnix, "alice", "a-pass"), "alice", nil, ""},
		{"htpasswd: malformed Authorization", true, request(&remotePeer, "", "", "Authorization", "Basic !!!"), "", ErrUnauthorized, ""},
		{"htpasswd: bearer token", true, request(&remotePeer, "", "", "Authorization", "Bearer x"), "", ErrUnauthorized, ""},
		{"no htpasswd: loopback", false, request(&loopbackPeer, "", ""), "", nil, ""},
		{"no htpasswd: loopback 127.0.0.2", false, request(&Peer{Addr: netip.MustParseAddr("127.0.0.2")}, "", ""), "", nil, ""},
		{"no htpasswd: unix socket, any uid", false, request(&otherUnix, "", ""), "", nil, ""},
		{"no htpasswd: the proxy on the socket names its user", false, request(&proxyPeer, "", "", RemoteUserHeader, "carol"), "carol", nil, ""},
		{"no htpasswd: trusted loopback names its user", false, request(&loopbackPeer, "", "", RemoteUserHeader, "carol"), "carol", nil, ""},
		{"no htpasswd: another uid on the socket names nobody", false, request(&otherUnix, "", "", RemoteUserHeader, "carol"), "", nil, ""},
		{"htpasswd: X-Remote-User is never the user", true, request(&proxyPeer, "alice", "a-pass", RemoteUserHeader, "carol"), "alice", nil, ""},
		{"htpasswd: X-Remote-User is no credential", true, request(&proxyPeer, "", "", RemoteUserHeader, "alice"), "", ErrUnauthorized, ""},
		{"no htpasswd: remote", false, request(&remotePeer, "", ""), "", ErrForbidden, "set server.htpasswd"},
		{"no htpasswd: remote with credentials", false, request(&remotePeer, "alice", "a-pass"), "", ErrForbidden, "192.0.2.10 is not local"},
		{"no htpasswd: no peer recorded", false, request(nil, "", ""), "", ErrForbidden, "unknown is not local"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuthenticator(t, tc.htpasswd, &fakeClock{t: time.Unix(1_700_000_000, 0)})
			user, err := a.Authorize(tc.req)
			if user != tc.wantUser || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Authorize = %q, %v; want %q, %v", user, err, tc.wantUser, tc.wantErr)
			}
			if err == nil {
				return
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantInMsg) || strings.Contains(msg, "\n") {
				t.Errorf("message %q: want one line containing %q", msg, tc.wantInMsg)
			}
			for _, secret := range []string{"a-pass", "nope", "mallory", "alice"} {
				if strings.Contains(msg, secret) {
					t.Errorf("message %q repeats what the client sent (%q)", msg, secret)
				}
			}
		})
	}
}

// TestAuthorizeLimiter walks one client into the limiter and out again, and checks that the count is per
// client: the real client behind a trusted proxy, the peer otherwise.
func TestAuthorizeLimiter(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	a := newAuthenticator(t, true, clk)
	attacker := Peer{Addr: netip.MustParseAddr("2001:db8:1:2::10")}
	sameNet := Peer{Addr: netip.MustParseAddr("2001:db8:1:2::99")} // same /64
	otherNet := Peer{Addr: netip.MustParseAddr("2001:db8:1:3::10")}
	tests := []struct {
		step    string
		advance time.Duration
		req     *http.Request
		wantErr error
	}{
		{"missing credentials do not count", 0, request(&attacker, "", ""), ErrUnauthorized},
		{"missing credentials do not count", 0, request(&attacker, "", ""), ErrUnauthorized},
		{"missing credentials do not count", 0, request(&attacker, "", ""), ErrUnauthorized},
		{"still allowed", 0, request(&attacker, "alice", "a-pass"), nil},
		{"failure 1", 0, request(&attacker, "alice", "x"), ErrUnauthorized},
		{"failure 2", time.Second, request(&attacker, "alice", "x"), ErrUnauthorized},
		{"failure 3, from another address of the same /64", 0, request(&sameNet, "alice", "x"), ErrUnauthorized},
		{"limited, even with the right password", 0, request(&attacker, "alice", "a-pass"), ErrTooManyFailures},
		{"limited, without credentials", 0, request(&attacker, "", ""), ErrTooManyFailures},
		{"another /64 is not limited", 0, request(&otherNet, "alice", "a-pass"), nil},
		{"window over", time.Minute, request(&attacker, "alice", "a-pass"), nil},

		// Forwarded by the proxy (nginx auth_request), clients are told apart by X-Real-IP; nginx itself is never
		// locked out.
		{"via proxy, client A fails", 0, Forwarded(request(&proxyPeer, "alice", "x", RealIPHeader, "198.51.100.1")), ErrUnauthorized},
		{"via proxy, client A fails", 0, Forwarded(request(&proxyPeer, "alice", "x", RealIPHeader, "198.51.100.1")), ErrUnauthorized},
		{"via proxy, client A fails", 0, Forwarded(request(&proxyPeer, "alice", "x", RealIPHeader, "198.51.100.1")), ErrUnauthorized},
		{"via proxy, client A limited", 0, Forwarded(request(&proxyPeer, "alice", "a-pass", RealIPHeader, "198.51.100.1")), ErrTooManyFailures},
		{"via proxy, client B fine", 0, Forwarded(request(&proxyPeer, "alice", "a-pass", RealIPHeader, "198.51.100.2")), nil},

		// A direct request from a trusted peer (a local curl on loopback) cannot dodge its count with X-Real-IP.
		{"loopback, direct, fails", 0, request(&loopbackPeer, "alice", "x", RealIPHeader, "203.0.113.11"), ErrUnauthorized},
		{"loopback, direct, fails", 0, request(&loopbackPeer, "alice", "x", RealIPHeader, "203.0.113.12"), ErrUnauthorized},
		{"loopback, direct, fails", 0, request(&loopbackPeer, "alice", "x", RealIPHeader, "203.0.113.13"), ErrUnauthorized},
		{"loopback, direct, limited whatever it claims", 0, request(&loopbackPeer, "alice", "a-pass", RealIPHeader, "203.0.113.14"), ErrTooManyFailures},
		{"the proxy on the socket, direct, fails", 0, request(&proxyPeer, "alice", "x", RealIPHeader, "203.0.113.21"), ErrUnauthorized},
		{"the proxy on the socket, direct, fails", 0, request(&proxyPeer, "alice", "x", RealIPHeader, "203.0.113.22"), ErrUnauthorized},
		{"the proxy on the socket, direct, fails", 0, request(&proxyPeer, "alice", "x", RealIPHeader, "203.0.113.23"), ErrUnauthorized},
		{"the proxy on the socket, direct, limited", 0, request(&proxyPeer, "alice", "a-pass", RealIPHeader, "203.0.113.24"), ErrTooManyFailures},

		// An untrusted peer cannot dodge its count by claiming another address.
		{"untrusted peer fails", 0, request(&remotePeer, "alice", "x", RealIPHeader, "203.0.113.1"), ErrUnauthorized},
		{"untrusted peer fails", 0, request(&remotePeer, "alice", "x", RealIPHeader, "203.0.113.2"), ErrUnauthorized},
		{"untrusted peer fails", 0, request(&remotePeer, "alice", "x", RealIPHeader, "203.0.113.3"), ErrUnauthorized},
		{"untrusted peer limited whatever it claims", 0, request(&remotePeer, "alice", "a-pass", RealIPHeader, "203.0.113.4"), ErrTooManyFailures},
	}
	for i, tc := range tests {
		clk.advance(tc.advance)
		_, err := a.Authorize(tc.req)
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
			t.Fatalf("step %d (%s): Authorize error %v, want %v", i, tc.step, err, tc.wantErr)
		}
		var le *LimitError
		if errors.Is(err, ErrTooManyFailures) && (!errors.As(err, &le) || le.RetryAfter <= 0 || le.RetryAfter > time.Minute) {
			t.Errorf("step %d (%s): %v is not a *LimitError with a delay within the window", i, tc.step, err)
		}
	}
}

// TestLimitErrorDelay checks the delay a limited client is told, on the fake clock.
func TestLimitErrorDelay(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	a := newAuthenticator(t, true, clk)
	for range 3 {
		a.Authorize(request(&remotePeer, "alice", "x")) //nolint:errcheck // failures are the point
		clk.advance(10 * time.Second)
	}
	_, err := a.Authorize(request(&remotePeer, "alice", "a-pass"))
	var le *LimitError
	if !errors.As(err, &le) || le.RetryAfter != 30*time.Second || le.RetryAfterHeader() != "30" {
		t.Fatalf("Authorize = %v, want a LimitError of 30s", err)
	}
	if want := "too many failed logins from this address; try again in 30s"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

// TestProxied checks header mode: only trusted proxies may name a spooled file, and only their
// X-Remote-User is believed.
func TestProxied(t *testing.T) {
	tests := []struct {
		name     string
		req      *http.Request
		wantUser string
		wantErr  error
	}{
		{"nginx on the unix socket", request(&proxyPeer, "", "", RemoteUserHeader, "alice"), "alice", nil},
		{"root on the unix socket", request(&Peer{Unix: true, Cred: true, UID: 0}, "", "", RemoteUserHeader, "bob"), "bob", nil},
		{"proxy without a user header", request(&proxyPeer, "", ""), "", nil},
		{"proxy with a user header of blanks", request(&proxyPeer, "", "", RemoteUserHeader, " \t "), "", nil},
		{"proxy with a padded user", request(&proxyPeer, "", "", RemoteUserHeader, " alice "), "alice", nil},
		{"loopback proxy", request(&loopbackPeer, "", "", RemoteUserHeader, "alice"), "alice", nil},
		{"another user on the unix socket", request(&otherUnix, "", "", RemoteUserHeader, "alice"), "", ErrForbidden},
		{"unix socket without credentials", request(&Peer{Unix: true}, "", "", RemoteUserHeader, "alice"), "", ErrForbidden},
		{"remote peer", request(&remotePeer, "alice", "a-pass", RemoteUserHeader, "alice"), "", ErrForbidden},
		{"no peer recorded", request(nil, "", "", RemoteUserHeader, "alice"), "", ErrForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, withHtpasswd := range []bool{false, true} { // the decision does not depend on htpasswd
				a := newAuthenticator(t, withHtpasswd, &fakeClock{})
				user, err := a.Proxied(tc.req)
				if user != tc.wantUser || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
					t.Fatalf("htpasswd %v: Proxied = %q, %v; want %q, %v", withHtpasswd, user, err, tc.wantUser, tc.wantErr)
				}
				if err != nil && !strings.Contains(err.Error(), "server.trusted_proxies") {
					t.Errorf("message %q does not say how to fix it", err)
				}
			}
		})
	}
}

func TestMode(t *testing.T) {
	on := newAuthenticator(t, true, &fakeClock{}).Mode()
	off := newAuthenticator(t, false, &fakeClock{}).Mode()
	if !strings.HasPrefix(on, "htpasswd: ") || !strings.Contains(on, "1 users") {
		t.Errorf("Mode with htpasswd = %q", on)
	}
	if !strings.HasPrefix(off, "local only: ") || !strings.Contains(off, "server.htpasswd") {
		t.Errorf("Mode without htpasswd = %q", off)
	}
	// Who is trusted in header mode (issue 18 item 21): the socket's uids and every trusted_proxies network.
	for _, tc := range []struct {
		proxies []string
		uid     int
		want    string
	}{
		{[]string{"192.0.2.0/24", "::1"}, 990, "accepted from the unix socket as uid 990 or root, and TCP peers in server.trusted_proxies 192.0.2.0/24, ::1/128"},
		{nil, 990, "accepted from the unix socket as uid 990 or root only (server.trusted_proxies is empty: no TCP peer)"},
		{[]string{"10.0.0.0/8"}, 0, "accepted from the unix socket as root, and TCP peers in server.trusted_proxies 10.0.0.0/8"},
	} {
		tr, err := NewTrust(tc.proxies, tc.uid)
		if err != nil {
			t.Fatal(err)
		}
		got := NewAuthenticator(nil, tr, nil).Mode()
		if !strings.HasSuffix(got, "uploads naming a spooled file (header mode), with the client's X-Real-IP and X-Remote-User, are "+tc.want) {
			t.Errorf("Mode with trusted_proxies %v, uid %d = %q, want it to end in %q", tc.proxies, tc.uid, got, tc.want)
		}
	}
}

// TestClientAddr: the rule at RealIPHeader, for a daemon with and without server.htpasswd, and ReportedAddr, the
// address a trusted proxy reports where it is not believed (for the audit record only).
func TestClientAddr(t *testing.T) {
	tests := []struct {
		name        string
		req         *http.Request
		want        string // without htpasswd
		wantBasic   string // with htpasswd; "" means the same as want
		reportedOff string // ReportedAddr without htpasswd
		reportedOn  string // ReportedAddr with htpasswd
	}{
		{"tcp v4", request(&remotePeer, "", ""), "192.0.2.10", "", "", ""},
		{"tcp v6 per /64", request(&Peer{Addr: netip.MustParseAddr("2001:db8::1")}, "", ""), "2001:db8::/64", "", "", ""},
		{"unix by uid, not pid", request(&otherUnix, "", ""), "unix uid 1001", "", "", ""},
		{"proxy's client, forwarded", Forwarded(request(&proxyPeer, "", "", RealIPHeader, " 198.51.100.7 ")), "198.51.100.7", "", "", ""},
		{"proxy's mapped client, forwarded", Forwarded(request(&proxyPeer, "", "", RealIPHeader, "::ffff:198.51.100.7")), "198.51.100.7", "", "", ""},
		{"proxy's v6 client, forwarded", Forwarded(request(&proxyPeer, "", "", RealIPHeader, "2001:db8::1")), "2001:db8::/64", "", "2001:db8::1", "2001:db8::1"},
		{"proxy's garbage header", Forwarded(request(&proxyPeer, "", "", RealIPHeader, "nonsense")), "unix uid 990", "", "", ""},
		{"proxy's client, not forwarded", request(&proxyPeer, "", "", RealIPHeader, "198.51.100.7"), "198.51.100.7", "unix uid 990", "", "198.51.100.7"},
		{"loopback, not forwarded", request(&loopbackPeer, "alice", "x", RealIPHeader, "198.51.100.7"), "198.51.100.7", "127.0.0.1", "", "198.51.100.7"},
		{"untrusted header ignored", request(&remotePeer, "", "", RealIPHeader, "198.51.100.7"), "192.0.2.10", "", "", ""},
		{"untrusted header ignored, forwarded", Forwarded(request(&remotePeer, "", "", RealIPHeader, "198.51.100.7")), "192.0.2.10", "", "", ""},
		{"another local user's header ignored", request(&otherUnix, "", "", RealIPHeader, "198.51.100.7"), "unix uid 1001", "", "", ""},
		{"no peer", request(nil, "", ""), "unknown", "", "", ""},
	}
	off := newAuthenticator(t, false, &fakeClock{})
	on := newAuthenticator(t, true, &fakeClock{})
	for _, tc := range tests {
		if got := off.ClientAddr(tc.req); got != tc.want {
			t.Errorf("%s, without htpasswd: ClientAddr = %q, want %q", tc.name, got, tc.want)
		}
		want := tc.wantBasic
		if want == "" {
			want = tc.want
		}
		if got := on.ClientAddr(tc.req); got != want {
			t.Errorf("%s, with htpasswd: ClientAddr = %q, want %q", tc.name, got, want)
		}
		if got := off.ReportedAddr(tc.req); got != tc.reportedOff {
			t.Errorf("%s, without htpasswd: ReportedAddr = %q, want %q", tc.name, got, tc.reportedOff)
		}
		if got := on.ReportedAddr(tc.req); got != tc.reportedOn {
			t.Errorf("%s, with htpasswd: ReportedAddr = %q, want %q", tc.name, got, tc.reportedOn)
		}
	}
}
