package auth

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestForwarded is the table of single login checks a proxy asks for (nginx auth_request).
func TestForwarded(t *testing.T) {
	tcpProxy := Peer{Addr: netip.MustParseAddr("127.0.0.1")}
	tests := []struct {
		name       string
		htpasswd   bool
		peer       *Peer
		user, pass string
		realIP     string
		wantUser   string
		wantClient string
		wantErr    error
		wantInMsg  string
	}{
		{"good credentials from the socket proxy", true, &proxyPeer, "alice", "a-pass", "192.0.2.7", "alice", "192.0.2.7", nil, ""},
		{"good credentials from a loopback proxy", true, &tcpProxy, "alice", "a-pass", "192.0.2.7", "alice", "192.0.2.7", nil, ""},
		{"IPv6 client counted per /64", true, &proxyPeer, "alice", "a-pass", "2001:db8::1", "alice", "2001:db8::/64", nil, ""},
		{"mapped IPv4 client unmapped", true, &proxyPeer, "alice", "a-pass", "::ffff:192.0.2.7", "alice", "192.0.2.7", nil, ""},
		{"wrong password", true, &proxyPeer, "alice", "nope", "192.0.2.7", "", "192.0.2.7", ErrUnauthorized, "wrong user name or password"},
		{"no credentials", true, &proxyPeer, "", "", "192.0.2.7", "", "192.0.2.7", ErrUnauthorized, "curl -u USER"},
		{"no X-Real-IP", true, &proxyPeer, "alice", "a-pass", "", "", "unix uid 990 pid 7", ErrForbidden, "X-Real-IP"},
		{"garbage X-Real-IP", true, &proxyPeer, "alice", "a-pass", "192.0.2.7, 10.0.0.1", "", "unix uid 990 pid 7", ErrForbidden, "X-Real-IP"},
		{"another local user may not ask", true, &otherUnix, "alice", "a-pass", "192.0.2.7", "", "unix uid 1001 pid 8", ErrForbidden, "not a trusted proxy"},
		{"a remote peer may not ask", true, &remotePeer, "alice", "a-pass", "192.0.2.7", "", "192.0.2.10", ErrForbidden, "not a trusted proxy"},
		{"no peer recorded", true, nil, "alice", "a-pass", "192.0.2.7", "", "unknown", ErrForbidden, "not a trusted proxy"},
		// Fail closed: the socket peer is local, which Authorize lets in without htpasswd. Not here.
		{"no htpasswd refuses even the proxy", false, &proxyPeer, "alice", "a-pass", "192.0.2.7", "", "192.0.2.7", ErrForbidden, "server.htpasswd is not set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuthenticator(t, tc.htpasswd, &fakeClock{t: time.Unix(1_700_000_000, 0)})
			var hdr []string
			if tc.realIP != "" {
				hdr = []string{RealIPHeader, tc.realIP}
			}
			r := request(tc.peer, tc.user, tc.pass, hdr...)
			user, client, err := a.ProxyLogin(r)
			if user != tc.wantUser || client != tc.wantClient {
				t.Errorf("user %q client %q, want %q %q", user, client, tc.wantUser, tc.wantClient)
			}
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.wantInMsg) {
				t.Errorf("err %q lacks %q", err, tc.wantInMsg)
			}
			if err != nil && tc.pass != "" && strings.Contains(err.Error(), tc.pass) {
				t.Errorf("err %q contains the password", err)
			}
		})
	}
}

// TestForwardedLimitsPerClientAddress: failures count against the address the proxy reports, not the proxy, so one
// client is limited without locking out the others behind the same proxy, and a right password does not get past
// the limit.
func TestForwardedLimitsPerClientAddress(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	a := newAuthenticator(t, true, clk) // 3 failures per minute
	try := func(ip, pass string) error {
		_, _, err := a.ProxyLogin(request(&proxyPeer, "alice", pass, RealIPHeader, ip))
		return err
	}
	for i := range 3 {
		if err := try("192.0.2.7", "wrong"); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("failure %d: %v, want ErrUnauthorized", i+1, err)
		}
	}
	var le *LimitError
	if err := try("192.0.2.7", "wrong"); !errors.As(err, &le) || le.RetryAfter <= 0 {
		t.Fatalf("4th try: %v, want a *LimitError with a delay", err)
	}
	if err := try("192.0.2.7", "a-pass"); !errors.Is(err, ErrTooManyFailures) {
		t.Fatalf("right password while limited: %v, want ErrTooManyFailures", err)
	}
	if err := try("192.0.2.8", "a-pass"); err != nil {
		t.Fatalf("another client behind the same proxy: %v, want allowed", err)
	}
	clk.advance(time.Minute)
	if err := try("192.0.2.7", "a-pass"); err != nil {
		t.Fatalf("after the window: %v, want allowed", err)
	}
}
