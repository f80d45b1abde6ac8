package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
)

// TestShippedNginxMatchesDeployConfig checks, without starting anything, that nginx/rpm-ingestd.conf and the
// production daemon configuration deploy/config.yml describe the same installation: the socket, the spool,
// the tree, the upload header and the size limit. TestEndToEnd proves the snippet works for one consistent
// set of paths; this proves the shipped pair is that consistent set.
func TestShippedNginxMatchesDeployConfig(t *testing.T) {
	snippetBytes, err := os.ReadFile("../nginx/rpm-ingestd.conf")
	if err != nil {
		t.Fatal(err)
	}
	snippet := stripComments(string(snippetBytes))
	data, err := os.ReadFile("../deploy/config.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		t.Fatalf("deploy/config.yml: %v", err)
	}
	srv := cfg.Server

	// One value per directive, or the same value every time it appears.
	value := func(re string) string {
		t.Helper()
		ms := regexp.MustCompile(re).FindAllStringSubmatch(snippet, -1)
		if len(ms) == 0 {
			t.Fatalf("nginx/rpm-ingestd.conf has no match for %s", re)
		}
		for _, m := range ms[1:] {
			if m[1] != ms[0][1] {
				t.Errorf("nginx/rpm-ingestd.conf: %s has different values %q and %q", re, ms[0][1], m[1])
			}
		}
		return ms[0][1]
	}

	if got := "unix:" + value(`proxy_pass http://unix:(\S+):;`); got != srv.Listen {
		t.Errorf("proxy_pass to %s, but deploy/config.yml server.listen is %s", got, srv.Listen)
	}
	if got := value(`proxy_set_header (\S+) \$request_body_file;`); !strings.EqualFold(got, srv.UploadHeader) {
		t.Errorf("the spool path travels in %s, but server.upload_header is %s", got, srv.UploadHeader)
	}
	temp := value(`client_body_temp_path (\S+)`)
	if rel, err := filepath.Rel(srv.SpoolDir, temp); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		t.Errorf("client_body_temp_path %s is not below server.spool_dir %s: the daemon would refuse every upload with 403", temp, srv.SpoolDir)
	}
	if got, want := value(`alias (\S+);`), strings.TrimRight(cfg.Repo.TopDir, "/")+"/"; got != want {
		t.Errorf("/repo/ serves %s, but repo.top_dir is %s", got, want)
	}
	if got, want := value(`location (/\S+/) \{\s*alias`), strings.TrimRight(srv.RepoURL, "/")+"/"; got != want {
		t.Errorf("the tree is published at %s, but server.repo_url is %s (upload responses would link elsewhere)", got, want)
	}
	if got := value(`location \^~ (\S+) \{`); got != strings.TrimRight(srv.UploadPath, "/") {
		t.Errorf("uploads go to %s, but server.upload_path is %s", got, srv.UploadPath)
	}
	size, err := config.ParseSize(value(`client_max_body_size ([1-9]\S*);`)) // 0 (no check) is the login check's
	if err != nil {
		t.Fatal(err)
	}
	if size != srv.MaxUploadSize {
		t.Errorf("client_max_body_size is %d bytes, server.max_upload_size %d: keep them equal", size, srv.MaxUploadSize)
	}
	if srv.DirectUpload {
		t.Errorf("deploy/config.yml has direct_upload: true behind nginx: uploads could bypass nginx's authentication")
	}

	// The directives whose absence the end-to-end run would not notice (see the comments in the snippet).
	for _, d := range []string{
		`client_body_in_file_only clean;`,
		`proxy_pass_request_body off;`,
		`proxy_set_header Content-Length "";`, // only HTTP/1.1 keep-alive upstreams hang without it
		`proxy_set_header X-Remote-User $rpm_ingestd_user;`,
		`auth_request_set $rpm_ingestd_user $upstream_http_x_remote_user;`,
		`proxy_set_header X-Real-IP $remote_addr;`,
		`proxy_next_upstream off;`,
		`autoindex on;`,
	} {
		if !strings.Contains(snippet, d) {
			t.Errorf("nginx/rpm-ingestd.conf lacks %s", d)
		}
	}
	if !regexp.MustCompile(`location ~ /\\\. \{\s*return 404;`).MatchString(snippet) {
		t.Errorf("nginx/rpm-ingestd.conf lacks the dotfile rule `location ~ /\\. { return 404; }`")
	}

	// Logins: the daemon checks every one (auth_request), so nginx must never answer them itself, the check must
	// be an internal location (no client may ask it), every route that changes the tree must use it with the
	// 429 and 502 mappings, and the daemon must hold the user file.
	if strings.Contains(snippet, "auth_basic") {
		t.Errorf("nginx/rpm-ingestd.conf uses auth_basic: logins checked by nginx bypass the daemon's limiter, metrics and audit trail")
	}
	if !regexp.MustCompile(`location = /api/v1/auth \{\s*internal;`).MatchString(snippet) {
		t.Errorf("nginx/rpm-ingestd.conf: the login check location = /api/v1/auth must start with `internal;`")
	}
	if !regexp.MustCompile(`(?s)location = /api/v1/auth \{[^}]*client_max_body_size 0;`).MatchString(snippet) {
		t.Errorf("nginx/rpm-ingestd.conf: the login check location needs client_max_body_size 0, or uploads over 1m fail the check")
	}
	for _, loc := range []string{`location \^~ /upload \{`, `location = /api/v1/promote \{`, `location ~ \^/api/v1/packages/\. \{`} {
		m := regexp.MustCompile(`(?s)` + loc + `(.*?)\n\}`).FindStringSubmatch(snippet)
		if m == nil {
			t.Errorf("nginx/rpm-ingestd.conf has no %s", loc)
			continue
		}
		for _, d := range []string{"auth_request /api/v1/auth;", "error_page 403 = @rpm_ingestd_denied;", "error_page 500 = @rpm_ingestd_auth_failed;",
			"auth_request_set $rpm_ingestd_retry_after $upstream_http_x_rpm_ingestd_retry_after;", "auth_request_set $rpm_ingestd_auth_status $upstream_status;"} {
			if !strings.Contains(m[1], d) {
				t.Errorf("nginx/rpm-ingestd.conf: %s lacks %s", loc, d)
			}
		}
	}
	if srv.Htpasswd != prodHtpasswd {
		t.Errorf("deploy/config.yml server.htpasswd is %q, want %s: nginx asks the daemon about every login", srv.Htpasswd, prodHtpasswd)
	}

	// The daemon must run as nginx's worker user; the unit and the snippet's explanation must agree on it.
	unit, err := os.ReadFile("../deploy/systemd/rpm-ingestd.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^User=(\S+)$`).FindSubmatch(unit)
	if m == nil {
		t.Fatal("deploy/systemd/rpm-ingestd.service has no User=")
	}
	if !strings.Contains(string(snippetBytes), "`"+string(m[1])+"`") {
		t.Errorf("the unit runs the daemon as %s, which nginx/rpm-ingestd.conf's Users note does not name", m[1])
	}
}

// stripComments removes nginx comments (no directive in the snippet has a '#' inside a value).
func stripComments(conf string) string {
	var b strings.Builder
	for _, l := range strings.Split(conf, "\n") {
		if i := strings.Index(l, "#"); i >= 0 {
			l = l[:i]
		}
		b.WriteString(l)
		b.WriteString("\n")
	}
	return b.String()
}
