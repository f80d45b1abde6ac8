package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/registry"
)

// TestPromotePrunesAudited: issue 18 item 12 through the API. With keep_versions 1 in stable, promoting 2.0 over
// 1.0 answers with the pruned URLs, and the audit trail holds the promotion's line followed by one prune line per
// removed file, as after an upload; the package index forgets the pruned file.
// newAuditedFixture is a server over a real ingester whose options mod may change (channels testing and stable,
// layout {{.Channel}}/{{.OSRelease}}/{{.Arch}}, arch x86_64), with an audit file and the package index.
func newAuditedFixture(t *testing.T, mod func(*ingest.Options)) *regFixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{idx: &recordingIndexer{}, top: filepath.Join(base, "storage"), spool: filepath.Join(base, "incoming")}
	os.Mkdir(f.top, 0o755)
	os.Mkdir(f.spool, 0o755)
	channels := []string{"testing", "stable"}
	locate := func(rel string) (string, string, string, bool) {
		p := strings.Split(rel, "/")
		return p[0], p[1], p[2], len(p) == 3
	}
	log := zaptest.NewLogger(t)
	opts := ingest.Options{
		TopDir: f.top, Tree: testTree(t, f.top), SpoolDir: f.spool, Arches: []string{"x86_64"}, DistTags: []string{"el"},
		MaxSize: 1 << 20, Channels: channels, DefaultChannel: "testing",
		Layout: func(c, _, r, a string) (string, error) { return filepath.Join(c, r, a), nil },
		Locate: locate,
	}
	if mod != nil {
		mod(&opts)
	}
	ing, err := ingest.New(opts, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ing.Close() })
	auditPath := filepath.Join(base, "audit.log")
	index := registry.NewIndex(f.top, func(rel string) (string, string, bool) {
		_, r, a, ok := locate(rel)
		return r, a, ok
	})
	a, err := registry.Open(auditPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	s, err := New(Options{UploadPath: "/upload", UploadHeader: "X-Package-Name", DirectUpload: true, MaxUploadSize: 1 << 20,
		RepoURL: "/repo", TopDir: f.top, Auth: userAuth{}, Channels: channels, Lifecycle: ing,
		Registry: registry.New(a, index), Packages: index}, ing, f.idx, log)
	if err != nil {
		t.Fatal(err)
	}
	f.h = s.Routes()
	return &regFixture{fixture: f, audit: auditPath, index: index}
}

func TestPromotePrunesAudited(t *testing.T) {
	rf := newAuditedFixture(t, func(o *ingest.Options) {
		o.Retention = ingest.RetentionOptions{Policy: func(rel string) ingest.Retention {
			if strings.HasPrefix(rel, "stable/") {
				return ingest.Retention{KeepVersions: 1}
			}
			return ingest.Retention{}
		}}
	})
	f, index := rf.fixture, rf.index

	for _, v := range []string{"1.0", "2.0"} {
		b := testrpm.Build(t, testrpm.Spec{Name: "app", Version: v, Release: "1.el9", Arch: "x86_64"})
		if rec := f.do(t, "PUT", "/upload/testing/", b, nil); rec.Code != 201 {
			t.Fatalf("upload %s: %d %s", v, rec.Code, rec.Body)
		}
	}
	promote := func(v string) promoteResponse {
		t.Helper()
		rec := f.do(t, "POST", "/api/v1/promote", []byte(`{"from":"testing","to":"stable","name":"app","version":"`+v+`","release":"1.el9"}`), nil)
		if rec.Code != 201 {
			t.Fatalf("promote %s: %d %s", v, rec.Code, rec.Body)
		}
		var out promoteResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	promote("1.0")
	got := promote("2.0")
	const old = "stable/9/x86_64/Packages/app-1.0-1.el9.x86_64.rpm"
	if !slices.Equal(got.Pruned, []string{"/repo/" + old}) {
		t.Fatalf("pruned %v, want [/repo/%s]", got.Pruned, old)
	}
	if _, err := os.Stat(filepath.Join(f.top, old)); !os.IsNotExist(err) {
		t.Fatalf("%s still there: %v", old, err)
	}
	lines := rf.lines(t)
	if len(lines) < 2 {
		t.Fatalf("audit: %+v", lines)
	}
	promo, prune := lines[len(lines)-2], lines[len(lines)-1]
	if promo.Action != registry.ActionPromote || promo.NEVRA != "app-2.0-1.el9.x86_64" ||
		prune.Action != registry.ActionPrune || !slices.Equal(prune.Paths, []string{old}) || prune.Status != 200 ||
		prune.RequestID != promo.RequestID || prune.Reason != "repo.retention" {
		t.Fatalf("last audit lines:\n%+v\n%+v\nwant the promotion then the prune of %s, same request", promo, prune, old)
	}
	if _, ok := index.Get(old); ok {
		t.Errorf("the index still lists %s", old)
	}
}
