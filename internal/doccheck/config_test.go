package doccheck

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
)

// configKey is one key of the configuration file, found by walking config.Config's yaml tags.
type configKey struct {
	Name string // "server.listen", "notify.webhooks[].url"
	// Default is the default as the docs must show it, in backticks: config.Default()'s value. Empty when the
	// default is the zero value of a string, list, map or absent section: then the docs may say "unset" instead
	// of `""`, `[]` or `{}`.
	Default string
	Zero    string // the zero value's literal (`""`, `[]`, `{}`) when Default is empty
	InList  bool   // a key of a list element (notify.webhooks[].url): it has no default of its own
	// Kind is "duration" or "size" when the docs may spell the default in another unit (60s for 1m, 1024MiB
	// for 1GiB): a backticked value in the cell then matches when it parses to the same value.
	Kind string
}

var (
	durationType = reflect.TypeFor[config.Duration]()
	sizeType     = reflect.TypeFor[config.Size]()
)

// configKeys walks v (a struct) and returns every leaf key below prefix. Nested structs and pointers to structs
// are sections; ",inline" fields belong to their parent; lists of structs give "key[].field" keys.
func configKeys(prefix string, v reflect.Value, inList bool) []configKey {
	var out []configKey
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" {
			continue
		}
		fv := v.Field(i)
		if slices.Contains(strings.Split(opts, ","), "inline") {
			out = append(out, configKeys(prefix, fv, inList)...)
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name) // yaml.v3's rule for untagged fields
		}
		name := tag
		if prefix != "" {
			name = prefix + "." + tag
		}
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Struct && ft != durationType && ft != sizeType:
			out = append(out, configKeys(name, fv, inList)...)
			continue
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			// An optional section (indexer.sign): the section itself is a key, and so is each of its fields.
			out = append(out, leaf(name, fv, inList))
			inner := reflect.New(ft.Elem()).Elem()
			if !fv.IsNil() {
				inner = fv.Elem()
			}
			out = append(out, configKeys(name, inner, inList)...)
			continue
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, leaf(name, fv, inList))
			out = append(out, configKeys(name+"[]", reflect.New(ft.Elem()).Elem(), true)...)
			continue
		}
		out = append(out, leaf(name, fv, inList))
	}
	return out
}

// leaf renders one key's default the way configuration.md writes it.
func leaf(name string, v reflect.Value, inList bool) configKey {
	k := configKey{Name: name, InList: inList}
	switch {
	case v.Type() == durationType:
		k.Default, k.Kind = shortDuration(time.Duration(v.Int())), "duration"
	case v.Type() == sizeType:
		k.Default, k.Kind = config.Size(v.Int()).String(), "size"
	case v.Kind() == reflect.String:
		if v.Len() == 0 {
			k.Zero = `""`
		} else {
			k.Default = v.String()
		}
	case v.Kind() == reflect.Slice:
		if v.Len() == 0 {
			k.Zero = "[]"
		} else {
			items := make([]string, v.Len())
			for i := range items {
				items[i] = fmt.Sprint(v.Index(i).Interface())
			}
			k.Default = "[" + strings.Join(items, ", ") + "]"
		}
	case v.Kind() == reflect.Map:
		if v.Len() == 0 {
			k.Zero = "{}"
		} else {
			k.Default = fmt.Sprint(v.Interface())
		}
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			k.Zero = "unset"
		} else {
			k.Default = fmt.Sprint(v.Elem().Interface())
		}
	default: // bool, ints
		k.Default = fmt.Sprint(v.Interface())
	}
	return k
}

// shortDuration writes a duration as people do in the config file: 5m, not 5m0s; 1h, not 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// undocumentedKeys compares keys with the tables of a configuration.md: each key needs a row whose first cell is
// the key in backticks, and whose second cell shows the default in backticks (or, for a zero default, "unset" or
// the zero literal). Keys of list elements need only the row. It returns one line per problem.
func undocumentedKeys(keys []configKey, md string) []string {
	rows := map[string]string{}
	for _, r := range TableRows(md) {
		if len(r) >= 2 && strings.HasPrefix(r[0], "`") && strings.HasSuffix(r[0], "`") {
			rows[strings.Trim(r[0], "`")] = r[1]
		}
	}
	var bad []string
	for _, k := range keys {
		cell, ok := rows[k.Name]
		switch {
		case !ok:
			want := "`" + k.Default + "`"
			if k.Default == "" {
				want = "unset"
			}
			if k.InList {
				want = "required, or what leaving it out means"
			}
			bad = append(bad, fmt.Sprintf("%s: missing; add a row | `%s` | %s | ... |", k.Name, k.Name, want))
		case k.InList:
			if cell == "" {
				bad = append(bad, k.Name+": the default cell is empty")
			}
		case k.Default != "":
			if !showsDefault(cell, k) {
				bad = append(bad, fmt.Sprintf("%s: the default cell %q does not show the default `%s`", k.Name, cell, k.Default))
			}
		default:
			if !strings.Contains(cell, "unset") && !strings.Contains(cell, "`"+k.Zero+"`") {
				bad = append(bad, fmt.Sprintf("%s: the default is empty; the cell %q must say unset or `%s`", k.Name, cell, k.Zero))
			}
		}
	}
	return bad
}

// showsDefault reports whether a code span of cell is k's default: the same text, or for durations and sizes the
// same value in another spelling.
func showsDefault(cell string, k configKey) bool {
	for _, span := range codeSpanRe.FindAllString(cell, -1) {
		span = strings.Trim(span, "`")
		switch k.Kind {
		case "duration":
			d, err := time.ParseDuration(span)
			if err == nil && shortDuration(d) == k.Default {
				return true
			}
		case "size":
			n, err := config.ParseSize(span)
			if err == nil && n.String() == k.Default {
				return true
			}
		default:
			if span == k.Default {
				return true
			}
		}
	}
	return false
}

// TestConfigKeysDocumented: every key of config.Config appears in docs/configuration.md with config.Default()'s
// value. The failure lists exactly the keys to add or fix.
func TestConfigKeysDocumented(t *testing.T) {
	keys := configKeys("", reflect.ValueOf(config.Default()).Elem(), false)
	if len(keys) < 40 {
		t.Fatalf("found only %d keys in config.Config: the walk is broken", len(keys))
	}
	md, err := os.ReadFile(filepath.Join(repoRoot, "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	if bad := undocumentedKeys(keys, string(md)); len(bad) > 0 {
		t.Errorf("docs/configuration.md is out of step with pkg/config (%d problem(s)):\n  %s", len(bad), strings.Join(bad, "\n  "))
	}
}

// TestConfigWalk pins what the walk finds for the shapes config uses, on a struct made for it: sections, inline
// fields, optional sections, lists of structs, maps, durations and sizes. So the check above cannot pass by
// finding nothing.
func TestConfigWalk(t *testing.T) {
	type Rule struct {
		Keep int `yaml:"keep"`
	}
	type item struct {
		URL string `yaml:"url"`
	}
	type opt struct {
		Key string `yaml:"key"`
	}
	type sec struct {
		Rule   `yaml:",inline"`
		Wait   config.Duration `yaml:"wait"`
		Max    config.Size     `yaml:"max"`
		On     bool            `yaml:"on"`
		Names  []string        `yaml:"names"`
		Empty  string          `yaml:"empty"`
		Items  []item          `yaml:"items"`
		Opt    *opt            `yaml:"opt"`
		ByName map[string]Rule `yaml:"by_name,omitempty"`
		//lint:ignore U1000 present so the walk is seen to skip unexported fields
		private int
	}
	type top struct {
		S sec `yaml:"s"`
	}
	v := top{S: sec{Rule: Rule{Keep: 3}, Wait: config.Duration(5 * time.Minute), Max: 128 << 20, Names: []string{"a", "b"}}}
	got := configKeys("", reflect.ValueOf(v), false)
	want := []configKey{
		{Name: "s.keep", Default: "3"},
		{Name: "s.wait", Default: "5m", Kind: "duration"},
		{Name: "s.max", Default: "128MiB", Kind: "size"},
		{Name: "s.on", Default: "false"},
		{Name: "s.names", Default: "[a, b]"},
		{Name: "s.empty", Zero: `""`},
		{Name: "s.items", Zero: "[]"},
		{Name: "s.items[].url", Zero: `""`, InList: true},
		{Name: "s.opt", Zero: "unset"},
		{Name: "s.opt.key", Zero: `""`},
		{Name: "s.by_name", Zero: "{}"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("configKeys:\n got %+v\nwant %+v", got, want)
	}

	md := "| key | default | meaning |\n|---|---|---|\n" +
		"| `s.keep` | `4` | |\n| `s.wait` | `300s` | |\n| `s.on` | `false` | |\n| `s.names` | `[a, b]` | |\n" +
		"| `s.empty` | unset | |\n| `s.items` | `[]` | |\n| `s.items[].url` | required | |\n| `s.opt` | nothing | |\n" +
		"| `s.opt.key` | unset | |\n| `s.by_name` | `{}` | |\n"
	wantBad := []string{
		"s.keep: the default cell \"`4`\" does not show the default `3`",
		"s.max: missing; add a row | `s.max` | `128MiB` | ... |",
		"s.opt: the default is empty; the cell \"nothing\" must say unset or `unset`",
	}
	if bad := undocumentedKeys(want, md); !slices.Equal(bad, wantBad) {
		t.Errorf("undocumentedKeys:\n got %q\nwant %q", bad, wantBad)
	}
}
