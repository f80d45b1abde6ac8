package main

import (
	"fmt"
	"net/netip"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
)

// permissions turns server.permissions into the rules auth decides by; nil (the key absent) is no restriction.
func permissions(rules []config.PermissionRule) *auth.Permissions {
	if rules == nil {
		return nil
	}
	out := make([]auth.Rule, len(rules))
	for i, r := range rules {
		out[i] = auth.Rule{Users: r.Users, Actions: r.Actions, Channels: r.Channels, OSReleases: r.OSReleases}
	}
	return auth.NewPermissions(out)
}

// permissionWarnings names the users of server.permissions that no line of server.htpasswd names. They are not
// errors: behind nginx the users come from nginx's own file (X-Remote-User), which the daemon cannot see. Without
// server.htpasswd there is nothing to compare with.
//
// Without server.htpasswd, the user is the X-Remote-User of a trusted proxy: if loopback is a trusted proxy, any
// local process can name any user, and the permissions bind nobody on this host. That is a warning too.
func permissionWarnings(cfg *config.Config) []string {
	if cfg.Server.Permissions == nil {
		return nil
	}
	if cfg.Server.Htpasswd == "" {
		for _, p := range cfg.Server.TrustedProxies {
			if trustsLoopback(p) {
				return []string{fmt.Sprintf("server.permissions without server.htpasswd takes the user from X-Remote-User, and server.trusted_proxies trusts loopback (%s): any local process can name any user; connect nginx through the unix socket and set trusted_proxies: []", p)}
			}
		}
		return nil
	}
	h, err := auth.LoadHtpasswd(cfg.Server.Htpasswd, nil)
	if err != nil {
		return nil // loadConfig reported it already
	}
	var out []string
	for _, u := range cfg.PermissionUsers() {
		if !h.Has(u) {
			out = append(out, fmt.Sprintf("server.permissions names user %q, which no line of %s names: fine if a proxy authenticates that user (X-Remote-User), else a typo", u, h.Path()))
		}
	}
	return out
}

// trustsLoopback reports whether the server.trusted_proxies entry p (a CIDR or an address) holds a loopback
// address.
func trustsLoopback(p string) bool {
	if a, err := netip.ParseAddr(p); err == nil {
		return a.Unmap().IsLoopback()
	}
	pr, err := netip.ParsePrefix(p)
	return err == nil && (pr.Addr().Unmap().IsLoopback() || pr.Contains(netip.MustParseAddr("127.0.0.1")) || pr.Contains(netip.IPv6Loopback()))
}
