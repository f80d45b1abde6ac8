package main

import (
	"fmt"

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
func permissionWarnings(cfg *config.Config) []string {
	if cfg.Server.Htpasswd == "" || cfg.Server.Permissions == nil {
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
