// Package web owns the human side of the daemon: the status page at / (repositories, recent uploads, a search by
// package name) and one page per package at /packages/{path}. Pages are rendered on the server with html/template
// from files embedded in the binary; they need no JavaScript and load nothing from elsewhere.
//
// The package knows nothing of the indexer's or the registry's types beyond the view types below: main adapts
// them to Source, so the page never pins those packages' internals and they never see HTML.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Repository states, as Repo.State holds them. The page shows each by colour and by word.
const (
	StateClean   = "clean"   // metadata lists everything in Packages/
	StateDirty   = "dirty"   // changes wait for the next index run
	StateRunning = "running" // an index run is in flight
	StateFailing = "failing" // the last index run failed
)

// Repo is one row of the repositories table.
type Repo struct {
	Path       string     // relative to top_dir, slash-separated: "9/x86_64"
	URL        string     // where clients find it, e.g. "/repo/9/x86_64/"; empty for no link
	Packages   int        // packages listed after the last successful run
	State      string     // one of the State constants
	DirtySince *time.Time // first change not yet indexed; nil when clean
	LastRun    *time.Time // end of the last completed index run; nil if it never ran
	LastResult string     // "ok", "error", or "" if it never ran
	// LastDuration is how long the last completed run took.
	LastDuration time.Duration
	LastError    string // the last failure's message; empty after a success
}

// Upload is one line of the recent uploads, newest first.
type Upload struct {
	Time   time.Time
	User   string // "" when the upload was anonymous (a local peer without htpasswd)
	NEVRA  string // "" when the upload was refused before its header was read
	Result string // the registry's word for the outcome: "created", "present", "rejected", ...
	Status int    // the HTTP status the client got
	Path   string // the package's path under top_dir when it was stored; "" otherwise
}

// Package is what the package page and the search results show about one stored file.
type Package struct {
	Path    string // under top_dir, slash-separated: "9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"
	NEVRA   string // a source package's ends in ".src"
	Summary string // the header's one-line summary; "" when unknown
	// URL is where the file itself is downloaded: a path ("/repo/9/x86_64/Packages/x.rpm") or an absolute URL;
	// "" for no link.
	URL      string
	Size     int64
	SHA256   string
	SignedBy string // the key id of a signer verified against repo.keyring; "" when none
	// ClaimedKeyID is the key id a signature names that was not verified; "" when SignedBy is set or unsigned.
	ClaimedKeyID string
	UploadedBy   string // "" when unknown or anonymous
	UploadedAt   *time.Time
	Repos        []string // URLs (or paths) of the repositories that list it
	// RepoFile is the URL of a .repo file that makes dnf see one of Repos: absolute, or a path ("/repo/x.repo")
	// that the page completes with the scheme and host the browser used. Empty: the page tells the reader to
	// set the repository up first and only shows the dnf line.
	RepoFile string
}

// Source is everything the pages read. Its methods are called concurrently from request goroutines, must be
// cheap (an in-memory snapshot, never a directory walk per request) and must not block on indexing.
type Source interface {
	// Repos returns every known repository, in the order the page shows them.
	Repos() []Repo
	// RecentUploads returns up to n uploads, newest first; nil when no audit file is configured (the page then
	// says how to turn the history on), an empty non-nil slice when there were none yet.
	RecentUploads(n int) []Upload
	// Search returns up to limit packages whose name contains name (case-insensitive), in the order to show.
	Search(name string, limit int) []Package
	// Package returns the package stored at path (under top_dir, slash-separated), if any.
	Package(path string) (Package, bool)
}

// Options configure the pages.
type Options struct {
	Source Source // required
	// Title names the daemon in page titles and headings; "rpm-ingestd" when empty. An operator with several
	// instances sets it to tell them apart.
	Title string
	// RecentUploads is how many uploads the status page lists (default 20); SearchLimit how many search
	// results (default 50).
	RecentUploads int
	SearchLimit   int
}

// Defaults New applies to zero Options fields.
const (
	DefaultTitle         = "rpm-ingestd"
	DefaultRecentUploads = 20
	DefaultSearchLimit   = 50
	// maxQuery bounds the search term: a name longer than this is no rpm name, and the Source need not see it.
	maxQuery = 200
)

//go:embed templates/*.html templates/style.css
var files embed.FS

// Handler serves the pages. Build it with New; it is safe for concurrent use. Mount it on GET / and
// GET /packages/*; any other path it is given answers the 404 page.
type Handler struct {
	opts  Options
	log   *zap.Logger
	mux   *http.ServeMux
	pages map[string]*template.Template // by file name: "index.html", "package.html", "notfound.html"
	css   template.CSS
	csp   string
	now   func() time.Time // a test seam for "2m ago"
}

// New parses the embedded templates and builds the Handler.
func New(opts Options, log *zap.Logger) (*Handler, error) {
	if opts.Source == nil {
		return nil, errors.New("web: Options.Source is required")
	}
	if opts.Title == "" {
		opts.Title = DefaultTitle
	}
	if opts.RecentUploads <= 0 {
		opts.RecentUploads = DefaultRecentUploads
	}
	if opts.SearchLimit <= 0 {
		opts.SearchLimit = DefaultSearchLimit
	}
	css, err := files.ReadFile("templates/style.css")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	h := &Handler{opts: opts, log: log, css: template.CSS(css), now: time.Now, pages: map[string]*template.Template{}}
	// The stylesheet is inline (one request, nothing external), so the policy allows exactly its hash: no other
	// style, no script at all, and forms only to us. An injection that slipped past the escaping still could
	// not run or load anything.
	sum := sha256.Sum256(css)
	h.csp = "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
	for _, page := range []string{"index.html", "package.html", "notfound.html"} {
		t, err := template.New(page).Funcs(h.funcs()).ParseFS(files, "templates/layout.html", "templates/"+page)
		if err != nil {
			return nil, fmt.Errorf("web: parse %s: %w", page, err)
		}
		h.pages[page] = t
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /{$}", h.index)
	h.mux.HandleFunc("GET /packages/{path...}", h.pkg)
	h.mux.HandleFunc("/", h.notFound)
	return h, nil
}

// ServeHTTP routes to the status page, a package page or the 404 page.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// page is what every template gets: the layout's fields plus the page's own data.
type page struct {
	Title string // the daemon's name
	Head  string // this page's title
	CSS   template.CSS
	Query string // the search box's value
	Data  any
}

// indexData is the status page's own data.
type indexData struct {
	Searched   bool // a query was given: show results, even none
	Results    []Package
	Repos      []Repo
	Uploads    []Upload
	UploadsOff bool // no audit file: say how to turn the history on
}

func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > maxQuery {
		q = strings.ToValidUTF8(q[:maxQuery], "") // the cut may split a character; drop its remains
	}
	d := indexData{Repos: h.opts.Source.Repos()}
	if q != "" {
		d.Searched = true
		d.Results = h.opts.Source.Search(q, h.opts.SearchLimit)
	}
	d.Uploads = h.opts.Source.RecentUploads(h.opts.RecentUploads)
	d.UploadsOff = d.Uploads == nil
	head := "Status"
	if q != "" {
		head = "Search: " + q
	}
	h.render(w, r, http.StatusOK, "index.html", page{Head: head, Query: q, Data: d})
}

// packageData is the package page's own data.
type packageData struct {
	Package
	Install  []string // copy-paste shell lines
	RepoFile string   // RepoFile made absolute; "" when there is none
	Source   bool     // a source package: the lines download it instead of installing it
	Download template.URL
	FileName string // the link text of Download
}

func (h *Handler) pkg(w http.ResponseWriter, r *http.Request) {
	p, ok := h.opts.Source.Package(r.PathValue("path"))
	if !ok {
		h.notFound(w, r)
		return
	}
	d := packageData{Package: p}
	if p.RepoFile != "" {
		d.RepoFile = absolute(r, p.RepoFile)
	}
	d.Source = strings.HasSuffix(p.NEVRA, ".src")
	d.Install = installLines(d.RepoFile, p.NEVRA)
	if p.URL != "" {
		d.Download = fileURL(p.URL)
		d.FileName = p.Path[strings.LastIndex(p.Path, "/")+1:]
	}
	h.render(w, r, http.StatusOK, "package.html", page{Head: p.NEVRA, Data: d})
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusNotFound, "notfound.html", page{Head: "Not found", Data: r.URL.Path})
}

// render executes a page into a buffer first, so a template error becomes a clean 500 and never half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.Title, p.CSS = h.opts.Title, h.css
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		h.log.Error("render page", zap.String("page", name), zap.String("path", r.URL.Path), zap.Error(err))
		http.Error(w, "internal error rendering the page; the daemon's log has the details", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", h.csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store") // a status page that a cache keeps is a wrong status page
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // the status is sent; a failed write means the client left
}

// absolute completes a path-only URL with the scheme and host the client used, so that the line works when
// pasted on another machine. The host is whatever the client sent; it is only shown back to that client, and
// installLines quotes it for the shell.
func absolute(r *http.Request, u string) string {
	if !strings.HasPrefix(u, "/") || strings.HasPrefix(u, "//") {
		return u
	}
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + r.Host + u
}

// installLines are the shell lines that install the package nevra: fetch the .repo file, then dnf install; for
// a source package (NEVRA ending in .src), which dnf cannot install, dnf download --source with the build's
// name-version-release (dnf-plugins-core; it turns on the .repo file's -source sections by itself).
// Every value is single-quoted, because a package name is chosen by whoever built the package, and a line that
// is pasted into a root shell must not run anything else.
func installLines(repoFile, nevra string) []string {
	var lines []string
	if repoFile != "" {
		name := repoFile[strings.LastIndex(repoFile, "/")+1:]
		if i := strings.IndexAny(name, "?#"); i >= 0 {
			name = name[:i]
		}
		if !strings.HasSuffix(name, ".repo") {
			name = "rpm-ingestd.repo"
		}
		lines = append(lines, "sudo curl -fsSL -o "+shellQuote("/etc/yum.repos.d/"+name)+" "+shellQuote(repoFile))
	}
	if nevr, ok := strings.CutSuffix(nevra, ".src"); ok {
		return append(lines, "dnf download --source "+shellQuote(nevr))
	}
	return append(lines, "sudo dnf install "+shellQuote(nevra))
}

// shellQuote single-quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
