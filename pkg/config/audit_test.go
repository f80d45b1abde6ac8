package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAuditFileValidation(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"storage", "incoming", "log", "log/dir.log"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	tests := []struct {
		name, value string
		want        string // "" for valid
	}{
		{"off", `""`, ""},
		{"relative to the config file", "log/audit.log", ""},
		{"existing file", "log/audit.log", ""},
		{"missing directory", "nolog/audit.log", "log.audit_file (line 6): directory " + filepath.Join(dir, "nolog") + " does not exist: create it"},
		{"inside top_dir", "storage/audit.log", "lies inside repo.top_dir"},
		{"inside spool_dir", "incoming/audit.log", "lies inside server.spool_dir"},
		{"a directory", "log/dir.log", "is not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "existing file" {
				os.WriteFile(filepath.Join(dir, "log/audit.log"), nil, 0o640)
			}
			cfg := filepath.Join(dir, "config.yml")
			os.WriteFile(cfg, fmt.Appendf(nil, "server:\n  spool_dir: incoming\nrepo:\n  top_dir: storage\nlog:\n  audit_file: %s\n", tc.value), 0o644)
			c, err := Load(cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if v := strings.Trim(tc.value, `"`); v != "" && c.Log.AuditFile != filepath.Join(dir, v) {
					t.Errorf("audit_file %q, want it resolved against the config dir", c.Log.AuditFile)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	if Default().Log.AuditFile != "" {
		t.Error("audit trail on by default")
	}
}

func TestRepoLocator(t *testing.T) {
	tests := []struct {
		layout, repo  string
		release, arch string
		ok            bool
	}{
		{"{{.OSRelease}}/{{.Arch}}", "9/x86_64", "9", "x86_64", true},
		{"{{.OSRelease}}/{{.Arch}}", "9/SRPMS", "9", "SRPMS", true},
		{"{{.OSRelease}}/{{.Arch}}", "9", "", "", false},
		{"{{.OSRelease}}/{{.Arch}}", "stable/9/x86_64", "", "", false},
		{"stable/{{.OSRelease}}/{{.Arch}}", "stable/9/x86_64", "9", "x86_64", true},
		{"stable/{{.OSRelease}}/{{.Arch}}", "testing/9/x86_64", "", "", false},
		{"{{.OSAbbr}}{{.OSRelease}}/{{.Arch}}", "el9/aarch64", "9", "aarch64", true},
		{"{{.OSAbbr}}{{.OSRelease}}/{{.Arch}}", "fc40/x86_64", "40", "x86_64", true},
		{"{{.OSAbbr}}/{{.OSRelease}}.x/{{.Arch}}", "el/9.x/x86_64", "9", "x86_64", true},
		{"{{.Arch}}/{{.OSRelease}}/{{.Arch}}", "x86_64/9/x86_64", "9", "x86_64", true},
		{"{{.Arch}}/{{.OSRelease}}/{{.Arch}}", "x86_64/9/aarch64", "", "", false}, // one field, two values
	}
	for _, tc := range tests {
		t.Run(tc.layout+" "+tc.repo, func(t *testing.T) {
			c := Default()
			c.Repo.Layout = tc.layout
			locate, err := c.RepoLocator()
			if err != nil {
				t.Fatal(err)
			}
			rel, arch, ok := locate(tc.repo)
			if rel != tc.release || arch != tc.arch || ok != tc.ok {
				t.Errorf("locate(%q) = %q, %q, %v; want %q, %q, %v", tc.repo, rel, arch, ok, tc.release, tc.arch, tc.ok)
			}
			if ok {
				// And forwards again: the layout renders the same directory.
				if back, err := c.RenderLayout(LayoutFields{OSAbbr: "el", OSRelease: rel, Arch: arch}); err != nil || (!strings.Contains(tc.layout, "OSAbbr") && back != tc.repo) {
					t.Errorf("RenderLayout(%s, %s) = %q, %v", rel, arch, back, err)
				}
			}
		})
	}
}
