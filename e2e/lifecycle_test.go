package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// channelLayout is the layout of the lifecycle suite: a channel above the usual release/arch tree.
const channelLayout = "{{.Channel}}/{{.OSRelease}}/{{.Arch}}"

// TestLifecycle runs the daemon with the channels testing (the default) and stable behind the shipped nginx
// snippet, and shows with dnf that a promoted build installs from stable and a deleted package is gone from the
// metadata after the next index run; that unknown channels, conflicting promotions, unauthenticated calls and
// deletions outside Packages/ are refused through nginx with nothing changed.
func TestLifecycle(t *testing.T) {
	s := newStack(t)
	// newStack starts the daemon on the suite's default layout; this suite needs the channel layout.
	s.stopDaemon(t, false)
	s.repoExtra = "  channels: [testing, stable]\n  default_channel: testing"
	s.layout = channelLayout
	s.startDaemon(t, defaultTiming)

	if !t.Run("UploadIntoChannels", s.testChannelUploads) {
		t.FailNow()
	}
	if !t.Run("PromoteInstallsFromStable", s.testPromote) {
		t.FailNow()
	}
	t.Run("PromoteConflict", s.testPromoteConflict)
	t.Run("DeleteGoneAfterIndex", s.testDelete)
	t.Run("DeleteConfinement", s.testDeleteConfinement)
}

// curlAuth is curl's option for the upload user.
func curlAuth() []string { return []string{"-u", uploadUser + ":" + uploadPass} }

// testChannelUploads uploads the build hello-1.0-1.el9 (x86_64, aarch64, source) and hello-data (noarch) into
// testing through every form of channel path, and an upload into an unknown channel.
func (s *stack) testChannelUploads(t *testing.T) {
	for _, u := range []struct{ file, url, location string }{
		{"hello-1.0-1.el9.x86_64.rpm", "/upload/testing/", "/repo/testing/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"},
		{"hello-1.0-1.el9.aarch64.rpm", "/upload/", "/repo/testing/9/aarch64/Packages/hello-1.0-1.el9.aarch64.rpm"},
		{"hello-1.0-1.el9.src.rpm", "/upload/testing/hello-1.0-1.el9.src.rpm", "/repo/testing/9/SRPMS/Packages/hello-1.0-1.el9.src.rpm"},
		{"hello-data-1.0-1.el9.noarch.rpm", "/upload/testing", "/repo/testing/9/x86_64/Packages/hello-data-1.0-1.el9.noarch.rpm"},
	} {
		r := s.curlUpload(t, filepath.Join(fixtureDir, u.file), s.base+u.url, curlAuth()...)
		if r.code != http.StatusCreated || r.location != u.location {
			t.Fatalf("curl -T %s %s: %d %s (Location %s), want 201 at %s", u.file, u.url, r.code, r.body, r.location, u.location)
		}
	}
	r := s.curlUpload(t, filepath.Join(fixtureDir, "hello-1.0-1.el9.x86_64.rpm"), s.base+"/upload/prod/", curlAuth()...)
	if r.code != http.StatusNotFound || !strings.Contains(r.body, "use one of testing, stable") {
		t.Errorf("upload into an unknown channel: %d %s, want 404 naming the channels", r.code, r.body)
	}
	s.requireSpoolEmpty(t, "the channel uploads")
	for _, f := range s.packageFiles(t) {
		if !strings.HasPrefix(f, "testing/") {
			t.Errorf("%s is outside the testing channel", f)
		}
	}
}

// promote posts a promotion through nginx and returns the answer.
func (s *stack) promote(t *testing.T, body string, auth bool) response {
	t.Helper()
	return s.do(t, http.MethodPost, "/api/v1/promote", []byte(body), map[string]string{"Content-Type": "application/json"}, auth)
}

// testPromote promotes the build and hello-data to stable and installs hello from there with dnf.
func (s *stack) testPromote(t *testing.T) {
	body := `{"from":"testing","to":"stable","name":"hello","version":"1.0","release":"1.el9"}`
	if r := s.promote(t, body, false); r.code != http.StatusUnauthorized {
		t.Errorf("promotion without credentials: %d, want 401 from nginx", r.code)
	}
	if r := s.do(t, http.MethodGet, "/api/v1/promote", nil, nil, true); r.code != http.StatusMethodNotAllowed {
		t.Errorf("GET /api/v1/promote: %d, want 405", r.code)
	}
	if got := s.packageFiles(t); slices.ContainsFunc(got, func(f string) bool { return strings.HasPrefix(f, "stable/") }) {
		t.Fatalf("refused promotions placed files: %v", got)
	}
	r := s.promote(t, body, true)
	if r.code != http.StatusCreated {
		t.Fatalf("promote hello: %d %s", r.code, r.body)
	}
	var got struct {
		Status string   `json:"status"`
		Paths  []string `json:"paths"`
		Repos  []string `json:"repos"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("promote answer: %v: %s", err, r.body)
	}
	want := []string{
		"/repo/stable/9/SRPMS/Packages/hello-1.0-1.el9.src.rpm",
		"/repo/stable/9/aarch64/Packages/hello-1.0-1.el9.aarch64.rpm",
		"/repo/stable/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm",
	}
	if slices.Sort(got.Paths); got.Status != "created" || !slices.Equal(got.Paths, want) {
		t.Errorf("promote answer: %s %v, want created %v", got.Status, got.Paths, want)
	}
	// nginx had the daemon check alice's login (auth_request), and the log (and the audit trail) must say so.
	if !slices.ContainsFunc(strings.Split(readFile(s.daemonLg), "\n"), func(l string) bool {
		return strings.Contains(l, `"msg":"promote done"`) && strings.Contains(l, `"user":"alice"`)
	}) {
		t.Errorf("no promotion logged with the user nginx authenticated (alice)")
	}
	if r := s.promote(t, body, true); r.code != http.StatusOK || !strings.Contains(r.body, `"present"`) {
		t.Errorf("promote hello again: %d %s, want 200 present", r.code, r.body)
	}
	r = s.promote(t, `{"from":"testing","to":"stable","name":"hello-data","version":"1.0","release":"1.el9","arch":"noarch"}`, true)
	if r.code != http.StatusCreated || !strings.Contains(r.body, "/repo/stable/9/aarch64/Packages/hello-data-1.0-1.el9.noarch.rpm") {
		t.Fatalf("promote hello-data: %d %s", r.code, r.body)
	}
	// The promoted files are the testing channel's inodes, not copies.
	for _, f := range []string{"9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", "9/aarch64/Packages/hello-data-1.0-1.el9.noarch.rpm"} {
		a, errA := os.Stat(filepath.Join(s.top, "testing", f))
		b, errB := os.Stat(filepath.Join(s.top, "stable", f))
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			t.Errorf("stable/%s is not a hard link of testing/%s: %v %v", f, f, errA, errB)
		}
	}

	stable := []string{"/repo/stable/9/x86_64/", "/repo/stable/9/aarch64/", "/repo/stable/9/SRPMS/"}
	s.waitIndexed(t, map[string]int{stable[0]: 1, stable[1]: 1, stable[2]: 1}, stable...)
	if got, want := s.repoquery(t, stable[:1]), []string{"hello-1.0-1.el9.x86_64", "hello-data-1.0-1.el9.noarch"}; !slices.Equal(got, want) {
		t.Errorf("repoquery %s: %v, want %v", stable[0], got, want)
	}
	if got, want := s.repoquery(t, stable[2:], "--arch=src"), []string{"hello-1.0-1.el9.src"}; !slices.Equal(got, want) {
		t.Errorf("repoquery --arch=src %s: %v, want %v", stable[2], got, want)
	}
	root := filepath.Join(s.dnfDir, "stable-root")
	s.dnf(t, root, stable[:1], "install", "hello", "hello-data")
	if b, err := os.ReadFile(filepath.Join(root, "usr", "bin", "hello")); err != nil || !strings.Contains(string(b), "hello from hello-1.0-1.el9") {
		t.Errorf("dnf install hello from stable: %q, %v", b, err)
	}
}

// testPromoteConflict: a different build of one file already in stable refuses the promotion with 409 and
// nothing changes, in stable or in testing.
func (s *stack) testPromoteConflict(t *testing.T) {
	ours := filepath.Join(s.dir, "clash-1.0-1.el9.x86_64.rpm")
	writeFile(t, ours, string(testrpm.Build(t, testrpm.Spec{Name: "clash", Release: "1.el9", Arch: "x86_64"})))
	theirs := filepath.Join(s.dir, "theirs", "clash-1.0-1.el9.x86_64.rpm")
	os.MkdirAll(filepath.Dir(theirs), 0o755)
	writeFile(t, theirs, string(testrpm.Build(t, testrpm.Spec{Name: "clash", Release: "1.el9", Arch: "x86_64", Salt: "rebuilt"})))
	for _, u := range []struct{ file, url string }{{ours, "/upload/testing/"}, {theirs, "/upload/stable/"}} {
		if r := s.curlUpload(t, u.file, s.base+u.url, curlAuth()...); r.code != http.StatusCreated {
			t.Fatalf("upload %s: %d %s", u.url, r.code, r.body)
		}
	}
	before := s.treeDigest(t)
	r := s.promote(t, `{"from":"testing","to":"stable","name":"clash","version":"1.0","release":"1.el9"}`, true)
	if r.code != http.StatusConflict || !strings.Contains(r.body, "clash-1.0-1.el9.x86_64.rpm is already stored with different content") {
		t.Errorf("conflicting promotion: %d %s, want 409", r.code, r.body)
	}
	if after := s.treeDigest(t); after != before {
		t.Errorf("the refused promotion changed the tree:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// treeDigest lists every package file with its SHA-256, for before/after comparisons.
func (s *stack) treeDigest(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, f := range s.packageFiles(t) {
		data, err := os.ReadFile(filepath.Join(s.top, f))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s\n", sha256Hex(data), f)
	}
	return b.String()
}

// testDelete deletes hello from stable's x86_64 repository and hello-data (every arch) through nginx, and
// waits for the next index run: dnf no longer lists them there; testing keeps its copies.
func (s *stack) testDelete(t *testing.T) {
	const x86 = "/repo/stable/9/x86_64/"
	const arm = "/repo/stable/9/aarch64/"
	path := "/api/v1/packages/stable/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"
	if r := s.do(t, http.MethodDelete, path, nil, nil, false); r.code != http.StatusUnauthorized {
		t.Errorf("DELETE without credentials: %d, want 401 from nginx", r.code)
	}
	if r := s.do(t, http.MethodGet, path, nil, nil, true); r.code != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d, want 405", path, r.code)
	}
	runs := map[string]int{x86: s.runsOf(t, x86), arm: s.runsOf(t, arm)}
	r := s.do(t, http.MethodDelete, path, nil, nil, true)
	if r.code != http.StatusOK || !strings.Contains(r.body, "/repo/stable/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm") {
		t.Fatalf("DELETE %s: %d %s", path, r.code, r.body)
	}
	r = s.do(t, http.MethodDelete, "/api/v1/packages/stable/9/aarch64/Packages/hello-data-1.0-1.el9.noarch.rpm?all_arches=1", nil, nil, true)
	if r.code != http.StatusOK || !strings.Contains(r.body, "/repo/stable/9/x86_64/Packages/hello-data-1.0-1.el9.noarch.rpm") {
		t.Fatalf("DELETE hello-data, all arches: %d %s", r.code, r.body)
	}
	if r := s.do(t, http.MethodDelete, path, nil, nil, true); r.code != http.StatusNotFound {
		t.Errorf("DELETE again: %d %s, want 404", r.code, r.body)
	}
	s.waitIndexed(t, map[string]int{x86: runs[x86] + 1, arm: runs[arm] + 1}, x86, arm)
	// clash (from PromoteConflict) stays; hello and hello-data are gone.
	if got, want := s.repoquery(t, []string{x86}), []string{"clash-1.0-1.el9.x86_64"}; !slices.Equal(got, want) {
		t.Errorf("repoquery %s after the deletions: %v, want %v", x86, got, want)
	}
	if got, want := s.repoquery(t, []string{arm}), []string{"hello-1.0-1.el9.aarch64"}; !slices.Equal(got, want) {
		t.Errorf("repoquery %s after the deletions: %v, want %v", arm, got, want)
	}
	if got := s.repoquery(t, []string{"/repo/testing/9/x86_64/"}); !slices.Contains(got, "hello-1.0-1.el9.x86_64") {
		t.Errorf("the testing channel lost its copy: %v", got)
	}
}

// testDeleteConfinement sends deletions that aim outside Packages/ or outside the tree, through nginx: each is
// refused (by nginx's own path normalisation or by the daemon) and nothing is touched.
func (s *stack) testDeleteConfinement(t *testing.T) {
	victim := filepath.Join(s.dir, "victim.rpm")
	writeFile(t, victim, "precious")
	outside := filepath.Join(s.dir, "outside", "Packages", "victim.rpm")
	os.MkdirAll(filepath.Dir(outside), 0o755)
	writeFile(t, outside, "precious")
	link := filepath.Join(s.top, "testing", "9", "x86_64", "Packages", "evil-1.0-1.el9.x86_64.rpm")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(link)
	escape := filepath.Join(s.top, "testing", "escape")
	if err := os.Symlink(filepath.Join(s.dir, "outside"), escape); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(escape)
	before := s.treeDigest(t)
	for _, p := range []string{
		"/api/v1/packages/../../victim.rpm",
		"/api/v1/packages/%2e%2e/%2e%2e/victim.rpm",
		"/api/v1/packages/testing/9/x86_64/Packages/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fvictim.rpm",
		"/api/v1/packages/%252e%252e/victim.rpm",
		"/api/v1/packages/testing/9/x86_64/Packages/evil-1.0-1.el9.x86_64.rpm",
		"/api/v1/packages/testing/escape/Packages/victim.rpm",
		"/api/v1/packages/testing/9/x86_64/repodata/repomd.xml",
		"/api/v1/packages/testing/9/x86_64/Packages/.hidden.rpm",
	} {
		r := s.do(t, http.MethodDelete, p, nil, nil, true)
		if r.code < 400 || r.code >= 500 {
			t.Errorf("DELETE %s: %d %s, want a 4xx", p, r.code, r.body)
		}
	}
	for _, v := range []string{victim, outside} {
		if b, err := os.ReadFile(v); err != nil || string(b) != "precious" {
			t.Errorf("the victim %s outside the tree: %q, %v", v, b, err)
		}
	}
	if _, err := os.Lstat(link); err != nil {
		t.Errorf("the planted symlink was removed: %v", err)
	}
	if after := s.treeDigest(t); after != before {
		t.Errorf("refused deletions changed the tree:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
