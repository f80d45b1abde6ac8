package config

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// problem is one thing wrong with a configuration file: where (line, 0 when the key is not in the file) and which
// key (its YAML path, like server.max_upload_size or notify.webhooks[1].format), and what to do about it. Decoding
// and validation both report problems, and Load sorts them into file order, so an admin reads the file top down.
type problem struct {
	line int
	key  string
	msg  string
}

// Error renders "line 7: server.max_uplaod_size: unknown key; did you mean max_upload_size?".
func (p problem) Error() string {
	if p.line > 0 {
		return fmt.Sprintf("line %d: %s: %s", p.line, p.key, p.msg)
	}
	return fmt.Sprintf("%s: %s", p.key, p.msg)
}

// joinProblems sorts ps into file order (problems with no line last, in the order found) and joins them.
func joinProblems(ps []problem) error {
	if len(ps) == 0 {
		return nil
	}
	slices.SortStableFunc(ps, func(a, b problem) int {
		switch {
		case a.line == b.line:
			return 0
		case a.line == 0:
			return 1
		case b.line == 0:
			return -1
		}
		return cmp.Compare(a.line, b.line)
	})
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// decoder walks a YAML node tree into a Config field by field, so that one wrong key or value does not hide the
// others: yaml.v3 stops at the first error a custom type (Duration, Size) returns and names Go types in its
// messages. It records the line of every key it meets.
type decoder struct {
	lines    map[string]int
	problems []problem
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	linePrefixRe    = regexp.MustCompile(`^(yaml: )?line \d+: `)
	syntaxRe        = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// decodeNode decodes the document data over cfg. A YAML syntax error is returned as the only problem, with ok
// false: nothing past it can be trusted.
func decodeNode(data []byte, cfg *Config) (lines map[string]int, ps []problem, ok bool) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		msg := err.Error()
		line := 0
		if m := syntaxRe.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		return nil, []problem{{line: line, key: "YAML", msg: "syntax error: " + strings.TrimPrefix(msg, "yaml: ") + " (nothing after it was checked)"}}, false
	}
	d := &decoder{lines: map[string]int{}}
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		d.walk(root.Content[0], reflect.ValueOf(cfg).Elem(), "")
	}
	return d.lines, d.problems, true
}

func (d *decoder) bad(n *yaml.Node, key, format string, args ...any) {
	if key == "" {
		key = "(top level)"
	}
	d.problems = append(d.problems, problem{line: n.Line, key: key, msg: fmt.Sprintf(format, args...)})
}

// walk decodes n into v, whose key path is path.
func (d *decoder) walk(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	isNull := n.Kind == yaml.ScalarNode && n.Tag == "!!null"
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.bad(n, path, "%s", linePrefixRe.ReplaceAllString(err.Error(), ""))
		}
		return
	}
	switch {
	case v.Kind() == reflect.Struct:
		if isNull {
			return // "server:" with nothing under it: the defaults stay
		}
		d.walkStruct(n, v, path)
	case v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct:
		if isNull {
			v.SetZero()
			return
		}
		p := reflect.New(v.Type().Elem())
		d.walkStruct(n, p.Elem(), path)
		v.Set(p)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
		if isNull {
			v.SetZero()
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.bad(n, path, "%s is not a list: write one entry per line, each starting with \"- \"", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			ip := fmt.Sprintf("%s[%d]", path, i)
			d.lines[ip] = item.Line
			d.walk(item, s.Index(i), ip)
		}
		v.Set(s)
	case v.Kind() == reflect.Map && v.Type().Key().Kind() == reflect.String && v.Type().Elem().Kind() == reflect.Struct:
		if isNull {
			v.SetZero()
			return
		}
		if n.Kind != yaml.MappingNode {
			d.bad(n, path, "%s is not a mapping of names to settings", describe(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			kp := path + "." + k.Value
			if first, dup := seen[k.Value]; dup {
				d.bad(k, kp, "is set twice (first on line %d)", first)
				continue
			}
			seen[k.Value] = k.Line
			d.lines[kp] = k.Line
			e := reflect.New(v.Type().Elem()).Elem()
			d.walk(val, e, kp)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e)
		}
		v.Set(m)
	default:
		if err := n.Decode(v.Addr().Interface()); err != nil {
			var te *yaml.TypeError
			if errors.As(err, &te) {
				d.bad(n, path, "%s is not %s", describe(n), want(v.Type()))
			} else {
				d.bad(n, path, "%s", linePrefixRe.ReplaceAllString(err.Error(), ""))
			}
		}
	}
}

// walkStruct decodes the mapping n into the struct v, field by field.
func (d *decoder) walkStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.bad(n, path, "%s is not a section of keys: write key: value pairs, indented under it", describe(n))
		return
	}
	fields := structFields(v)
	// Merge keys (<<: *defaults) first, so the section's own keys override what they bring, as in YAML.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Tag == "!!merge" {
			val := n.Content[i+1]
			if val.Kind == yaml.AliasNode && val.Alias != nil {
				val = val.Alias
			}
			merged := []*yaml.Node{val}
			if val.Kind == yaml.SequenceNode {
				merged = val.Content
			}
			for _, m := range merged {
				if m.Kind == yaml.AliasNode && m.Alias != nil {
					m = m.Alias
				}
				d.walkStruct(m, v, path)
			}
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" {
			continue
		}
		kp := k.Value
		if path != "" {
			kp = path + "." + k.Value
		}
		if first, dup := seen[k.Value]; dup {
			d.bad(k, kp, "is set twice (first on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fields[k.Value]
		if !ok {
			d.bad(k, kp, "unknown key%s", suggest(k.Value, fields, path))
			continue
		}
		d.lines[kp] = k.Line
		d.walk(val, f, kp)
	}
}

// structFields maps the YAML keys of struct v to its fields, with ",inline" structs flattened.
func structFields(v reflect.Value) map[string]reflect.Value {
	out := map[string]reflect.Value{}
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") && sf.Type.Kind() == reflect.Struct {
			for k, f := range structFields(v.Field(i)) {
				out[k] = f
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		out[name] = v.Field(i)
	}
	return out
}

// suggest returns "; did you mean max_upload_size?" for a near miss among the keys of the section, or names the
// section a key belongs to when it sits in the wrong one; "" when nothing is close.
func suggest(key string, fields map[string]reflect.Value, path string) string {
	best, bestD := "", -1
	for _, name := range slices.Sorted(mapKeys(fields)) {
		if dist := editDistance(strings.ToLower(key), name); bestD < 0 || dist < bestD {
			best, bestD = name, dist
		}
	}
	if bestD >= 0 && bestD <= max(1, min(3, len(key)/3)) {
		return fmt.Sprintf("; did you mean %s?", best)
	}
	// The right key in the wrong section: "top_dir" under server.
	var elsewhere []string
	for _, p := range allKeyPaths(reflect.TypeFor[Config](), "") {
		if strings.HasSuffix(p, "."+key) && !strings.HasPrefix(p, path+".") {
			elsewhere = append(elsewhere, p)
		}
	}
	if len(elsewhere) > 0 {
		return fmt.Sprintf("; did you mean %s? (it belongs in another section)", strings.Join(elsewhere, " or "))
	}
	return ""
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// allKeyPaths lists the dotted key paths of every field of t, for suggestions.
func allKeyPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		ft := sf.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if strings.Contains(opts, "inline") && ft.Kind() == reflect.Struct {
			out = append(out, allKeyPaths(ft, prefix)...)
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		p := name
		if prefix != "" {
			p = prefix + "." + name
		}
		out = append(out, p)
		if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(unmarshalerType) {
			out = append(out, allKeyPaths(ft, p)...)
		}
	}
	return out
}

// editDistance is the optimal-string-alignment distance: insertions, deletions, substitutions and swaps of two
// neighbouring letters (the commonest typo, "uplaod") each cost one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// describe names what the file holds at n, for "X is not Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a section of keys"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

// want names what a Go type expects, in the file's terms.
func want(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.String:
		return "a single text value"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(want(t.Elem()), "a "), "single ") + "s, like [a, b]"
	case reflect.Map:
		return "a section of keys"
	}
	return "a " + t.Kind().String()
}
