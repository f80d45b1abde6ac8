package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
)

func TestWriteRepoFile(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*config.Config)
		want []string // lines of the file; nil: no file
	}{
		{"embedded mode", func(c *config.Config) { c.Server.ServeRepo = true }, []string{
			"baseurl=http://127.0.0.1:5000/repo/$releasever/$basearch/", "repo_gpgcheck=0"}},
		{"public_url and signing", func(c *config.Config) {
			c.Server.PublicURL = "https://repo.example.com/"
			c.Indexer.Sign = &config.Sign{KeyID: "ABC", PublicKey: "RPM-GPG-KEY-test"}
		}, []string{"baseurl=https://repo.example.com/repo/$releasever/$basearch/", "repo_gpgcheck=1",
			"gpgkey=https://repo.example.com/repo/RPM-GPG-KEY-test"}},
		{"dist tag layout", func(c *config.Config) {
			c.Server.PublicURL = "https://repo.example.com"
			c.Repo.Layout = "{{.OSAbbr}}{{.OSRelease}}/{{.Arch}}"
			c.Repo.DistTags = []string{"el"}
		}, []string{"[rpm-ingestd-el]", "baseurl=https://repo.example.com/repo/el$releasever/$basearch/"}},
		{"behind a proxy without public_url", func(c *config.Config) { c.Server.Listen = "unix:/run/x.sock" }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Repo.TopDir = t.TempDir()
			cfg.Server.RepoURL = "/repo"
			tc.mod(cfg)
			if err := writeRepoFile(cfg, zaptest.NewLogger(t)); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(cfg.Repo.TopDir, "rpm-ingestd.repo"))
			if tc.want == nil {
				if !os.IsNotExist(err) {
					t.Errorf("a .repo file was written without a client URL: %q, %v", b, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(string(b), "\n")
			for _, w := range tc.want {
				if !strings.Contains("\n"+string(b), "\n"+w+"\n") {
					t.Errorf("file lacks the line %q:\n%s", w, strings.Join(lines, "\n"))
				}
			}
		})
	}
}

func TestWriteRepoFileUnwritableTopDir(t *testing.T) {
	cfg := config.Default()
	cfg.Server.PublicURL = "https://repo.example.com"
	cfg.Repo.TopDir = filepath.Join(t.TempDir(), "absent")
	if err := writeRepoFile(cfg, zaptest.NewLogger(t)); err == nil || !strings.Contains(err.Error(), "server.repo_file: write rpm-ingestd.repo") {
		t.Errorf("err = %v, want a server.repo_file error", err)
	}
}
