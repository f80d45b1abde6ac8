package server

import (
	"net/http"
	"testing"
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
