package server

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
)

// TestRefusalsBounded (issue 18 item 8): refusals cost an fsynced audit line each, so they are limited per client
// before they are recorded. Past DefaultRefusalLimit, a refusal is answered 429 with Retry-After, not recorded,
// and counted in rpm_ingestd_refusals_dropped_total. Good credentials still get in, and another client is not
// affected.
func TestRefusalsBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	audit := &memRecorder{}
	f, _ := newAuthFixture(t, newAuthenticator(t, htpasswdFile(t, "alice", "s3cret-pw")), func(o *Options) {
		o.Registry, o.Registerer = audit, reg
	})
	const extra = 25
	attacker := auth.Peer{Addr: netip.MustParseAddr("192.0.2.66")}
	codes := map[int]int{}
	for i := range DefaultRefusalLimit + extra {
		target := "/upload"
		method := "PUT"
		if i%3 == 1 { // promote and delete share the bound
			target, method = "/api/v1/packages/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", "DELETE"
		}
		rec := f.call(t, call{peer: &attacker, method: method, target: target, body: hello(t, "")})
		codes[rec.Code]++
		if i >= DefaultRefusalLimit && (rec.Code != 429 || rec.Header().Get("Retry-After") == "" ||
			!strings.HasPrefix(rec.Body.String(), "too many refused requests from this address; try again in")) {
			t.Fatalf("refusal %d: %d %q (Retry-After %q), want 429", i+1, rec.Code, rec.Body, rec.Header().Get("Retry-After"))
		}
	}
	if codes[401] != DefaultRefusalLimit || codes[429] != extra {
		t.Fatalf("statuses %v, want %d × 401 then %d × 429", codes, DefaultRefusalLimit, extra)
	}
	if n := len(audit.all()); n != DefaultRefusalLimit {
		t.Errorf("%d audit records, want %d: refusals over the limit must not be recorded", n, DefaultRefusalLimit)
	}
	if got := counterValue(t, reg, "rpm_ingestd_refusals_dropped_total"); got != extra {
		t.Errorf("rpm_ingestd_refusals_dropped_total = %v, want %d", got, extra)
	}
	// Good credentials are not refused by this bound, and are recorded.
	if rec := f.call(t, call{peer: &attacker, target: "/upload", body: hello(t, ""), user: "alice", pass: "s3cret-pw"}); rec.Code != 201 {
		t.Fatalf("good credentials from the limited client: %d %s", rec.Code, rec.Body)
	}
	if n := len(audit.all()); n != DefaultRefusalLimit+1 {
		t.Errorf("%d audit records after a good upload, want %d", n, DefaultRefusalLimit+1)
	}
	neighbour := auth.Peer{Addr: netip.MustParseAddr("192.0.2.67")}
	if rec := f.call(t, call{peer: &neighbour, target: "/upload", body: hello(t, "")}); rec.Code != 401 {
		t.Fatalf("another client: %d %s, want 401", rec.Code, rec.Body)
	}
}

// TestRetentionCached (issue 18 item 8): the open dry run reads headers at most once per filter and
// RetentionCacheTTL however often it is called, and every change the daemon makes drops the cache.
func TestRetentionCached(t *testing.T) {
	p := &fakePlanner{}
	f := newFixture(t, func(o *Options) { o.Retention = p })
	calls := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.filters)
	}
	for range 20 {
		rec := f.do(t, http.MethodGet, "/api/v1/retention", nil, nil)
		if rec.Code != 200 || rec.Header().Get("Age") == "" {
			t.Fatalf("%d %s (Age %q)", rec.Code, rec.Body, rec.Header().Get("Age"))
		}
	}
	if n := calls(); n != 1 {
		t.Fatalf("20 dry runs read the tree %d times, want 1", n)
	}
	f.do(t, http.MethodGet, "/api/v1/retention?arch=x86_64", nil, nil)
	f.do(t, http.MethodGet, "/api/v1/retention?arch=x86_64", nil, nil)
	if n := calls(); n != 2 {
		t.Fatalf("a second filter: %d reads, want 2", n)
	}
	if rec := f.do(t, "PUT", "/upload", hello(t, ""), nil); rec.Code != 201 {
		t.Fatalf("upload: %d %s", rec.Code, rec.Body)
	}
	f.do(t, http.MethodGet, "/api/v1/retention", nil, nil)
	if n := calls(); n != 3 {
		t.Fatalf("after an upload: %d reads, want 3 (the upload must drop the cache)", n)
	}
	if !slices.Equal(p.filters, []ingest.RetentionFilter{{}, {Arch: "x86_64"}, {}}) {
		t.Errorf("filters %v", p.filters)
	}
}
