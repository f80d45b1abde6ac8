package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/indexer"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
)

// recordingIndexer is a fake Indexer that records Trigger calls.
type recordingIndexer struct {
	mu        sync.Mutex
	triggered []string
}

func (r *recordingIndexer) Trigger(dir string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.triggered = append(r.triggered, dir)
}
func (r *recordingIndexer) ExpectedAt(string) time.Time { return time.Now().Add(30 * time.Second) }
func (r *recordingIndexer) Status() []indexer.RepoStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []indexer.RepoStatus
	for _, d := range r.triggered {
		out = append(out, indexer.RepoStatus{Dir: d})
	}
	return out
}

type fixture struct {
	h     http.Handler
	idx   *recordingIndexer
	top   string
	spool string
}

func newFixture(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	return newFixtureLog(t, mod, zaptest.NewLogger(t))
}

// newFixtureLog is newFixture with the logger given, for tests that read what was logged.
func newFixtureLog(t *testing.T, mod func(*Options), log *zap.Logger) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{idx: &recordingIndexer{}, top: filepath.Join(base, "storage"), spool: filepath.Join(base, "incoming")}
	os.Mkdir(f.top, 0o755)
	os.Mkdir(f.spool, 0o755)
	ing, err := ingest.New(ingest.Options{
		TopDir: f.top, Tree: testTree(t, f.top), SpoolDir: f.spool, Arches: []string{"x86_64", "aarch64"}, DistTags: []string{"el", "fc"},
		MaxSize: 1 << 20, Layout: func(_, _, r, a string) (string, error) { return filepath.Join(r, a), nil },
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ing.Close() })
	opts := Options{UploadPath: "/upload", UploadHeader: "X-Package-Name", DirectUpload: true, MaxUploadSize: 1 << 20,
		RepoURL: "/repo", ServeRepo: true, TopDir: f.top, Auth: allowAll{}}
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

func (f *fixture) do(t *testing.T, method, target string, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func (f *fixture) spoolFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(f.spool, fmt.Sprintf("%010d", time.Now().UnixNano()%1e10))
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func hello(t *testing.T, salt string) []byte {
	return testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64", Salt: salt})
}

func TestUploadStatuses(t *testing.T) {
	f := newFixture(t, nil)
	outside := filepath.Join(filepath.Dir(f.spool), "outside.rpm")
	os.WriteFile(outside, hello(t, ""), 0o600)
	tests := []struct {
		name   string
		method string
		target string
		body   []byte
		hdr    map[string]string
		status int
		line   string // the start of the one-line body
	}{
		{"curl -T to /upload/", "PUT", "/upload/whatever-name.rpm", hello(t, ""), nil, 201,
			"OK - Accessible as /repo/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm (published to dnf in about 30s)"},
		{"same bytes again", "PUT", "/upload", hello(t, ""), nil, 200, "OK (already present) - Accessible as /repo/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"},
		{"different bytes, same name", "POST", "/upload/", hello(t, "x"), nil, 409, "hello-1.0-1.el9.x86_64.rpm is already stored with different content"},
		{"junk", "PUT", "/upload", []byte("junk"), nil, 400, "rpm:"},
		{"checksum mismatch", "PUT", "/upload", hello(t, "y"), map[string]string{"X-Checksum-Sha256": strings.Repeat("0", 64)}, 400, "checksum mismatch: the upload's sha256 is"},
		{"no dist tag", "PUT", "/upload", testrpm.Build(t, testrpm.Spec{Name: "n", Release: "1", Arch: "x86_64"}), nil, 422, `release "1" of n-1.0-1.x86_64 has no dist tag`},
		{"no dist tag, query override", "PUT", "/upload?os_release=9", testrpm.Build(t, testrpm.Spec{Name: "n", Release: "1", Arch: "x86_64"}), nil, 201, "OK - Accessible as /repo/9/x86_64/Packages/n-1.0-1.x86_64.rpm"},
		{"no dist tag, header override", "PUT", "/upload", testrpm.Build(t, testrpm.Spec{Name: "m", Release: "1", Arch: "x86_64"}), map[string]string{"X-OS-Release": "8"}, 201, "OK - Accessible as /repo/8/x86_64/Packages/m-1.0-1.x86_64.rpm"},
		{"header outside spool", "PUT", "/upload", nil, map[string]string{"X-Package-Name": outside}, 403, "spooled file"},
		{"too large by Content-Length", "PUT", "/upload", bytes.Repeat([]byte("x"), 1<<20+1), nil, 413, "upload is larger than server.max_upload_size (1048576 bytes)"},
		{"POST with a file name", "POST", "/upload/x.rpm", testrpm.Build(t, testrpm.Spec{Name: "p", Release: "1.el9", Arch: "x86_64"}), nil, 201, "OK - Accessible as /repo/9/x86_64/Packages/p-1.0-1.el9.x86_64.rpm"},
		{"GET on upload path", "GET", "/upload", nil, nil, 405, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do(t, tc.method, tc.target, tc.body, tc.hdr)
			body := rec.Body.String()
			if rec.Code != tc.status || !strings.HasPrefix(body, tc.line) {
				t.Fatalf("got %d %q, want %d %q…", rec.Code, body, tc.status, tc.line)
			}
			if tc.status >= 400 && strings.Count(strings.TrimSuffix(body, "\n"), "\n") != 0 {
				t.Errorf("error body is not one line: %q", body)
			}
		})
	}
	if entries, _ := os.ReadDir(f.spool); len(entries) != 0 {
		t.Errorf("spool not empty: %v", entries)
	}
	// The four 201s and the 200: a retry may follow a crash between placing and answering, so its repository
	// is marked and indexed again. Refusals trigger nothing.
	if got := len(f.idx.triggered); got != 5 {
		t.Errorf("Trigger called %d times, want 5: %v", got, f.idx.triggered)
	}
}

func TestUploadJSONAndLocation(t *testing.T) {
	f := newFixture(t, nil)
	data := testrpm.Build(t, testrpm.Spec{Name: "data", Release: "1.el9", Arch: "noarch"})
	rec := f.do(t, "PUT", "/upload", data, map[string]string{"Accept": "application/json", "X-Package-Name": f.spoolFile(t, data)})
	if rec.Code != 201 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if loc := rec.Header().Get("Location"); loc != "/repo/9/x86_64/Packages/data-1.0-1.el9.noarch.rpm" {
		t.Errorf("Location %q", loc)
	}
	var got uploadResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := uploadResponse{Name: "data", Version: "1.0", Release: "1.el9", Arch: "noarch", OSRelease: "9",
		Repos:  []string{"/repo/9/x86_64/", "/repo/9/aarch64/"},
		Paths:  []string{"/repo/9/x86_64/Packages/data-1.0-1.el9.noarch.rpm", "/repo/9/aarch64/Packages/data-1.0-1.el9.noarch.rpm"},
		Size:   int64(len(data)),
		Status: "created"}
	if got.Name != want.Name || got.Arch != want.Arch || got.OSRelease != want.OSRelease || got.Status != want.Status ||
		got.Size != want.Size || fmt.Sprint(got.Repos) != fmt.Sprint(want.Repos) || fmt.Sprint(got.Paths) != fmt.Sprint(want.Paths) ||
		len(got.SHA256) != 64 || got.VisibleBy.IsZero() {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if fmt.Sprint(f.idx.triggered) != fmt.Sprint([]string{filepath.Join(f.top, "9/x86_64"), filepath.Join(f.top, "9/aarch64")}) {
		t.Errorf("triggered %v", f.idx.triggered)
	}

	rec = f.do(t, "PUT", "/upload", []byte("junk"), map[string]string{"Accept": "application/json"})
	var e map[string]string
	if rec.Code != 400 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e["error"] == "" {
		t.Errorf("JSON error: %d %s", rec.Code, rec.Body)
	}
}

func TestDirectUploadDisabled(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.DirectUpload = false })
	rec := f.do(t, "PUT", "/upload", hello(t, ""), nil)
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "the X-Package-Name header is missing") {
		t.Errorf("got %d %s", rec.Code, rec.Body)
	}
	data := hello(t, "")
	if rec := f.do(t, "PUT", "/upload", nil, map[string]string{"X-Package-Name": f.spoolFile(t, data)}); rec.Code != 201 {
		t.Errorf("header mode: %d %s", rec.Code, rec.Body)
	}
}

// TestHeaderModeNeverWaitsForBody sends what nginx sends with proxy_pass_request_body off and a forgotten
// Content-Length reset: a Content-Length and no body, on a keep-alive connection. The answer must still come.
func TestHeaderModeNeverWaitsForBody(t *testing.T) {
	f := newFixture(t, nil)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	path := f.spoolFile(t, hello(t, ""))
	fmt.Fprintf(conn, "PUT /upload/hello.rpm HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nX-Package-Name: %s\r\n\r\n", path)
	conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // a hang fails the test instead of blocking it forever
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 201 {
		t.Errorf("status %d", resp.StatusCode)
	}
}

func TestChunkedTooLarge(t *testing.T) {
	f := newFixture(t, nil)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	pr, pw := io.Pipe()
	go func() {
		pw.Write(bytes.Repeat([]byte("x"), 1<<20+10))
		pw.Close()
	}()
	req, _ := http.NewRequest("PUT", srv.URL+"/upload", pr) // unknown length: sent chunked
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(body), "max_upload_size") {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
	if entries, _ := os.ReadDir(f.spool); len(entries) != 0 {
		t.Errorf("spool not empty: %v", entries)
	}
}

type failingIngester struct{ err error }

func (f failingIngester) Ingest(context.Context, ingest.Request) (*ingest.Result, error) {
	return nil, f.err
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err    error
		status int
		body   string
	}{
		{fmt.Errorf("x: %w", rpmmeta.ErrInvalidPackage), 400, "x: invalid rpm package"},
		{&ingest.Error{Kind: ingest.ErrForbidden, Msg: "no"}, 403, "no"},
		{&ingest.Error{Kind: ingest.ErrExists, Msg: "exists"}, 409, "exists"},
		{&ingest.Error{Kind: ingest.ErrTooLarge, Msg: "big"}, 413, "big"},
		{&ingest.Error{Kind: ingest.ErrRejected, Msg: "arch"}, 422, "arch"},
		{&ingest.Error{Kind: ingest.ErrNoSpace, Msg: "full"}, 507, "full"},
		{&ingest.Error{Kind: ingest.ErrBadUpload, Msg: "cut"}, 400, "cut"},
		{errors.New("open /secret/path: permission denied"), 500, "internal error; the daemon's log has the details under request id"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			s, err := New(Options{UploadPath: "/upload", UploadHeader: "X-Package-Name", DirectUpload: true, MaxUploadSize: 10, RepoURL: "/repo", Auth: allowAll{}},
				failingIngester{tc.err}, &recordingIndexer{}, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			s.Routes().ServeHTTP(rec, httptest.NewRequest("PUT", "/upload", strings.NewReader("x")))
			if rec.Code != tc.status || !strings.HasPrefix(rec.Body.String(), tc.body) {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body, tc.status, tc.body)
			}
		})
	}
}

func TestStatusAndServeRepo(t *testing.T) {
	f := newFixture(t, nil)
	if rec := f.do(t, "PUT", "/upload", hello(t, ""), nil); rec.Code != 201 {
		t.Fatalf("upload: %d %s", rec.Code, rec.Body)
	}
	os.WriteFile(filepath.Join(f.top, "9", "x86_64", ".rpm-ingestd-dirty"), nil, 0o644)

	rec := f.do(t, "GET", "/api/v1/repos", nil, nil)
	var repos []map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &repos); err != nil || len(repos) != 1 || repos[0]["url"] != "/repo/9/x86_64/" {
		t.Errorf("status: %d %s", rec.Code, rec.Body)
	}
	tests := []struct {
		path   string
		status int
		has    string
		hasNot string
	}{
		{"/repo/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", 200, "", ""},
		{"/repo/9/x86_64/Packages/", 200, "hello-1.0-1.el9.x86_64.rpm", ""},
		{"/repo/9/x86_64/", 200, "Packages/", ".rpm-ingestd-dirty"},
		{"/repo/", 200, "9/", ".rpm-ingestd-tmp"},
		{"/repo/9/x86_64/.rpm-ingestd-dirty", 404, "", ""},
		{"/repo/.rpm-ingestd-tmp/", 404, "", ""},
		{"/repo/../incoming/", 404, "", ""},
		{"/healthz", 200, "ok", ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			rec := f.do(t, "GET", tc.path, nil, nil)
			body := rec.Body.String()
			if rec.Code != tc.status || !strings.Contains(body, tc.has) || tc.hasNot != "" && strings.Contains(body, tc.hasNot) {
				t.Errorf("GET %s: %d %q", tc.path, rec.Code, body)
			}
		})
	}
	f2 := newFixture(t, func(o *Options) { o.ServeRepo = false })
	if rec := f2.do(t, "GET", "/repo/", nil, nil); rec.Code != 404 {
		t.Errorf("serve_repo off: GET /repo/ = %d", rec.Code)
	}
}

// testTree opens the fs tree on top for a test and closes it when the test ends.
func testTree(t testing.TB, top string) *fstree.Tree {
	t.Helper()
	tr, err := fstree.New(fstree.Options{TopDir: top})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}
