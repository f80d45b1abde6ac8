package config

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as Go duration text ("30s", "5m") in YAML.
type Duration time.Duration

// UnmarshalYAML parses Go duration text and names the line on error.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration: write it like 30s, 5m or 1h30m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back as text.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Size is a byte count written as "128MiB", "1GB", "512k" or a plain number of bytes in YAML.
type Size int64

// sizeRe splits a size into its number, its unit letter and the rest of the unit. Units go up to E(xa), because
// String must be able to write every int64 back in a form ParseSize reads (1 PiB printed as "1024TiB" once came
// back as 1 PiB times 1024).
var sizeRe = regexp.MustCompile(`^(\d+)\s*([KMGTPE]?)(I?B?)$`)

// sizeUnits are the unit letters in increasing order; a letter's index + 1 is its power of the base.
const sizeUnits = "KMGTPE"

// UnmarshalYAML parses a size with an optional binary or decimal unit and names the line on error.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = v
	return nil
}

// ParseSize parses "128MiB" (binary), "128MB" (decimal), "128M" or "128k" (binary, as nginx reads them) or "1024".
// Units go from K to E. A value that does not fit in 63 bits is refused, never wrapped.
func ParseSize(text string) (Size, error) {
	m := sizeRe.FindStringSubmatch(strings.ToUpper(strings.TrimSpace(text)))
	if m == nil || (m[2] == "" && m[3] != "" && m[3] != "B") {
		return 0, fmt.Errorf("%q is not a size: write it like 128MiB, 1GiB or 500MB", text)
	}
	tooLarge := fmt.Errorf("%q is too large: the largest size is %d bytes (just under 8EiB)", text, int64(math.MaxInt64))
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		// The regexp admits only digits, so the one possible failure is a number beyond int64.
		return 0, tooLarge
	}
	if m[2] == "" {
		return Size(n), nil
	}
	base := int64(1024)
	if m[3] == "B" { // "MB": decimal, as disks are sold; "MiB" and bare "M": binary.
		base = 1000
	}
	v := n
	for range strings.Index(sizeUnits, m[2]) + 1 {
		if v > math.MaxInt64/base {
			return 0, tooLarge
		}
		v *= base
	}
	return Size(v), nil
}

// MarshalYAML writes the size as String does, so --check-config output reads back to the same value.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// String renders the size so that ParseSize reads it back to the same value: in the largest binary unit (KiB to
// EiB) that divides it exactly, or else the largest decimal unit (KB to EB) that does, whichever is shorter
// (binary on a tie); otherwise in bytes. 1 TiB is "1TiB", 1536 is "1536" ("1.5KiB" is not a size we parse),
// 10^9 is "1GB". Negative values, which Validate refuses, are printed in bytes.
func (s Size) String() string {
	v := int64(s)
	if v <= 0 {
		return strconv.FormatInt(v, 10)
	}
	bin := scaled(v, 1024, "iB")
	dec := scaled(v, 1000, "B")
	if len(dec) < len(bin) {
		return dec
	}
	return bin
}

// scaled writes v in the largest unit of base that divides it exactly, or in bytes when none does.
func scaled(v, base int64, suffix string) string {
	unit := -1
	for unit+1 < len(sizeUnits) && v%base == 0 {
		v /= base
		unit++
	}
	if unit < 0 {
		return strconv.FormatInt(v, 10)
	}
	return strconv.FormatInt(v, 10) + sizeUnits[unit:unit+1] + suffix
}
