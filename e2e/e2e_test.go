package e2e

import (
	"context"
	"encoding/xml"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

const fixtureDir = "../testdata/rpms"

// fixture is one real rpmbuild package from testdata/rpms and where it must land.
type fixture struct {
	file  string
	url   string   // upload URL path (and query); "/upload/" makes curl append the file name
	hdr   []string // extra curl -H values
	paths []string // expected locations below top_dir, the first one in Location
}

// fixtures cover every routing case of the documented layout: el8/el9, aarch64, Fedora, a module release, an
// el7_9 minor stream, noarch (fanned out to every arch), a source package (SRPMS), and a package without a dist
// tag routed by ?os_release= and by the X-OS-Release header. They alternate the two URL forms curl users type.
var fixtures = []fixture{
	{file: "hello-1.0-1.el9.x86_64.rpm", url: "/upload",
		paths: []string{"9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"}},
	{file: "hello-1.0-1.el8.x86_64.rpm", url: "/upload/",
		paths: []string{"8/x86_64/Packages/hello-1.0-1.el8.x86_64.rpm"}},
	{file: "hello-1.0-1.el9.aarch64.rpm", url: "/upload",
		paths: []string{"9/aarch64/Packages/hello-1.0-1.el9.aarch64.rpm"}},
	{file: "hello-1.0-1.fc39.x86_64.rpm", url: "/upload/",
		paths: []string{"39/x86_64/Packages/hello-1.0-1.fc39.x86_64.rpm"}},
	{file: "hello-1.0-1.module+el8.9.0+20000+abcdef12.x86_64.rpm", url: "/upload",
		paths: []string{"8/x86_64/Packages/hello-1.0-1.module+el8.9.0+20000+abcdef12.x86_64.rpm"}},
	{file: "hello-1.0-3.el7_9.x86_64.rpm", url: "/upload/",
		paths: []string{"7/x86_64/Packages/hello-1.0-3.el7_9.x86_64.rpm"}},
	{file: "hello-data-1.0-1.el9.noarch.rpm", url: "/upload",
		paths: []string{"9/x86_64/Packages/hello-data-1.0-1.el9.noarch.rpm", "9/aarch64/Packages/hello-data-1.0-1.el9.noarch.rpm"}},
	{file: "hello-1.0-1.el9.src.rpm", url: "/upload/",
		paths: []string{"9/SRPMS/Packages/hello-1.0-1.el9.src.rpm"}},
	{file: "hello-1.0-1.x86_64.rpm", url: "/upload/?os_release=42",
		paths: []string{"42/x86_64/Packages/hello-1.0-1.x86_64.rpm"}},
	{file: "hello-1.0-1.x86_64.rpm", url: "/upload", hdr: []string{"X-OS-Release: 43"},
		paths: []string{"43/x86_64/Packages/hello-1.0-1.x86_64.rpm"}},
}

// repoURL returns the repository URL of a path below top_dir: "9/x86_64/Packages/x.rpm" → "/repo/9/x86_64/".
func repoURL(p string) string { return "/repo/" + path.Dir(path.Dir(p)) + "/" }

// nevraOf turns a canonical file name into dnf's "%{name}-%{evr}.%{arch}" (none of the packages has an epoch).
func nevraOf(file string) string { return strings.TrimSuffix(file, ".rpm") }

func TestEndToEnd(t *testing.T) {
	s := newStack(t)
	t.Logf("nginx on %s (workers as %s), rpm-ingestd on unix:%s as %s, tree %s", s.base, s.acct.name, s.socket, s.acct.name, s.dir)

	// Each step builds on the previous ones' packages; without the uploads nothing else means anything.
	if !t.Run("UploadFixturesWithCurl", s.testUploadFixtures) {
		t.FailNow()
	}
	t.Run("PlacedAtDocumentedPaths", s.testPlacement)
	t.Run("DnfListsAndInstalls", s.testDnf)
	t.Run("RepoServingHidesInternals", s.testServing)
	t.Run("UploadNeedsAuth", s.testAuth)
	t.Run("HostileDirectRequests", s.testHostile)
	t.Run("RejectionsLeaveSpoolEmpty", s.testRejections)
	t.Run("DuplicateAndConflict", s.testDuplicate)
	t.Run("BurstIndexedOnce", s.testBurst)
	t.Run("SwapSafety", s.testSwap)
	t.Run("CrashRecovery", s.testCrash)
	t.Run("DogfoodOwnRPM", s.testDogfood)
	t.Run("NothingLeftBehind", s.testLeftovers)
}

// testUploadFixtures uploads every real rpmbuild package with `curl -T` through nginx.
func (s *stack) testUploadFixtures(t *testing.T) {
	for _, f := range fixtures {
		src := filepath.Join(fixtureDir, f.file)
		if !fileExists(src) {
			t.Fatalf("fixture %s is missing: rebuild with testdata/rpms/make-fixtures.sh", src)
		}
		args := []string{"-u", uploadUser + ":" + uploadPass}
		for _, h := range f.hdr {
			args = append(args, "-H", h)
		}
		r := s.curlUpload(t, src, s.base+f.url, args...)
		if r.code != http.StatusCreated {
			t.Fatalf("curl -T %s %s: %d %s, want 201", f.file, f.url, r.code, r.body)
		}
		if want := "/repo/" + f.paths[0]; r.location != want {
			t.Errorf("curl -T %s %s: Location %q, want %q", f.file, f.url, r.location, want)
		}
	}
}

// testPlacement checks every package landed, byte for byte, where the layout says, readable through nginx.
func (s *stack) testPlacement(t *testing.T) {
	for _, f := range fixtures {
		want, err := os.ReadFile(filepath.Join(fixtureDir, f.file))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.paths {
			full := filepath.Join(s.top, filepath.FromSlash(p))
			fi, err := os.Stat(full)
			if err != nil {
				t.Errorf("%s: %v", f.file, err)
				continue
			}
			// 0644: nginx's spool files are 0600, the daemon must open them up for readers.
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("%s: mode %v, want 0644", p, fi.Mode().Perm())
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != s.acct.uid {
				t.Errorf("%s: owner uid %d, want %d (%s)", p, st.Uid, s.acct.uid, s.acct.name)
			}
			r := s.do(t, http.MethodGet, "/repo/"+p, nil, nil, false)
			if r.code != http.StatusOK || sha256Hex([]byte(r.body)) != sha256Hex(want) {
				t.Errorf("GET /repo/%s: %d, %d bytes; want 200 and the uploaded %d bytes", p, r.code, len(r.body), len(want))
			}
		}
	}
	var want []string
	for _, f := range fixtures {
		want = append(want, f.paths...)
	}
	slices.Sort(want)
	if got := s.packageFiles(t); !slices.Equal(got, want) {
		t.Errorf("packages in the tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	s.requireSpoolEmpty(t, "the uploads")
}

// fixtureRepos returns each repository URL the fixtures went to, with the NEVRAs dnf must list there.
func fixtureRepos() map[string][]string {
	m := map[string][]string{}
	for _, f := range fixtures {
		for _, p := range f.paths {
			m[repoURL(p)] = append(m[repoURL(p)], nevraOf(path.Base(p)))
		}
	}
	for _, v := range m {
		slices.Sort(v)
	}
	return m
}

// testDnf waits for the index runs, then asks real dnf: every repository lists exactly its packages, the
// SRPM is a source package, and the el9 hello installs into an installroot and runs.
func (s *stack) testDnf(t *testing.T) {
	repos := fixtureRepos()
	urls := slices.Sorted(maps.Keys(repos))
	s.waitIndexed(t, nil, urls...)
	for _, u := range urls {
		if got := s.repoquery(t, []string{u}); !slices.Equal(got, repos[u]) {
			t.Errorf("dnf repoquery %s:\n%s\nwant:\n%s", u, strings.Join(got, "\n"), strings.Join(repos[u], "\n"))
		}
	}
	if got, want := s.repoquery(t, []string{"/repo/9/SRPMS/"}, "--arch=src"), []string{"hello-1.0-1.el9.src"}; !slices.Equal(got, want) {
		t.Errorf("dnf repoquery --arch=src /repo/9/SRPMS/: %q, want %q", got, want)
	}

	root := filepath.Join(s.dnfDir, "install-root")
	s.dnf(t, root, []string{"/repo/9/x86_64/"}, "install", "hello")
	hello := filepath.Join(root, "usr", "bin", "hello")
	b, err := os.ReadFile(hello)
	if err != nil {
		t.Fatalf("dnf install hello: %v", err)
	}
	if !strings.Contains(string(b), "hello from hello-1.0-1.el9") {
		t.Errorf("%s is not the el9 build:\n%s", hello, b)
	}
	if fi, err := os.Stat(hello); err == nil && fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("%s is not executable: %v", hello, fi.Mode())
	}
}

// testServing checks what nginx's /repo/ shows: listings and files, never the daemon's or createrepo_c's
// dotfiles, never the spool; and that only GET works there and on the status API.
func (s *stack) testServing(t *testing.T) {
	listing := s.do(t, http.MethodGet, "/repo/9/x86_64/", nil, nil, false)
	if listing.code != http.StatusOK || !strings.Contains(listing.body, "repodata/") || !strings.Contains(listing.body, "Packages/") {
		t.Errorf("GET /repo/9/x86_64/: %d %s", listing.code, listing.body)
	}
	if strings.Contains(listing.body, ".rpm-ingestd") {
		t.Errorf("the listing shows the daemon's files:\n%s", listing.body)
	}
	// Whatever exists on disk, a dotfile must be a 404. Plant the names that can exist (and some that always do).
	repoDir := filepath.Join(s.top, "9", "x86_64")
	for _, name := range []string{".rpm-ingestd-dirty", ".repodata/repomd.xml"} {
		p := filepath.Join(repoDir, name)
		if !fileExists(p) {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, p, "planted by the e2e test\n")
			defer func() {
				os.Remove(p)
				if filepath.Dir(p) != repoDir {
					os.Remove(filepath.Dir(p)) // the planted .repodata/, now empty
				}
			}()
		}
	}
	for _, p := range []string{
		"/repo/9/x86_64/.rpm-ingestd.lock", "/repo/9/x86_64/.rpm-ingestd-dirty", "/repo/9/x86_64/.repodata/repomd.xml",
		"/repo/.rpm-ingestd-tmp/", "/repo/../incoming/", "/incoming/", "/upload/../incoming/nginx/",
	} {
		if r := s.do(t, http.MethodGet, p, nil, nil, false); r.code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, r.code)
		}
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodDelete, "/repo/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"},
		{http.MethodPut, "/repo/9/x86_64/Packages/evil.rpm"},
	} {
		if r := s.do(t, c.method, c.path, []byte("x"), nil, true); r.code != http.StatusForbidden {
			t.Errorf("%s %s: %d, want 403", c.method, c.path, r.code)
		}
	}
	// The daemon's read-only routes take GET only, refused by nginx before the daemon sees a body.
	if r := s.do(t, http.MethodPost, "/api/v1/repos", []byte("x"), nil, true); r.code != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET" {
		t.Errorf("POST /api/v1/repos: %d (Allow %q), want 405 with Allow: GET", r.code, r.header.Get("Allow"))
	}
	if r := s.do(t, http.MethodGet, "/upload/", nil, nil, true); r.code != http.StatusMethodNotAllowed {
		t.Errorf("GET /upload/: %d, want 405", r.code)
	}
	// The status API's JSON through nginx names each repository's URL.
	st, err := s.statuses()
	if err != nil {
		t.Fatal(err)
	}
	if x := st["/repo/9/x86_64/"]; x.Path != filepath.Join(s.top, "9", "x86_64") || x.Packages != 2 {
		t.Errorf("status of /repo/9/x86_64/: %+v, want path %s and 2 packages", x, filepath.Join(s.top, "9", "x86_64"))
	}
}

// testAuth: nginx refuses uploads without valid credentials before reading the body; with them they work and
// the daemon learns who uploaded.
func (s *stack) testAuth(t *testing.T) {
	spec := testrpm.Spec{Name: "authcheck", Release: "1.el9", Arch: "x86_64"}
	file := testrpm.WriteFile(t, s.dir, spec)
	dst := filepath.Join(s.top, "9", "x86_64", "Packages", spec.FileName())
	for _, c := range []struct {
		name string
		args []string
	}{
		{"no credentials", nil},
		{"wrong password", []string{"-u", uploadUser + ":wrong"}},
		{"unknown user", []string{"-u", "mallory:" + uploadPass}},
	} {
		r := s.curlUpload(t, file, s.base+"/upload/", c.args...)
		if r.code != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s: %d (WWW-Authenticate %q), want 401 from nginx", c.name, r.code, r.header.Get("WWW-Authenticate"))
		}
		if fileExists(dst) {
			t.Fatalf("%s: %s was stored", c.name, dst)
		}
		s.requireSpoolEmpty(t, c.name)
	}
	r := s.curlUpload(t, file, s.base+"/upload/", "-u", uploadUser+":"+uploadPass)
	if r.code != http.StatusCreated || !fileExists(dst) {
		t.Fatalf("with credentials: %d %s, want 201 and %s", r.code, r.body, dst)
	}
	// nginx passes $remote_user and $remote_addr; the daemon's upload log line carries them.
	log := readFile(s.daemonLg)
	if !strings.Contains(log, `"user":"`+uploadUser+`"`) || !strings.Contains(log, `"client":"127.0.0.1"`) {
		t.Errorf("the daemon's log has no upload line with user %q and client 127.0.0.1:\n%s", uploadUser, tail(log, 10))
	}
	s.waitIndexed(t, nil, "/repo/9/x86_64/")
}

// testHostile talks to the daemon's socket directly, as a local attacker who could reach it would: header paths
// outside the spool, through "..", through a symlink, or not a regular file, are refused with 403 and the
// target is left alone; a body without the header is refused because direct uploads are off.
func (s *stack) testHostile(t *testing.T) {
	victimDir := filepath.Join(s.dir, "victim")
	if err := os.MkdirAll(victimDir, 0o755); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(victimDir, "hello-1.0-1.el9.x86_64.rpm")
	content, err := os.ReadFile(filepath.Join(fixtureDir, "hello-1.0-1.el9.x86_64.rpm"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, victim, string(content))
	// The daemon's own user owns it: only the daemon's confinement, not file permissions, protects it.
	for _, p := range []string{victimDir, victim} {
		if err := os.Chown(p, int(s.acct.uid), int(s.acct.gid)); err != nil {
			t.Fatal(err)
		}
	}
	before, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(s.spool, "link.rpm")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(link)
	nginxDir := filepath.Join(s.spool, "nginx")

	for _, header := range []string{
		victim,
		s.spool + "/../victim/hello-1.0-1.el9.x86_64.rpm",
		s.spool + "/nginx/../../victim/hello-1.0-1.el9.x86_64.rpm",
		link,
		"victim/hello-1.0-1.el9.x86_64.rpm",
		nginxDir,
		s.spool,
		"/etc/passwd",
	} {
		for _, req := range []struct{ method, path string }{{http.MethodPut, "/upload/x.rpm"}, {http.MethodPost, "/upload"}} {
			r, err := s.tryDo(s.direct, "http://rpm-ingestd", req.method, req.path, nil, map[string]string{"X-Package-Name": header}, false)
			if err != nil {
				t.Fatal(err)
			}
			if r.code != http.StatusForbidden {
				t.Errorf("%s %s X-Package-Name: %s → %d %s, want 403", req.method, req.path, header, r.code, r.body)
			}
		}
	}
	after, err := os.Stat(victim)
	if err != nil {
		t.Fatalf("the victim file is gone: %v", err)
	}
	if got, _ := os.ReadFile(victim); string(got) != string(content) || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the victim file was changed")
	}
	if !fileExists(link) {
		t.Errorf("the planted symlink in the spool was removed")
	}

	// No header, a body: direct uploads are off, so the daemon must refuse rather than store it, even with the
	// right credentials (without them it is 401: the daemon holds the htpasswd file).
	r, err := s.tryDo(s.direct, "http://rpm-ingestd", http.MethodPut, "/upload/", content, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != http.StatusBadRequest {
		t.Errorf("direct upload without the header: %d %s, want 400", r.code, r.body)
	}
}

// testRejections sends bad uploads through nginx: each gets its documented status and leaves nothing behind,
// neither in the tree nor in the spool (nginx's temp subdirectories included).
func (s *stack) testRejections(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(fixtureDir, "hello-1.0-1.el9.x86_64.rpm"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(s.dir, name)
		writeFile(t, p, string(b))
		return p
	}
	big := filepath.Join(s.dir, "too-big.rpm")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: one byte over nginx's client_max_body_size (128m), costs no disk.
	if err := f.Truncate(128<<20 + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer os.Remove(big)

	before := s.packageFiles(t)
	for _, c := range []struct {
		name, file, url string
		hdr             []string
		want            int
	}{
		{"junk body", write("junk.rpm", []byte("this is not an rpm\n")), "/upload/", nil, http.StatusBadRequest},
		{"truncated rpm", write("truncated.rpm", good[:len(good)/2]), "/upload/", nil, http.StatusBadRequest},
		{"empty body", write("empty.rpm", nil), "/upload/", nil, http.StatusBadRequest},
		{"no dist tag", filepath.Join(fixtureDir, "hello-1.0-1.x86_64.rpm"), "/upload/", nil, http.StatusUnprocessableEntity},
		{"bad os_release", filepath.Join(fixtureDir, "hello-1.0-1.x86_64.rpm"), "/upload/?os_release=..", nil, http.StatusUnprocessableEntity},
		// A client's own X-Package-Name must never reach the daemon: nginx replaces it with the real spool file.
		{"spoofed header", write("junk2.rpm", []byte("junk\n")), "/upload/", []string{"X-Package-Name: " + filepath.Join(s.top, "9", "x86_64", "Packages", "hello-1.0-1.el9.x86_64.rpm")}, http.StatusBadRequest},
		{"too large", big, "/upload/", nil, http.StatusRequestEntityTooLarge},
	} {
		args := []string{"-u", uploadUser + ":" + uploadPass}
		for _, h := range c.hdr {
			args = append(args, "-H", h)
		}
		r := s.curlUpload(t, c.file, s.base+c.url, args...)
		if r.code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, r.code, r.body, c.want)
		}
		s.requireSpoolEmpty(t, c.name)
	}
	// A spoofed header without any body: nginx sends no header at all, the daemon refuses (direct uploads off).
	r := s.do(t, http.MethodPut, "/upload/x.rpm", nil, map[string]string{"X-Package-Name": filepath.Join(fixtureDir, "hello-1.0-1.el9.x86_64.rpm")}, true)
	if r.code != http.StatusBadRequest {
		t.Errorf("spoofed header without a body: %d %s, want 400", r.code, r.body)
	}
	if after := s.packageFiles(t); !slices.Equal(after, before) {
		t.Errorf("rejected uploads changed the tree:\nbefore %v\nafter  %v", before, after)
	}
	s.requireSpoolEmpty(t, "the rejections")
}

// testDuplicate: the same bytes twice are a safe retry (201, then 200); other bytes under the same NEVRA are a
// conflict (409) that leaves the stored package alone.
func (s *stack) testDuplicate(t *testing.T) {
	spec := testrpm.Spec{Name: "dup", Release: "1.el9", Arch: "x86_64"}
	first := testrpm.Build(t, spec)
	spec.Salt = "rebuilt"
	second := testrpm.Build(t, spec)
	dst := filepath.Join(s.top, "9", "x86_64", "Packages", spec.FileName())
	for i, c := range []struct {
		body []byte
		want int
	}{{first, http.StatusCreated}, {first, http.StatusOK}, {second, http.StatusConflict}, {first, http.StatusOK}} {
		r := s.do(t, http.MethodPut, "/upload/"+spec.FileName(), c.body, nil, true)
		if r.code != c.want {
			t.Errorf("upload %d: %d %s, want %d", i+1, r.code, r.body, c.want)
		}
	}
	// A real fixture again, with curl: still 200.
	r := s.curlUpload(t, filepath.Join(fixtureDir, "hello-1.0-1.el9.x86_64.rpm"), s.base+"/upload/", "-u", uploadUser+":"+uploadPass)
	if r.code != http.StatusOK {
		t.Errorf("re-upload of hello-1.0-1.el9.x86_64.rpm: %d %s, want 200", r.code, r.body)
	}
	if got, err := os.ReadFile(dst); err != nil || sha256Hex(got) != sha256Hex(first) {
		t.Errorf("%s: err %v, or not the first build any more", dst, err)
	}
	s.requireSpoolEmpty(t, "the duplicates")
	s.waitIndexed(t, nil, "/repo/9/x86_64/")
	if got := s.repoquery(t, []string{"/repo/9/x86_64/"}); !slices.Contains(got, "dup-1.0-1.el9.x86_64") {
		t.Errorf("dnf does not list dup-1.0-1.el9.x86_64: %v", got)
	}
}

// testBurst: 40 packages uploaded at once to one repository are published by exactly one createrepo_c run. The
// quiet period is an hour, so no run can start during the burst however slow the machine is; the test ends the
// quiet period itself with SIGTERM, whose flush must publish everything in one run per repository.
func (s *stack) testBurst(t *testing.T) {
	const n = 40
	const repo = "/repo/9/x86_64/"
	s.waitIndexed(t, nil, repo) // nothing pending from earlier steps
	s.restartDaemon(t, crashTiming)

	bodies := make([][]byte, n)
	var want []string
	for i := range bodies {
		spec := testrpm.Spec{Name: fmt.Sprintf("burst-%d", i), Release: "1.el9", Arch: "x86_64"}
		bodies[i] = testrpm.Build(t, spec)
		want = append(want, nevraOf(spec.FileName()))
	}
	start := time.Now()
	errs := make([]error, n)
	var wg sync.WaitGroup
	var busy atomic.Int32 // 503 answers, retried
	for i := range bodies {
		wg.Go(func() {
			// More uploads at once than server.max_concurrent_uploads: the excess waits for a slot
			// (server.queue_timeout, 30s by default), so none is refused. A 503 would still carry Retry-After,
			// which a well-behaved client honours, but with the defaults there must be none (checked below).
			var r response
			var err error
			for attempt := 0; attempt < 5; attempt++ {
				r, err = s.tryDo(s.web, s.base, http.MethodPut, "/upload/", bodies[i], nil, true)
				if err != nil || r.code != http.StatusServiceUnavailable {
					break
				}
				busy.Add(1)
				wait, convErr := strconv.Atoi(r.header.Get("Retry-After"))
				if convErr != nil || wait < 1 {
					err = fmt.Errorf("503 without a usable Retry-After (%q)", r.header.Get("Retry-After"))
					break
				}
				time.Sleep(time.Duration(wait) * time.Second)
			}
			if err == nil && r.code != http.StatusCreated {
				err = fmt.Errorf("%d %s", r.code, r.body)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	took := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Errorf("burst upload %d: %v, want 201", i, err)
		}
	}
	if n := busy.Load(); n != 0 {
		t.Errorf("%d answers 503 during the burst of %d uploads, want none: uploads over the cap wait for a slot", n, len(bodies))
	}
	if runs := s.runsOf(t, repo); runs != 0 {
		t.Errorf("%d index runs during the burst, want none within an hour's quiet period", runs)
	}
	logStart := len(readFile(s.daemonLg))
	s.stopDaemon(t, false) // ends the quiet period: the flush publishes what is pending
	flushLog := readFile(s.daemonLg)[logStart:]
	s.startDaemon(t, defaultTiming)
	dir := filepath.Join(s.top, "9", "x86_64")
	runs := 0
	for _, line := range strings.Split(flushLog, "\n") {
		if strings.Contains(line, `"index run succeeded"`) && strings.Contains(line, `"repo":"`+dir+`"`) {
			runs++
		}
	}
	if runs != 1 {
		t.Errorf("index runs for the burst: %d, want 1; the daemon's log of the flush:\n%s", runs, flushLog)
	}
	s.waitIndexed(t, nil, repo)
	got := s.repoquery(t, []string{repo})
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("dnf does not list %s after the burst", w)
		}
	}
	t.Logf("%d uploads in %s (%d answers 503, retried after Retry-After), %d index run", n, took.Round(time.Millisecond), busy.Load(), runs)
}

// repomd is what the swap checker reads from repomd.xml.
type repomd struct {
	Data []struct {
		Type     string `xml:"type,attr"`
		Checksum struct {
			Type  string `xml:"type,attr"`
			Value string `xml:",chardata"`
		} `xml:"checksum"`
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
	} `xml:"data"`
}

// checkMetadata does what a dnf client does on a refresh, strictly: it reads repomd.xml, then fetches every
// file it names and compares the checksum. During a swap it must see either generation, whole: no 404 ever.
// (createrepo_c's own publishing, two renames, leaves a moment with no repodata/ at all; this checker hit it
// about once every three runs before the indexer published with RENAME_EXCHANGE.)
func (s *stack) checkMetadata(repo string) error {
	r, err := s.tryDo(s.web, s.base, http.MethodGet, repo+"repodata/repomd.xml", nil, nil, false)
	if err != nil {
		return err
	}
	if r.code != http.StatusOK {
		return fmt.Errorf("repomd.xml: %d", r.code)
	}
	var md repomd
	if err := xml.Unmarshal([]byte(r.body), &md); err != nil {
		return fmt.Errorf("repomd.xml: %w", err)
	}
	if len(md.Data) == 0 {
		return fmt.Errorf("repomd.xml names no files:\n%s", r.body)
	}
	for _, d := range md.Data {
		f, err := s.tryDo(s.web, s.base, http.MethodGet, repo+d.Location.Href, nil, nil, false)
		if err != nil {
			return err
		}
		if f.code != http.StatusOK {
			return fmt.Errorf("%s named by repomd.xml: %d", d.Location.Href, f.code)
		}
		if d.Checksum.Type == "sha256" && sha256Hex([]byte(f.body)) != d.Checksum.Value {
			return fmt.Errorf("%s: checksum mismatch with repomd.xml", d.Location.Href)
		}
	}
	return nil
}

// testSwap runs dnf repoquery (and a stricter HTTP metadata checker) in loops while uploads cause several index
// runs of the repository they read; no iteration may fail. Each upload waits for its own run, so the number of
// runs does not depend on timing, and the loops are bounded in iterations and time.
func (s *stack) testSwap(t *testing.T) {
	const repo = "/repo/9/x86_64/"
	const rounds = 4
	s.waitIndexed(t, nil, repo)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	var dnfIter, httpIter int
	record := func(list *[]string, format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(*list) < 20 {
			*list = append(*list, fmt.Sprintf(format, args...))
		}
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		case <-ctx.Done():
			return true
		default:
			return false
		}
	}
	root := filepath.Join(s.dnfDir, "swap-root")
	wg.Go(func() {
		for i := 0; i < 200 && !stopped(); i++ {
			out, err := s.tryDnf(ctx, root, []string{repo}, "repoquery", "--qf", "%{name}-%{evr}.%{arch}")
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				record(&failures, "dnf iteration %d: %v", i, err)
			case !slices.Contains(lines(out), "hello-1.0-1.el9.x86_64"):
				record(&failures, "dnf iteration %d: hello-1.0-1.el9.x86_64 missing from:\n%s", i, out)
			}
			mu.Lock()
			dnfIter++
			mu.Unlock()
		}
	})
	wg.Go(func() {
		for i := 0; i < 200000 && !stopped(); i++ {
			if err := s.checkMetadata(repo); err != nil {
				record(&failures, "metadata check %d: %v", i, err)
			}
			mu.Lock()
			httpIter++
			mu.Unlock()
		}
	})

	var want []string
	for i := range rounds {
		runs := s.runsOf(t, repo)
		spec := testrpm.Spec{Name: fmt.Sprintf("swap-%d", i), Release: "1.el9", Arch: "x86_64"}
		if r := s.do(t, http.MethodPut, "/upload/", testrpm.Build(t, spec), nil, true); r.code != http.StatusCreated {
			t.Errorf("swap upload %d: %d %s", i, r.code, r.body)
		}
		want = append(want, nevraOf(spec.FileName()))
		s.waitIndexed(t, map[string]int{repo: runs + 1}, repo)
	}
	close(stop)
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("%d index runs while dnf repoquery ran %d times and the metadata checker %d times", rounds, dnfIter, httpIter)
	got := s.repoquery(t, []string{repo})
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("dnf does not list %s after the swaps", w)
		}
	}
}

// crashTiming keeps an upload unindexed for as long as the test needs: the daemon is killed long before.
var crashTiming = indexerTiming{quiet: time.Hour, maxDelay: time.Hour}

// testCrash kills the daemon with SIGKILL after an upload's 201 and before its index run; the restarted
// daemon finds the durable dirty marker and publishes the package.
func (s *stack) testCrash(t *testing.T) {
	const repo = "/repo/9/x86_64/"
	s.waitIndexed(t, nil, repo)
	s.restartDaemon(t, crashTiming)
	spec := testrpm.Spec{Name: "crash", Release: "1.el9", Arch: "x86_64"}
	if r := s.do(t, http.MethodPut, "/upload/", testrpm.Build(t, spec), nil, true); r.code != http.StatusCreated {
		t.Fatalf("upload before the crash: %d %s", r.code, r.body)
	}
	marker := filepath.Join(s.top, "9", "x86_64", ".rpm-ingestd-dirty")
	if !fileExists(marker) {
		t.Errorf("no dirty marker %s after a 201", marker)
	}
	if st, err := s.statuses(); err != nil || st[repo].DirtySince == nil {
		t.Errorf("status before the crash: %+v (%v), want dirty", st[repo], err)
	}
	s.stopDaemon(t, true)

	// While the daemon is down nginx answers 502 and keeps nothing.
	if r := s.do(t, http.MethodPut, "/upload/", testrpm.Build(t, testrpm.Spec{Name: "while-down", Release: "1.el9", Arch: "x86_64"}), nil, true); r.code != http.StatusBadGateway {
		t.Errorf("upload while the daemon is down: %d, want 502", r.code)
	}
	s.requireSpoolEmpty(t, "an upload while the daemon was down")

	s.startDaemon(t, defaultTiming)
	s.waitIndexed(t, map[string]int{repo: 1}, repo)
	if got := s.repoquery(t, []string{repo}); !slices.Contains(got, nevraOf(spec.FileName())) {
		t.Errorf("after the restart dnf does not list %s: %v", spec.FileName(), got)
	}
	if fileExists(marker) {
		t.Errorf("dirty marker %s still there after a successful run", marker)
	}
}

// testDogfood builds rpm-ingestd's own RPM with the shipped packaging script (what `make rpm` runs) from the
// binary under test, uploads it through nginx as a CI job would (it has no dist tag: ?os_release=9), and
// installs it with dnf into an installroot; the binary that lands there runs --version.
func (s *stack) testDogfood(t *testing.T) {
	const repo = "/repo/9/x86_64/"
	dist := filepath.Join(s.dir, "dist")
	build := exec.Command("bash", "../deploy/rpm/build-rpm.sh", "--selinux=no", daemonVersion, dist)
	build.Env = append(os.Environ(), "BINARY="+daemonBin)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build-rpm.sh: %v\n%s", err, out)
	}
	rpms, _ := filepath.Glob(filepath.Join(dist, "rpm-ingestd-0.9.0-1.*.rpm"))
	if len(rpms) != 1 {
		t.Fatalf("build-rpm.sh made %v, want one rpm-ingestd-0.9.0-1 package", rpms)
	}
	runs := s.runsOf(t, repo)
	args := []string{"-u", uploadUser + ":" + uploadPass}
	if r := s.curlUpload(t, rpms[0], s.base+"/upload/?os_release=9", args...); r.code != http.StatusCreated {
		t.Fatalf("upload %s: %d %s", filepath.Base(rpms[0]), r.code, r.body)
	}
	// The package requires nginx, createrepo_c, /bin/sh and /usr/bin/env, which an empty installroot lacks:
	// stand-ins satisfy them (scriptlets are skipped, they would start services).
	for _, spec := range []testrpm.Spec{
		{Name: "nginx", Release: "1.el9", Arch: "x86_64"},
		{Name: "createrepo_c", Release: "1.el9", Arch: "x86_64"},
		{Name: "base-stub", Release: "1.el9", Arch: "x86_64", Files: map[string]string{"/bin/sh": "stub\n", "/usr/bin/env": "stub\n"}},
	} {
		if r := s.do(t, http.MethodPut, "/upload/", testrpm.Build(t, spec), nil, true); r.code != http.StatusCreated {
			t.Fatalf("upload stand-in %s: %d %s", spec.Name, r.code, r.body)
		}
	}
	s.waitIndexed(t, map[string]int{repo: runs + 1}, repo)

	root := filepath.Join(s.dnfDir, "dogfood-root")
	s.dnf(t, root, []string{repo}, "--setopt=tsflags=noscripts", "install", "rpm-ingestd")
	for _, f := range []string{"usr/lib/systemd/system/rpm-ingestd.service", "etc/rpm-ingestd/config.yml", "usr/share/rpm-ingestd/nginx/rpm-ingestd.conf"} {
		if !fileExists(filepath.Join(root, f)) {
			t.Errorf("installed package lacks /%s", f)
		}
	}
	out, err := exec.Command(filepath.Join(root, "usr", "bin", "rpm-ingestd"), "--version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "rpm-ingestd "+daemonVersion {
		t.Errorf("installed rpm-ingestd --version: %v %q, want %q", err, out, "rpm-ingestd "+daemonVersion)
	}
}

// testLeftovers checks the end state: the spool is empty, no createrepo_c work directory or staged file is
// left, and nginx logged nothing worse than an error (a failed unlink of a temp file would be [crit]).
func (s *stack) testLeftovers(t *testing.T) {
	s.requireSpoolEmpty(t, "the whole suite")
	err := filepath.WalkDir(s.top, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch name := d.Name(); {
		case d.IsDir() && name == ".repodata":
			t.Errorf("createrepo_c work directory left behind: %s", p)
		case !d.IsDir() && name != ".lock" && strings.Contains(p, "/.rpm-ingestd-tmp/"):
			// Staged names live in per-process directories .rpm-ingestd-tmp/p<pid>-*/ next to their .lock.
			t.Errorf("staged file left behind: %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(readFile(filepath.Join(s.ngxDir, "error.log")), "\n") {
		if strings.Contains(l, "while connecting to upstream") {
			continue // a missing socket while the daemon is down is [crit]; the 502 is tested above
		}
		for _, level := range []string{"[crit]", "[alert]", "[emerg]"} {
			if strings.Contains(l, level) {
				t.Errorf("nginx error log: %s", l)
			}
		}
	}
}
