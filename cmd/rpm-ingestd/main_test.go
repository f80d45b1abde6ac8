package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunFlags(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"storage", "spool"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	good := filepath.Join(dir, "good.yml")
	os.WriteFile(good, []byte("server:\n  spool_dir: spool\nrepo:\n  top_dir: storage\nindexer:\n  command: [sh, -c, 'true']\n"), 0o644)
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("server:\n  spool_dir: spool\n  bogus: 1\nrepo:\n  top_dir: nowhere\nindexer:\n  workers: 0\n"), 0o644)
	abbr := filepath.Join(dir, "abbr.yml")
	os.WriteFile(abbr, []byte("server:\n  spool_dir: spool\nrepo:\n  top_dir: storage\n  layout: '{{.OSAbbr}}{{.OSRelease}}/{{.Arch}}'\nindexer:\n  command: [sh, -c, 'true']\n"), 0o644)
	noProgram := filepath.Join(dir, "noprog.yml")
	os.WriteFile(noProgram, []byte("server:\n  spool_dir: spool\nrepo:\n  top_dir: storage\nindexer:\n  command: [no-such-createrepo]\n"), 0o644)

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{"version", []string{"--version"}, 0, []string{"rpm-ingestd dev"}, nil},
		{"check good config prints effective config", []string{"-c", good, "--check-config"}, 0,
			[]string{"spool_dir: " + filepath.Join(dir, "spool"), "quiet_period: 30s", "max_upload_size: 128MiB"}, nil},
		{"limits printed so they read back", []string{"-c", good, "--check-config"}, 0,
			[]string{"max_concurrent_uploads: 16", "memory_limit: 1GiB", "upload_min_rate: 4KiB", "max_header_bytes: 64KiB", "shutdown_timeout: 20s"}, nil},
		{"layout note on stderr", []string{"-c", abbr, "--check-config"}, 0, []string{"layout: '{{.OSAbbr}}{{.OSRelease}}/{{.Arch}}'"},
			[]string{"rpm-ingestd: note: repo.layout", "os_release=el9"}},
		{"long flag", []string{"--config", good, "--check-config"}, 0, []string{"top_dir: " + filepath.Join(dir, "storage")}, nil},
		{"unknown key fails with exit 2", []string{"-c", bad, "--check-config"}, 2, nil,
			[]string{"invalid configuration", "line 3: server.bogus: unknown key", "line 5: repo.top_dir: " + filepath.Join(dir, "nowhere") + " does not exist",
				"line 7: indexer.workers: must be at least 1"}},
		{"missing program", []string{"-c", noProgram, "--check-config"}, 2, nil,
			[]string{`indexer.command: "no-such-createrepo" is not on PATH`}},
		{"missing explicit file", []string{"-c", filepath.Join(dir, "absent.yml")}, 2, nil, []string{"no such file"}},
		{"bad flag", []string{"--nope"}, 2, nil, []string{"flag provided but not defined"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, &stdout, &stderr)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, &stdout)
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, &stderr)
				}
			}
		})
	}
}
