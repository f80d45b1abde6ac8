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
		{"missing directory", "nolog/audit.log", "line 6: log.audit_file: directory " + filepath.Join(dir, "nolog") + " does not exist: create it"},
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
