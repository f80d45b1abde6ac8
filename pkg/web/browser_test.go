package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// chromiumNames are the executables tried, Debian's first.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"}

// findChromium returns the browser to drive, or fails the test with the install hint: a page test that skips
// when the browser is missing is a test that never runs.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("no Chromium found (tried %s): install it with `make deps`, or `apt-get install chromium` (Debian/Ubuntu) or `dnf install chromium` (Fedora/EPEL)",
		strings.Join(chromiumNames, ", "))
	return ""
}

// newBrowser starts a headless Chromium for the test and returns a tab's context. The whole test is bounded, so
// a browser that hangs fails the test instead of stalling make test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(findChromium(t)))
	if os.Geteuid() == 0 {
		// Chromium refuses to start as root with its sandbox on ("Running as root without --no-sandbox is not
		// supported"), and CI containers run tests as root. The page under test is our own, served from
		// loopback, so the sandbox protects nothing here; as any other user it stays on.
		opts = append(opts, chromedp.NoSandbox)
	}
	bound, cancelBound := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancelBound)
	alloc, cancelAlloc := chromedp.NewExecAllocator(bound, opts...)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelTab)
	// The first action starts the browser; a failure here is a broken installation, not a broken page.
	if err := chromedp.Do(tab, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start %s: %v", findChromium(t), err)
	}
	return tab
}

// viewport is a screen the pages must be readable on.
type viewport struct {
	name          string
	width, height int64
	phone         bool
}

var viewports = []viewport{
	{name: "desktop", width: 1280, height: 800},
	{name: "phone", width: 390, height: 844, phone: true},
}

func (v viewport) emulate() chromedp.Action[chromedp.Void] {
	if v.phone {
		return chromedp.EmulateViewport(v.width, v.height, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulateScale(2), chromedp.EmulatePortrait)
	}
	return chromedp.EmulateViewport(v.width, v.height)
}

// TestBrowser renders the pages in real headless Chromium and reads what a person would see from the rendered
// DOM: each repository's package count and state, the package page's sha256 and uploader, a search typed into
// the form with JavaScript off, and the 404 page, at desktop and phone widths. Screenshots land in the test's
// temp dir (their paths are logged; run with -v to see them).
func TestBrowser(t *testing.T) {
	src := sampleSource()
	// One hostile upload: in the DOM it must be text, never an element.
	src.uploads = append(src.uploads, Upload{Time: testNow, User: `<img src=x onerror="document.title='pwned'">`,
		NEVRA: `<script>document.title='pwned'</script>`, Result: "rejected", Status: 400})
	h := newTestHandler(t, src)
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	tab := newBrowser(t)
	shots := t.TempDir()
	hello := src.pkgs[0]

	for _, vp := range viewports {
		t.Run(vp.name, func(t *testing.T) {
			run(t, tab, vp.emulate())
			run(t, tab, chromedp.Navigate(ts.URL+"/"))

			for _, r := range src.repos {
				row := fmt.Sprintf(`#repos tr[data-path=%q]`, r.Path)
				if got := text(t, tab, row+" td.count"); got != strconv.Itoa(r.Packages) {
					t.Errorf("%s: repository %s shows %q packages, want %d", vp.name, r.Path, got, r.Packages)
				}
				if got := text(t, tab, row+" td.state .badge"); got != r.State {
					t.Errorf("%s: repository %s shows state %q, want %q", vp.name, r.Path, got, r.State)
				}
			}
			// Colour as well as word: the four states must render in four different colours, which also proves
			// the inline stylesheet passed the Content-Security-Policy (a blocked one leaves them all alike).
			colours := eval[map[string]string](t, tab, `Object.fromEntries([...document.querySelectorAll('#repos td.state .badge')]
				.map(e => [e.textContent.trim(), getComputedStyle(e).color]))`)
			seen := map[string]string{}
			for state, c := range colours {
				if other, dup := seen[c]; dup {
					t.Errorf("%s: states %q and %q share the colour %s", vp.name, state, other, c)
				}
				seen[c] = state
			}
			if len(colours) != 4 {
				t.Errorf("%s: badge colours %v, want one per state", vp.name, colours)
			}
			if got := eval[string](t, tab, `document.title`); !strings.HasPrefix(got, "Status") {
				t.Errorf("%s: title %q: a hostile upload ran script", vp.name, got)
			}
			if n := eval[int](t, tab, `document.querySelectorAll('main img, main script').length`); n != 0 {
				t.Errorf("%s: %d img/script elements on the page: hostile upload text became markup", vp.name, n)
			}
			if got := eval[string](t, tab, `[...document.querySelectorAll('#uploads td.user')].pop().textContent`); got != src.uploads[len(src.uploads)-1].User {
				t.Errorf("%s: hostile user shown as %q, want the literal text", vp.name, got)
			}
			checkFits(t, tab, vp)
			// Phones get the tables as cards; a header row squeezed to 390 px would be unreadable.
			wantHead := map[bool]string{false: "table-header-group", true: "none"}[vp.phone]
			if got := eval[string](t, tab, `getComputedStyle(document.querySelector('#repos thead')).display`); got != wantHead {
				t.Errorf("%s: repository table header display = %q, want %q", vp.name, got, wantHead)
			}
			screenshot(t, tab, filepath.Join(shots, "status-"+vp.name+".png"))

			// Search with JavaScript off: the form alone must do it, and the result must lead to the package.
			run(t, tab, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
				return err
			}))
			run(t, tab, chromedp.SendKeys(chromedp.CSS("#q"), "hello\r"))
			run(t, tab, chromedp.WaitVisible(chromedp.CSS("#results a.nevra")))
			if got := text(t, tab, "#results a.nevra"); got != hello.NEVRA {
				t.Errorf("%s: search for hello found %q, want %q", vp.name, got, hello.NEVRA)
			}
			screenshot(t, tab, filepath.Join(shots, "search-"+vp.name+".png"))
			run(t, tab, chromedp.Click(chromedp.CSS("#results a.nevra")))
			run(t, tab, chromedp.WaitVisible(chromedp.CSS("#package")))
			run(t, tab, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false})
				return err
			}))

			if got := text(t, tab, "#package h1.nevra"); got != hello.NEVRA {
				t.Errorf("%s: package page heading %q, want %q", vp.name, got, hello.NEVRA)
			}
			if got := text(t, tab, "#package .sha256"); got != hello.SHA256 {
				t.Errorf("%s: package page sha256 %q, want %q", vp.name, got, hello.SHA256)
			}
			if got := text(t, tab, "#package .uploader"); got != hello.UploadedBy {
				t.Errorf("%s: package page uploader %q, want %q", vp.name, got, hello.UploadedBy)
			}
			wantRepoFile := "'" + ts.URL + "/repo/rpm-ingestd.repo'"
			if got := text(t, tab, "#package pre.install"); !strings.Contains(got, wantRepoFile) || !strings.Contains(got, "sudo dnf install 'hello-1.0-1.el9.x86_64'") {
				t.Errorf("%s: install lines %q lack %s and the dnf line", vp.name, got, wantRepoFile)
			}
			if got := text(t, tab, "#package p.summary"); got != hello.Summary {
				t.Errorf("%s: package page summary %q, want %q", vp.name, got, hello.Summary)
			}
			if got := eval[string](t, tab, `document.querySelector('#package .download a').href`); got != ts.URL+hello.URL {
				t.Errorf("%s: download link %q, want %q", vp.name, got, ts.URL+hello.URL)
			}
			checkFits(t, tab, vp)
			screenshot(t, tab, filepath.Join(shots, "package-"+vp.name+".png"))

			resp := runValue(t, tab, chromedp.NavigateResponse(ts.URL+"/packages/9/x86_64/Packages/gone-1-1.x86_64.rpm"))
			if resp.Status != http.StatusNotFound {
				t.Errorf("%s: unknown package answered %d, want 404", vp.name, resp.Status)
			}
			if got := text(t, tab, "#notfound h1"); got != "Not found" {
				t.Errorf("%s: 404 page heading %q", vp.name, got)
			}
			screenshot(t, tab, filepath.Join(shots, "notfound-"+vp.name+".png"))
		})
	}
}

// checkFits fails when the page is wider than the screen: sideways scrolling is what makes a page unreadable
// on a phone. Long words (sha256, NEVRA) must wrap, and wide blocks (install lines) scroll inside themselves.
func checkFits(t *testing.T, tab context.Context, vp viewport) {
	t.Helper()
	if w := eval[int](t, tab, `document.documentElement.scrollWidth`); int64(w) > vp.width {
		loc, _ := chromedp.Run(tab, chromedp.Location())
		t.Errorf("%s: %s is %d px wide on a %d px screen", vp.name, loc, w, vp.width)
		// Name the culprits: the elements whose content is wider than their box.
		t.Log(eval[string](t, tab, `[...document.querySelectorAll('main *')].filter(e => e.scrollWidth > e.clientWidth + 1)
			.map(e => e.tagName + '.' + e.className + ': ' + e.scrollWidth + ' > ' + e.clientWidth).join('\n')`))
	}
}

func run(t *testing.T, tab context.Context, a chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(tab, a); err != nil {
		t.Fatal(err)
	}
}

func runValue[T any](t *testing.T, tab context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(tab, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// text is the rendered text of the first element matching the CSS selector, as a reader sees it.
func text(t *testing.T, tab context.Context, sel string) string {
	t.Helper()
	return strings.TrimSpace(runValue(t, tab, chromedp.Text(chromedp.CSS(sel))))
}

func eval[T any](t *testing.T, tab context.Context, js string) T {
	t.Helper()
	return runValue(t, tab, chromedp.Evaluate[T](js))
}

func screenshot(t *testing.T, tab context.Context, path string) {
	t.Helper()
	png := runValue(t, tab, chromedp.FullScreenshot(100)) // 100 means PNG; anything less is JPEG
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
