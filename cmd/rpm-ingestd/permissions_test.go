package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
)

// TestPermissionActionsAgree: config validates actions by its own list (it imports nothing of ours); auth decides
// by its own. They must be the same.
func TestPermissionActionsAgree(t *testing.T) {
	if !slices.Equal(config.PermissionActions, auth.Actions) {
		t.Fatalf("config %v, auth %v", config.PermissionActions, auth.Actions)
	}
}

// permConfig is a daemon configuration with channels testing (default) and stable, an htpasswd file, an audit
// trail, and the given permissions block (indented under server:).
func permConfig(listen, permissions, repoExtra string) string {
	return daemonConfig(listen, "1h", "  htpasswd: htpasswd\n"+permissions, `  layout: "{{.Channel}}/{{.OSRelease}}/{{.Arch}}"
  channels: [testing, stable]
  default_channel: testing
`+repoExtra, "  audit_file: audit.jsonl\n")
}

// TestPermissionsDaemon (issue 19): the real daemon, first through --check-config with every kind of mistake in
// server.permissions (all reported at once, exit 2) and a user htpasswd does not name (a warning, exit 0), then
// serving uploads, promotions and deletions from three users over TCP. Each refusal is 403 with the message that
// names user, action and channel or release; it leaves the tree alone and adds exactly one audit line, with
// result "forbidden".
func TestPermissionsDaemon(t *testing.T) {
	tr := newTree(t)
	htpasswd := filepath.Join(tr.dir, "htpasswd")
	pw := map[string]string{"ci": "ci-pw", "release": "release-pw", "admin": "admin-pw"}
	for i, u := range []string{"ci", "release", "admin"} {
		flag := "-bB"
		if i == 0 {
			flag = "-cbB"
		}
		if out, err := exec.Command("htpasswd", flag, "-C", "4", htpasswd, u, pw[u]).CombinedOutput(); err != nil {
			t.Fatalf("htpasswd (install apache2-utils): %v\n%s", err, out)
		}
	}
	cfgPath := filepath.Join(tr.dir, "config.yml")
	addr := freeAddr(t)

	// --check-config: four mistakes, each named with its rule and line, all in one run.
	bad := permConfig(addr, `  permissions:
    - users: [ci]
      actions: [upload, publish]
      channels: [testing, prod]
      os_releases: ["9", "7"]
    - actions: [promote]
`, "  os_releases: [\"8\", \"9\"]\n")
	os.WriteFile(cfgPath, []byte(bad), 0o644)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--check-config", "-c", cfgPath}, &stdout, &stderr); code != 2 {
		t.Fatalf("--check-config on a bad file: exit %d, want 2\n%s", code, stderr.String())
	}
	for _, want := range []string{
		`line 7: server.permissions[0]: unknown action "publish": use any of upload, promote, delete`,
		`line 7: server.permissions[0]: channel "prod" is not in repo.channels (testing, stable)`,
		`line 7: server.permissions[0]: OS release "7" is not in repo.os_releases (8, 9)`,
		`line 11: server.permissions[1]: names no users`,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("--check-config does not report %q:\n%s", want, stderr.String())
		}
	}

	good := permConfig(addr, `  permissions:
    - users: [ci]
      actions: [upload]
      channels: [testing]
      os_releases: ["9"]
    - users: [release, relmgr]
      actions: [upload, promote]
    - users: [admin]
      actions: [upload, promote, delete]
`, "")
	os.WriteFile(cfgPath, []byte(good), 0o644)
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"--check-config", "-c", cfgPath}, &stdout, &stderr); code != 0 {
		t.Fatalf("--check-config on a good file: exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), `rpm-ingestd: warning: server.permissions names user "relmgr", which no line of `+htpasswd+" names") ||
		strings.Contains(stderr.String(), `user "ci"`) {
		t.Errorf("--check-config warnings:\n%s", stderr.String())
	}
	if !strings.Contains(stdout.String(), "permissions:") || !strings.Contains(stdout.String(), "os_releases:") {
		t.Errorf("--check-config does not print the permissions:\n%s", stdout.String())
	}

	d := &authDaemon{child: tr.launch(t, addr, cfgPath)}
	d.waitHealthy(t)
	base := "http://" + addr
	hc := tcpFrom("127.0.0.1")
	audit := filepath.Join(tr.dir, "audit.jsonl")
	do := func(user, method, path string, body []byte) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, pw[user])
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	el9 := testrpm.Build(t, testrpm.Spec{Name: "tool", Version: "1.0", Release: "1.el9", Arch: "x86_64"})
	el8 := testrpm.Build(t, testrpm.Spec{Name: "tool", Version: "1.0", Release: "1.el8", Arch: "x86_64"})
	noarch := testrpm.Build(t, testrpm.Spec{Name: "docs", Version: "1.0", Release: "1.el9", Arch: "noarch"})
	steps := []struct {
		name, user, method, path string
		body                     []byte
		status                   int
		msg                      string
	}{
		{"no credentials", "", "PUT", "/upload/stable/", el9, 401, "unauthorized: send the Basic credentials"},
		{"ci into stable", "ci", "PUT", "/upload/stable/", el9, 403, "forbidden: user ci may not upload into stable (server.permissions)"},
		{"ci into testing, release 8", "ci", "PUT", "/upload/testing/", el8, 403, "forbidden: user ci may not upload into testing for OS release 8 (server.permissions)"},
		{"ci noarch into stable", "ci", "PUT", "/upload/stable/", noarch, 403, "forbidden: user ci may not upload into stable (server.permissions)"},
		{"ci into testing", "ci", "PUT", "/upload/testing/", el9, 201, "OK - Accessible as /repo/testing/9/x86_64/Packages/tool-1.0-1.el9.x86_64.rpm"},
		{"ci noarch into testing", "ci", "PUT", "/upload/", noarch, 201, "OK - Accessible as /repo/testing/9/x86_64/Packages/docs-1.0-1.el9.noarch.rpm /repo/testing/9/aarch64/Packages/docs-1.0-1.el9.noarch.rpm"},
		{"ci promotes", "ci", "POST", "/api/v1/promote", []byte(`{"from":"testing","to":"stable","name":"tool","version":"1.0","release":"1.el9"}`), 403, "forbidden: user ci may not promote (server.permissions)"},
		{"release promotes", "release", "POST", "/api/v1/promote", []byte(`{"from":"testing","to":"stable","name":"tool","version":"1.0","release":"1.el9"}`), 201, `"status": "created"`},
		{"ci deletes", "ci", "DELETE", "/api/v1/packages/stable/9/x86_64/Packages/tool-1.0-1.el9.x86_64.rpm", nil, 403, "forbidden: user ci may not delete (server.permissions)"},
		{"release deletes", "release", "DELETE", "/api/v1/packages/stable/9/x86_64/Packages/tool-1.0-1.el9.x86_64.rpm", nil, 403, "forbidden: user release may not delete (server.permissions)"},
		{"admin deletes", "admin", "DELETE", "/api/v1/packages/stable/9/x86_64/Packages/tool-1.0-1.el9.x86_64.rpm", nil, 200, `"deleted": [`},
	}
	for _, st := range steps {
		before, auditBefore := treeHash(t, tr.top), auditRecords(t, audit)
		code, body := do(st.user, st.method, st.path, st.body)
		if code != st.status || !strings.Contains(body, st.msg) {
			t.Fatalf("%s: %d %q, want %d %q", st.name, code, body, st.status, st.msg)
		}
		if code < 400 {
			continue
		}
		if after := treeHash(t, tr.top); after != before {
			t.Errorf("%s: refused, but the tree changed", st.name)
		}
		added := auditRecords(t, audit)[len(auditBefore):]
		want := map[int]string{401: "unauthorized", 403: "forbidden"}[code]
		if len(added) != 1 || added[0]["result"] != want || code == 403 && added[0]["user"] != st.user {
			t.Errorf("%s: audit lines added %v, want one with result %q and user %q", st.name, added, want, st.user)
		}
	}

	// The status page, which anyone may read: the accepted uploads and who made them, but none of the refusals
	// (they say who tried what they may not) and nothing of the permissions themselves.
	resp, err := hc.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "tool-1.0-1.el9.x86_64") {
		t.Fatalf("status page: %d\n%s", resp.StatusCode, page)
	}
	for _, secret := range []string{"forbidden", "unauthorized", "tool-1.0-1.el8", "may not", "permissions", "relmgr", "htpasswd", "admin-pw"} {
		if strings.Contains(string(page), secret) {
			t.Errorf("the status page shows %q to a reader without credentials", secret)
		}
	}

	// whoami, as a CI job would check its rights.
	code, body := do("ci", "GET", "/api/v1/whoami", nil)
	var who struct {
		User        string      `json:"user"`
		Restricted  bool        `json:"restricted"`
		Permissions []auth.Rule `json:"permissions"`
	}
	if err := json.Unmarshal([]byte(body), &who); err != nil || code != 200 || who.User != "ci" || !who.Restricted ||
		len(who.Permissions) != 1 || !slices.Equal(who.Permissions[0].Channels, []string{"testing"}) {
		t.Errorf("whoami: %d %s (%v)", code, body, err)
	}
	if code, _ := do("", "GET", "/api/v1/whoami", nil); code != 401 {
		t.Errorf("whoami without credentials: %d, want 401", code)
	}
	log := d.stop(t)
	if !strings.Contains(log, `server.permissions names user \"relmgr\"`) {
		t.Errorf("the start-up log does not warn about relmgr")
	}
}

// treeHash is one hash over every file below top (names and contents), dot directories left out.
func treeHash(t *testing.T, top string) string {
	t.Helper()
	h := sha256.New()
	filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			b, _ := os.ReadFile(p)
			fmt.Fprintf(h, "%s %x\n", p, sha256.Sum256(b))
		}
		return nil
	})
	return fmt.Sprintf("%x", h.Sum(nil))
}

// auditRecords reads the audit trail as JSON objects; a missing file is empty.
func auditRecords(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestPermissionWarnings: without htpasswd, the permissions' user is a trusted proxy's X-Remote-User; trusting
// loopback then lets any local process name any user, which the start-up must say.
func TestPermissionWarnings(t *testing.T) {
	rules := []config.PermissionRule{{Users: []string{"ci"}, Actions: []string{"upload"}}}
	for _, tc := range []struct {
		proxies []string
		rules   []config.PermissionRule
		warn    bool
	}{
		{config.DefaultTrustedProxies(), rules, true},
		{[]string{"127.0.0.1"}, rules, true},
		{[]string{"::1/128"}, rules, true},
		{[]string{"127.0.0.2"}, rules, true},
		{[]string{"0.0.0.0/0"}, rules, true},
		{[]string{}, rules, false},
		{[]string{"192.0.2.0/24"}, rules, false},
		{config.DefaultTrustedProxies(), nil, false},
	} {
		cfg := config.Default()
		cfg.Server.TrustedProxies, cfg.Server.Permissions = tc.proxies, tc.rules
		got := permissionWarnings(cfg)
		if tc.warn != (len(got) == 1 && strings.Contains(got[0], "any local process can name any user")) || !tc.warn && len(got) != 0 {
			t.Errorf("trusted_proxies %v, rules %v: warnings %q", tc.proxies, tc.rules != nil, got)
		}
	}
}
