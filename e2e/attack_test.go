package e2e

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestAttackThroughNginx: attempts to get past the shipped nginx snippet and the daemon's permissions with the
// real nginx and daemon. The CI user (upload into testing only) and the release manager (upload and promote)
// try other spellings of the channel, a forged X-Remote-User or X-Package-Name, and the internal login check.
// Nothing may be stored and nothing may stay in the spool.
func TestAttackThroughNginx(t *testing.T) {
	s := newStackWith(t, func(s *stack) {
		s.repoExtra = "  channels: [testing, stable]\n  default_channel: testing"
		s.layout = channelLayout
		s.serverExtra = "  permissions:\n" +
			"    - users: [" + uploadUser + "]\n      actions: [upload]\n      channels: [testing]\n" +
			"    - users: [" + relmgrUser + "]\n      actions: [upload, promote]\n"
		s.run(t, s.tools["htpasswd"], "-bB", filepath.Join(s.ngxDir, "htpasswd"), relmgrUser, relmgrPass)
	})
	hello := filepath.Join(fixtureDir, "hello-1.0-1.el9.x86_64.rpm")
	relmgr := []string{"-u", relmgrUser + ":" + relmgrPass}
	for _, tc := range []struct {
		name   string
		url    string
		extra  []string
		status int
		body   string
	}{
		// nginx passes the request URI as the client sent it: the daemon sees the encoded slash.
		{"encoded slash: testing%2F..%2Fstable", "/upload/testing%2F..%2Fstable/", curlAuth(), http.StatusNotFound, "no more segments"},
		{"encoded slash: stable%2F..%2Ftesting by the release manager", "/upload/stable%2F..%2Ftesting/", relmgr, http.StatusNotFound, "no more segments"},
		{"forged X-Remote-User", "/upload/stable/", append(curlAuth(), "-H", "X-Remote-User: "+relmgrUser), http.StatusForbidden, "user " + uploadUser + " may not upload into stable"},
		{"forged X-Package-Name", "/upload/stable/", append(curlAuth(), "-H", "X-Package-Name: /etc/passwd"), http.StatusForbidden, "user " + uploadUser + " may not upload into stable"},
		// nginx resolves the dot segment before it picks a location: /stable/ is no location of the snippet.
		{"channel %2e%2e", "/upload/%2e%2e/stable/", curlAuth(), http.StatusNotFound, "nginx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.curlUpload(t, hello, s.base+tc.url, tc.extra...)
			if r.code != tc.status || !strings.Contains(r.body, tc.body) {
				t.Fatalf("%s: %d %q, want %d %q", tc.url, r.code, r.body, tc.status, tc.body)
			}
			if files := s.packageFiles(t); len(files) != 0 {
				t.Fatalf("stored: %v", files)
			}
			s.requireSpoolEmpty(t, tc.name)
		})
	}
	if r := s.do(t, http.MethodGet, "/api/v1/auth", nil, nil, true); r.code != http.StatusNotFound {
		t.Errorf("GET /api/v1/auth from a client: %d %q, want 404 (internal)", r.code, r.body)
	}
	if r := s.do(t, http.MethodDelete, "/api/v1/packages/testing/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", nil,
		map[string]string{"X-Remote-User": relmgrUser}, true); r.code != http.StatusForbidden || !strings.Contains(r.body, "user "+uploadUser+" may not delete") {
		t.Errorf("DELETE with a forged X-Remote-User: %d %q, want 403 naming %s", r.code, r.body, uploadUser)
	}
}
