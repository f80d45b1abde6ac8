package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Retention is repo.retention: how many old builds of each package name and arch a repository keeps. A build is
// removed only when it is beyond the newest KeepVersions builds AND older than KeepDays days; a zero key puts no
// limit on its axis, so with only one key set only that one applies, and with neither every build is kept (the
// default). The newest build is never removed.
type Retention struct {
	RetentionRule `yaml:",inline"`
	// Channels overrides the rule per channel (repo.channels), keyed by channel name. An override replaces the
	// whole rule for its channel: a key it leaves out is 0, no limit on that axis.
	Channels map[string]RetentionRule `yaml:"channels,omitempty"`
}

// RetentionRule is one retention rule: keep_versions and keep_days, 0 meaning no limit on that axis.
type RetentionRule struct {
	KeepVersions int `yaml:"keep_versions"`
	KeepDays     int `yaml:"keep_days"`
}

// Active reports whether the rule can remove anything at all.
func (r RetentionRule) Active() bool { return r.KeepVersions > 0 || r.KeepDays > 0 }

// For returns the rule of a channel: its override when there is one, else the repository-wide rule. Without
// channels, pass "".
func (r Retention) For(channel string) RetentionRule {
	if o, ok := r.Channels[channel]; ok && channel != "" {
		return o
	}
	return r.RetentionRule
}

// MaxKeepDays bounds keep_days: a century, far beyond any real policy, and far below the ~290 years at which days
// overflow a time.Duration.
const MaxKeepDays = 36500

// retentionProblem is one problem validateRetention found: the key to blame and what to do about it.
type retentionProblem struct{ key, msg string }

// retentionProblems checks repo.retention. Channel names are checked only loosely (non-empty, no slash): whether
// each names a configured channel is checked where repo.channels is.
func (c *Config) retentionProblems() []retentionProblem {
	const key = "repo.retention"
	var out []retentionProblem
	check := func(where string, r RetentionRule) {
		if r.KeepVersions < 0 {
			out = append(out, retentionProblem{key, fmt.Sprintf("%skeep_versions %d is negative: use 0 (no limit) or the number of newest builds to keep, like 5", where, r.KeepVersions)})
		}
		if r.KeepDays < 0 || r.KeepDays > MaxKeepDays {
			out = append(out, retentionProblem{key, fmt.Sprintf("%skeep_days %d is out of range: use 0 (no limit) or a number of days up to %d, like 30", where, r.KeepDays, MaxKeepDays)})
		}
	}
	rt := c.Repo.Retention
	check("", rt.RetentionRule)
	for _, name := range slices.Sorted(maps.Keys(rt.Channels)) {
		if name == "" || strings.ContainsAny(name, "/\\") {
			out = append(out, retentionProblem{key, fmt.Sprintf("channels: %q is not a channel name", name)})
			continue
		}
		check(fmt.Sprintf("channels.%s.", name), rt.Channels[name])
	}
	return out
}
