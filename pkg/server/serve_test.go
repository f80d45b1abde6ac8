package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serve_repo serves the files written into top_dir for clients, whose names have no extension net/http knows
// (so it sniffs their type, which needs Seek): the .repo file and the exported signing key.
func TestServeRepoTopLevelFiles(t *testing.T) {
	f := newFixture(t, nil)
	files := map[string]string{
		"rpm-ingestd.repo":        "[rpm-ingestd]\nbaseurl=http://127.0.0.1:5000/repo/$releasever/$basearch/\n",
		"RPM-GPG-KEY-rpm-ingestd": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(f.top, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		t.Run(name, func(t *testing.T) {
			rec := f.do(t, "GET", "/repo/"+name, nil, nil)
			if rec.Code != 200 || rec.Body.String() != content {
				t.Errorf("GET /repo/%s: %d %q, want 200 %q", name, rec.Code, rec.Body, content)
			}
		})
	}
	// Listings still hide dot names.
	os.WriteFile(filepath.Join(f.top, ".rpm-ingestd.repo.tmp-1"), []byte("x"), 0o644)
	if rec := f.do(t, "GET", "/repo/", nil, nil); rec.Code != 200 || strings.Contains(rec.Body.String(), ".rpm-ingestd.repo.tmp") {
		t.Errorf("listing: %d %s", rec.Code, rec.Body)
	}
}
