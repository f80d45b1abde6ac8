package config

import (
	"fmt"
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

var sizeRe = regexp.MustCompile(`^(\d+)\s*([KMGT]?)(I?B?)$`)

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
func ParseSize(text string) (Size, error) {
	m := sizeRe.FindStringSubmatch(strings.ToUpper(strings.TrimSpace(text)))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size: write it like 128MiB, 1GiB or 500MB", text)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: %w", text, err)
	}
	if m[2] == "" {
		if m[3] != "" && m[3] != "B" {
			return 0, fmt.Errorf("%q is not a size: write it like 128MiB, 1GiB or 500MB", text)
		}
		return Size(n), nil
	}
	base := int64(1024)
	if m[3] == "B" { // "MB": decimal, as disks are sold; "MiB" and bare "M": binary.
		base = 1000
	}
	exp := strings.Index("KMGT", m[2]) + 1
	v := n
	for range exp {
		if v > (1<<62)/base {
			return 0, fmt.Errorf("%q is too large", text)
		}
		v *= base
	}
	return Size(v), nil
}

// MarshalYAML writes the size in the largest exact binary unit.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// String renders the size in the largest binary unit that divides it exactly.
func (s Size) String() string {
	v := int64(s)
	for _, u := range []string{"", "KiB", "MiB", "GiB"} {
		if v%1024 != 0 || v == 0 {
			return strconv.FormatInt(v, 10) + u
		}
		if u != "GiB" {
			v /= 1024
		} else {
			break
		}
	}
	return strconv.FormatInt(v, 10) + "TiB"
}
