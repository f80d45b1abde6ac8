package config

import (
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// The keys that concern clients rather than uploads: where they find the repository host (public_url), the .repo
// file written for them (repo_file) and how long an upload may wait for its package to become visible (max_wait).

// ClientURL is the URL clients reach the repository host at, without a trailing slash: server.public_url when set.
// Otherwise, in embedded mode (serve_repo on a TCP listen address), "http://" + listen, since the daemon itself
// is then what clients talk to. It is "" when no usable URL follows from the configuration: behind a proxy the
// daemon cannot know the proxy's name, and a wildcard listen address (0.0.0.0, [::]) names no host a client can
// use. The caller then writes no .repo file and says which key to set.
func (c *Config) ClientURL() string {
	s := &c.Server
	if s.PublicURL != "" {
		return strings.TrimRight(s.PublicURL, "/")
	}
	if !s.ServeRepo || strings.HasPrefix(s.Listen, "unix:") {
		return ""
	}
	host, _, err := net.SplitHostPort(s.Listen)
	if err != nil || host == "" {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return ""
	}
	return "http://" + s.Listen
}

// validateClient checks public_url, repo_file and max_wait, reporting through bad as Validate does.
func (c *Config) validateClient(bad func(key, format string, args ...any)) {
	s := &c.Server
	if s.PublicURL != "" {
		u, err := url.Parse(s.PublicURL)
		switch {
		case err != nil, u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			bad("server.public_url", "%q is not an http(s) URL: write the URL clients use, like https://repo.example.com", s.PublicURL)
		case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			// dnf would append repo_url after a query or fragment, and credentials in a served file leak.
			bad("server.public_url", "%q must not carry a query, a fragment or credentials", s.PublicURL)
		}
	}
	// The name lands in top_dir, beside the repositories: a plain file name, visible (the dotfile rules of
	// nginx and serve_repo hide dot names), and *.repo because that is what dnf reads from /etc/yum.repos.d.
	if f := s.RepoFile; filepath.Base(f) != f || strings.HasPrefix(f, ".") || !strings.HasSuffix(f, ".repo") || f == ".repo" {
		bad("server.repo_file", "%q must be a plain file name ending in .repo, like rpm-ingestd.repo (it is written into repo.top_dir)", f)
	}
	if s.MaxWait <= 0 {
		bad("server.max_wait", "must be a positive duration, like 5m")
	} else if time.Duration(s.MaxWait) > maxMaxWait {
		bad("server.max_wait", "%s is longer than %s: a client waiting that long holds a connection and should poll /api/v1/uploads/{sha256} instead", s.MaxWait, Duration(maxMaxWait))
	}
}

// maxMaxWait bounds server.max_wait: far beyond any createrepo_c run worth waiting for, short enough that a
// forgotten client does not hold a connection for hours.
const maxMaxWait = time.Hour
