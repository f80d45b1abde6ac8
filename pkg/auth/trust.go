package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// DefaultTrustedProxies is server.trusted_proxies when the configuration leaves it out: loopback only. On a
// host with other local users, loopback is not one trusted program (anyone can connect to it), so there the
// unix socket, checked by uid, is the only safe way for the proxy to reach the daemon.
func DefaultTrustedProxies() []string { return []string{"127.0.0.0/8", "::1/128"} }

// Trust decides what a connection's peer may do. It is immutable after NewTrust and safe for concurrent use.
type Trust struct {
	proxies []netip.Prefix
	uid     int
}

// NewTrust builds a Trust from server.trusted_proxies (CIDRs, or single addresses meaning /32 or /128) and the
// daemon's own uid (os.Getuid()). The list is taken as given: nil or empty trusts no TCP peer, so the
// configuration's default must be DefaultTrustedProxies. An error names every bad entry.
func NewTrust(trustedProxies []string, ownUID int) (*Trust, error) {
	t := &Trust{uid: ownUID}
	var errs []error
	for _, s := range trustedProxies {
		p, err := parsePrefix(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.proxies = append(t.proxies, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// parsePrefix accepts "10.0.0.0/8", "2001:db8::/32" and a bare address, and refuses a prefix with host bits
// set ("10.1.2.3/8"): it is ambiguous whether the admin meant the host or the network.
func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("server.trusted_proxies: %q: zones are not supported; write the address without %%zone", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("server.trusted_proxies: %q is not a CIDR (like 10.0.0.0/8 or ::1/128) or an IP address", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("server.trusted_proxies: %q has host bits set; write %s for the network or %s for the host",
			s, p.Masked(), p.Addr().String())
	}
	if p.Addr().Is4In6() {
		// ::ffff:10.0.0.0/104 would never match: peers are unmapped before the check. Say so instead of
		// silently trusting nobody.
		return netip.Prefix{}, fmt.Errorf("server.trusted_proxies: %q is an IPv4-mapped IPv6 prefix; write the IPv4 CIDR", s)
	}
	return p, nil
}

// TrustedProxy reports whether p may name a spooled file (header mode) and speak for the client (X-Real-IP,
// X-Remote-User): a unix-socket peer running as the daemon's own uid (nginx's workers, as deployed) or root,
// or a TCP peer inside server.trusted_proxies.
func (t *Trust) TrustedProxy(p Peer) bool {
	if p.Unix {
		return p.Cred && (p.UID == t.uid || p.UID == 0)
	}
	a := cleanAddr(p.Addr) // a Peer built by hand may still carry ::ffff:127.0.0.1
	return a.IsValid() && slices.ContainsFunc(t.proxies, func(pr netip.Prefix) bool { return pr.Contains(a) })
}

// Local reports whether p is on this host: any unix-socket peer (the socket's file permissions decide who
// can connect at all) or a loopback address. Without htpasswd, only local peers may upload directly or call
// mutating endpoints.
func (t *Trust) Local(p Peer) bool {
	return p.Unix || cleanAddr(p.Addr).IsLoopback() // the invalid Addr is not loopback
}

// Proxies returns the trusted CIDRs in their canonical form, for the start-up log.
func (t *Trust) Proxies() []string {
	out := make([]string, len(t.proxies))
	for i, p := range t.proxies {
		out[i] = p.String()
	}
	return out
}

// Describe says who is a trusted proxy, for the start-up log: the unix-socket uids and the TCP networks.
func (t *Trust) Describe() string {
	who := fmt.Sprintf("the unix socket as uid %d or root", t.uid)
	if t.uid == 0 {
		who = "the unix socket as root"
	}
	if len(t.proxies) == 0 {
		return who + " only (server.trusted_proxies is empty: no TCP peer)"
	}
	return who + ", and TCP peers in server.trusted_proxies " + strings.Join(t.Proxies(), ", ")
}
