package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// issueRules is the configuration of issue 19 plus a reader-of-everything rule for "*" that grants nothing
// mutating, a rule for a user limited to one release in every channel, and one for two users at once.
var issueRules = []Rule{
	{Users: []string{"ci"}, Actions: []string{"upload"}, Channels: []string{"testing"}, OSReleases: []string{"9"}},
	{Users: []string{"release"}, Actions: []string{"upload", "promote"}},
	{Users: []string{"admin"}, Actions: []string{"upload", "promote", "delete"}},
	{Users: []string{"el8team"}, Actions: []string{"upload", "delete"}, OSReleases: []string{"8"}},
	{Users: []string{"qa", "ci"}, Actions: []string{"promote"}, Channels: []string{"testing"}},
	{Users: []string{"*"}, Actions: []string{"upload"}, Channels: []string{"scratch"}},
}

// TestAllowed is the table of users × actions × channels × releases. want is "" when allowed, else the
// message without the "forbidden: " prefix.
func TestAllowed(t *testing.T) {
	p := NewPermissions(issueRules)
	t9, t8, s9, s8, x9 := Target{"testing", "9"}, Target{"testing", "8"}, Target{"stable", "9"}, Target{"stable", "8"}, Target{"scratch", "9"}
	noarch := func(channel, release string) []Target { // a noarch package: one target per arch, same channel and release
		return []Target{{channel, release}, {channel, release}}
	}
	tests := []struct {
		user, action string
		targets      []Target
		want         string
	}{
		// ci: upload to testing for 9 only; promote within testing (the qa rule names it too).
		{"ci", "upload", []Target{t9}, ""},
		{"ci", "upload", []Target{t8}, "user ci may not upload into testing for OS release 8 (server.permissions)"},
		{"ci", "upload", []Target{s9}, "user ci may not upload into stable (server.permissions)"},
		{"ci", "upload", []Target{s8}, "user ci may not upload into stable (server.permissions)"},
		{"ci", "upload", noarch("testing", "9"), ""},
		{"ci", "upload", noarch("stable", "9"), "user ci may not upload into stable (server.permissions)"},
		{"ci", "upload", []Target{t9, s9}, "user ci may not upload into stable (server.permissions)"}, // fan-out: one refused target refuses all
		{"ci", "upload", []Target{x9}, ""},                                                            // "*" rule
		{"ci", "upload", nil, ""},                                                                     // may upload somewhere
		{"ci", "promote", []Target{t9}, ""},                                                           // into testing, via the qa rule
		{"ci", "promote", []Target{s9}, "user ci may not promote into stable (server.permissions)"},
		{"ci", "delete", []Target{t9}, "user ci may not delete (server.permissions)"},
		{"ci", "delete", nil, "user ci may not delete (server.permissions)"},
		// release: upload and promote anywhere, no delete.
		{"release", "upload", []Target{s8}, ""},
		{"release", "promote", []Target{s9}, ""},
		{"release", "promote", noarch("stable", "8"), ""},
		{"release", "delete", []Target{t9}, "user release may not delete (server.permissions)"},
		// admin: everything.
		{"admin", "upload", []Target{s8}, ""},
		{"admin", "promote", []Target{s8}, ""},
		{"admin", "delete", []Target{s9, s9}, ""},
		// el8team: upload and delete in any channel for release 8 only.
		{"el8team", "upload", []Target{s8}, ""},
		{"el8team", "upload", []Target{s9}, "user el8team may not upload into stable for OS release 9 (server.permissions)"},
		{"el8team", "delete", []Target{t8}, ""},
		{"el8team", "delete", []Target{t9}, "user el8team may not delete from testing for OS release 9 (server.permissions)"},
		{"el8team", "upload", noarch("stable", "9"), "user el8team may not upload into stable for OS release 9 (server.permissions)"},
		{"el8team", "promote", []Target{t8}, "user el8team may not promote (server.permissions)"},
		// qa: promote into testing only.
		{"qa", "promote", []Target{t8}, ""},
		{"qa", "promote", []Target{s8}, "user qa may not promote into stable (server.permissions)"},
		// Anyone else: only the "*" rule.
		{"mallory", "upload", []Target{x9}, ""},
		{"mallory", "upload", []Target{t9}, "user mallory may not upload into testing (server.permissions)"},
		{"mallory", "promote", nil, "user mallory may not promote (server.permissions)"},
		{"mallory", "delete", []Target{x9}, "user mallory may not delete (server.permissions)"},
		// No name: "*" means any authenticated user with a name.
		{"", "upload", []Target{x9}, "a request without a user name may not upload (server.permissions names users)"},
		// Without channels (no repo.channels) the release alone is named.
		{"el8team", "upload", []Target{{"", "9"}}, "user el8team may not upload into OS release 9 (server.permissions)"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.user, " ", tc.action, " ", tc.targets), func(t *testing.T) {
			err := p.Allowed(tc.user, tc.action, tc.targets...)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("allowed, want %q", tc.want)
			case tc.want != "" && (!errors.Is(err, ErrForbidden) || !strings.HasPrefix(err.Error(), "forbidden: "+tc.want)):
				t.Fatalf("error %q, want forbidden: %q", err, tc.want)
			}
		})
	}
}

// TestAllowedOff: without server.permissions everything is allowed, for every user, the unnamed one too.
func TestAllowedOff(t *testing.T) {
	var p *Permissions = NewPermissions(nil)
	for _, action := range Actions {
		for _, user := range []string{"", "ci", "mallory"} {
			if err := p.Allowed(user, action, Target{"stable", "9"}); err != nil {
				t.Errorf("%q %s: %v", user, action, err)
			}
		}
	}
	if rules, restricted := p.For("ci"); rules != nil || restricted {
		t.Errorf("For without permissions = %v, %v", rules, restricted)
	}
}

// TestPermissionsFor: whoami's list is the rules that name the user or "*", in configuration order.
func TestPermissionsFor(t *testing.T) {
	p := NewPermissions(issueRules)
	got, restricted := p.For("ci")
	if !restricted || len(got) != 3 || !slices.Equal(got[0].Channels, []string{"testing"}) || !slices.Equal(got[2].Users, []string{"*"}) {
		t.Errorf("For(ci) = %+v", got)
	}
	if got, _ := p.For("nobody-known"); len(got) != 1 || got[0].Users[0] != "*" {
		t.Errorf("For(unknown) = %+v, want the * rule", got)
	}
	if got, _ := p.For(""); len(got) != 0 || got == nil {
		t.Errorf("For(\"\") = %#v, want an empty list", got)
	}
	// The rules are copied: changing the caller's slice changes nothing.
	rules := []Rule{{Users: []string{"a"}, Actions: []string{"upload"}}}
	q := NewPermissions(rules)
	rules[0] = Rule{Users: []string{"b"}, Actions: []string{"upload"}}
	if q.Allowed("a", "upload") != nil || q.Allowed("b", "upload") == nil {
		t.Error("NewPermissions does not copy its rules")
	}
}
