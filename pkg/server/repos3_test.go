package server

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
)

// fakeObjects is a bucket in memory; down makes every request fail as an unreachable server does.
type fakeObjects struct {
	objs map[string]string
	down bool
	gets []string
}

func (f *fakeObjects) lookup(op, key string) (objstore.Info, error) {
	if f.down {
		return objstore.Info{}, &objstore.Error{Op: op, Key: key, Kind: objstore.ErrUnavailable}
	}
	v, ok := f.objs[key]
	if !ok {
		return objstore.Info{}, &objstore.Error{Op: op, Key: key, Status: 404, Kind: objstore.ErrNotFound}
	}
	return objstore.Info{Key: key, Size: int64(len(v)), ETag: `"e"`, LastModified: time.Unix(1700000000, 0)}, nil
}

func (f *fakeObjects) Get(_ context.Context, key string) (io.ReadCloser, objstore.Info, error) {
	f.gets = append(f.gets, key)
	info, err := f.lookup("get", key)
	if err != nil {
		return nil, info, err
	}
	return io.NopCloser(strings.NewReader(f.objs[key])), info, nil
}

func (f *fakeObjects) Head(_ context.Context, key string) (objstore.Info, error) {
	return f.lookup("head", key)
}

// TestServeRepoFromBucket: with RepoObjects, /repo/<repository>/... comes from the bucket with its type, length
// and validators; missing keys, hidden keys (.rpm-ingestd/ holds leases and pending changes) and directory URLs
// are 404; an unreachable bucket is 503 with Retry-After; names directly under /repo (the .repo file) come from
// top_dir.
func TestServeRepoFromBucket(t *testing.T) {
	objs := &fakeObjects{objs: map[string]string{
		"9/x86_64/repodata/repomd.xml":           "<repomd/>",
		"9/x86_64/Packages/a-1-1.el9.x86_64.rpm": "RPMBYTES",
		"9/x86_64/.rpm-ingestd/lease.json":       "{}",
	}}
	f := newFixture(t, func(o *Options) { o.RepoObjects = objs })
	os.WriteFile(filepath.Join(f.top, "rpm-ingestd.repo"), []byte("[x]\n"), 0o644)
	os.MkdirAll(filepath.Join(f.top, "9/x86_64/repodata"), 0o755)
	os.WriteFile(filepath.Join(f.top, "9/x86_64/repodata/repomd.xml"), []byte("LOCAL"), 0o644)

	tests := []struct {
		method, path string
		status       int
		body, ctype  string
	}{
		{"GET", "/repo/9/x86_64/repodata/repomd.xml", 200, "<repomd/>", "text/xml"},
		{"HEAD", "/repo/9/x86_64/repodata/repomd.xml", 200, "", "text/xml"},
		{"GET", "/repo/9/x86_64/Packages/a-1-1.el9.x86_64.rpm", 200, "RPMBYTES", ""},
		{"GET", "/repo/9/x86_64/Packages/missing.rpm", 404, "", ""},
		{"HEAD", "/repo/9/x86_64/Packages/missing.rpm", 404, "", ""},
		{"GET", "/repo/9/x86_64/.rpm-ingestd/lease.json", 404, "", ""},
		{"GET", "/repo/9/x86_64/", 404, "", ""},
		{"GET", "/repo/9/x86_64/repodata/../.rpm-ingestd/lease.json", 404, "", ""},
		{"GET", "/repo/rpm-ingestd.repo", 200, "[x]\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			rec := f.do(t, tc.method, tc.path, nil, nil)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status != 200 {
				return
			}
			if tc.method == "GET" && rec.Body.String() != tc.body {
				t.Errorf("body %q, want %q", rec.Body, tc.body)
			}
			if tc.ctype != "" && !strings.HasPrefix(rec.Header().Get("Content-Type"), tc.ctype) {
				t.Errorf("Content-Type %q, want %s", rec.Header().Get("Content-Type"), tc.ctype)
			}
			if strings.Contains(tc.path, "/Packages/") || strings.Contains(tc.path, "/repodata/") {
				if rec.Header().Get("Content-Length") == "" || rec.Header().Get("ETag") != `"e"` || rec.Header().Get("Last-Modified") == "" {
					t.Errorf("headers %v: want Content-Length, ETag and Last-Modified", rec.Header())
				}
			}
		})
	}
	for _, g := range objs.gets {
		if strings.Contains(g, ".rpm-ingestd") {
			t.Errorf("asked the bucket for the hidden key %s", g)
		}
	}
	objs.down = true
	rec := f.do(t, "GET", "/repo/9/x86_64/repodata/repomd.xml", nil, nil)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("bucket down: status %d, Retry-After %q, want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if strings.Contains(rec.Body.String(), "stopping") {
		t.Errorf("bucket down answered as a stop: %s", rec.Body)
	}
}
