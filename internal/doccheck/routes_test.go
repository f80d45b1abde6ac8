package doccheck

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/server"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
)

// Stand-ins for the server's dependencies: Routes only registers handlers, it never calls them, so each embeds
// its nil interface.
type (
	ingester  struct{ server.Ingester }
	idx       struct{ server.Indexer }
	authz     struct{ server.Authorizer }
	planner   struct{ server.RetentionPlanner }
	publisher struct{ server.Publisher }
	lifecycle struct{ server.Lifecycle }
	recorder  struct{ server.Recorder }
	lister    struct{ server.PackageLister }
)

// allOptions returns server.Options with every optional part turned on, with the default upload path and
// repo URL, so the router registers every route it can.
func allOptions(t *testing.T) server.Options {
	def := config.Default()
	reg := prometheus.NewRegistry()
	top := t.TempDir()
	tr, err := fstree.New(fstree.Options{TopDir: top, Log: zap.NewNop()})
	if err != nil {
		t.Fatalf("fstree.New: %v", err)
	}
	return server.Options{
		UploadPath:           def.Server.UploadPath,
		UploadHeader:         def.Server.UploadHeader,
		DirectUpload:         true,
		MaxUploadSize:        int64(def.Server.MaxUploadSize),
		RepoURL:              def.Server.RepoURL,
		ServeRepo:            true,
		TopDir:               top,
		Tree:                 tr,
		MaxConcurrentUploads: def.Server.MaxConcurrentUploads,
		QueueTimeout:         time.Duration(def.Server.QueueTimeout),
		UploadIdleTimeout:    time.Duration(def.Server.UploadIdleTimeout),
		UploadMinRate:        int64(def.Server.UploadMinRate),
		Auth:                 authz{},
		SpoolDir:             t.TempDir(),
		IndexerProgram:       "createrepo_c",
		Registerer:           reg,
		Gatherer:             reg,
		Web:                  http.NotFoundHandler(),
		Retention:            planner{},
		Publisher:            publisher{},
		MaxWait:              time.Duration(def.Server.MaxWait),
		Lookup:               func(string) []string { return nil },
		Channels:             []string{"testing", "stable"},
		Lifecycle:            lifecycle{},
		Registry:             recorder{},
		Packages:             lister{},
		Permissions:          auth.NewPermissions([]auth.Rule{{Users: []string{"ci"}, Actions: []string{"upload"}}}),
		Refusals:             auth.NewLimiter(server.DefaultRefusalLimit, server.DefaultRefusalWindow, nil),
		RepoObjects:          bucket{}, // serve_repo from a bucket: the same /repo/* routes
	}
}

// bucket is an empty server.RepoObjects.
type bucket struct{}

func (bucket) Get(context.Context, string) (io.ReadCloser, objstore.Info, error) {
	return nil, objstore.Info{}, objstore.ErrNotFound
}
func (bucket) Head(context.Context, string) (objstore.Info, error) {
	return objstore.Info{}, objstore.ErrNotFound
}

// routes lists "METHOD /pattern" for every route the router of opts serves.
func routes(t *testing.T, opts server.Options) []string {
	t.Helper()
	s, err := server.New(opts, ingester{}, idx{}, zap.NewNop())
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	h := s.Routes()
	r, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("server.Routes() returns %T, not a chi router: teach this test to find the routes", h)
	}
	var out []string
	err = chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// undocumentedRoutes returns the routes that api.md does not name in a code span, like `GET /healthz`.
func undocumentedRoutes(routes []string, md string) []string {
	spans := map[string]bool{}
	lines, _ := Prose(md)
	for _, line := range lines {
		for _, s := range codeSpanRe.FindAllString(line, -1) {
			spans[strings.Trim(s, "`")] = true
		}
	}
	var missing []string
	for _, r := range routes {
		if !spans[r] {
			missing = append(missing, r)
		}
	}
	return missing
}

// TestRoutesDocumented: every route of server.Routes(), with every optional part enabled, appears in docs/api.md
// as `METHOD /path`. The failure lists exactly the routes to add.
func TestRoutesDocumented(t *testing.T) {
	opts := allOptions(t)
	// Every optional part must be on, or its routes would go unchecked: a new field in server.Options that is
	// left zero here fails, naming the field.
	v := reflect.ValueOf(opts)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("server.Options.%s is zero in allOptions: set it (turn the part on) so its routes are checked against docs/api.md",
				v.Type().Field(i).Name)
		}
	}
	all := routes(t, opts)
	if len(all) < 20 {
		t.Fatalf("found only %d routes: %v", len(all), all)
	}
	md, err := os.ReadFile(filepath.Join(repoRoot, "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	if missing := undocumentedRoutes(all, string(md)); len(missing) > 0 {
		t.Errorf("docs/api.md does not name %d route(s) of server.Routes(); add a row | `ROUTE` | ... | for each:\n  %s",
			len(missing), strings.Join(missing, "\n  "))
	}
}

// TestUndocumentedRoutes: a route mentioned only in plain text or only in a code block does not count.
func TestUndocumentedRoutes(t *testing.T) {
	md := "| `GET /a` | x |\nGET /b in prose\n```\n`GET /c`\n```\n"
	got := undocumentedRoutes([]string{"GET /a", "GET /b", "GET /c"}, md)
	if want := []string{"GET /b", "GET /c"}; !slices.Equal(got, want) {
		t.Errorf("undocumentedRoutes = %q, want %q", got, want)
	}
}
