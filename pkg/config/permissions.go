package config

import (
	"fmt"
	"slices"
	"strings"
)

// PermissionRule is one entry of server.permissions: its users may do its actions in its channels and OS
// releases. Absent channels or os_releases mean every one.
type PermissionRule struct {
	// Users are htpasswd names, or users a trusted proxy names in X-Remote-User; "*" is any authenticated user.
	Users []string `yaml:"users"`
	// Actions are any of PermissionActions.
	Actions []string `yaml:"actions"`
	// Channels must be in repo.channels.
	Channels []string `yaml:"channels,omitempty"`
	// OSReleases must be in repo.os_releases when that list is set.
	OSReleases []string `yaml:"os_releases,omitempty"`
}

// PermissionActions are the actions a rule may grant (auth.Actions; config imports nothing of ours).
var PermissionActions = []string{"upload", "promote", "delete"}

// validatePermissions reports every problem of server.permissions, each naming its rule and line. A user that no
// htpasswd line names is not a problem here: behind nginx the users come from nginx's own file (cmd warns).
func (c *Config) validatePermissions(report func(key, format string, args ...any)) {
	perms := c.Server.Permissions
	if perms == nil {
		return
	}
	if len(perms) == 0 {
		report("server.permissions", "lists no rule, which would refuse every change: remove the key to let every authenticated user do everything, or add rules")
		return
	}
	bad := func(i int, format string, args ...any) {
		report(fmt.Sprintf("server.permissions[%d]", i), format, args...)
	}
	for i, r := range perms {
		if len(r.Users) == 0 {
			bad(i, "names no users: list htpasswd users, or \"*\" for any authenticated user")
		}
		for _, u := range r.Users {
			if u == "" || strings.ContainsAny(u, ": \t\n") {
				bad(i, "user %q is not a user name", u)
			}
		}
		if len(r.Actions) == 0 {
			bad(i, "names no actions: use any of %s", strings.Join(PermissionActions, ", "))
		}
		for _, a := range r.Actions {
			if !slices.Contains(PermissionActions, a) {
				bad(i, "unknown action %q: use any of %s", a, strings.Join(PermissionActions, ", "))
			}
		}
		for _, ch := range r.Channels {
			switch {
			case len(c.Repo.Channels) == 0:
				bad(i, "names channel %q, but repo.channels lists none: remove channels from the rule, or configure repo.channels", ch)
			case !slices.Contains(c.Repo.Channels, ch):
				bad(i, "channel %q is not in repo.channels (%s)", ch, strings.Join(c.Repo.Channels, ", "))
			}
		}
		for _, rel := range r.OSReleases {
			if len(c.Repo.OSReleases) > 0 && !slices.Contains(c.Repo.OSReleases, rel) {
				bad(i, "OS release %q is not in repo.os_releases (%s)", rel, strings.Join(c.Repo.OSReleases, ", "))
			}
		}
	}
}

// PermissionUsers returns every user server.permissions names, "*" left out, for the check against htpasswd.
func (c *Config) PermissionUsers() []string {
	var out []string
	for _, r := range c.Server.Permissions {
		for _, u := range r.Users {
			if u != "*" && !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	return out
}
