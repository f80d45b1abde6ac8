package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// fakePublisher is a Publisher over an in-memory published set. With auto, PublishNow publishes at once what
// Packages/ holds, as a run would; otherwise only publish does.
type fakePublisher struct {
	auto bool

	mu        sync.Mutex
	published map[string]map[string]string // repoDir → href → sha256 of the bytes published
	now       []string                     // PublishNow calls
	changed   chan struct{}                // closed and replaced on every publish
	waiting   chan string                  // if set, gets the repoDir of each WaitVisible call
}

func newFakePublisher(auto bool) *fakePublisher {
	return &fakePublisher{auto: auto, published: map[string]map[string]string{}, changed: make(chan struct{})}
}

func (p *fakePublisher) PublishNow(repo string) {
	p.mu.Lock()
	p.now = append(p.now, repo)
	p.mu.Unlock()
	if p.auto {
		p.publish(repo)
	}
}

// publish lists repo's Packages/ as published and wakes the waiters.
func (p *fakePublisher) publish(repo string) {
	entries, _ := os.ReadDir(filepath.Join(repo, "Packages"))
	set := map[string]string{}
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(repo, "Packages", e.Name()))
		sum := sha256.Sum256(b)
		set["Packages/"+e.Name()] = hex.EncodeToString(sum[:])
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.published[filepath.Clean(repo)] = set
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *fakePublisher) Visible(repo, href, sum string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	got, ok := p.published[filepath.Clean(repo)][href]
	return ok && got == sum
}

func (p *fakePublisher) WaitVisible(ctx context.Context, repo, href, sum string) error {
	if p.waiting != nil {
		p.waiting <- repo
	}
	for {
		p.mu.Lock()
		got, ok := p.published[filepath.Clean(repo)][href]
		all := ok && got == sum
		ch := p.changed
		p.mu.Unlock()
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait: %w", context.Cause(ctx))
		case <-ch:
		}
	}
}

func (p *fakePublisher) publishNowCalls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.now)
}

// waitFixture is a Server with a fakePublisher, reachable as a handler and as the Server itself.
type waitFixture struct {
	*fixture
	s   *Server
	pub *fakePublisher
}

func newWaitFixture(t *testing.T, pub *fakePublisher, mod func(*Options)) *waitFixture {
	t.Helper()
	var srv *Server
	// newFixture keeps the Server to itself: take its tree and indexer, and build the Server under test on them
	// (mod applies to that one only, so a Registerer is registered once).
	f := newFixture(t, nil)
	ing, err := ingest.New(ingest.Options{
		TopDir: f.top, Tree: testTree(t, f.top), SpoolDir: f.spool, Arches: []string{"x86_64", "aarch64"}, DistTags: []string{"el", "fc"},
		MaxSize: 1 << 20, Layout: func(_, _, r, a string) (string, error) { return filepath.Join(r, a), nil },
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ing.Close() })
	opts := Options{UploadPath: "/upload", UploadHeader: "X-Package-Name", DirectUpload: true, MaxUploadSize: 1 << 20,
		RepoURL: "/repo", TopDir: f.top, Auth: allowAll{}, Publisher: pub}
	if mod != nil {
		mod(&opts)
	}
	if srv, err = New(opts, ing, f.idx, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	f.h = srv.Routes()
	return &waitFixture{fixture: f, s: srv, pub: pub}
}

func pkg(t *testing.T, name, arch string) []byte {
	return testrpm.Build(t, testrpm.Spec{Name: name, Release: "1.el9", Arch: arch})
}

var jsonHdr = map[string]string{"Accept": "application/json"}

func decodeUpload(t *testing.T, rec *httptest.ResponseRecorder) uploadResponse {
	t.Helper()
	var got uploadResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	return got
}

func TestWaitVisiblePublishNow(t *testing.T) {
	tests := []struct {
		name   string
		target string
		hdr    map[string]string
	}{
		{"query", "/upload?wait=visible&publish=now", nil},
		{"headers", "/upload", map[string]string{"X-Wait": "visible", "X-Publish": "now"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newWaitFixture(t, newFakePublisher(true), nil)
			rec := f.do(t, "PUT", tc.target, pkg(t, "hello", "x86_64"), tc.hdr)
			want := "OK - Accessible as /repo/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm (visible to dnf now)\n"
			if rec.Code != 201 || rec.Body.String() != want {
				t.Fatalf("got %d %q, want 201 %q", rec.Code, rec.Body, want)
			}
			repo := filepath.Join(f.top, "9/x86_64")
			if got := f.pub.publishNowCalls(); !slices.Equal(got, []string{repo}) {
				t.Errorf("PublishNow calls %v, want [%s]", got, repo)
			}
			if len(f.idx.triggered) != 0 {
				t.Errorf("Trigger called %v; publish=now must replace it", f.idx.triggered)
			}
		})
	}
}

func TestWaitVisibleJSONNoarch(t *testing.T) {
	f := newWaitFixture(t, newFakePublisher(true), nil)
	rec := f.do(t, "PUT", "/upload?wait=visible&publish=now", pkg(t, "data", "noarch"), jsonHdr)
	if rec.Code != 201 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	got := decodeUpload(t, rec)
	if got.Visible == nil || !*got.Visible || len(got.Copies) != 2 || !got.Copies[0].Visible || !got.Copies[1].Visible ||
		got.Copies[0].ExpectedAt != nil || got.StatusURL != "/api/v1/uploads/"+got.SHA256 {
		t.Errorf("got %+v, want visible in both repositories", got)
	}
	if n := len(f.pub.publishNowCalls()); n != 2 {
		t.Errorf("PublishNow called %d times, want once per repository", n)
	}
	// The same bytes again: 200, and still visible.
	rec = f.do(t, "PUT", "/upload?wait=visible", pkg(t, "data", "noarch"), nil)
	if want := "OK (already present) - Accessible as /repo/9/x86_64/Packages/data-1.0-1.el9.noarch.rpm /repo/9/aarch64/Packages/data-1.0-1.el9.noarch.rpm (visible to dnf now)\n"; rec.Code != 200 || rec.Body.String() != want {
		t.Errorf("again: %d %q, want 200 %q", rec.Code, rec.Body, want)
	}
}

func TestWaitTimeoutThenPoll(t *testing.T) {
	f := newWaitFixture(t, newFakePublisher(false), nil)
	data := pkg(t, "slow", "x86_64")
	rec := f.do(t, "PUT", "/upload?wait=visible&timeout=1ms", data, jsonHdr)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d, want 202: %s", rec.Code, rec.Body)
	}
	if loc := rec.Header().Get("Location"); loc != "/repo/9/x86_64/Packages/slow-1.0-1.el9.x86_64.rpm" {
		t.Errorf("Location %q", loc)
	}
	got := decodeUpload(t, rec)
	if got.Visible == nil || *got.Visible || len(got.Copies) != 1 || got.Copies[0].Visible || got.Copies[0].ExpectedAt == nil ||
		got.Copies[0].Repo != "/repo/9/x86_64/" {
		t.Fatalf("got %+v, want one copy not yet visible with its expected time", got)
	}
	repo := filepath.Join(f.top, "9/x86_64")
	if !slices.Equal(f.idx.triggered, []string{repo}) {
		t.Errorf("triggered %v, want [%s] (no publish=now)", f.idx.triggered, repo)
	}

	poll := func() (int, map[string]any) {
		rec := f.do(t, "GET", "/api/v1/uploads/"+got.SHA256, nil, nil)
		var m map[string]any
		json.Unmarshal(rec.Body.Bytes(), &m)
		return rec.Code, m
	}
	if code, m := poll(); code != 200 || m["visible"] != false || m["sha256"] != got.SHA256 {
		t.Errorf("before the publish: %d %v", code, m)
	}
	f.pub.publish(repo)
	code, m := poll()
	copies, _ := m["copies"].([]any)
	if code != 200 || m["visible"] != true || len(copies) != 1 {
		t.Fatalf("after the publish: %d %v", code, m)
	}
	if c := copies[0].(map[string]any); c["url"] != "/repo/9/x86_64/Packages/slow-1.0-1.el9.x86_64.rpm" || c["visible"] != true || c["expected_at"] != nil {
		t.Errorf("copy %v", c)
	}
	// Upper case is the same sum.
	if rec := f.do(t, "GET", "/api/v1/uploads/"+strings.ToUpper(got.SHA256), nil, nil); rec.Code != 200 {
		t.Errorf("upper-case sha256: %d", rec.Code)
	}
}

func TestWaitTimeoutText(t *testing.T) {
	f := newWaitFixture(t, newFakePublisher(false), func(o *Options) { o.MaxWait = time.Millisecond })
	// timeout=1h is capped by MaxWait: the answer comes at once instead of in an hour.
	rec := f.do(t, "PUT", "/upload?wait=visible&timeout=1h", pkg(t, "slow", "x86_64"), nil)
	body := rec.Body.String()
	if rec.Code != 202 || !strings.HasPrefix(body, "Accepted - stored as /repo/9/x86_64/Packages/slow-1.0-1.el9.x86_64.rpm, not yet visible to dnf in /repo/9/x86_64/; poll /api/v1/uploads/") {
		t.Errorf("got %d %q", rec.Code, body)
	}
}

func TestWaitBadParams(t *testing.T) {
	tests := []struct {
		name   string
		target string
		hdr    map[string]string
		want   string
	}{
		{"wait=yes", "/upload?wait=yes", nil, `wait="yes": the only value is wait=visible`},
		{"X-Wait", "/upload", map[string]string{"X-Wait": "published"}, `wait="published"`},
		{"publish=later", "/upload?publish=later", nil, `publish="later": the only value is publish=now`},
		{"X-Publish", "/upload", map[string]string{"X-Publish": "1"}, `publish="1"`},
		{"negative timeout", "/upload?wait=visible&timeout=-1s", nil, `timeout="-1s": write a positive duration`},
		{"zero timeout", "/upload?wait=visible&timeout=0", nil, `timeout="0"`},
		{"junk timeout", "/upload?wait=visible&timeout=soon", nil, `timeout="soon"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newWaitFixture(t, newFakePublisher(true), nil)
			rec := f.do(t, "PUT", tc.target, pkg(t, "hello", "x86_64"), tc.hdr)
			if rec.Code != 400 || !strings.Contains(rec.Body.String(), tc.want) {
				t.Fatalf("got %d %q, want 400 with %q", rec.Code, rec.Body, tc.want)
			}
			// Refused before anything is stored or scheduled.
			if _, err := os.Stat(filepath.Join(f.top, "9")); !os.IsNotExist(err) {
				t.Errorf("something was stored: %v", err)
			}
			if len(f.idx.triggered)+len(f.pub.publishNowCalls()) != 0 {
				t.Errorf("scheduled: %v %v", f.idx.triggered, f.pub.publishNowCalls())
			}
		})
	}
}

func TestTimeoutInSeconds(t *testing.T) {
	s := &Server{opts: Options{MaxWait: time.Hour}}
	tests := []struct {
		give string
		want time.Duration
	}{{"90", 90 * time.Second}, {"2m", 2 * time.Minute}, {"3h", time.Hour}, {"", time.Hour}}
	for _, tc := range tests {
		r := httptest.NewRequest("PUT", "/upload?wait=visible&timeout="+tc.give, nil)
		wo, err := s.parseWait(r, r.URL.Query())
		if err != nil || wo.timeout != tc.want {
			t.Errorf("timeout=%s: %s, %v; want %s", tc.give, wo.timeout, err, tc.want)
		}
	}
}

// A waiting upload holds no upload slot, and StopWaiting answers it at once.
func TestWaitingHoldsNoSlotAndStops(t *testing.T) {
	pub := newFakePublisher(false)
	pub.waiting = make(chan string, 1)
	f := newWaitFixture(t, pub, func(o *Options) { o.MaxConcurrentUploads = 1 })
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- f.do(t, "PUT", "/upload?wait=visible", pkg(t, "first", "x86_64"), nil) }()
	<-pub.waiting // the first upload is stored and waiting

	if rec := f.do(t, "PUT", "/upload", pkg(t, "second", "x86_64"), nil); rec.Code != 201 {
		t.Errorf("second upload while the first waits: %d %s (want 201: a waiting upload must not hold the slot)", rec.Code, rec.Body)
	}
	f.s.StopWaiting()
	if rec := <-done; rec.Code != 202 {
		t.Errorf("waiting upload after StopWaiting: %d %s, want 202", rec.Code, rec.Body)
	}
	// After StopWaiting nothing waits any more.
	rec := f.do(t, "PUT", "/upload?wait=visible", pkg(t, "third", "x86_64"), nil)
	<-pub.waiting
	if rec.Code != 202 {
		t.Errorf("upload after StopWaiting: %d, want 202", rec.Code)
	}
}

func TestUploadStatusLookup(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	var paths []string
	pub := newFakePublisher(false)
	f := newWaitFixture(t, pub, func(o *Options) { o.Lookup = func(s string) []string { return map[string][]string{sum: paths}[s] } })
	placed := filepath.Join(f.top, "9/x86_64/Packages/x-1-1.el9.x86_64.rpm")
	os.MkdirAll(filepath.Dir(placed), 0o755)
	os.WriteFile(placed, []byte("x"), 0o644)

	tests := []struct {
		name   string
		paths  []string
		target string
		status int
		want   string
	}{
		{"not hex", nil, "/api/v1/uploads/" + strings.Repeat("g", 64), 400, "is not a sha256"},
		{"too short", nil, "/api/v1/uploads/abc", 400, "is not a sha256"},
		{"unknown", nil, "/api/v1/uploads/" + sum, 404, "no package with sha256 " + sum + " is known here"},
		{"deleted since", []string{"9/x86_64/Packages/gone-1-1.el9.x86_64.rpm"}, "/api/v1/uploads/" + sum, 404, "no package"},
		{"not a package path", []string{"9/x86_64/x-1-1.el9.x86_64.rpm", "../etc/Packages/passwd"}, "/api/v1/uploads/" + sum, 404, "no package"},
		{"found by the lookup", []string{"9/x86_64/Packages/x-1-1.el9.x86_64.rpm", "9/x86_64/Packages/x-1-1.el9.x86_64.rpm"}, "/api/v1/uploads/" + sum, 200,
			`"url": "/repo/9/x86_64/Packages/x-1-1.el9.x86_64.rpm"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			paths = tc.paths
			rec := f.do(t, "GET", tc.target, nil, nil)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.want) {
				t.Fatalf("got %d %q, want %d with %q", rec.Code, rec.Body, tc.status, tc.want)
			}
			if tc.status == 200 && strings.Count(rec.Body.String(), `"url"`) != 1 {
				t.Errorf("a path listed twice must show once: %s", rec.Body)
			}
		})
	}
}

func TestWithoutPublisher(t *testing.T) {
	f := newFixture(t, nil)
	rec := f.do(t, "PUT", "/upload?wait=visible&publish=now", pkg(t, "hello", "x86_64"), jsonHdr)
	if rec.Code != 201 || strings.Contains(rec.Body.String(), `"visible"`) {
		t.Errorf("got %d %s: without a Publisher the flags have no effect", rec.Code, rec.Body)
	}
	if len(f.idx.triggered) != 1 {
		t.Errorf("triggered %v, want the one repository", f.idx.triggered)
	}
	if rec := f.do(t, "GET", "/api/v1/uploads/"+strings.Repeat("0", 64), nil, nil); rec.Code != 404 {
		t.Errorf("uploads route without a Publisher: %d, want 404", rec.Code)
	}
}

func TestRecentForgetsOldest(t *testing.T) {
	r := newRecent(2)
	r.add("a", []string{"1"})
	r.add("b", []string{"2"})
	r.add("a", []string{"1", "1b"}) // an update does not count as new
	r.add("c", []string{"3"})
	if got := r.get("a"); got != nil {
		t.Errorf("a = %v, want forgotten", got)
	}
	if got := r.get("b"); !slices.Equal(got, []string{"2"}) {
		t.Errorf("b = %v", got)
	}
	if got := r.get("c"); !slices.Equal(got, []string{"3"}) {
		t.Errorf("c = %v", got)
	}
}

// A 202 is a stored upload whose wait ended first: the uploads counter says created (or exists), never error.
func TestWaitTimeoutCountedAsStored(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newWaitFixture(t, newFakePublisher(false), func(o *Options) { o.Registerer = reg })
	if rec := f.do(t, "PUT", "/upload?wait=visible&timeout=1ms", pkg(t, "slow", "x86_64"), nil); rec.Code != 202 {
		t.Fatalf("status %d, want 202", rec.Code)
	}
	if rec := f.do(t, "PUT", "/upload?wait=visible&timeout=1ms", pkg(t, "slow", "x86_64"), nil); rec.Code != 202 {
		t.Fatalf("again: status %d, want 202", rec.Code)
	}
	m := f.s.metrics
	for result, want := range map[string]float64{resultCreated: 1, resultExists: 1, resultError: 0} {
		if got := testutil.ToFloat64(m.uploads.WithLabelValues(result)); got != want {
			t.Errorf("uploads_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}

// TestUploadStatusAsksTheTree: with Options.Tree, whether a copy is still stored is the tree's answer, not a file
// under TopDir: a tree kept elsewhere (as an s3 one is) that holds the package answers 200, and 404 once it is
// removed from the tree.
func TestUploadStatusAsksTheTree(t *testing.T) {
	sum := strings.Repeat("cd", 32)
	stored := "9/x86_64/Packages/x-1-1.el9.x86_64.rpm"
	remote := t.TempDir()
	tr := testTree(t, remote)
	pub := newFakePublisher(false)
	f := newWaitFixture(t, pub, func(o *Options) {
		o.Tree = tr
		o.Lookup = func(s string) []string { return map[string][]string{sum: {stored}}[s] }
	})
	placed := filepath.Join(remote, filepath.FromSlash(stored))
	os.MkdirAll(filepath.Dir(placed), 0o755)
	os.WriteFile(placed, []byte("x"), 0o644)
	if rec := f.do(t, "GET", "/api/v1/uploads/"+sum, nil, nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), stored) {
		t.Fatalf("stored in the tree: got %d %s, want 200", rec.Code, rec.Body)
	}
	if _, err := tr.Remove(t.Context(), []tree.Ref{{Repo: "9/x86_64", Name: "x-1-1.el9.x86_64.rpm"}}); err != nil {
		t.Fatal(err)
	}
	if rec := f.do(t, "GET", "/api/v1/uploads/"+sum, nil, nil); rec.Code != 404 {
		t.Fatalf("removed from the tree: got %d %s, want 404", rec.Code, rec.Body)
	}
}

// sharedTree is a tree another daemon also writes to: a tree.Finder over a fixed map (the s3 markers), with Stat
// reporting the stored sha256 as s3's does.
type sharedTree struct {
	tree.Tree
	found   map[string][]tree.Ref
	sums    map[tree.Ref]string // Stat's SHA256
	findErr error
}

func (s *sharedTree) FindSHA256(_ context.Context, sum string) ([]tree.Ref, error) {
	return s.found[sum], s.findErr
}

func (s *sharedTree) Stat(ctx context.Context, ref tree.Ref) (tree.Stamp, error) {
	st, err := s.Tree.Stat(ctx, ref)
	st.SHA256 = s.sums[ref]
	return st, err
}

// TestUploadStatusFindsAnotherDaemonsUpload: a sha256 that neither the registry nor this daemon's own uploads
// know is looked up in a shared tree (tree.Finder), so a daemon answers for an upload another daemon took; a
// marker whose copy is gone or now holds other bytes is no copy; a tree that cannot answer is a 503.
func TestUploadStatusFindsAnotherDaemonsUpload(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	ref := tree.Ref{Repo: "9/x86_64", Name: "x-1-1.el9.x86_64.rpm"}
	tests := []struct {
		name     string
		stored   bool   // the copy exists in the tree
		storedAs string // Stat's sha256
		findErr  error
		noFinder bool
		want     int
	}{
		{name: "found", stored: true, storedAs: sum, want: 200},
		{name: "stamp without sha256", stored: true, want: 200},
		{name: "replaced with other bytes", stored: true, storedAs: strings.Repeat("ef", 32), want: 404},
		{name: "removed since", want: 404},
		{name: "storage down", stored: true, findErr: fmt.Errorf("list: %w", tree.ErrUnavailable), want: 503},
		{name: "tree of one daemon", stored: true, noFinder: true, want: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			remote := t.TempDir()
			if tc.stored {
				p := filepath.Join(remote, filepath.FromSlash(ref.Path()))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var tr tree.Tree = &sharedTree{Tree: testTree(t, remote), found: map[string][]tree.Ref{sum: {ref}},
				sums: map[tree.Ref]string{ref: tc.storedAs}, findErr: tc.findErr}
			if tc.noFinder {
				tr = testTree(t, remote)
			}
			f := newWaitFixture(t, newFakePublisher(false), func(o *Options) { o.Tree = tr })
			rec := f.do(t, "GET", "/api/v1/uploads/"+sum, nil, nil)
			if rec.Code != tc.want {
				t.Fatalf("got %d %s, want %d", rec.Code, rec.Body, tc.want)
			}
			if tc.want == 200 && !strings.Contains(rec.Body.String(), `"/repo/9/x86_64/Packages/x-1-1.el9.x86_64.rpm"`) {
				t.Errorf("answer names no copy: %s", rec.Body)
			}
		})
	}
}

// countingFinder is a shared tree that knows no sha256 and counts the lookups that reach it.
type countingFinder struct {
	tree.Tree
	calls atomic.Int32
}

func (c *countingFinder) FindSHA256(context.Context, string) ([]tree.Ref, error) {
	c.calls.Add(1)
	return nil, nil
}

// TestUploadStatusSharedLookupsBounded: GET /api/v1/uploads/{sha256} is open to anyone, and an unknown sha256
// costs a bucket listing; a client asking for random sums gets at most sharedLookupBurst of them at once and
// sharedLookupRate a second after that, then 503 with Retry-After, and the bucket is not asked.
func TestUploadStatusSharedLookupsBounded(t *testing.T) {
	tr := &countingFinder{Tree: testTree(t, t.TempDir())}
	f := newWaitFixture(t, newFakePublisher(false), func(o *Options) { o.Tree = tr })
	now := time.Unix(1_700_000_000, 0)
	f.s.now = func() time.Time { return now }
	ask := func(i int) *httptest.ResponseRecorder {
		return f.do(t, "GET", "/api/v1/uploads/"+fmt.Sprintf("%064x", i), nil, nil)
	}
	codes := map[int]int{}
	for i := range sharedLookupBurst + 20 {
		rec := ask(i)
		codes[rec.Code]++
		if rec.Code == http.StatusServiceUnavailable && (rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "too many lookups")) {
			t.Fatalf("refused lookup: %d %q, Retry-After %q", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
		}
	}
	if codes[http.StatusNotFound] != sharedLookupBurst || codes[http.StatusServiceUnavailable] != 20 || int(tr.calls.Load()) != sharedLookupBurst {
		t.Fatalf("answers %v, bucket asked %d times; want %d × 404 (asked) and 20 × 503 (not asked)", codes, tr.calls.Load(), sharedLookupBurst)
	}
	now = now.Add(time.Second) // refilled by sharedLookupRate
	codes = map[int]int{}
	for i := range sharedLookupRate + 5 {
		codes[ask(1000+i).Code]++
	}
	if codes[http.StatusNotFound] != sharedLookupRate || codes[http.StatusServiceUnavailable] != 5 {
		t.Fatalf("a second later: answers %v, want %d × 404 and 5 × 503", codes, sharedLookupRate)
	}
}

// statCounting is a shared tree that counts its Stat calls (bucket HEADs on s3).
type statCounting struct {
	sharedTree
	stats atomic.Int32
}

func (s *statCounting) Stat(ctx context.Context, ref tree.Ref) (tree.Stamp, error) {
	s.stats.Add(1)
	return s.sharedTree.Stat(ctx, ref)
}

// TestUploadStatusKnownSumBounded: the sha256 of every published package is public (primary.xml), and on a shared
// tree checking a known copy is a bucket HEAD too: polling a known sum spends the same budget as an unknown one, so
// anonymous requests cannot buy unbounded bucket requests either way.
func TestUploadStatusKnownSumBounded(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	ref := tree.Ref{Repo: "9/x86_64", Name: "x-1-1.el9.x86_64.rpm"}
	remote := t.TempDir()
	p := filepath.Join(remote, filepath.FromSlash(ref.Path()))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tr := &statCounting{sharedTree: sharedTree{Tree: testTree(t, remote), sums: map[tree.Ref]string{ref: sum}}}
	f := newWaitFixture(t, newFakePublisher(false), func(o *Options) {
		o.Tree = tr
		o.Lookup = func(s string) []string {
			if s == sum {
				return []string{ref.Path()}
			}
			return nil
		}
	})
	now := time.Unix(1_700_000_000, 0)
	f.s.now = func() time.Time { return now }
	codes := map[int]int{}
	for range sharedLookupBurst + 20 {
		codes[f.do(t, "GET", "/api/v1/uploads/"+sum, nil, nil).Code]++
	}
	if codes[http.StatusOK] != sharedLookupBurst || codes[http.StatusServiceUnavailable] != 20 || int(tr.stats.Load()) != sharedLookupBurst {
		t.Fatalf("answers %v, bucket HEADs %d; want %d × 200 and 20 × 503, one HEAD per 200", codes, tr.stats.Load(), sharedLookupBurst)
	}
}
