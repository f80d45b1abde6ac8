package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// TestReadOnlyRoutesThroughNginx: the shipped snippet passes the daemon's pages and read-only API through, with
// what they must show after one upload (the uploader as nginx authenticated them, the sha256), refuses anything
// but GET there, passes /metrics to the local scraper, and still hides dotfiles.
func TestReadOnlyRoutesThroughNginx(t *testing.T) {
	s := newStack(t)
	file := testrpm.WriteFile(t, t.TempDir(), testrpm.Spec{Name: "pagecheck", Release: "1.el9", Arch: "x86_64"})
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	if r := s.curlUpload(t, file, s.base+"/upload/", curlAuth()...); r.code != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.code, r.body)
	}
	s.waitIndexed(t, map[string]int{"/repo/9/x86_64/": 1}, "/repo/9/x86_64/")
	rel := "9/x86_64/Packages/" + filepath.Base(file)

	for _, c := range []struct {
		method, path string
		status       int
		want         []string
	}{
		{"GET", "/", 200, []string{"9/x86_64", "<html"}},
		{"GET", "/?q=pagech", 200, []string{"pagecheck-1.0-1.el9.x86_64"}},
		{"GET", "/packages/" + rel, 200, []string{sha, uploadUser}},
		{"GET", "/packages/9/x86_64/Packages/nothere-1-1.el9.x86_64.rpm", 404, nil},
		{"GET", "/readyz", 200, []string{"ready"}},
		{"GET", "/metrics", 200, []string{`rpm_ingestd_uploads_total{result="created"} 1`, `rpm_ingestd_repo_packages{repo="9/x86_64"} 1`}},
		{"GET", "/api/v1/retention", 200, []string{`"repo"`}},
		{"GET", "/api/v1/uploads/" + sha, 200, []string{`"visible": true`}},
		{"POST", "/", 405, nil},
		{"DELETE", "/api/v1/repos", 405, nil},
		{"GET", "/.rpm-ingestd-locks/", 404, nil},
	} {
		r := s.do(t, c.method, c.path, nil, nil, false)
		if r.code != c.status {
			t.Errorf("%s %s through nginx: %d, want %d: %.300s", c.method, c.path, r.code, c.status, r.body)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(r.body, w) {
				t.Errorf("%s %s through nginx: body lacks %q: %.500s", c.method, c.path, w, r.body)
			}
		}
	}

	r := s.do(t, "GET", "/api/v1/packages?name=pagecheck", nil, nil, false)
	var page struct {
		Items []struct {
			Path       string  `json:"path"`
			UploadedBy *string `json:"uploaded_by"`
			SHA256     *string `json:"sha256"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.body), &page); err != nil || r.code != 200 {
		t.Fatalf("GET /api/v1/packages: %d %v: %s", r.code, err, r.body)
	}
	if len(page.Items) != 1 || page.Items[0].Path != rel || page.Items[0].UploadedBy == nil ||
		*page.Items[0].UploadedBy != uploadUser || page.Items[0].SHA256 == nil || *page.Items[0].SHA256 != sha {
		t.Errorf("GET /api/v1/packages?name=pagecheck: %s", r.body)
	}
}
