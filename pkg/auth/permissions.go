package auth

import (
	"fmt"
	"slices"
	"strings"
)

// The actions server.permissions grants.
const (
	ActionUpload  = "upload"
	ActionPromote = "promote"
	ActionDelete  = "delete"
)

// Actions lists every action a rule may name, in the order the documentation gives them.
var Actions = []string{ActionUpload, ActionPromote, ActionDelete}

// AnyUser in a rule's users names every authenticated user.
const AnyUser = "*"

// Rule is one entry of server.permissions: its users may do its actions in its channels and OS releases. An empty
// Channels or OSReleases means every one. Config validation guarantees Users and Actions are not empty and name
// only known actions, channels and releases.
type Rule struct {
	Users      []string `json:"users"`
	Actions    []string `json:"actions"`
	Channels   []string `json:"channels,omitempty"`
	OSReleases []string `json:"os_releases,omitempty"`
}

// Target is one repository an action changes: its channel ("" without repo.channels) and OS release. A noarch
// upload or promotion has one target per arch; all must be allowed.
type Target struct {
	Channel, OSRelease string
}

// Permissions decides who may do what (server.permissions). A nil *Permissions, the configuration without the
// key, lets every authenticated user do everything, as before permissions existed. It is immutable and safe for
// concurrent use.
type Permissions struct {
	rules []Rule
}

// NewPermissions returns the Permissions of rules; nil rules (the key absent) returns nil: no restriction.
func NewPermissions(rules []Rule) *Permissions {
	if rules == nil {
		return nil
	}
	return &Permissions{rules: slices.Clone(rules)}
}

// Allowed is the one decision: may user do action on every target? With no target it answers whether some rule
// lets user do action at all, which the server asks before it reads a body. It returns nil, or an error wrapping
// ErrForbidden whose message names the user, the action and the channel or release refused, like
//
//	user ci may not promote into stable (server.permissions)
//
// user "" is a request let in without a name (a local peer without server.htpasswd, or a proxy that sent no
// X-Remote-User): rules name users, so with permissions on it may do nothing. The caller must have authenticated
// the request first: Allowed never says 401.
func (p *Permissions) Allowed(user, action string, targets ...Target) error {
	if p == nil {
		return nil
	}
	if user == "" {
		return fmt.Errorf("%w: a request without a user name may not %s (server.permissions names users): send credentials, or come through the proxy that sets %s",
			ErrForbidden, action, RemoteUserHeader)
	}
	mine := p.rulesFor(user, action)
	if len(mine) == 0 {
		return fmt.Errorf("%w: user %s may not %s (server.permissions)", ErrForbidden, user, action)
	}
	for _, t := range targets {
		if slices.ContainsFunc(mine, func(r Rule) bool { return r.covers(t) }) {
			continue
		}
		// Name what was refused: the channel alone when no rule of the user's allows it, else channel and release.
		channelOK := t.Channel == "" || slices.ContainsFunc(mine, func(r Rule) bool { return len(r.Channels) == 0 || slices.Contains(r.Channels, t.Channel) })
		var where []string
		if t.Channel != "" {
			where = append(where, t.Channel)
		}
		if channelOK && t.OSRelease != "" {
			where = append(where, "OS release "+t.OSRelease)
		}
		if len(where) == 0 {
			where = append(where, "this repository")
		}
		prep := map[string]string{ActionDelete: "from"}[action]
		if prep == "" {
			prep = "into"
		}
		return fmt.Errorf("%w: user %s may not %s %s %s (server.permissions)", ErrForbidden, user, action, prep, strings.Join(where, " for "))
	}
	return nil
}

// For returns the rules that apply to user (by name or "*"), for GET /api/v1/whoami, and whether permissions are
// on at all: with them off, every authenticated user may do everything.
func (p *Permissions) For(user string) (rules []Rule, restricted bool) {
	if p == nil {
		return nil, false
	}
	rules = []Rule{}
	for _, r := range p.rules {
		if user != "" && (slices.Contains(r.Users, user) || slices.Contains(r.Users, AnyUser)) {
			rules = append(rules, r)
		}
	}
	return rules, true
}

// rulesFor returns the rules that name user (or "*") and action.
func (p *Permissions) rulesFor(user, action string) []Rule {
	var out []Rule
	for _, r := range p.rules {
		if (slices.Contains(r.Users, user) || slices.Contains(r.Users, AnyUser)) && slices.Contains(r.Actions, action) {
			out = append(out, r)
		}
	}
	return out
}

// covers reports whether the rule's channels and releases include t.
func (r Rule) covers(t Target) bool {
	return (len(r.Channels) == 0 || slices.Contains(r.Channels, t.Channel)) &&
		(len(r.OSReleases) == 0 || slices.Contains(r.OSReleases, t.OSRelease))
}
