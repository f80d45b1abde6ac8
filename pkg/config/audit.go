package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// validateAudit checks log.audit_file: empty (off), or an absolute path in an existing directory, outside the
// trees the web server publishes or nginx spools into (the trail names users and clients), naming a regular file
// if it exists.
func (c *Config) validateAudit() []error {
	p := c.Log.AuditFile
	if p == "" {
		return nil
	}
	where := "log.audit_file"
	if line, ok := c.lines[where]; ok {
		where = fmt.Sprintf("%s (line %d)", where, line)
	}
	bad := func(format string, args ...any) []error {
		return []error{fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...))}
	}
	if !filepath.IsAbs(p) {
		return bad("%q must be an absolute path (or relative to the config file)", p)
	}
	for _, d := range []struct{ key, dir string }{{"repo.top_dir", c.Repo.TopDir}, {"server.spool_dir", c.Server.SpoolDir}} {
		if within(p, d.dir) {
			return bad("%s lies inside %s %s, where the web server or createrepo_c would see it: put it beside, such as /var/log/rpm-ingestd/audit.log", p, d.key, d.dir)
		}
	}
	dir := filepath.Dir(p)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return bad("directory %s does not exist: create it (mkdir -p %s) and give it to the daemon's user", dir, dir)
	}
	switch fi, err := os.Stat(p); {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return bad("%v", err)
	case !fi.Mode().IsRegular():
		return bad("%s is not a regular file", p)
	}
	return nil
}

// Placeholders rendered into repo.layout to find where each field lands; control characters never occur in a
// layout's own text, and RenderLayout keeps them.
const (
	holdAbbr    = "\x01"
	holdRelease = "\x02"
	holdArch    = "\x03"
)

// RepoLocator returns the inverse of repo.layout: for a repository directory relative to top_dir ("9/x86_64"),
// the os_release and arch that render it. ok is false for a directory the layout cannot produce. It reads the
// layout as plain text around its fields, so a layout that branches on a field's value ({{if eq .Arch ...}}) is
// located only where its output has that shape. The result is safe for concurrent use.
func (c *Config) RepoLocator() (func(repoRel string) (osRelease, arch string, ok bool), error) {
	out, err := c.RenderLayout(LayoutFields{OSAbbr: holdAbbr, OSRelease: holdRelease, Arch: holdArch})
	if err != nil {
		return nil, err
	}
	out = filepath.ToSlash(out)
	// Each occurrence of a field is its own group; a field used twice must match the same text both times,
	// which is checked after the match (Go's regexp has no back-references).
	var re strings.Builder
	var fields []string
	re.WriteString("^")
	for _, r := range out {
		switch s := string(r); s {
		case holdAbbr:
			re.WriteString(`([a-z]+)`) // the dist tag abbreviations config accepts
			fields = append(fields, s)
		case holdRelease:
			re.WriteString(`([A-Za-z0-9][A-Za-z0-9._]*?)`) // lazy: a literal after it (".x") stays literal
			fields = append(fields, s)
		case holdArch:
			re.WriteString(`([A-Za-z0-9_]+)`)
			fields = append(fields, s)
		default:
			re.WriteString(regexp.QuoteMeta(s))
		}
	}
	re.WriteString("$")
	rx, err := regexp.Compile(re.String())
	if err != nil {
		return nil, fmt.Errorf("repo.layout %q cannot be read backwards: %w", c.Repo.Layout, err)
	}
	return func(repoRel string) (string, string, bool) {
		m := rx.FindStringSubmatch(repoRel)
		if m == nil {
			return "", "", false
		}
		got := map[string]string{}
		for i, f := range fields {
			if v, seen := got[f]; seen && v != m[i+1] {
				return "", "", false
			}
			got[f] = m[i+1]
		}
		return got[holdRelease], got[holdArch], true
	}, nil
}
