package config

import (
	"errors"
	"os"
	"path/filepath"
)

// validateAudit checks log.audit_file: empty (off), or an absolute path in an existing directory, outside the
// trees the web server publishes or nginx spools into (the trail names users and clients), naming a regular file
// if it exists.
func (c *Config) validateAudit(report func(key, format string, args ...any)) {
	p := c.Log.AuditFile
	if p == "" {
		return
	}
	bad := func(format string, args ...any) { report("log.audit_file", format, args...) }
	if !filepath.IsAbs(p) {
		bad("%q must be an absolute path (or relative to the config file)", p)
		return
	}
	for _, d := range []struct{ key, dir string }{{"repo.top_dir", c.Repo.TopDir}, {"server.spool_dir", c.Server.SpoolDir}} {
		if within(p, d.dir) {
			bad("%s lies inside %s %s, where the web server or createrepo_c would see it: put it beside, such as /var/log/rpm-ingestd/audit.log", p, d.key, d.dir)
			return
		}
	}
	dir := filepath.Dir(p)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		bad("directory %s does not exist: create it (mkdir -p %s) and give it to the daemon's user", dir, dir)
		return
	}
	switch fi, err := os.Stat(p); {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		bad("%v", err)
	case !fi.Mode().IsRegular():
		bad("%s is not a regular file", p)
	}
}
