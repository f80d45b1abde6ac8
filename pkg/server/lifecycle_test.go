package server

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
)

// newChannelFixture is a server over a real ingester with the channels testing (default) and stable and the
// layout {{.Channel}}/{{.OSRelease}}/{{.Arch}}.
func newChannelFixture(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	return newChannelFixtureLog(t, mod, zaptest.NewLogger(t))
}

// newChannelFixtureLog is newChannelFixture with the logger given.
func newChannelFixtureLog(t *testing.T, mod func(*Options), log *zap.Logger) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{idx: &recordingIndexer{}, top: filepath.Join(base, "storage"), spool: filepath.Join(base, "incoming")}
	os.Mkdir(f.top, 0o755)
	os.Mkdir(f.spool, 0o755)
	channels := []string{"testing", "stable"}
	ing, err := ingest.New(ingest.Options{
		TopDir: f.top, Tree: testTree(t, f.top), SpoolDir: f.spool, Arches: []string{"x86_64", "aarch64"}, DistTags: []string{"el", "fc"},
		MaxSize: 1 << 20, Channels: channels, DefaultChannel: "testing",
		Layout: func(c, _, r, a string) (string, error) { return filepath.Join(c, r, a), nil },
		Locate: func(rel string) (string, string, string, bool) {
			p := strings.Split(rel, "/")
			return p[0], p[1], p[2], len(p) == 3
		},
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ing.Close() })
	opts := Options{UploadPath: "/upload", UploadHeader: "X-Package-Name", DirectUpload: true, MaxUploadSize: 1 << 20,
		RepoURL: "/repo", TopDir: f.top, Auth: allowAll{}, Channels: channels, Lifecycle: ing}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts, ing, f.idx, log)
	if err != nil {
		t.Fatal(err)
	}
	f.h = s.Routes()
	return f
}

func rpmFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "rpms", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUploadChannelRouting(t *testing.T) {
	f := newChannelFixture(t, nil)
	tests := []struct {
		method, target string
		status         int
		want           string // Location, or the start of the error line
	}{
		{"PUT", "/upload", 201, "/repo/testing/9/x86_64/Packages/p0-1.0-1.el9.x86_64.rpm"},
		{"PUT", "/upload/", 201, "/repo/testing/9/x86_64/Packages/p1-1.0-1.el9.x86_64.rpm"},
		{"PUT", "/upload/anything.rpm", 201, "/repo/testing/9/x86_64/Packages/p2-1.0-1.el9.x86_64.rpm"},
		{"PUT", "/upload/stable/", 201, "/repo/stable/9/x86_64/Packages/p3-1.0-1.el9.x86_64.rpm"},
		{"PUT", "/upload/stable", 201, "/repo/stable/9/x86_64/Packages/p4-1.0-1.el9.x86_64.rpm"},
		{"PUT", "/upload/stable/p5.rpm", 201, "/repo/stable/9/x86_64/Packages/p5-1.0-1.el9.x86_64.rpm"},
		{"POST", "/upload/testing/", 201, "/repo/testing/9/x86_64/Packages/p6-1.0-1.el9.x86_64.rpm"},
		{"POST", "/upload/stable/x.RPM", 201, "/repo/stable/9/x86_64/Packages/p7-1.0-1.el9.x86_64.rpm"},
		{"PUT", "/upload/prod/", 404, `channel "prod" is not configured: use one of testing, stable`},
		{"PUT", "/upload/prod", 404, `channel "prod" is not configured: use one of testing, stable`},
		{"PUT", "/upload/prod/p.rpm", 404, `channel "prod" is not configured`},
		{"PUT", "/upload/stable/oops", 404, `unknown channel: /upload/stable/oops: after the channel "stable" comes a file name ending in .rpm, not "oops"`},
		{"PUT", "/upload/a.rpm/b.rpm", 404, `unknown channel: /upload/a.rpm/b.rpm: "a.rpm" ends in .rpm`},
		{"PUT", "/upload/%2e%2e/", 404, `channel ".." is not configured`},
		{"PUT", "/upload/stable/x/y.rpm", 404, "404 page not found"},
	}
	for i, tc := range tests {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			body := testrpm.Build(t, testrpm.Spec{Name: fmt.Sprintf("p%d", i), Release: "1.el9", Arch: "x86_64"})
			rec := f.do(t, tc.method, tc.target, body, nil)
			got := rec.Header().Get("Location")
			if rec.Code >= 400 {
				got = rec.Body.String()
			}
			if rec.Code != tc.status || !strings.HasPrefix(got, tc.want) {
				t.Fatalf("got %d %q, want %d %q", rec.Code, got, tc.status, tc.want)
			}
		})
	}
	if entries, _ := os.ReadDir(f.spool); len(entries) != 0 {
		t.Errorf("spool not empty: %v", entries)
	}
}

// TestUploadWithoutChannels: without channels the upload routes are exactly the old ones: a segment after the
// upload path is ignored, and there is no deeper route.
func TestUploadWithoutChannels(t *testing.T) {
	f := newFixture(t, nil)
	rec := f.do(t, "PUT", "/upload/stable", hello(t, ""), nil)
	if rec.Code != 201 || rec.Header().Get("Location") != "/repo/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm" {
		t.Fatalf("PUT /upload/stable: %d %s %s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	if rec := f.do(t, "PUT", "/upload/stable/", hello(t, "2"), nil); rec.Code != 404 {
		t.Fatalf("PUT /upload/stable/: %d %s, want 404 (no such route)", rec.Code, rec.Body)
	}
}

// uploadBuild puts the build hello-1.0-1.el9 into testing: x86_64 and source packages from rpmbuild, and a
// noarch package of the same name (in both arches).
func (f *fixture) uploadBuild(t *testing.T) {
	t.Helper()
	for _, b := range [][]byte{rpmFixture(t, "hello-1.0-1.el9.x86_64.rpm"), rpmFixture(t, "hello-1.0-1.el9.src.rpm"),
		testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "noarch"})} {
		if rec := f.do(t, "PUT", "/upload/testing/", b, nil); rec.Code != 201 {
			t.Fatalf("upload: %d %s", rec.Code, rec.Body)
		}
	}
	f.idx.triggered = nil
}

const promoteHello = `{"from":"testing","to":"stable","name":"hello","version":"1.0","release":"1.el9"}`

func TestPromoteAPI(t *testing.T) {
	f := newChannelFixture(t, nil)
	f.uploadBuild(t)

	rec := f.do(t, "POST", "/api/v1/promote", []byte(promoteHello), nil)
	if rec.Code != 201 {
		t.Fatalf("promote: %d %s", rec.Code, rec.Body)
	}
	var got promoteResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/repo/stable/9/SRPMS/Packages/hello-1.0-1.el9.src.rpm",
		"/repo/stable/9/aarch64/Packages/hello-1.0-1.el9.noarch.rpm",
		"/repo/stable/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm",
		"/repo/stable/9/x86_64/Packages/hello-1.0-1.el9.noarch.rpm",
	}
	if got.Status != "created" || !slices.Equal(slices.Sorted(slices.Values(got.Paths)), slices.Sorted(slices.Values(want))) ||
		len(got.Sources) != len(got.Paths) || !strings.HasPrefix(got.Sources[0], "/repo/testing/") || got.VisibleBy.IsZero() {
		t.Errorf("response %+v", got)
	}
	wantRepos := []string{filepath.Join(f.top, "stable/9/SRPMS"), filepath.Join(f.top, "stable/9/aarch64"), filepath.Join(f.top, "stable/9/x86_64")}
	if trig := slices.Sorted(slices.Values(f.idx.triggered)); !slices.Equal(trig, wantRepos) {
		t.Errorf("triggered %v, want %v", trig, wantRepos)
	}
	if rec := f.do(t, "POST", "/api/v1/promote", []byte(promoteHello), nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"status": "present"`) {
		t.Errorf("promote again: %d %s, want 200 present", rec.Code, rec.Body)
	}
	// One arch only.
	f2 := newChannelFixture(t, nil)
	f2.uploadBuild(t)
	rec = f2.do(t, "POST", "/api/v1/promote", []byte(`{"from":"testing","to":"stable","name":"hello","version":"1.0","release":"1.el9","arch":"src","epoch":0}`), nil)
	if rec.Code != 201 || !strings.Contains(rec.Body.String(), "stable/9/SRPMS/Packages/hello-1.0-1.el9.src.rpm") || strings.Contains(rec.Body.String(), "x86_64") {
		t.Errorf("promote src only: %d %s", rec.Code, rec.Body)
	}
}

// TestPromoteConflictAPI: a different build of one file of the build in stable refuses the whole promotion with
// 409, and nothing changes in either channel.
func TestPromoteConflictAPI(t *testing.T) {
	f := newChannelFixture(t, nil)
	f.uploadBuild(t)
	if rec := f.do(t, "PUT", "/upload/stable/", testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "noarch", Salt: "other"}), nil); rec.Code != 201 {
		t.Fatal(rec.Body)
	}
	before := treeSums(t, f.top)
	rec := f.do(t, "POST", "/api/v1/promote", []byte(promoteHello), nil)
	if rec.Code != 409 || !strings.Contains(rec.Body.String(), "hello-1.0-1.el9.noarch.rpm is already stored with different content") {
		t.Fatalf("promote: %d %s, want 409", rec.Code, rec.Body)
	}
	if after := treeSums(t, f.top); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the tree changed:\nbefore %v\nafter  %v", before, after)
	}
}

// treeSums maps every file below top (but our own dot directories) to its SHA-256.
func treeSums(t *testing.T, top string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			b, _ := os.ReadFile(p)
			m[p] = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		return nil
	})
	return m
}

func TestPromoteAPIRefusals(t *testing.T) {
	f := newChannelFixture(t, nil)
	f.uploadBuild(t)
	tests := []struct {
		name, body string
		status     int
		msg        string
	}{
		{"not JSON", `from=testing`, 400, "the body must be JSON"},
		{"unknown field", `{"from":"testing","to":"stable","name":"hello","version":"1.0","realease":"1.el9"}`, 400, `unknown field "realease"`},
		{"two objects", promoteHello + `{}`, 201, ""}, // only the first is read; documented as one object
		{"unknown channel", `{"from":"testing","to":"prod","name":"hello","version":"1.0","release":"1.el9"}`, 404, `channel "prod" is not configured: use one of testing, stable`},
		{"same channel", `{"from":"testing","to":"testing","name":"hello","version":"1.0","release":"1.el9"}`, 400, "from and to are both"},
		{"traversal in the name", `{"from":"testing","to":"stable","name":"../../etc","version":"1.0","release":"1.el9"}`, 400, "is not a valid package name"},
		{"no such build", `{"from":"testing","to":"stable","name":"hello","version":"9.9","release":"1.el9"}`, 404, "hello-9.9-1.el9 is not in channel testing"},
		{"wrong epoch", `{"from":"testing","to":"stable","name":"hello","version":"1.0","release":"1.el9","epoch":2}`, 404, "has epoch 0, not 2"},
		{"epoch not a number", `{"from":"testing","to":"stable","name":"hello","version":"1.0","release":"1.el9","epoch":"x"}`, 400, "the body must be JSON"},
		{"too large", `{"name":"` + strings.Repeat("x", maxAPIBody) + `"}`, 400, "request body too large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do(t, "POST", "/api/v1/promote", []byte(tc.body), map[string]string{"Accept": "application/json"})
			var e map[string]string
			json.Unmarshal(rec.Body.Bytes(), &e)
			if rec.Code != tc.status || !strings.Contains(e["error"], tc.msg) {
				t.Fatalf("got %d %s, want %d %q", rec.Code, rec.Body, tc.status, tc.msg)
			}
		})
	}
}

// TestLifecycleNeedsAuth: promote and delete are behind the same authentication as uploads, and a refused
// request changes nothing.
func TestLifecycleNeedsAuth(t *testing.T) {
	built := newChannelFixture(t, nil)
	built.uploadBuild(t)
	for _, deny := range []struct {
		err    error
		status int
	}{{auth.ErrUnauthorized, 401}, {auth.ErrForbidden, 403}} {
		f := newChannelFixture(t, func(o *Options) { o.Auth = denyWith{fmt.Errorf("%w: no", deny.err)} })
		copyTree(t, built.top, f.top) // it cannot upload the build itself
		before := treeSums(t, f.top)
		for _, req := range []struct{ method, target, body string }{
			{"POST", "/api/v1/promote", promoteHello},
			{"DELETE", "/api/v1/packages/testing/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", ""},
		} {
			if rec := f.do(t, req.method, req.target, []byte(req.body), nil); rec.Code != deny.status {
				t.Errorf("%s %s: %d %s, want %d", req.method, req.target, rec.Code, rec.Body, deny.status)
			}
		}
		if after := treeSums(t, f.top); len(before) == 0 || fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("refused requests changed the tree (%d files before)", len(before))
		}
	}
}

// copyTree copies the regular files and directories below from into to.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			os.MkdirAll(filepath.Join(to, rel), 0o755)
			return nil
		}
		b, _ := os.ReadFile(p)
		os.WriteFile(filepath.Join(to, rel), b, 0o644)
		return nil
	})
}

func TestDeleteAPI(t *testing.T) {
	f := newChannelFixture(t, nil)
	f.uploadBuild(t)
	base := filepath.Dir(f.top)
	victim := filepath.Join(base, "victim.rpm")
	os.WriteFile(victim, []byte("precious"), 0o644)
	os.MkdirAll(filepath.Join(base, "out", "Packages"), 0o755)
	os.WriteFile(filepath.Join(base, "out", "Packages", "v.rpm"), []byte("precious"), 0o644)
	os.Symlink(filepath.Join(base, "out"), filepath.Join(f.top, "testing", "escape"))
	os.Symlink(victim, filepath.Join(f.top, "testing/9/x86_64/Packages/link-1-1.el9.x86_64.rpm"))
	os.WriteFile(filepath.Join(f.top, "testing/9/x86_64/Packages/notes.txt"), []byte("x"), 0o644)

	attacks := []struct {
		target string
		status int
		msg    string
	}{
		{"/api/v1/packages/../victim.rpm", 403, "'..'"},
		{"/api/v1/packages/testing/9/x86_64/Packages/../../../../../victim.rpm", 403, "'..'"},
		{"/api/v1/packages/%2e%2e/victim.rpm", 403, "'..'"},
		{"/api/v1/packages/testing/9/x86_64/Packages/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fvictim.rpm", 403, "'..'"},
		{"/api/v1/packages/%252e%252e/victim.rpm", 403, "has characters no repository path has"},
		{"/api/v1/packages/testing/escape/Packages/v.rpm", 403, "passes through the symbolic link testing/escape"},
		{"/api/v1/packages/testing/9/x86_64/Packages/link-1-1.el9.x86_64.rpm", 403, "passes through the symbolic link"},
		{"/api/v1/packages/testing/9/x86_64/Packages/notes.txt", 403, "is not an .rpm file"},
		{"/api/v1/packages/testing/9/x86_64/repodata/repomd.xml", 403, "is not in a Packages directory"},
		{"/api/v1/packages/testing/9/x86_64/Packages/absent-1-1.el9.x86_64.rpm", 404, "is not stored"},
	}
	before := treeSums(t, f.top)
	for _, tc := range attacks {
		t.Run(tc.target, func(t *testing.T) {
			rec := f.do(t, "DELETE", tc.target, nil, nil)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.msg) {
				t.Fatalf("got %d %s, want %d %q", rec.Code, rec.Body, tc.status, tc.msg)
			}
		})
	}
	if after := treeSums(t, f.top); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("refused deletions changed the tree")
	}
	for _, v := range []string{victim, filepath.Join(base, "out", "Packages", "v.rpm")} {
		if b, _ := os.ReadFile(v); string(b) != "precious" {
			t.Errorf("%s was touched", v)
		}
	}
	if len(f.idx.triggered) != 0 {
		t.Errorf("refusals triggered %v", f.idx.triggered)
	}

	rec := f.do(t, "DELETE", "/api/v1/packages/testing/9/x86_64/Packages/hello-1.0-1.el9.noarch.rpm?all_arches=1", nil, nil)
	if rec.Code != 200 {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
	var got deleteResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	wantDeleted := []string{"/repo/testing/9/x86_64/Packages/hello-1.0-1.el9.noarch.rpm", "/repo/testing/9/aarch64/Packages/hello-1.0-1.el9.noarch.rpm"}
	if !slices.Equal(got.Deleted, wantDeleted) || !slices.Equal(got.Repos, []string{"/repo/testing/9/x86_64/", "/repo/testing/9/aarch64/"}) {
		t.Errorf("response %+v", got)
	}
	if !slices.Equal(f.idx.triggered, []string{filepath.Join(f.top, "testing/9/x86_64"), filepath.Join(f.top, "testing/9/aarch64")}) {
		t.Errorf("triggered %v", f.idx.triggered)
	}
	for _, p := range wantDeleted {
		if _, err := os.Stat(filepath.Join(f.top, strings.TrimPrefix(p, "/repo/"))); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	if rec := f.do(t, "DELETE", "/api/v1/packages/testing/9/x86_64/Packages/hello-1.0-1.el9.noarch.rpm", nil, nil); rec.Code != 404 {
		t.Errorf("delete again: %d %s, want 404", rec.Code, rec.Body)
	}
}

func TestLifecycleNotWired(t *testing.T) {
	f := newFixture(t, nil) // Options.Lifecycle nil
	for _, req := range []struct{ method, target string }{{"POST", "/api/v1/promote"}, {"DELETE", "/api/v1/packages/9/x86_64/Packages/x.rpm"}} {
		if rec := f.do(t, req.method, req.target, []byte(promoteHello), nil); rec.Code != http.StatusNotImplemented {
			t.Errorf("%s %s: %d %s, want 501", req.method, req.target, rec.Code, rec.Body)
		}
	}
}

// proxyUser lets everyone in as a local peer (as Authorize does without htpasswd), naming user as a trusted
// proxy's X-Remote-User; untrusted is the same for a local peer that is no trusted proxy, which gets no user.
type proxyUser struct {
	user      string
	untrusted bool
}

func (p proxyUser) Authorize(*http.Request) (string, error) {
	if p.untrusted {
		return "", nil
	}
	return p.user, nil
}
func (p proxyUser) Proxied(*http.Request) (string, error) {
	if p.untrusted {
		return "", auth.ErrForbidden
	}
	return p.user, nil
}
func (proxyUser) ClientAddr(*http.Request) string   { return "192.0.2.7" }
func (proxyUser) ReportedAddr(*http.Request) string { return "" }

// TestLifecycleLogsActingUser: the line (and the audit event) of a promotion or deletion names the user the
// trusted proxy authenticated, and never a user from a peer that is not one.
func TestLifecycleLogsActingUser(t *testing.T) {
	for _, tc := range []struct {
		auth Authorizer
		want string
	}{{proxyUser{user: "alice"}, "alice"}, {proxyUser{user: "mallory", untrusted: true}, ""}, {allowAll{}, ""}} {
		core, logs := observer.New(zapcore.InfoLevel)
		f := newChannelFixtureLog(t, func(o *Options) { o.Auth = tc.auth }, zap.New(core))
		f.uploadBuild(t)
		f.do(t, "POST", "/api/v1/promote", []byte(promoteHello), nil)
		f.do(t, "DELETE", "/api/v1/packages/testing/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", nil, nil)
		for _, msg := range []string{"promote done", "delete done"} {
			entries := logs.FilterMessage(msg).All()
			if len(entries) != 1 {
				t.Fatalf("%d %q lines", len(entries), msg)
			}
			ctx := entries[0].ContextMap()
			if ctx["user"] != tc.want || ctx["client"] != tc.auth.ClientAddr(nil) || ctx["req_id"] == "" {
				t.Errorf("%T %+v: %q logs user %q client %q req_id %q; want user %q", tc.auth, tc.auth, msg, ctx["user"], ctx["client"], ctx["req_id"], tc.want)
			}
		}
	}
}
