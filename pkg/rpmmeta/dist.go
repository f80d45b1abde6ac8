package rpmmeta

import "strings"

// Dist is the distribution a release string targets, e.g. {"el", "9"} for "1.el9" or {"amzn", "2023"}.
type Dist struct{ Abbr, Major string }

// String returns the dist tag without its leading dot, e.g. "el9".
func (d Dist) String() string { return d.Abbr + d.Major }

// ParseDist finds the dist tag in an RPM release. It scans the dot-separated tokens from the last to the first, and
// each token's '+'-separated parts from the last to the first; the first part that is a dist tag (see matchDist)
// for an abbr in abbrs wins, and its first digits are the major version. Scanning from the right finds the dist in
// "2.el9.1" and "4.el8_10.1" (post-dist rebuild suffixes, e.g. Oracle's) and in module releases such as
// "1.module+el8.9.0+20000+abcdef12", where the dist is a '+' part in the middle. AlmaLinux and CentOS write
// module releases with an underscore, "1.module_el8.9.0+3745+02e1b364": a "module_" prefix is ignored. ok is false
// when no part matches, e.g. for "1", "1.el" or "1.rhel9" with abbrs ["el"]: the abbr must match a whole part
// prefix, not a suffix of something longer.
func ParseDist(release string, abbrs []string) (d Dist, ok bool) {
	// The "."-separated tokens from the last, and in each its "+"-separated parts from the last (without
	// strings.Split: this runs for every upload, and the slices were garbage).
	for rest := release; ; {
		i := strings.LastIndexByte(rest, '.')
		token := rest[i+1:] // i is -1 for the first token
		for {
			j := strings.LastIndexByte(token, '+')
			part := strings.TrimPrefix(token[j+1:], "module_")
			for _, abbr := range abbrs {
				if major, ok := matchDist(part, abbr); ok {
					return Dist{Abbr: abbr, Major: major}, true
				}
			}
			if j < 0 {
				break
			}
			token = token[:j]
		}
		if i < 0 {
			return Dist{}, false
		}
		rest = rest[:i]
	}
}

// matchDist reports whether part is a dist tag for abbr and returns its first digits, the major version. A dist
// tag is abbr followed by digits and then at most one of the suffixes real distributions use:
//   - "_<digits>": an EL minor-release stream, "el7_9", "el8_10", "el10_0";
//   - "sp<digits>": an openEuler service pack, "oe2203sp1" (major 2203);
//   - "uek": Oracle's Unbreakable Enterprise Kernel, "el9uek".
//
// Anything else after the digits ("el9x", "el9_", "el9_2_1") is refused: a misparsed dist files a package under
// the wrong distribution, so unknown shapes are left to the caller's explicit override.
func matchDist(part, abbr string) (major string, ok bool) {
	if abbr == "" {
		return "", false // an empty abbr would match every bare number, e.g. the "1" of "1.foo"
	}
	rest, found := strings.CutPrefix(part, abbr)
	if !found {
		return "", false
	}
	n := leadingDigits(rest)
	major, suffix := rest[:n], rest[n:]
	if major == "" {
		return "", false
	}
	switch {
	case suffix == "", suffix == "uek",
		strings.HasPrefix(suffix, "_") && isDigits(suffix[1:]),
		strings.HasPrefix(suffix, "sp") && isDigits(suffix[2:]):
		return major, true
	}
	return "", false
}

// leadingDigits returns the number of ASCII digits at the start of s.
func leadingDigits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// isDigits reports whether s is non-empty and all ASCII digits.
func isDigits(s string) bool {
	return s != "" && leadingDigits(s) == len(s)
}
