package server

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
)

// issue19Rules is the configuration example of issue 19.
var issue19Rules = []auth.Rule{
	{Users: []string{"ci"}, Actions: []string{"upload"}, Channels: []string{"testing"}, OSReleases: []string{"9"}},
	{Users: []string{"release"}, Actions: []string{"upload", "promote"}},
	{Users: []string{"admin"}, Actions: []string{"upload", "promote", "delete"}},
}

// permFixture is a channel fixture (testing, stable; layout channel/release/arch) over a real ingester that
// keeps one build per name and arch, with the real Authenticator over htpasswd users ci, release and admin, the
// issue's permissions, an in-memory audit trail and metrics.
type permFixture struct {
	*fixture
	audit *memRecorder
	reg   *prometheus.Registry
}

func newPermFixture(t *testing.T) *permFixture {
	t.Helper()
	return newPermFixtureRules(t, issue19Rules, "ci", "ci-pw", "release", "release-pw", "admin", "admin-pw")
}

// newPermFixtureRules is newPermFixture with other rules and htpasswd users (user, password, ...).
func newPermFixtureRules(t *testing.T, rules []auth.Rule, userPass ...string) *permFixture {
	t.Helper()
	a := newAuthenticator(t, htpasswdFile(t, userPass...))
	base := t.TempDir()
	f := &fixture{idx: &recordingIndexer{}, top: filepath.Join(base, "storage"), spool: filepath.Join(base, "incoming")}
	os.Mkdir(f.top, 0o755)
	os.Mkdir(f.spool, 0o755)
	channels := []string{"testing", "stable"}
	log := zaptest.NewLogger(t)
	ing, err := ingest.New(ingest.Options{
		TopDir: f.top, Tree: testTree(t, f.top), SpoolDir: f.spool, Arches: []string{"x86_64", "aarch64"}, DistTags: []string{"el", "fc"},
		MaxSize: 1 << 20, Channels: channels, DefaultChannel: "testing",
		Layout: func(c, _, r, a string) (string, error) { return filepath.Join(c, r, a), nil },
		Locate: func(rel string) (string, string, string, bool) {
			p := strings.Split(rel, "/")
			if len(p) != 3 {
				return "", "", "", false
			}
			return p[0], p[1], p[2], true
		},
		Retention: ingest.RetentionOptions{Policy: func(string) ingest.Retention { return ingest.Retention{KeepVersions: 1} }},
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ing.Close() })
	pf := &permFixture{fixture: f, audit: &memRecorder{}, reg: prometheus.NewRegistry()}
	s, err := New(Options{UploadPath: "/upload", UploadHeader: "X-Package-Name", DirectUpload: true, MaxUploadSize: 1 << 20,
		RepoURL: "/repo", TopDir: f.top, Auth: a, Channels: channels, Lifecycle: ing, Registry: pf.audit,
		Registerer: pf.reg, Permissions: auth.NewPermissions(rules)}, ing, f.idx, log)
	if err != nil {
		t.Fatal(err)
	}
	f.h = s.Routes()
	return pf
}

// TestPermissionsServer (issue 19): uploads, promotions and deletions by users with different rights through
// the real Authenticator and ingester. A refusal is 403 naming user, action and channel or release; it changes
// nothing in the tree, is recorded with result "forbidden" under its own action, and an upload's is counted in
// uploads_total{result="forbidden"}. Unauthenticated stays 401. Retention prunes that an allowed upload causes
// need no delete right.
func TestPermissionsServer(t *testing.T) {
	f := newPermFixture(t)
	pw := map[string]string{"ci": "ci-pw", "release": "release-pw", "admin": "admin-pw"}
	build := func(name, version, release, arch string) []byte {
		return testrpm.Build(t, testrpm.Spec{Name: name, Version: version, Release: release, Arch: arch})
	}
	steps := []struct {
		name         string
		user         string
		method, path string
		body         []byte
		status       int
		msg          string // start of the answer for errors
		action       string // the audit record's action
	}{
		{"no credentials", "", "PUT", "/upload/stable/", build("a", "1", "1.el9", "x86_64"), 401, "unauthorized: send the Basic credentials", "upload"},
		{"ci into stable", "ci", "PUT", "/upload/stable/", build("a", "1", "1.el9", "x86_64"), 403, "forbidden: user ci may not upload into stable (server.permissions)", "upload"},
		{"ci into testing", "ci", "PUT", "/upload/testing/", build("a", "1", "1.el9", "x86_64"), 201, "", "upload"},
		{"ci by the default channel", "ci", "PUT", "/upload/", build("b", "1", "1.el9", "x86_64"), 201, "", "upload"},
		{"ci into testing for release 8", "ci", "PUT", "/upload/testing/", build("a", "1", "1.el8", "x86_64"), 403, "forbidden: user ci may not upload into testing for OS release 8 (server.permissions)", "upload"},
		{"ci noarch into testing (both arches allowed)", "ci", "PUT", "/upload/testing/", build("n", "1", "1.el9", "noarch"), 201, "", "upload"},
		{"ci noarch into stable", "ci", "PUT", "/upload/stable/", build("n", "1", "1.el9", "noarch"), 403, "forbidden: user ci may not upload into stable (server.permissions)", "upload"},
		{"ci's upload prunes the older build without a delete right", "ci", "PUT", "/upload/testing/", build("a", "2", "1.el9", "x86_64"), 201, "", "upload"},
		{"ci promotes", "ci", "POST", "/api/v1/promote", []byte(`{"from":"testing","to":"stable","name":"a","version":"2","release":"1.el9"}`), 403, "forbidden: user ci may not promote (server.permissions)", "promote"},
		{"ci deletes", "ci", "DELETE", "/api/v1/packages/testing/9/x86_64/Packages/a-2-1.el9.x86_64.rpm", nil, 403, "forbidden: user ci may not delete (server.permissions)", "delete"},
		{"release promotes", "release", "POST", "/api/v1/promote", []byte(`{"from":"testing","to":"stable","name":"n","version":"1","release":"1.el9"}`), 201, "", "promote"},
		{"release deletes", "release", "DELETE", "/api/v1/packages/stable/9/x86_64/Packages/n-1-1.el9.noarch.rpm?all_arches=1", nil, 403, "forbidden: user release may not delete (server.permissions)", "delete"},
		{"release uploads into stable", "release", "PUT", "/upload/stable/", build("r", "1", "1.el8", "x86_64"), 201, "", "upload"},
		{"admin deletes", "admin", "DELETE", "/api/v1/packages/stable/9/x86_64/Packages/n-1-1.el9.noarch.rpm?all_arches=1", nil, 200, "", "delete"},
	}
	forbiddenUploads := 0
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := treeSums(t, f.top)
			nAudit := len(f.audit.all())
			req := httptest.NewRequest(st.method, st.path, strings.NewReader(string(st.body)))
			req = req.WithContext(auth.WithPeer(req.Context(), remote))
			if st.user != "" {
				req.SetBasicAuth(st.user, pw[st.user])
			}
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, req)
			if rec.Code != st.status || !strings.HasPrefix(rec.Body.String(), st.msg) {
				t.Fatalf("got %d %q, want %d %q", rec.Code, rec.Body, st.status, st.msg)
			}
			recs := f.audit.all()[nAudit:]
			if len(recs) == 0 {
				t.Fatal("no audit record")
			}
			if rec.Code >= 400 {
				if after := treeSums(t, f.top); fmt.Sprint(after) != fmt.Sprint(before) {
					t.Errorf("refused, but the tree changed:\nbefore %v\nafter  %v", before, after)
				}
				want := map[int]string{401: "unauthorized", 403: "forbidden"}[rec.Code]
				if len(recs) != 1 || recs[0].Result != want || recs[0].Action != st.action || recs[0].User != st.user && rec.Code == 403 {
					t.Errorf("audit %+v, want one %s record of %s by %q", recs, want, st.action, st.user)
				}
				if rec.Code == 403 && st.action == "upload" {
					forbiddenUploads++
				}
				return
			}
			for _, r := range recs {
				if r.Action != st.action && r.Action != "prune" || r.User != st.user && r.Action != "prune" {
					t.Errorf("audit record %+v, want %s by %s", r, st.action, st.user)
				}
			}
		})
	}
	// The prune step: a-1 is gone, a-2 stays, and the prune was recorded.
	if _, err := os.Stat(filepath.Join(f.top, "testing/9/x86_64/Packages/a-1-1.el9.x86_64.rpm")); !os.IsNotExist(err) {
		t.Errorf("a-1 was not pruned by ci's upload of a-2: %v", err)
	}
	pruned := 0
	for _, r := range f.audit.all() {
		if r.Action == "prune" {
			pruned++
		}
	}
	if pruned != 1 {
		t.Errorf("%d prune records, want 1", pruned)
	}
	if got := counterValueLabel(t, f.reg, "rpm_ingestd_uploads_total", "result", "forbidden"); got != float64(forbiddenUploads) || forbiddenUploads != 3 {
		t.Errorf("uploads_total{result=forbidden} = %v, want %d (3)", got, forbiddenUploads)
	}
}

// counterValueLabel reads one series of a counter vector from reg.
func counterValueLabel(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}

// TestWhoami: 401 without credentials (or with wrong ones, or without a user name), else the user and the rules
// that apply to them; without permissions, restricted is false.
func TestWhoami(t *testing.T) {
	f := newPermFixture(t)
	get := func(user, pass string, peer auth.Peer) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/api/v1/whoami", nil)
		req = req.WithContext(auth.WithPeer(req.Context(), peer))
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		return rec
	}
	if rec := get("", "", remote); rec.Code != 401 || rec.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("without credentials: %d %s", rec.Code, rec.Body)
	}
	if rec := get("ci", "wrong", remote); rec.Code != 401 {
		t.Errorf("wrong password: %d %s", rec.Code, rec.Body)
	}
	rec := get("ci", "ci-pw", remote)
	var got whoamiResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 {
		t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
	}
	if got.User != "ci" || !got.Restricted || len(got.Permissions) != 1 || got.Permissions[0].Channels[0] != "testing" || got.Permissions[0].OSReleases[0] != "9" {
		t.Errorf("whoami ci = %+v", got)
	}
	if !strings.Contains(rec.Body.String(), `"os_releases": [`) || !strings.Contains(rec.Body.String(), `"actions": [`) {
		t.Errorf("JSON keys differ from the configuration's: %s", rec.Body)
	}
	if len(f.audit.all()) != 0 {
		t.Errorf("whoami wrote audit records: %+v", f.audit.all())
	}

	// Without permissions and without htpasswd: the trusted proxy's user, unrestricted; a local peer without a
	// name is 401.
	open := newFixture(t, func(o *Options) { o.Auth = newAuthenticator(t, "") })
	for _, tc := range []struct {
		peer   auth.Peer
		remote string
		status int
		body   string
	}{
		{loopback, "carol", 200, `"user": "carol"`},
		{loopback2, "carol", 401, "this request names no user"},
		{loopback, "", 401, "this request names no user"},
		{remote, "carol", 403, "is not local"},
	} {
		req := httptest.NewRequest("GET", "/api/v1/whoami", nil)
		req = req.WithContext(auth.WithPeer(req.Context(), tc.peer))
		if tc.remote != "" {
			req.Header.Set("X-Remote-User", tc.remote)
		}
		rec := httptest.NewRecorder()
		open.h.ServeHTTP(rec, req)
		if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("%v %q: %d %s, want %d %q", tc.peer, tc.remote, rec.Code, rec.Body, tc.status, tc.body)
		}
		if rec.Code == 200 && !strings.Contains(rec.Body.String(), `"restricted": false`) {
			t.Errorf("without permissions: %s", rec.Body)
		}
	}
}
