package s3tree_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/seaweed"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
	s3tree "github.com/rpm-ingestd/rpm-ingestd/pkg/tree/s3"
)

// counter is a reverse proxy in front of SeaweedFS that records every request (method, unescaped path and query)
// one daemon sends, so a test can say which requests a publish made.
type counter struct {
	mu   sync.Mutex
	reqs []string
	srv  *httptest.Server
}

func newCounter(t *testing.T, endpoint string) *counter {
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, _ := url.QueryUnescape(r.URL.RawQuery)
		c.mu.Lock()
		c.reqs = append(c.reqs, r.Method+" "+r.URL.Path+"?"+q)
		c.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// count returns how many requests recorded since the last reset contain every one of the strings.
func (c *counter) count(all ...string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.reqs {
		ok := true
		for _, s := range all {
			ok = ok && strings.Contains(r, s)
		}
		if ok {
			n++
		}
	}
	return n
}

func (c *counter) reset() { c.mu.Lock(); c.reqs = nil; c.mu.Unlock() }

// testPublishCache: a daemon's publish after its own previous one needs neither a listing of Packages/ nor a
// download of the published metadata (the publish cache), and still covers every change: placements and removals
// by another daemon (named by their pending objects), a generation another daemon published (repomd.xml's ETag
// changed: everything is read again), a change no pending object names (RecordPending: Packages/ is listed), and a
// carried-over data file deleted by hand (uploaded again).
func testPublishCache(t *testing.T, e *env) {
	prefix := e.prefix()
	cnt := newCounter(t, e.srv.Endpoint())
	st, err := objstore.New(objstore.Options{Endpoint: cnt.srv.URL, Bucket: e.bucket, Prefix: prefix,
		Region: seaweed.Region, PathStyle: true, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s3tree.New(s3tree.Options{Store: st, WorkDir: t.TempDir(), Holder: "a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b := e.daemon(t, prefix, s3tree.Options{})
	const repo = "9/x86_64"
	want := map[string]string{}
	add := func(tr tree.Tree, name string) string {
		spec := testrpm.Spec{Name: name, Arch: "x86_64"}
		body := testrpm.Build(t, spec)
		if _, err := placeBytes(t, tr, body, spec.FileName(), false, repo); err != nil {
			t.Fatal(err)
		}
		want[spec.FileName()] = sha(body)
		return spec.FileName()
	}
	check := func(step string) {
		t.Helper()
		if got := published(t, b, repo); !mapsEqual(got, want) {
			t.Fatalf("%s: published %v, want %v", step, got, want)
		}
	}
	listings := func() int { return cnt.count("GET /"+e.bucket, "list-type=2", "prefix="+prefix+"/"+repo+"/Packages/") }
	mdGets := func() int { return cnt.count("GET /" + e.bucket + "/" + prefix + "/" + repo + "/repodata/") }

	add(a, "alpha")
	add(a, "bravo")
	publish(t, a, repo)
	check("first publish")
	cnt.reset()

	// Only our own changes since our publish.
	c := add(a, "charlie")
	cnt.reset()
	if local, _ := publish(t, a, repo); !slices.Equal(local, []string{c}) {
		t.Errorf("cached publish had %v local, want only %s", local, c)
	}
	if n := listings(); n != 0 {
		t.Errorf("cached publish listed Packages/ %d times", n)
	}
	if n := mdGets(); n != 0 {
		t.Errorf("cached publish downloaded %d metadata files", n)
	}
	check("cached publish")

	// Another daemon places one package and removes another: its pending objects name them.
	d := add(b, "delta")
	bravo := testrpm.Spec{Name: "bravo", Arch: "x86_64"}.FileName()
	if _, err := b.Remove(ctx, []tree.Ref{{Repo: repo, Name: bravo}}); err != nil {
		t.Fatal(err)
	}
	delete(want, bravo)
	cnt.reset()
	if local, _ := publish(t, a, repo); !slices.Equal(local, []string{d}) {
		t.Errorf("publish after another daemon's changes had %v local, want only %s", local, d)
	}
	if n := listings(); n != 0 {
		t.Errorf("publish after named changes listed Packages/ %d times", n)
	}
	check("changes by another daemon")

	// Another daemon publishes: repomd.xml has another ETag, and a's cache is not used.
	add(b, "echo")
	publish(t, b, repo)
	f := add(b, "foxtrot")
	cnt.reset()
	if local, _ := publish(t, a, repo); !slices.Equal(local, []string{f}) {
		t.Errorf("publish after another daemon's publish had %v local, want only %s", local, f)
	}
	if n := listings(); n != 1 {
		t.Errorf("publish after another daemon's publish listed Packages/ %d times, want once", n)
	}
	if n := mdGets(); n == 0 {
		t.Error("publish after another daemon's publish did not download its metadata")
	}
	check("after another daemon's publish")

	// A package stored behind the tree's back, and a pending change that names nothing: Packages/ is listed.
	raw := e.store(t, prefix)
	golf := testrpm.Spec{Name: "golf", Arch: "x86_64"}
	gb := testrpm.Build(t, golf)
	if _, err := raw.Put(ctx, repo+"/Packages/"+golf.FileName(), bytes.NewReader(gb), map[string]string{"sha256": sha(gb)}); err != nil {
		t.Fatal(err)
	}
	want[golf.FileName()] = sha(gb)
	if err := b.RecordPending(ctx, repo); err != nil {
		t.Fatal(err)
	}
	cnt.reset()
	publish(t, a, repo)
	if n := listings(); n != 1 {
		t.Errorf("publish of an unnamed change listed Packages/ %d times, want once", n)
	}
	check("unnamed change")

	// A data file that the next generation carries over (nothing changed), deleted by hand: uploaded again.
	pk := primaryKey(t, a, repo)
	if err := raw.Delete(ctx, repo+"/repodata/"+pk); err != nil {
		t.Fatal(err)
	}
	if err := a.RecordPending(ctx, repo); err != nil {
		t.Fatal(err)
	}
	publish(t, a, repo)
	if primaryKey(t, a, repo) != pk {
		t.Fatal("the republish of an unchanged repository changed primary.xml: the test needs a carried-over file")
	}
	check("carried-over file deleted by hand")
}

// primaryKey is the file name of repo's published primary.xml.
func primaryKey(t *testing.T, tr tree.Tree, repo string) string {
	t.Helper()
	files, err := tree.ParseRepomd(readMeta(t, tr, repo, "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Type == "primary" {
			n, _ := tree.RepodataName(f.Href)
			return n
		}
	}
	t.Fatal("no primary")
	return ""
}
