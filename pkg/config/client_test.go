package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadRejectsBadClientKeys(t *testing.T) {
	tests := []struct {
		file string
		want []string // every substring must appear in the error
	}{
		{"bad-client.yaml", []string{
			`line 3: server.public_url: "repo.example.com" is not an http(s) URL: write the URL clients use, like https://repo.example.com`,
			`line 4: server.repo_file: "../escape.repo" must be a plain file name ending in .repo`,
			"line 5: server.max_wait: must be a positive duration, like 5m",
		}},
		{"bad-client-2.yaml", []string{
			`line 3: server.public_url: "https://user:pw@repo.example.com/?x=1" must not carry a query, a fragment or credentials`,
			`line 4: server.repo_file: ".hidden.repo" must be a plain file name ending in .repo`,
			"line 5: server.max_wait: 2h0m0s is longer than 1h0m0s",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load(filepath.Join("..", "..", "testdata", "config", tc.file))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
				}
			}
		})
	}
}

func TestClientDefaults(t *testing.T) {
	c := Default()
	if c.Server.RepoFile != "rpm-ingestd.repo" || time.Duration(c.Server.MaxWait) != 5*time.Minute || c.Server.PublicURL != "" {
		t.Errorf("defaults: repo_file %q, max_wait %s, public_url %q", c.Server.RepoFile, c.Server.MaxWait, c.Server.PublicURL)
	}
}

func TestClientURL(t *testing.T) {
	tests := []struct {
		name      string
		publicURL string
		listen    string
		serveRepo bool
		want      string
	}{
		{"public_url wins, trailing slash dropped", "https://repo.example.com/", "unix:/run/x.sock", false, "https://repo.example.com"},
		{"public_url with a path prefix", "https://h.example.com/rpms", "127.0.0.1:5000", true, "https://h.example.com/rpms"},
		{"embedded mode derives from listen", "", "127.0.0.1:5000", true, "http://127.0.0.1:5000"},
		{"embedded mode on a host name", "", "build.example.com:8080", true, "http://build.example.com:8080"},
		{"behind a proxy nothing is derived", "", "127.0.0.1:5000", false, ""},
		{"unix socket", "", "unix:/run/x.sock", true, ""},
		{"wildcard IPv4", "", "0.0.0.0:5000", true, ""},
		{"wildcard IPv6", "", "[::]:5000", true, ""},
		{"empty host", "", ":5000", true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Server.PublicURL, c.Server.Listen, c.Server.ServeRepo = tc.publicURL, tc.listen, tc.serveRepo
			if got := c.ClientURL(); got != tc.want {
				t.Errorf("ClientURL() = %q, want %q", got, tc.want)
			}
		})
	}
}
