package auth

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestNewTrustErrors(t *testing.T) {
	tests := []struct {
		name  string
		cidrs []string
		want  []string
	}{
		{"not an address", []string{"127.0.0.0/8", "localhost"}, []string{`"localhost" is not a CIDR`}},
		{"bad length", []string{"10.0.0.0/33"}, []string{`"10.0.0.0/33" is not a CIDR`}},
		{"host bits", []string{"10.1.2.3/8"}, []string{`"10.1.2.3/8" has host bits set`, "10.0.0.0/8", "10.1.2.3 for the host"}},
		{"mapped prefix", []string{"::ffff:10.0.0.0/104"}, []string{"IPv4-mapped", "write the IPv4 CIDR"}},
		{"zone", []string{"fe80::1%eth0"}, []string{"zones are not supported"}},
		{"every bad entry named", []string{"a", "::1/128", "b"}, []string{`"a"`, `"b"`}},
		{"empty entry", []string{""}, []string{`"" is not a CIDR`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTrust(tc.cidrs, 1000)
			if err == nil {
				t.Fatalf("NewTrust(%q) accepted it", tc.cidrs)
			}
			for _, w := range append(tc.want, "server.trusted_proxies") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestNewTrustForms(t *testing.T) {
	tr, err := NewTrust([]string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:198.51.100.1"}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "198.51.100.1/32"}
	if got := tr.Proxies(); !slices.Equal(got, want) {
		t.Errorf("Proxies() = %v, want %v", got, want)
	}
}

// TestTrustDecisions is the table of who may name a spooled file (TrustedProxy) and who is local.
func TestTrustDecisions(t *testing.T) {
	const own = 990
	def, err := NewTrust(DefaultTrustedProxies(), own)
	if err != nil {
		t.Fatal(err)
	}
	custom, err := NewTrust([]string{"10.0.0.0/8", "2001:db8::/32"}, own)
	if err != nil {
		t.Fatal(err)
	}
	none, err := NewTrust(nil, own)
	if err != nil {
		t.Fatal(err)
	}
	ip := func(s string) Peer { return Peer{Addr: netip.MustParseAddr(s)} }
	unix := func(uid int) Peer { return Peer{Unix: true, Cred: true, UID: uid, PID: 42} }
	tests := []struct {
		name         string
		trust        *Trust
		peer         Peer
		proxy, local bool
	}{
		{"unix, daemon's uid", def, unix(own), true, true},
		{"unix, root", def, unix(0), true, true},
		{"unix, another user", def, unix(1001), false, true},
		{"unix, no credentials", def, Peer{Unix: true}, false, true},
		{"unix, no credentials, uid field 0", def, Peer{Unix: true, UID: 0}, false, true},
		{"loopback v4, default", def, ip("127.0.0.1"), true, true},
		{"loopback 127.0.0.2, default", def, ip("127.0.0.2"), true, true},
		{"loopback v6, default", def, ip("::1"), true, true},
		{"mapped loopback, default", def, ip("::ffff:127.0.0.1"), true, true},
		{"lan address, default", def, ip("10.1.2.3"), false, false},
		{"public v6, default", def, ip("2001:db8::1"), false, false},
		{"zero peer, default", def, Peer{}, false, false},
		{"lan address, custom", custom, ip("10.1.2.3"), true, false},
		{"mapped lan address, custom", custom, ip("::ffff:10.1.2.3"), true, false},
		{"v6 in prefix, custom", custom, ip("2001:db8:1::5"), true, false},
		{"loopback, custom without it", custom, ip("127.0.0.1"), false, true},
		{"outside, custom", custom, ip("192.0.2.1"), false, false},
		{"loopback, empty list", none, ip("127.0.0.1"), false, true},
		{"unix own uid, empty list", none, unix(own), true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.trust.TrustedProxy(tc.peer); got != tc.proxy {
				t.Errorf("TrustedProxy(%+v) = %v, want %v", tc.peer, got, tc.proxy)
			}
			if got := tc.trust.Local(tc.peer); got != tc.local {
				t.Errorf("Local(%+v) = %v, want %v", tc.peer, got, tc.local)
			}
		})
	}
}
