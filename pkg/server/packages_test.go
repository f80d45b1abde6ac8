package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// pkgPage is GET /api/v1/packages as a client decodes it, with the record fields kept raw to tell null apart.
type pkgPage struct {
	Items []struct {
		Path       string          `json:"path"`
		URL        string          `json:"url"`
		Name       string          `json:"name"`
		OSRelease  string          `json:"os_release"`
		Arch       string          `json:"arch"`
		Size       int64           `json:"size"`
		UploadedBy json.RawMessage `json:"uploaded_by"`
		UploadedAt json.RawMessage `json:"uploaded_at"`
		SHA256     json.RawMessage `json:"sha256"`
	} `json:"items"`
	NextCursor string `json:"next_cursor"`
	Next       string `json:"next"`
}

func (rf *regFixture) list(t *testing.T, target string) pkgPage {
	t.Helper()
	rec := rf.do(t, "GET", target, nil, nil)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
	}
	var p pkgPage
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("GET %s: %v: %s", target, err, rec.Body)
	}
	return p
}

func (p pkgPage) paths() []string {
	out := []string{}
	for _, it := range p.Items {
		out = append(out, it.Path)
	}
	return out
}

// TestPackagesList: uploads and a file copied in by hand, listed with filters and in pages.
func TestPackagesList(t *testing.T) {
	const manual = "9/x86_64/Packages/manual-3-1.el9.x86_64.rpm"
	rf := newRegFixture(t, filepath.Join(t.TempDir(), "audit.log"), func(top string) {
		p := filepath.Join(top, manual)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("copied by hand"), 0o644)
	})
	for _, s := range []testrpm.Spec{
		{Name: "hello", Release: "1.el9", Arch: "x86_64"},
		{Name: "hello", Release: "1.el8", Arch: "x86_64"},
		{Name: "world", Release: "1.el9", Arch: "noarch"}, // two paths: x86_64 and aarch64
		{Name: "hello", Release: "2.el9", Arch: "aarch64"},
	} {
		if rec := rf.do(t, "PUT", "/upload", testrpm.Build(t, s), map[string]string{"X-Test-User": "ci"}); rec.Code != 201 {
			t.Fatalf("upload %s: %d %s", s.Name, rec.Code, rec.Body)
		}
	}

	all := rf.list(t, "/api/v1/packages")
	want := []string{
		"8/x86_64/Packages/hello-1.0-1.el8.x86_64.rpm",
		"9/aarch64/Packages/hello-1.0-2.el9.aarch64.rpm",
		"9/aarch64/Packages/world-1.0-1.el9.noarch.rpm",
		"9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm",
		manual,
		"9/x86_64/Packages/world-1.0-1.el9.noarch.rpm",
	}
	if got := all.paths(); !slices.Equal(got, want) || all.NextCursor != "" || all.Next != "" {
		t.Fatalf("all: %v (next %q)\nwant %v", got, all.NextCursor, want)
	}
	for _, it := range all.Items {
		recorded := it.Path != manual
		if recorded != (string(it.UploadedBy) == `"ci"`) || recorded == (string(it.UploadedAt) == "null") || recorded == (string(it.SHA256) == "null") {
			t.Errorf("%s: uploaded_by %s, uploaded_at %s, sha256 %s", it.Path, it.UploadedBy, it.UploadedAt, it.SHA256)
		}
		if it.URL != "/repo/"+it.Path {
			t.Errorf("%s: url %q", it.Path, it.URL)
		}
	}
	if m := all.Items[4]; string(m.UploadedBy) != "null" || m.Name != "manual" || m.Size != int64(len("copied by hand")) || m.OSRelease != "9" || m.Arch != "x86_64" {
		t.Errorf("hand-copied file: %+v", m)
	}

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"name=hello&os_release=9", []string{want[1], want[3]}},
		{"arch=aarch64", []string{want[1], want[2]}},
		{"os_release=8&arch=x86_64", []string{want[0]}},
		{"name=world&arch=x86_64", []string{want[5]}},
		{"since=2000-01-01", want},
		{"since=2999-01-01T00:00:00Z", []string{}},
		{"name=nothing", []string{}},
	} {
		if got := rf.list(t, "/api/v1/packages?"+tc.query).paths(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.query, got, tc.want)
		}
	}

	// Pages of two, following next, see every package once, and keep the filters.
	var paged []string
	target := "/api/v1/packages?limit=2"
	for pages := 0; target != ""; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		p := rf.list(t, target)
		if len(p.Items) > 2 {
			t.Fatalf("%d items with limit=2", len(p.Items))
		}
		paged = append(paged, p.paths()...)
		target = p.Next
	}
	if !slices.Equal(paged, want) {
		t.Errorf("paged: %v\nwant %v", paged, want)
	}
	p := rf.list(t, "/api/v1/packages?name=hello&limit=1")
	if !strings.Contains(p.Next, "name=hello") || !strings.Contains(p.Next, "cursor=") {
		t.Errorf("next %q loses the filter or the cursor", p.Next)
	}
	if got := rf.list(t, "/api/v1/packages?name=hello&limit=1&cursor="+p.NextCursor).paths(); !slices.Equal(got, []string{want[1]}) {
		t.Errorf("second page of name=hello: %v", got)
	}
}

// TestPackagesBadQuery: every bad parameter is a 400 with one line naming it.
func TestPackagesBadQuery(t *testing.T) {
	rf := newRegFixture(t, filepath.Join(t.TempDir(), "audit.log"), nil)
	for _, tc := range []struct{ query, want string }{
		{"os=9", `unknown parameter "os"`},
		{"limit=0", "limit \"0\" must be a number from 1 to 1000"},
		{"limit=1001", "from 1 to 1000"},
		{"limit=ten", "from 1 to 1000"},
		{"since=yesterday", "since \"yesterday\" must be a time like"},
		{"cursor=%21%21", "bad cursor"},
		{"name=a&name=b", "name is given 2 times"},
		{"arch=x86_64%2F..", "arch is not a plain name"},
	} {
		rec := rf.do(t, "GET", "/api/v1/packages?"+tc.query, nil, nil)
		body := rec.Body.String()
		if rec.Code != 400 || !strings.Contains(body, tc.want) || strings.Count(body, "\n") != 1 {
			t.Errorf("%s: %d %q, want 400 with %q on one line", tc.query, rec.Code, body, tc.want)
		}
	}
	rec := rf.do(t, "GET", "/api/v1/packages?limit=0", nil, map[string]string{"Accept": "application/json"})
	var e map[string]string
	if json.Unmarshal(rec.Body.Bytes(), &e) != nil || !strings.Contains(e["error"], "limit") {
		t.Errorf("JSON error body: %s", rec.Body)
	}
}

func TestPackagesWithoutIndex(t *testing.T) {
	f := newFixture(t, nil)
	if rec := f.do(t, "GET", "/api/v1/packages", nil, nil); rec.Code != 404 {
		t.Errorf("without an index: %d %s", rec.Code, rec.Body)
	}
}
