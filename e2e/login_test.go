package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// loginLimit is the daemon's failed-login limit per client address and minute (cmd/rpm-ingestd loginFailures),
// as the README documents it.
const loginLimit = 10

// TestNginxLoginsLimitedAndCounted sends wrong passwords through the real nginx with the shipped snippet, which
// asks the daemon about every login (auth_request): the daemon's limiter turns them into 429 after the limit,
// nginx passes that 429 on (with Retry-After) instead of a 500, the refusals are counted in /metrics and written to
// the audit trail with the client's address, and the right password from another address still uploads, with the
// user the daemon checked (not one the client names) in the audit trail.
func TestNginxLoginsLimitedAndCounted(t *testing.T) {
	var audit string
	s := newStackWith(t, func(s *stack) {
		audit = filepath.Join(s.dir, "home", "audit.log") // home is the daemon's user's
		s.logExtra = "  audit_file: " + audit
	})
	spec := testrpm.Spec{Name: "logincheck", Release: "1.el9", Arch: "x86_64"}
	file := testrpm.WriteFile(t, s.dir, spec)
	dst := filepath.Join(s.top, "9", "x86_64", "Packages", spec.FileName())

	// 25 wrong passwords from 127.0.0.1, each claiming another X-Real-IP: nginx overwrites it with $remote_addr, so
	// the rotation must not give fresh tries.
	var codes []int
	for i := range 25 {
		r := s.curlUpload(t, file, s.base+"/upload/", "-u", uploadUser+":wrong",
			"-H", fmt.Sprintf("X-Real-IP: 198.51.100.%d", i+1), "-H", "X-Remote-User: "+uploadUser)
		codes = append(codes, r.code)
		switch r.code {
		case http.StatusUnauthorized:
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("try %d: 401 without a Basic WWW-Authenticate (%q)", i+1, r.header.Get("WWW-Authenticate"))
			}
		case http.StatusTooManyRequests:
			if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 {
				t.Errorf("try %d: 429 with Retry-After %q, want whole seconds", i+1, r.header.Get("Retry-After"))
			}
			if !strings.Contains(r.body, "too many failed logins") {
				t.Errorf("try %d: 429 body %q does not say why", i+1, r.body)
			}
		}
	}
	want := make([]int, 25)
	for i := range want {
		want[i] = http.StatusTooManyRequests
		if i < loginLimit {
			want[i] = http.StatusUnauthorized
		}
	}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Fatalf("25 wrong passwords through nginx answered %v, want %d × 401 then 429", codes, loginLimit)
	}
	// The right password does not get a limited address back in early.
	if r := s.curlUpload(t, file, s.base+"/upload/", "-u", uploadUser+":"+uploadPass); r.code != http.StatusTooManyRequests || fileExists(dst) {
		t.Fatalf("right password from the limited address: %d %s, want 429 and nothing stored", r.code, r.body)
	}
	s.requireSpoolEmpty(t, "refused logins")

	// Another client (curl binds 127.0.0.2; nginx sees it as $remote_addr) is not locked out, and the user it
	// names in its own X-Remote-User header is ignored.
	r := s.curlUpload(t, file, s.base+"/upload/", "--interface", "127.0.0.2", "-u", uploadUser+":"+uploadPass,
		"-H", "X-Remote-User: mallory")
	if r.code != http.StatusCreated || !fileExists(dst) {
		t.Fatalf("right password from 127.0.0.2: %d %s, want 201 and %s", r.code, r.body, dst)
	}

	// The login check itself is nginx's internal location: clients get 404, credentials or not.
	for _, auth := range []bool{false, true} {
		if r := s.do(t, http.MethodGet, "/api/v1/auth", nil, map[string]string{"X-Real-IP": "192.0.2.1"}, auth); r.code != http.StatusNotFound {
			t.Errorf("GET /api/v1/auth from a client (credentials %v): %d %s, want 404", auth, r.code, r.body)
		}
	}

	// Nor through an encoded or dotted spelling of the path (nginx matches the decoded, normalised path).
	for _, p := range []string{"/api/v1/%61uth", "/api/v1/packages/../auth", "/api/v1/auth?x=1"} {
		code := s.run(t, s.tools["curl"], "-sS", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
			"-u", uploadUser+":"+uploadPass, "-H", "X-Real-IP: 192.0.2.1", s.base+p)
		if strings.TrimSpace(code) != "404" {
			t.Errorf("GET %s from a client: %s, want 404", p, code)
		}
	}

	// A wrong password on a deletion is checked and recorded the same way (from a third address).
	del := s.run(t, s.tools["curl"], "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.3",
		"-u", uploadUser+":wrong", "-X", "DELETE", s.base+"/api/v1/packages/9/x86_64/Packages/"+spec.FileName())
	if strings.TrimSpace(del) != "401" || !fileExists(dst) {
		t.Errorf("DELETE with a wrong password: %s, want 401 and the file kept", del)
	}
	// With the right password (from a fourth address) it is done; the daemon checks the password again and sees
	// nginx as the client, so the audit record keeps the address nginx reported as forwarded_for.
	del = s.run(t, s.tools["curl"], "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.4",
		"-u", uploadUser+":"+uploadPass, "-X", "DELETE", s.base+"/api/v1/packages/9/x86_64/Packages/"+spec.FileName())
	if strings.TrimSpace(del) != "200" || fileExists(dst) {
		t.Errorf("DELETE with the right password: %s, want 200 and the file gone", del)
	}

	// /metrics (nginx allows 127.0.0.1): every refused upload is counted, by result.
	m := s.do(t, http.MethodGet, "/metrics", nil, nil, false)
	for result, n := range map[string]int{"unauthorized": loginLimit, "rate_limited": 25 - loginLimit + 1, "created": 1} {
		re := regexp.MustCompile(`(?m)^rpm_ingestd_uploads_total\{result="` + result + `"\} (\d+)$`)
		got := re.FindStringSubmatch(m.body)
		if got == nil || got[1] != strconv.Itoa(n) {
			t.Errorf("rpm_ingestd_uploads_total{result=%q} = %v, want %d", result, got, n)
		}
	}

	// The audit trail: one record per refusal, with the client's real address; the upload with the checked user.
	type record struct {
		Action, User, Client, Result string
		FileName                     string `json:"file_name"`
		ForwardedFor                 string `json:"forwarded_for"`
		Status                       int
	}
	count := map[string]int{}
	var stored, deleted []record
	for _, l := range lines(readFile(audit)) {
		var rec record
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		count[fmt.Sprintf("%s %s %d %s %s", rec.Action, rec.Client, rec.Status, rec.Result, rec.FileName)]++
		if rec.Status == http.StatusCreated {
			stored = append(stored, rec)
		}
		if rec.Action == "delete" && rec.Status == http.StatusOK {
			deleted = append(deleted, rec)
		}
	}
	name := spec.FileName()
	for k, n := range map[string]int{
		"upload 127.0.0.1 401 unauthorized " + name: loginLimit,
		"upload 127.0.0.1 429 rate_limited " + name: 25 - loginLimit + 1,
		"delete 127.0.0.3 401 unauthorized ":        1,
	} {
		if count[k] != n {
			t.Errorf("audit: %d records %q, want %d; all: %v", count[k], k, n, count)
		}
	}
	if len(stored) != 1 || stored[0].User != uploadUser || stored[0].Client != "127.0.0.2" {
		t.Errorf("audit: stored uploads %+v, want one by %s from 127.0.0.2", stored, uploadUser)
	}
	if len(deleted) != 1 || deleted[0].User != uploadUser || deleted[0].ForwardedFor != "127.0.0.4" {
		t.Errorf("audit: deletions %+v, want one by %s forwarded for 127.0.0.4", deleted, uploadUser)
	}
}

// TestNginxLoginCheckDaemonDown: with the daemon stopped, the login check cannot be made. nginx must answer 502 (what
// clients and deploy/ci/upload.sh retry), not auth_request's 500, and never let the request through.
func TestNginxLoginCheckDaemonDown(t *testing.T) {
	s := newStack(t)
	spec := testrpm.Spec{Name: "downcheck", Release: "1.el9", Arch: "x86_64"}
	file := testrpm.WriteFile(t, s.dir, spec)
	s.stopDaemon(t, false)
	r := s.curlUpload(t, file, s.base+"/upload/", "-u", uploadUser+":"+uploadPass)
	if r.code != http.StatusBadGateway || !strings.Contains(r.body, "did not answer the login check") {
		t.Errorf("upload with the daemon stopped: %d %q, want 502 saying the login check failed", r.code, r.body)
	}
	s.requireSpoolEmpty(t, "daemon down")
	s.startDaemon(t, defaultTiming)
	if r := s.curlUpload(t, file, s.base+"/upload/", "-u", uploadUser+":"+uploadPass); r.code != http.StatusCreated {
		t.Errorf("upload after the restart: %d %s, want 201", r.code, r.body)
	}
}
