package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/registry"
)

// userAuth lets in the user named in X-Test-User, refuses "nobody" as unauthenticated, and reports a fixed client.
type userAuth struct{}

func (userAuth) Authorize(r *http.Request) (string, error) {
	if u := r.Header.Get("X-Test-User"); u != "nobody" {
		return u, nil
	}
	return "", fmt.Errorf("%w: send credentials", auth.ErrUnauthorized)
}
func (a userAuth) Proxied(r *http.Request) (string, error) { return a.Authorize(r) }
func (userAuth) ClientAddr(*http.Request) string           { return "192.0.2.1" }
func (userAuth) ReportedAddr(*http.Request) string         { return "" }

// locate reads the test layout "<os_release>/<arch>".
func locate(repo string) (string, string, bool) {
	rel, arch, ok := strings.Cut(repo, "/")
	return rel, arch, ok
}

// regFixture is a fixture whose server records into an audit file at auditPath and lists from an index built
// over the tree (after prepare has put files there by hand).
type regFixture struct {
	*fixture
	audit string
	index *registry.Index
}

func newRegFixture(t *testing.T, auditPath string, prepare func(top string)) *regFixture {
	t.Helper()
	rf := &regFixture{audit: auditPath}
	rf.fixture = newFixture(t, func(o *Options) {
		if prepare != nil {
			prepare(o.TopDir)
		}
		rf.index = registry.NewIndex(o.TopDir, locate)
		if _, err := rf.index.Build(auditPath); err != nil {
			t.Fatal(err)
		}
		a, err := registry.Open(auditPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		o.Auth = userAuth{}
		o.Registry = registry.New(a, rf.index)
		o.Packages = rf.index
	})
	return rf
}

// lines reads the audit file's records.
func (rf *regFixture) lines(t *testing.T) []registry.Record {
	t.Helper()
	f, err := os.Open(rf.audit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []registry.Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec registry.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("audit line %d: %v: %s", len(out)+1, err, sc.Text())
		}
		out = append(out, rec)
	}
	return out
}

// TestAuditOneLinePerDecision: a scripted mix of uploads leaves exactly one line per request, in order, each
// saying who, what and how it ended.
func TestAuditOneLinePerDecision(t *testing.T) {
	rf := newRegFixture(t, filepath.Join(t.TempDir(), "audit.log"), nil)
	outside := filepath.Join(filepath.Dir(rf.spool), "outside.rpm")
	os.WriteFile(outside, hello(t, ""), 0o600)
	noDist := testrpm.Build(t, testrpm.Spec{Name: "n", Release: "1", Arch: "x86_64"})
	alice := map[string]string{"X-Test-User": "alice"}
	steps := []struct {
		target string
		body   []byte
		hdr    map[string]string
		status int
		result string
		user   string
		file   string
	}{
		{"/upload/hello.rpm", hello(t, ""), alice, 201, "created", "alice", "hello.rpm"},
		{"/upload/", hello(t, ""), alice, 200, "exists", "alice", ""},
		{"/upload/rebuilt.rpm", hello(t, "other"), alice, 409, "conflict", "alice", "rebuilt.rpm"},
		{"/upload/junk.rpm", []byte("junk"), alice, 400, "invalid", "alice", "junk.rpm"},
		{"/upload/hello.rpm", hello(t, ""), map[string]string{"X-Test-User": "nobody"}, 401, "unauthorized", "", "hello.rpm"},
		{"/upload", nil, map[string]string{"X-Package-Name": outside}, 403, "forbidden", "", ""},
		{"/upload/n.rpm", noDist, nil, 422, "rejected", "", "n.rpm"},
		{"/upload", hello(t, "y"), map[string]string{"X-Checksum-Sha256": strings.Repeat("0", 64)}, 400, "bad_request", "", ""},
		{"/upload", make([]byte, 1<<20+1), nil, 413, "too_large", "", ""},
	}
	for i, st := range steps {
		if rec := rf.do(t, "PUT", st.target, st.body, st.hdr); rec.Code != st.status {
			t.Fatalf("step %d: %d %s, want %d", i, rec.Code, rec.Body, st.status)
		}
	}

	lines := rf.lines(t)
	if len(lines) != len(steps) {
		t.Fatalf("%d audit lines for %d decisions: %+v", len(lines), len(steps), lines)
	}
	ids := map[string]bool{}
	for i, st := range steps {
		l := lines[i]
		if l.Status != st.status || l.Result != st.result || l.User != st.user || l.FileName != st.file ||
			l.Action != "upload" || l.Client != "192.0.2.1" || l.RequestID == "" || l.Time.IsZero() {
			t.Errorf("line %d: %+v\nwant status %d, result %s, user %q, file %q", i, l, st.status, st.result, st.user, st.file)
		}
		if (l.Reason == "") != (st.status < 300) {
			t.Errorf("line %d: reason %q", i, l.Reason)
		}
		ids[l.RequestID] = true
	}
	if len(ids) != len(steps) {
		t.Errorf("request ids repeat: %v", ids)
	}
	c := lines[0]
	if c.NEVRA != "hello-1.0-1.el9.x86_64" || c.Name != "hello" || c.Arch != "x86_64" || len(c.SHA256) != 64 || c.Size == 0 ||
		strings.Join(c.Repos, ",") != "9/x86_64" || strings.Join(c.Paths, ",") != "9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm" {
		t.Errorf("created line: %+v", c)
	}
	if conflict := lines[2]; conflict.SHA256 == c.SHA256 || conflict.NEVRA != c.NEVRA || len(conflict.Paths) != 1 {
		t.Errorf("conflict line does not describe the refused package: %+v", conflict)
	}

	// The index learnt of the upload as it was recorded, first upload first.
	e, ok := rf.index.Get("9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm")
	if !ok || e.UploadedBy == nil || *e.UploadedBy != "alice" || *e.RequestID != c.RequestID {
		t.Errorf("index entry %+v", e)
	}
	if recent := rf.index.Recent(1); len(recent) != 1 || recent[0].Result != "too_large" {
		t.Errorf("recent: %+v", recent)
	}
}

// TestAuditWriteFailureKeepsNothing: when the audit file cannot be written (here /dev/full, which fails every
// write as a full disk does), an upload is answered 500 and its package is not in the tree; a refusal is still
// answered as it would be.
func TestAuditWriteFailureKeepsNothing(t *testing.T) {
	rf := newRegFixture(t, "/dev/full", nil)
	rec := rf.do(t, "PUT", "/upload/hello.rpm", hello(t, ""), nil)
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "request id") {
		t.Fatalf("upload with a failing audit file: %d %s, want 500", rec.Code, rec.Body)
	}
	var left []string
	filepath.WalkDir(rf.top, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".rpm") {
			left = append(left, p)
		}
		return nil
	})
	if len(left) != 0 {
		t.Errorf("packages left in the tree: %v", left)
	}
	if rf.index.Len() != 0 {
		t.Errorf("index lists %d packages", rf.index.Len())
	}
	if len(rf.idx.triggered) != 1 {
		t.Errorf("triggered %v: the marked repository must still be indexed", rf.idx.triggered)
	}
	if rec := rf.do(t, "PUT", "/upload", []byte("junk"), nil); rec.Code != 400 {
		t.Errorf("refusal with a failing audit file: %d, want its own 400", rec.Code)
	}
	entries, _ := os.ReadDir(rf.spool)
	if len(entries) != 0 {
		t.Errorf("spool keeps %d files", len(entries))
	}
}
