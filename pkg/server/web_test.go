package server

import (
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/web"
)

// TestWebRoutes checks which requests reach Options.Web: the status page and the package pages, GET only, and
// nothing when no Web handler is set.
func TestWebRoutes(t *testing.T) {
	web := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot) // a status nothing else answers, so a pass cannot come from elsewhere
	})
	tests := []struct {
		name           string
		web            http.Handler
		method, target string
		want           int
	}{
		{"status page", web, http.MethodGet, "/", http.StatusTeapot},
		{"search", web, http.MethodGet, "/?q=hello", http.StatusTeapot},
		{"package page", web, http.MethodGet, "/packages/9/x86_64/Packages/a-1-1.x86_64.rpm", http.StatusTeapot},
		{"no POST to the page", web, http.MethodPost, "/", http.StatusMethodNotAllowed},
		{"the API is not the page's", web, http.MethodGet, "/api/v1/repos", http.StatusOK},
		{"without Web, no status page", nil, http.MethodGet, "/", http.StatusNotFound},
		{"without Web, no package page", nil, http.MethodGet, "/packages/a.rpm", http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.Web = tc.web })
			if got := f.do(t, tc.method, tc.target, nil, nil).Code; got != tc.want {
				t.Errorf("%s %s = %d, want %d", tc.method, tc.target, got, tc.want)
			}
		})
	}
}

// TestWebHandlerMounted serves the real pages through Routes, so that chi's routing and the web package's own
// agree on the paths: a package path with several segments reaches web's Source unchanged.
func TestWebHandlerMounted(t *testing.T) {
	src := &oneRepoSource{pkg: web.Package{Path: "9/x86_64/Packages/a-1-1.x86_64.rpm", NEVRA: "a-1-1.x86_64", SHA256: "feed"}}
	h, err := web.New(web.Options{Source: src}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *Options) { o.Web = h })
	tests := []struct {
		target string
		want   int
		text   string
	}{
		{"/", http.StatusOK, `data-path="9/x86_64"`},
		{"/packages/9/x86_64/Packages/a-1-1.x86_64.rpm", http.StatusOK, "feed"},
		{"/packages/9/x86_64/Packages/b-1-1.x86_64.rpm", http.StatusNotFound, "Not found"},
	}
	for _, tc := range tests {
		rec := f.do(t, http.MethodGet, tc.target, nil, nil)
		if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.text) {
			t.Errorf("GET %s = %d, want %d with %q", tc.target, rec.Code, tc.want, tc.text)
		}
	}
}

// oneRepoSource is a web.Source with one repository and one package.
type oneRepoSource struct{ pkg web.Package }

func (s *oneRepoSource) Repos() []web.Repo {
	return []web.Repo{{Path: "9/x86_64", Packages: 1, State: web.StateClean}}
}
func (s *oneRepoSource) RecentUploads(int) []web.Upload       { return nil }
func (s *oneRepoSource) Search(string, int) []web.Package     { return nil }
func (s *oneRepoSource) Package(p string) (web.Package, bool) { return s.pkg, p == s.pkg.Path }
