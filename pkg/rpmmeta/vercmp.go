package rpmmeta

import "strings"

// Vercmp compares two version (or release) strings exactly as rpm's rpmvercmp does, and returns -1 when a is
// older than b, 0 when rpm considers them the same and 1 when a is newer. It is a port of rpmio/rpmvercmp.cc;
// the rules, in rpm's order:
//   - The strings split into segments of ASCII digits or ASCII letters; every other character is a separator
//     and only separates ("1.0" equals "1_0", "+a" equals "_a").
//   - '~' sorts before everything, even the end of the string: 1.0~rc1 < 1.0.
//   - '^' sorts after the end of the string but before anything else: 1.0 < 1.0^git1 < 1.0.1.
//   - A numeric segment beats an alphabetic one; numbers compare by value (leading zeros are ignored, and any
//     length works) and letters by byte order.
//   - When all segments are equal, the string with something left over is newer.
//
// Like the C code it stops at a NUL byte, and like rpm it treats non-ASCII bytes as separators.
func Vercmp(a, b string) int {
	a, b = cString(a), cString(b)
	if a == b {
		return 0
	}
	one, two := a, b
	for one != "" || two != "" {
		one = strings.TrimLeftFunc(one, isSeparator)
		two = strings.TrimLeftFunc(two, isSeparator)

		// The tilde sorts before everything else, the end of the other string included.
		if first(one) == '~' || first(two) == '~' {
			if first(one) != '~' {
				return 1
			}
			if first(two) != '~' {
				return -1
			}
			one, two = one[1:], two[1:]
			continue
		}
		// The caret is like the tilde, except that when one string has ended (the base version) the other one,
		// with its caret, is the newer.
		if first(one) == '^' || first(two) == '^' {
			switch {
			case one == "":
				return -1
			case two == "":
				return 1
			case first(one) != '^':
				return 1
			case first(two) != '^':
				return -1
			}
			one, two = one[1:], two[1:]
			continue
		}
		if one == "" || two == "" {
			break
		}

		// The segment's kind is decided by a's side; b's segment of that kind may be empty.
		isNum := isDigit(one[0])
		class := isAlpha
		if isNum {
			class = isDigit
		}
		seg1, rest1 := span(one, class)
		seg2, rest2 := span(two, class)
		if seg2 == "" {
			// Different kinds: numeric segments are always newer than alphabetic ones.
			if isNum {
				return 1
			}
			return -1
		}
		if isNum {
			// Numbers of any length: without leading zeros, the one with more digits is larger, and equal
			// lengths compare as text.
			seg1 = strings.TrimLeft(seg1, "0")
			seg2 = strings.TrimLeft(seg2, "0")
			if len(seg1) != len(seg2) {
				if len(seg1) > len(seg2) {
					return 1
				}
				return -1
			}
		}
		if c := strings.Compare(seg1, seg2); c != 0 {
			return c
		}
		one, two = rest1, rest2
	}
	// Every segment compared equal but the separators differed ("1.0" and "1_0"): the same version.
	if one == "" && two == "" {
		return 0
	}
	// Whichever has something left over is the newer.
	if one == "" {
		return -1
	}
	return 1
}

// CompareEVR orders two builds as rpm orders package headers (rpmVersionCompare): by epoch, then version, then
// release, the last two with Vercmp. A missing epoch ("") counts as 0; epochs are compared with Vercmp too, which
// for decimal numbers is their numeric order ("007" equals "7").
func CompareEVR(e1, v1, r1, e2, v2, r2 string) int {
	if e1 == "" {
		e1 = "0"
	}
	if e2 == "" {
		e2 = "0"
	}
	if c := Vercmp(e1, e2); c != 0 {
		return c
	}
	if c := Vercmp(v1, v2); c != 0 {
		return c
	}
	return Vercmp(r1, r2)
}

// cString cuts s at its first NUL, where the C code would see the string end.
func cString(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// first returns the first byte of s, or 0 for the empty string (the C code's terminating NUL).
func first(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}

// span splits s after its leading run of bytes in class.
func span(s string, class func(byte) bool) (seg, rest string) {
	i := 0
	for i < len(s) && class(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// The character classes of rpm's own ctype (rpmstring.h): ASCII only, independent of the locale.
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// isSeparator reports the runes Vercmp skips between segments: everything but ASCII letters and digits, '~' and '^'.
// strings.TrimLeftFunc passes runes; a non-ASCII rune (or an invalid byte, as U+FFFD) is a separator, as each of
// its bytes is in C.
func isSeparator(r rune) bool {
	if r >= 0x80 {
		return true
	}
	c := byte(r)
	return !isDigit(c) && !isAlpha(c) && c != '~' && c != '^'
}
