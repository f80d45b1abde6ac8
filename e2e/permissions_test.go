package e2e

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 19 behind the shipped nginx snippet: nginx authenticates with auth_basic and passes the user on in
// X-Remote-User; the daemon (without an htpasswd of its own) trusts it from nginx's workers on the unix socket and
// applies server.permissions to that user.
const (
	relmgrUser = "relmgr"
	relmgrPass = "e2e-relmgr-secret"
)

// TestPermissionsThroughNginx: the upload user (a CI account) may upload into testing only; a release manager may
// promote. A CI upload into stable gets 403 naming the user and the channel, with nothing stored and nothing left
// in the spool; into testing it gets 201. The CI user's promotion is refused, the release manager's done.
func TestPermissionsThroughNginx(t *testing.T) {
	s := newStackWith(t, func(s *stack) {
		s.repoExtra = "  channels: [testing, stable]\n  default_channel: testing"
		s.layout = channelLayout
		s.serverExtra = "  permissions:\n" +
			"    - users: [" + uploadUser + "]\n      actions: [upload]\n      channels: [testing]\n" +
			"    - users: [" + relmgrUser + "]\n      actions: [upload, promote]\n"
		// A second nginx user, in the file nginx's auth_basic reads.
		s.run(t, s.tools["htpasswd"], "-bB", filepath.Join(s.ngxDir, "htpasswd"), relmgrUser, relmgrPass)
	})
	hello := filepath.Join(fixtureDir, "hello-1.0-1.el9.x86_64.rpm")

	r := s.curlUpload(t, hello, s.base+"/upload/stable/", curlAuth()...)
	if r.code != http.StatusForbidden || !strings.Contains(r.body, "user "+uploadUser+" may not upload into stable (server.permissions)") {
		t.Fatalf("CI upload into stable: %d %q, want 403 naming the user and the channel", r.code, r.body)
	}
	if files := s.packageFiles(t); len(files) != 0 {
		t.Fatalf("a refused upload was stored: %v", files)
	}
	s.requireSpoolEmpty(t, "the refused upload")

	r = s.curlUpload(t, hello, s.base+"/upload/testing/", curlAuth()...)
	if r.code != http.StatusCreated || r.location != "/repo/testing/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm" {
		t.Fatalf("CI upload into testing: %d %q (Location %s), want 201", r.code, r.body, r.location)
	}

	promote := []byte(`{"from":"testing","to":"stable","name":"hello","version":"1.0","release":"1.el9"}`)
	before := s.packageFiles(t)
	if r := s.do(t, http.MethodPost, "/api/v1/promote", promote, map[string]string{"Content-Type": "application/json"}, true); r.code != http.StatusForbidden ||
		!strings.Contains(r.body, "user "+uploadUser+" may not promote (server.permissions)") {
		t.Fatalf("CI promotion: %d %q, want 403", r.code, r.body)
	}
	if after := s.packageFiles(t); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Fatalf("a refused promotion changed the tree: %v → %v", before, after)
	}
	req, err := http.NewRequest(http.MethodPost, s.base+"/api/v1/promote", bytes.NewReader(promote))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(relmgrUser, relmgrPass)
	resp, err := s.web.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("release manager's promotion: %s, want 201", resp.Status)
	}
	if _, err := os.Stat(filepath.Join(s.top, "stable/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm")); err != nil {
		t.Fatalf("not promoted: %v", err)
	}
	// A client cannot pose as the release manager: nginx sets X-Remote-User itself, from auth_basic.
	forged := s.do(t, http.MethodPost, "/api/v1/promote", []byte(`{"from":"testing","to":"stable","name":"hello","version":"1.0","release":"1.el9","arch":"x86_64"}`),
		map[string]string{"Content-Type": "application/json", "X-Remote-User": relmgrUser}, true)
	if forged.code != http.StatusForbidden {
		t.Fatalf("CI promotion with a forged X-Remote-User: %d %q, want 403", forged.code, forged.body)
	}
}
