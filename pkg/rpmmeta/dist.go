package rpmmeta

import "strings"

// Dist is the distribution a release string targets, e.g. {"el", "9"} for "1.el9" or {"amzn", "2023"}.
type Dist struct{ Abbr, Major string }

// String returns the dist tag without its leading dot, e.g. "el9".
func (d Dist) String() string { return d.Abbr + d.Major }

// ParseDist finds the dist tag in an RPM release. It scans the dot-separated tokens from the last to the first, and
// each token's '+'-separated parts from the last to the first; the first part that is exactly <abbr><digits>,
// optionally followed by "_<digits>", for an abbr in abbrs wins, and its first digits are the major version.
// Scanning from the right finds the dist in "2.el9.1" (a post-dist rebuild suffix) and in module releases such as
// "1.module+el8.9.0+20000+abcdef12", where the dist is a '+' part in the middle. "3.el7_9" and "1.el8_10" are
// minor-release streams of el7 and el8. ok is false when no part matches, e.g. for "1", "1.el" or "1.rhel9" with
// abbrs ["el"]: the abbr must match a whole part prefix, not a suffix of something longer.
func ParseDist(release string, abbrs []string) (d Dist, ok bool) {
	tokens := strings.Split(release, ".")
	for i := len(tokens) - 1; i >= 0; i-- {
		parts := strings.Split(tokens[i], "+")
		for j := len(parts) - 1; j >= 0; j-- {
			for _, abbr := range abbrs {
				if major, ok := matchDist(parts[j], abbr); ok {
					return Dist{Abbr: abbr, Major: major}, true
				}
			}
		}
	}
	return Dist{}, false
}

// matchDist reports whether part is abbr followed by digits, optionally "_" and more digits, and returns the first
// digits.
func matchDist(part, abbr string) (major string, ok bool) {
	if abbr == "" {
		return "", false // an empty abbr would match every bare number, e.g. the "1" of "1.foo"
	}
	rest, found := strings.CutPrefix(part, abbr)
	if !found {
		return "", false
	}
	major, minor, hasMinor := strings.Cut(rest, "_")
	if !isDigits(major) || hasMinor && !isDigits(minor) {
		return "", false
	}
	return major, true
}

// isDigits reports whether s is non-empty and all ASCII digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
