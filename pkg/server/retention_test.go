package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
)

// retentionFixture is a server over a real ingester whose repositories keep the newest keep builds.
func retentionFixture(t *testing.T, keep int) (*fixture, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	base := t.TempDir()
	f := &fixture{idx: &recordingIndexer{}, top: filepath.Join(base, "storage"), spool: filepath.Join(base, "incoming")}
	os.Mkdir(f.top, 0o755)
	os.Mkdir(f.spool, 0o755)
	ing, err := ingest.New(ingest.Options{
		TopDir: f.top, Tree: testTree(t, f.top), SpoolDir: f.spool, Arches: []string{"x86_64", "aarch64"}, DistTags: []string{"el"},
		MaxSize: 1 << 20, Layout: func(_, _, r, a string) (string, error) { return filepath.Join(r, a), nil },
		Retention: ingest.RetentionOptions{Policy: func(string) ingest.Retention { return ingest.Retention{KeepVersions: keep} }},
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ing.Close() })
	s, err := New(Options{UploadPath: "/upload", UploadHeader: "X-Package-Name", DirectUpload: true, MaxUploadSize: 1 << 20,
		RepoURL: "/repo", TopDir: f.top, Auth: allowAll{}, Retention: ing}, ing, f.idx, log)
	if err != nil {
		t.Fatal(err)
	}
	f.h = s.Routes()
	return f, logs
}

// put copies hello-<version>-1.el9.x86_64 into 9/x86_64 as if uploaded an hour ago.
func (f *fixture) put(t *testing.T, version string) {
	t.Helper()
	dir := filepath.Join(f.top, "9", "x86_64", "Packages")
	os.MkdirAll(dir, 0o755)
	p := testrpm.WriteFile(t, dir, testrpm.Spec{Name: "hello", Version: version, Release: "1.el9", Arch: "x86_64"})
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
}

// TestRetentionDryRunEndpoint checks the JSON of GET /api/v1/retention over a real tree, and that an upload
// afterwards removes what it named and reports it.
func TestRetentionDryRunEndpoint(t *testing.T) {
	f, logs := retentionFixture(t, 1)
	for _, v := range []string{"1", "2", "3"} {
		f.put(t, v)
	}
	rec := f.do(t, http.MethodGet, "/api/v1/retention", nil, nil)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, type %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var got []struct {
		Repo         string `json:"repo"`
		URL          string `json:"url"`
		KeepVersions int    `json:"keep_versions"`
		KeepDays     int    `json:"keep_days"`
		Prune        []struct {
			Path       string    `json:"path"`
			NEVRA      string    `json:"nevra"`
			Rank       int       `json:"rank"`
			UploadedAt time.Time `json:"uploaded_at"`
			Reasons    []string  `json:"reasons"`
		} `json:"prune"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	if len(got) != 1 || got[0].Repo != "9/x86_64" || got[0].URL != "/repo/9/x86_64/" || got[0].KeepVersions != 1 || got[0].KeepDays != 0 {
		t.Fatalf("answer %+v, want one repository 9/x86_64 with keep_versions 1", got)
	}
	var nevras []string
	for _, c := range got[0].Prune {
		nevras = append(nevras, c.NEVRA)
		if len(c.Reasons) != 1 || !strings.HasPrefix(c.Reasons[0], "beyond keep_versions 1: build ") || c.UploadedAt.IsZero() {
			t.Errorf("candidate %+v lacks its reason or time", c)
		}
	}
	if want := []string{"hello-2-1.el9.x86_64", "hello-1-1.el9.x86_64"}; !slices.Equal(nevras, want) {
		t.Errorf("dry run names %v, want %v", nevras, want)
	}
	// A filter that selects nothing is an empty list, not null.
	if rec := f.do(t, http.MethodGet, "/api/v1/retention?arch=aarch64", nil, nil); rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("arch=aarch64: %d %s, want 200 []", rec.Code, rec.Body)
	}

	data := testrpm.Build(t, testrpm.Spec{Name: "hello", Version: "4", Release: "1.el9", Arch: "x86_64"})
	rec = f.do(t, http.MethodPut, "/upload/", data, map[string]string{"Accept": "application/json"})
	if rec.Code != http.StatusCreated {
		t.Fatalf("upload: %d %s", rec.Code, rec.Body)
	}
	var up uploadResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &up); err != nil {
		t.Fatal(err)
	}
	wantURLs := []string{"/repo/9/x86_64/Packages/hello-1-1.el9.x86_64.rpm", "/repo/9/x86_64/Packages/hello-2-1.el9.x86_64.rpm",
		"/repo/9/x86_64/Packages/hello-3-1.el9.x86_64.rpm"}
	slices.Sort(up.Pruned)
	if !slices.Equal(up.Pruned, wantURLs) {
		t.Errorf("upload answer pruned %v, want %v", up.Pruned, wantURLs)
	}
	stored := logs.FilterMessage("upload stored").All()
	if len(stored) != 1 {
		t.Fatalf("%d upload lines, want 1", len(stored))
	}
	if pr, ok := stored[0].ContextMap()["pruned"].([]any); !ok || len(pr) != 3 {
		t.Errorf("upload line pruned = %v, want the three paths", stored[0].ContextMap()["pruned"])
	}
	if n := logs.FilterMessage("package pruned").Len(); n != 3 {
		t.Errorf("%d 'package pruned' lines, want 3", n)
	}
	if !slices.Contains(f.idx.triggered, filepath.Join(f.top, "9", "x86_64")) {
		t.Errorf("triggered %v, want the repository re-indexed", f.idx.triggered)
	}
}

// fakePlanner records the filters it is asked for and answers with err, or blocks until release is closed.
type fakePlanner struct {
	mu      sync.Mutex
	filters []ingest.RetentionFilter
	err     error
	started chan struct{} // closed on the first call, when release is set
	release chan struct{}
}

func (p *fakePlanner) PlanRetention(ctx context.Context, f ingest.RetentionFilter) ([]ingest.RetentionPlan, error) {
	p.mu.Lock()
	p.filters = append(p.filters, f)
	p.mu.Unlock()
	if p.release != nil {
		close(p.started)
		<-p.release
	}
	return []ingest.RetentionPlan{}, p.err
}

func TestRetentionQuery(t *testing.T) {
	tests := []struct {
		name   string
		target string
		status int
		want   *ingest.RetentionFilter // the filter the planner gets; nil when it must not be called
		body   string
	}{
		{"all", "/api/v1/retention", 200, &ingest.RetentionFilter{}, "[]"},
		{"every filter", "/api/v1/retention?channel=stable&os_release=9&arch=x86_64", 200,
			&ingest.RetentionFilter{Channel: "stable", OSRelease: "9", Arch: "x86_64"}, "[]"},
		{"empty values match all", "/api/v1/retention?arch=&channel=", 200, &ingest.RetentionFilter{}, "[]"},
		{"unknown parameter", "/api/v1/retention?os-release=9", 400, nil, `unknown parameter "os-release": use channel, os_release, arch`},
		{"bad value", "/api/v1/retention?arch=../x", 400, nil, `arch "../x" is not a valid value`},
		{"repeated", "/api/v1/retention?arch=x86_64&arch=aarch64", 400, nil, "arch is given 2 times"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &fakePlanner{}
			f := newFixture(t, func(o *Options) { o.Retention = p })
			rec := f.do(t, http.MethodGet, tc.target, nil, nil)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) {
				t.Errorf("%d %q, want %d containing %q", rec.Code, rec.Body, tc.status, tc.body)
			}
			var want []ingest.RetentionFilter
			if tc.want != nil {
				want = []ingest.RetentionFilter{*tc.want}
			}
			if !slices.Equal(p.filters, want) {
				t.Errorf("planner asked for %+v, want %+v", p.filters, want)
			}
		})
	}
}

func TestRetentionErrors(t *testing.T) {
	cancelled := func(cause error) context.Context {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(cause)
		return ctx
	}
	tests := []struct {
		name   string
		err    error
		ctx    context.Context
		status int
		body   string
	}{
		{"planner fails", errors.New("find repositories: permission denied"), context.Background(), 500, "internal error"},
		{"client left", context.Canceled, cancelled(context.Canceled), 499, "client closed"},
		{"daemon stopping", context.Canceled, cancelled(ErrStopping), 503, "retry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.Retention = &fakePlanner{err: tc.err} })
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/retention", nil).WithContext(tc.ctx))
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) || strings.Contains(rec.Body.String(), "permission") {
				t.Errorf("%d %q, want %d containing %q and no detail", rec.Code, rec.Body, tc.status, tc.body)
			}
		})
	}
}

// TestRetentionOneAtATime: a second dry run while one runs is 503 with Retry-After, and works again after.
func TestRetentionOneAtATime(t *testing.T) {
	p := &fakePlanner{started: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, func(o *Options) { o.Retention = p })
	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- f.do(t, http.MethodGet, "/api/v1/retention", nil, nil) }()
	<-p.started
	rec := f.do(t, http.MethodGet, "/api/v1/retention", nil, nil)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "already running") {
		t.Errorf("concurrent dry run: %d %q (Retry-After %q), want 503", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
	close(p.release)
	if rec := <-first; rec.Code != http.StatusOK {
		t.Errorf("first dry run: %d %s", rec.Code, rec.Body)
	}
	p.release = nil
	if rec := f.do(t, http.MethodGet, "/api/v1/retention", nil, nil); rec.Code != http.StatusOK {
		t.Errorf("dry run after: %d %s", rec.Code, rec.Body)
	}
}

// TestRetentionRouteNeedsPlanner: without Options.Retention the route does not exist.
func TestRetentionRouteNeedsPlanner(t *testing.T) {
	f := newFixture(t, nil)
	if rec := f.do(t, http.MethodGet, "/api/v1/retention", nil, nil); rec.Code != http.StatusNotFound {
		t.Errorf("%d, want 404", rec.Code)
	}
}
