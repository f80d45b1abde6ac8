package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
