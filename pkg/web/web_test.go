package web

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/indexer"
)

// fakeSource is a Source over fixed data that records the searches it was asked for.
type fakeSource struct {
	repos   []Repo
	uploads []Upload // nil: no audit file
	pkgs    []Package

	mu       sync.Mutex
	searches []string
	limits   []int
}

func (f *fakeSource) Repos() []Repo { return f.repos }

func (f *fakeSource) RecentUploads(n int) []Upload {
	if f.uploads == nil || len(f.uploads) <= n {
		return f.uploads
	}
	return f.uploads[:n]
}

func (f *fakeSource) Search(name string, limit int) []Package {
	f.mu.Lock()
	f.searches = append(f.searches, name)
	f.limits = append(f.limits, limit)
	f.mu.Unlock()
	var out []Package
	for _, p := range f.pkgs {
		if strings.Contains(strings.ToLower(p.NEVRA), strings.ToLower(name)) && len(out) < limit {
			out = append(out, p)
		}
	}
	return out
}

func (f *fakeSource) Package(path string) (Package, bool) {
	for _, p := range f.pkgs {
		if p.Path == path {
			return p, true
		}
	}
	return Package{}, false
}

var testNow = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time { t := testNow.Add(-d); return &t }

// sampleSource has one repository in each state, three uploads and two packages.
func sampleSource() *fakeSource {
	return &fakeSource{
		repos: []Repo{
			{Path: "9/x86_64", URL: "/repo/9/x86_64/", Packages: 12, State: StateClean, LastRun: at(time.Hour), LastResult: "ok", LastDuration: 1234 * time.Millisecond},
			{Path: "9/aarch64", URL: "/repo/9/aarch64/", Packages: 3, State: StateDirty, DirtySince: at(2 * time.Minute), LastRun: at(time.Hour), LastResult: "ok"},
			{Path: "10/x86_64", Packages: 0, State: StateRunning},
			{Path: "8/x86_64", Packages: 7, State: StateFailing, LastRun: at(time.Minute), LastResult: "error", LastError: "createrepo_c: exit status 1: disk full"},
		},
		uploads: []Upload{
			{Time: testNow.Add(-time.Minute), User: "ci-bot", NEVRA: "hello-1.0-1.el9.x86_64", Result: "created", Status: 201, Path: "9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"},
			{Time: testNow.Add(-2 * time.Minute), User: "alice", NEVRA: "hello-1.0-1.el9.x86_64", Result: "conflict", Status: 409},
			{Time: testNow.Add(-3 * time.Minute), Status: 500},
		},
		pkgs: []Package{
			{Path: "9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", NEVRA: "hello-1.0-1.el9.x86_64", Size: 6789,
				SHA256: strings.Repeat("ab", 32), SignedBy: "0123456789abcdef", UploadedBy: "ci-bot", UploadedAt: at(time.Minute),
				Repos: []string{"/repo/9/x86_64/"}, RepoFile: "/repo/rpm-ingestd.repo",
				Summary: "Prints a friendly greeting", URL: "/repo/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"},
			{Path: "9/x86_64/Packages/world-2.0-1.el9.x86_64.rpm", NEVRA: "world-2.0-1.el9.x86_64", Size: 100,
				SHA256: strings.Repeat("cd", 32), Repos: []string{"/repo/9/x86_64/"}},
			{Path: "9/SRPMS/Packages/srcpkg-3.0-1.el9.src.rpm", NEVRA: "srcpkg-3.0-1.el9.src", Size: 300,
				SHA256: strings.Repeat("ef", 32), Repos: []string{"/repo/9/SRPMS/"}, RepoFile: "/repo/rpm-ingestd.repo",
				Summary: "Source of srcpkg", URL: "https://repo.example.com/repo/9/SRPMS/Packages/srcpkg-3.0-1.el9.src.rpm"},
		},
	}
}

func newTestHandler(t *testing.T, src Source) *Handler {
	t.Helper()
	h, err := New(Options{Source: src}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	h.now = func() time.Time { return testNow }
	return h
}

// get serves one request and returns the status and body.
func get(t *testing.T, h http.Handler, target string, mod ...func(*http.Request)) (int, http.Header, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for _, m := range mod {
		m(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	body, _ := io.ReadAll(w.Result().Body)
	return w.Code, w.Result().Header, string(body)
}

func TestNewRequiresSource(t *testing.T) {
	if _, err := New(Options{}, zaptest.NewLogger(t)); err == nil {
		t.Fatal("New without a Source succeeded")
	}
}

func TestStatusPage(t *testing.T) {
	h := newTestHandler(t, sampleSource())
	code, hdr, body := get(t, h, "/")
	if code != http.StatusOK {
		t.Fatalf("GET / = %d, want 200", code)
	}
	if ct := hdr.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	for _, want := range []string{
		// each repository with its count, its state as a word inside a coloured badge, and its last run
		`data-path="9/x86_64"`, `<a href="/repo/9/x86_64/">9/x86_64</a>`, `class="count">12<`,
		`<span class="badge state-clean">clean</span>`, "took 1.2s",
		`<span class="badge state-dirty">dirty</span>`,
		"since 2026-11-30 11:58:00 UTC (2m ago)",
		`<span class="badge state-running">running</span>`,
		`<span class="badge state-failing">failing</span>`, "disk full", `class="result state-failing">error<`,
		// the uploads: who, when, what, result
		"ci-bot", "2026-11-30 11:59:00 UTC (1m ago)", `href="/packages/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"`,
		`<span class="badge state-clean">created</span>`, `<span class="badge state-dirty">conflict</span>`,
		"anonymous", `<span class="badge state-failing">internal server error</span>`,
		`<input id="q" name="q" type="search" value=""`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	if strings.Contains(body, `id="results"`) {
		t.Error("status page without a query shows search results")
	}
	if strings.Contains(body, "<script") {
		t.Error("status page has a script element; it must work without JavaScript")
	}
}

func TestStatusPageUploads(t *testing.T) {
	tests := []struct {
		name    string
		uploads []Upload
		want    string
	}{
		{"no audit file", nil, "<code>log.audit_file</code>"},
		{"none yet", []Upload{}, "No uploads yet."},
		{"some", []Upload{{Time: testNow, User: "bob", NEVRA: "x-1-1.noarch", Result: "created", Status: 201}}, `class="user">bob<`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := sampleSource()
			src.uploads = tc.uploads
			_, _, body := get(t, newTestHandler(t, src), "/")
			if !strings.Contains(body, tc.want) {
				t.Errorf("uploads section lacks %q", tc.want)
			}
		})
	}
}

func TestNoRepositories(t *testing.T) {
	_, _, body := get(t, newTestHandler(t, &fakeSource{}), "/")
	if !strings.Contains(body, "No repository yet") {
		t.Error("an empty tree does not say so")
	}
}

func TestSearch(t *testing.T) {
	tests := []struct {
		name       string
		target     string
		wantSearch string // "" means Search must not be called
		want       []string
		notWant    []string
	}{
		{"match", "/?q=hello", "hello",
			[]string{`id="results"`, `href="/packages/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm">hello-1.0-1.el9.x86_64</a>`, `value="hello"`, "by ci-bot"},
			[]string{"world-2.0-1"}},
		{"trimmed", "/?q=++world+", "world", []string{">world-2.0-1.el9.x86_64</a>", `value="world"`}, nil},
		{"no match", "/?q=nothing", "nothing", []string{"No package name contains “nothing”."}, nil},
		{"blank is no search", "/?q=+++", "", nil, []string{`id="results"`}},
		{"capped", "/?q=" + strings.Repeat("a", 500), strings.Repeat("a", maxQuery), []string{`id="results"`}, nil},
		{"capped on a character boundary", "/?q=" + strings.Repeat("é", 150), strings.Repeat("é", maxQuery/2), []string{`id="results"`}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := sampleSource()
			code, _, body := get(t, newTestHandler(t, src), tc.target)
			if code != http.StatusOK {
				t.Fatalf("GET %s = %d", tc.target, code)
			}
			var wantSearches []string
			if tc.wantSearch != "" {
				wantSearches = []string{tc.wantSearch}
			}
			if strings.Join(src.searches, "|") != strings.Join(wantSearches, "|") {
				t.Errorf("Source.Search called with %q, want %q", src.searches, wantSearches)
			}
			for _, l := range src.limits {
				if l != DefaultSearchLimit {
					t.Errorf("Search limit = %d, want %d", l, DefaultSearchLimit)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("page has %q", w)
				}
			}
		})
	}
}

func TestPackagePage(t *testing.T) {
	h := newTestHandler(t, sampleSource())
	tests := []struct {
		name   string
		target string
		mod    func(*http.Request)
		want   []string
	}{
		{"facts", "/packages/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", func(*http.Request) {}, []string{
			`<h1 class="nevra">hello-1.0-1.el9.x86_64</h1>`, "6.6 KiB (6789 bytes)", strings.Repeat("ab", 32),
			`key <span class="mono">0123456789abcdef</span>`, `<span class="uploader">ci-bot</span>`,
			"2026-11-30 11:59:00 UTC (1m ago)", `<li class="mono">/repo/9/x86_64/</li>`,
			"sudo curl -fsSL -o &#39;/etc/yum.repos.d/rpm-ingestd.repo&#39; &#39;http://example.com/repo/rpm-ingestd.repo&#39;",
			"sudo dnf install &#39;hello-1.0-1.el9.x86_64&#39;",
			`<p class="summary">Prints a friendly greeting</p>`,
			`<a class="mono" href="/repo/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm" download>hello-1.0-1.el9.x86_64.rpm</a>`,
		}},
		{"source package", "/packages/9/SRPMS/Packages/srcpkg-3.0-1.el9.src.rpm", func(*http.Request) {}, []string{
			"<h2>Download the source package</h2>", "dnf download --source &#39;srcpkg-3.0-1.el9&#39;",
			`<p class="summary">Source of srcpkg</p>`,
			`href="https://repo.example.com/repo/9/SRPMS/Packages/srcpkg-3.0-1.el9.src.rpm" download>srcpkg-3.0-1.el9.src.rpm</a>`,
		}},
		{"https behind a proxy", "/packages/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm",
			func(r *http.Request) { r.Host = "repo.example.org"; r.Header.Set("X-Forwarded-Proto", "https") },
			[]string{"&#39;https://repo.example.org/repo/rpm-ingestd.repo&#39;"}},
		{"unsigned, no uploader, no .repo file", "/packages/9/x86_64/Packages/world-2.0-1.el9.x86_64.rpm", func(*http.Request) {}, []string{
			`<span class="badge state-dirty">unsigned</span>`, `<span class="uploader">anonymous</span>`, "never",
			"Set up the repository on the client first", "sudo dnf install &#39;world-2.0-1.el9.x86_64&#39;",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := get(t, h, tc.target, tc.mod)
			if code != http.StatusOK {
				t.Fatalf("GET %s = %d, want 200", tc.target, code)
			}
			if strings.Contains(tc.target, ".src.rpm") && strings.Contains(body, "dnf install") {
				t.Errorf("a source package's page suggests dnf install, which fails")
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("package page lacks %q", w)
				}
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	h := newTestHandler(t, sampleSource())
	for _, target := range []string{
		"/packages/9/x86_64/Packages/nope-1-1.x86_64.rpm",
		"/packages/",
		"/packages/9/x86_64/Packages", // a directory is no package
		"/somewhere-else",
	} {
		t.Run(target, func(t *testing.T) {
			code, hdr, body := get(t, h, target)
			if code != http.StatusNotFound {
				t.Fatalf("GET %s = %d, want 404", target, code)
			}
			if !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || !strings.Contains(body, "<h1>Not found</h1>") {
				t.Errorf("GET %s did not answer the 404 page: %s", target, body)
			}
		})
	}
}

// TestEscaping puts hostile text in every field a Source can fill, and in the query, and checks that none of it
// comes out as markup. Package names, user names and error texts all come from outside: a package's builder,
// an htpasswd file, createrepo_c's output.
func TestEscaping(t *testing.T) {
	hostile := []string{
		`<script>alert(1)</script>`,
		`"><img src=x onerror=alert(1)>`,
		`'><svg onload=alert(1)>`,
		`</textarea></pre><b>bold</b>`,
	}
	for _, evil := range hostile {
		t.Run(evil, func(t *testing.T) {
			p := Package{Path: "9/x86_64/Packages/" + evil + ".rpm", NEVRA: evil, SHA256: evil, SignedBy: evil,
				UploadedBy: evil, Repos: []string{evil}, RepoFile: "/repo/" + evil, Summary: evil, URL: "/repo/" + evil}
			src := &fakeSource{
				repos:   []Repo{{Path: evil, URL: "/repo/" + evil, State: evil, LastResult: "error", LastRun: at(time.Minute), LastError: evil}},
				uploads: []Upload{{Time: testNow, User: evil, NEVRA: evil, Result: evil, Status: 400, Path: p.Path}},
				pkgs:    []Package{p},
			}
			h := newTestHandler(t, src)
			for _, target := range []string{"/", "/?q=" + strings.NewReplacer("<", "%3C", ">", "%3E", `"`, "%22", "'", "%27", " ", "%20").Replace(evil),
				string(pkgURL(p.Path)), "/packages/no/" + strings.NewReplacer("<", "%3C", ">", "%3E", `"`, "%22", "'", "%27", " ", "%20").Replace(evil)} {
				_, _, body := get(t, h, target)
				for _, raw := range []string{"<script", "<img", "<svg", "<b>", "</textarea>"} {
					if strings.Contains(body, raw) {
						t.Errorf("GET %s: hostile input came out as markup %q", target, raw)
					}
				}
			}
		})
	}
}

// TestInstallLines checks the install lines: a package's name is the builder's choice, and the line
// is pasted into a root shell.
func TestInstallLines(t *testing.T) {
	tests := []struct {
		name, repoFile, nevra string
		want                  []string
	}{
		{"plain", "http://h/repo/ci.repo", "hello-1.0-1.el9.x86_64",
			[]string{"sudo curl -fsSL -o '/etc/yum.repos.d/ci.repo' 'http://h/repo/ci.repo'", "sudo dnf install 'hello-1.0-1.el9.x86_64'"}},
		{"quote in name", "", "x';rm -rf /;'",
			[]string{`sudo dnf install 'x'\'';rm -rf /;'\'''`}},
		{"query string and odd name", "http://h/get?f=a.repo", "a",
			[]string{"sudo curl -fsSL -o '/etc/yum.repos.d/rpm-ingestd.repo' 'http://h/get?f=a.repo'", "sudo dnf install 'a'"}},
		{"source package", "http://h/repo/ci.repo", "hello-1.0-1.el9.src",
			[]string{"sudo curl -fsSL -o '/etc/yum.repos.d/ci.repo' 'http://h/repo/ci.repo'", "dnf download --source 'hello-1.0-1.el9'"}},
		{"traversal in URL", "http://h/x/..repo/../../etc", "a",
			[]string{"sudo curl -fsSL -o '/etc/yum.repos.d/rpm-ingestd.repo' 'http://h/x/..repo/../../etc'", "sudo dnf install 'a'"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := installLines(tc.repoFile, tc.nevra)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("installLines = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPkgURL(t *testing.T) {
	tests := []struct{ give, want string }{
		{"9/x86_64/Packages/a-1-1.x86_64.rpm", "/packages/9/x86_64/Packages/a-1-1.x86_64.rpm"},
		{"9/x/Packages/a?b#c d.rpm", "/packages/9/x/Packages/a%3Fb%23c%20d.rpm"},
	}
	for _, tc := range tests {
		if got := string(pkgURL(tc.give)); got != tc.want {
			t.Errorf("pkgURL(%q) = %q, want %q", tc.give, got, tc.want)
		}
	}
}

// TestPackagePathRoundTrip follows a link with an awkward file name back to the Source.
func TestPackagePathRoundTrip(t *testing.T) {
	p := Package{Path: "9/x/Packages/a?b#c d.rpm", NEVRA: "odd-1-1.x86_64", SHA256: "00"}
	code, _, body := get(t, newTestHandler(t, &fakeSource{pkgs: []Package{p}}), string(pkgURL(p.Path)))
	if code != http.StatusOK || !strings.Contains(body, "odd-1-1.x86_64") {
		t.Fatalf("following pkgURL = %d, want the package page", code)
	}
}

func TestSecurityHeaders(t *testing.T) {
	h := newTestHandler(t, sampleSource())
	css, err := files.ReadFile("templates/style.css")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(css)
	for _, target := range []string{"/", "/packages/nope"} {
		_, hdr, body := get(t, h, target)
		csp := hdr.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
			t.Errorf("GET %s: Content-Security-Policy = %q", target, csp)
		}
		// The hash only matches if the style element holds the file byte for byte.
		if !strings.Contains(body, "<style>"+string(css)+"</style>") {
			t.Errorf("GET %s: the inline stylesheet differs from the file the policy hashes", target)
		}
		if hdr.Get("X-Content-Type-Options") != "nosniff" || hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: headers %v", target, hdr)
		}
	}
}

func TestRepoFromStatus(t *testing.T) {
	end := testNow
	tests := []struct {
		name string
		give indexer.RepoStatus
		want string
	}{
		{"never ran", indexer.RepoStatus{}, StateClean},
		{"clean", indexer.RepoStatus{LastResult: "ok", LastEnd: &end}, StateClean},
		{"dirty", indexer.RepoStatus{LastResult: "ok", DirtySince: &end}, StateDirty},
		{"failing beats dirty", indexer.RepoStatus{LastResult: "error", DirtySince: &end}, StateFailing},
		{"running beats failing", indexer.RepoStatus{LastResult: "error", Running: true}, StateRunning},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := RepoFromStatus(tc.give, "p", "").State; got != tc.want {
				t.Errorf("State = %q, want %q", got, tc.want)
			}
		})
	}
	r := RepoFromStatus(indexer.RepoStatus{Packages: 4, LastEnd: &end, LastDuration: "1.5s", LastResult: "error", LastError: "boom"}, "9/x86_64", "/repo/9/x86_64/")
	want := Repo{Path: "9/x86_64", URL: "/repo/9/x86_64/", Packages: 4, State: StateFailing, LastRun: &end,
		LastResult: "error", LastDuration: 1500 * time.Millisecond, LastError: "boom"}
	if r.Path != want.Path || r.URL != want.URL || r.Packages != want.Packages || r.State != want.State || r.LastRun != want.LastRun ||
		r.LastResult != want.LastResult || r.LastDuration != want.LastDuration || r.LastError != want.LastError {
		t.Errorf("RepoFromStatus = %+v, want %+v", r, want)
	}
}

func TestFormat(t *testing.T) {
	tests := []struct{ got, want string }{
		{size(10), "10 B"},
		{size(1536), "1.5 KiB (1536 bytes)"},
		{size(5 << 30), "5.0 GiB (5368709120 bytes)"},
		{ago(30 * time.Second), "30s ago"},
		{ago(90 * time.Minute), "1h ago"},
		{ago(72 * time.Hour), "3d ago"},
		{ago(-time.Second), "in the future"},
		{duration(0), ""},
		{duration(1234567 * time.Microsecond), "1.2s"},
		{duration(42 * time.Millisecond), "42ms"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestFileURL(t *testing.T) {
	tests := []struct{ give, want string }{
		{"/repo/9/x86_64/Packages/a-1-1.x86_64.rpm", "/repo/9/x86_64/Packages/a-1-1.x86_64.rpm"},
		{"/repo/9/x86_64/Packages/a?b#c.rpm", "/repo/9/x86_64/Packages/a%3Fb%23c.rpm"},
		{"https://repo.example.com/repo/a.rpm", "https://repo.example.com/repo/a.rpm"},
		{"javascript:alert(1)", ""},
		{"data://x/y", ""},
		{"relative/a.rpm", ""},
	}
	for _, tc := range tests {
		if got := string(fileURL(tc.give)); got != tc.want {
			t.Errorf("fileURL(%q) = %q, want %q", tc.give, got, tc.want)
		}
	}
}

// TestPackagePageClaimedSigner: a signature that did not verify against repo.keyring is never shown as "Signed
// by" a key; the page says it is not verified and which key it claims (issue 18 item 5).
func TestPackagePageClaimedSigner(t *testing.T) {
	p := Package{Path: "9/x86_64/Packages/claimed-1.0-1.el9.x86_64.rpm", NEVRA: "claimed-1.0-1.el9.x86_64", Size: 10,
		SHA256: strings.Repeat("ef", 32), ClaimedKeyID: "84e76196298676bb", Repos: []string{"/repo/9/x86_64/"}}
	code, _, body := get(t, newTestHandler(t, &fakeSource{pkgs: []Package{p}}), string(pkgURL(p.Path)))
	if code != http.StatusOK {
		t.Fatalf("GET = %d, want 200", code)
	}
	want := `<span class="badge state-dirty">not verified</span> claims key <span class="mono">84e76196298676bb</span>`
	if !strings.Contains(body, want) {
		t.Errorf("package page lacks %q", want)
	}
	if strings.Contains(body, `<dd class="signed">key `) {
		t.Error("the claimed key is shown as the signer")
	}
}
