package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
)

// TestAuthCheck is the login check nginx's auth_request calls (GET /api/v1/auth): each answer is one that
// auth_request passes (2xx, 401, 403), the limit is a 403 with the marker nginx maps to 429, refusals are
// counted and recorded about the client's original request, and only a trusted proxy may ask.
func TestAuthCheck(t *testing.T) {
	rec := &memRecorder{}
	reg := prometheus.NewRegistry()
	f, _ := newAuthFixture(t, newAuthenticator(t, htpasswdFile(t, "alice", "s3cret-pw")), func(o *Options) {
		o.Registry, o.Registerer, o.Gatherer = rec, reg, reg
	})
	forwarded := func(client, uri, method string) map[string]string {
		return map[string]string{auth.RealIPHeader: client, OriginalURIHeader: uri, OriginalMethodHeader: method}
	}
	upload := forwarded("192.0.2.66", "/upload/hello-1.0-1.el9.x86_64.rpm?os_release=9", "PUT")

	// The right password: 204, and the user for nginx to forward. Nothing recorded: the upload records itself.
	r := f.call(t, call{peer: &ownSocket, method: "GET", target: AuthCheckPath, user: "alice", pass: "s3cret-pw", hdr: upload})
	if r.Code != http.StatusNoContent || r.Header().Get("X-Remote-User") != "alice" || r.Header().Get(AuthRetryAfterHeader) != "" {
		t.Fatalf("good login: %d X-Remote-User %q, want 204 alice", r.Code, r.Header().Get("X-Remote-User"))
	}
	// No credentials: 401 with the challenge, not a failure.
	r = f.call(t, call{peer: &ownSocket, method: "GET", target: AuthCheckPath, hdr: upload})
	if r.Code != http.StatusUnauthorized || r.Header().Get("WWW-Authenticate") != auth.Challenge {
		t.Fatalf("no credentials: %d %q", r.Code, r.Header().Get("WWW-Authenticate"))
	}
	// Ten wrong passwords, then the limit: 403 with the marker (auth_request would turn a 429 into a 500).
	for i := range 10 {
		r = f.call(t, call{peer: &ownSocket, method: "GET", target: AuthCheckPath, user: "alice", pass: "guess", hdr: upload})
		if r.Code != http.StatusUnauthorized || r.Header().Get("X-Remote-User") != "" {
			t.Fatalf("failure %d: %d %s", i+1, r.Code, r.Body)
		}
	}
	r = f.call(t, call{peer: &ownSocket, method: "GET", target: AuthCheckPath, user: "alice", pass: "s3cret-pw", hdr: upload})
	if r.Code != http.StatusForbidden || r.Header().Get(AuthRetryAfterHeader) != "60" || r.Header().Get("X-Remote-User") != "" ||
		!strings.HasPrefix(r.Body.String(), "too many failed logins") {
		t.Fatalf("limited: %d marker %q %q, want 403 with %s: 60", r.Code, r.Header().Get(AuthRetryAfterHeader), r.Body, AuthRetryAfterHeader)
	}
	// Another client behind the same proxy is not limited.
	if r = f.call(t, call{peer: &ownSocket, method: "GET", target: AuthCheckPath, user: "alice", pass: "s3cret-pw",
		hdr: forwarded("192.0.2.67", "/upload/", "PUT")}); r.Code != http.StatusNoContent {
		t.Fatalf("neighbour: %d %s", r.Code, r.Body)
	}
	// A wrong password on a deletion is recorded as one.
	f.call(t, call{peer: &ownSocket, method: "GET", target: AuthCheckPath, user: "alice", pass: "guess",
		hdr: forwarded("192.0.2.68", "/api/v1/packages/9/x86_64/Packages/x.rpm", "DELETE")})

	// Not a trusted proxy: 403 without the marker, even with good credentials; its claims are not believed.
	for _, peer := range []*auth.Peer{&otherUser, &remote, nil} {
		r = f.call(t, call{peer: peer, method: "GET", target: AuthCheckPath, user: "alice", pass: "s3cret-pw",
			hdr: forwarded("192.0.2.69", "/upload/forged.rpm", "PUT")})
		if r.Code != http.StatusForbidden || r.Header().Get(AuthRetryAfterHeader) != "" || r.Header().Get("X-Remote-User") != "" {
			t.Errorf("peer %v: %d %q, want 403 and no user", peer, r.Code, r.Header().Get("X-Remote-User"))
		}
	}

	// Metrics: the refused uploads, by result (1 missing credentials + 10 wrong = unauthorized, 1 limited).
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, fam := range fams {
		if fam.GetName() != "rpm_ingestd_uploads_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	// Refusals of promotions and deletions are not uploads; untrusted askers' claims are not believed.
	for result, want := range map[string]float64{"unauthorized": 11, "rate_limited": 1, "forbidden": 0} {
		if got[result] != want {
			t.Errorf("uploads_total{result=%q} = %v, want %v", result, got[result], want)
		}
	}
	// Audit: one record per refused login, about the original request, with the client's address.
	count := map[string]int{}
	for _, r := range rec.all() {
		count[strings.Join([]string{r.Action, r.Client, r.FileName, r.Result}, " ")]++
		if r.User != "" {
			t.Errorf("refusal recorded with user %q", r.User)
		}
	}
	want := map[string]int{
		"upload 192.0.2.66 hello-1.0-1.el9.x86_64.rpm unauthorized": 11,
		"upload 192.0.2.66 hello-1.0-1.el9.x86_64.rpm rate_limited": 1,
		"delete 192.0.2.68  unauthorized":                           1,
		// Refused checks from untrusted askers are no client's login: logged, not recorded.
	}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("audit %q: %d records, want %d", k, count[k], n)
		}
	}
	if len(count) != len(want) {
		t.Errorf("audit records %v, want %v", count, want)
	}
}

// TestAuthCheckNeedsProxyLoginAuthorizer: an Authorizer that cannot check logins for a proxy answers 501, never 2xx.
func TestAuthCheckNeedsProxyLoginAuthorizer(t *testing.T) {
	f := newFixture(t, nil) // allowAll: it would let anyone in, but it has no Forwarded
	r := f.call(t, call{peer: &ownSocket, method: "GET", target: AuthCheckPath, hdr: map[string]string{auth.RealIPHeader: "192.0.2.1"}})
	if r.Code != http.StatusNotImplemented {
		t.Fatalf("got %d %s, want 501", r.Code, r.Body)
	}
}

// TestAuthCheckRefusalsBounded: a flood of wrong passwords through the proxy is recorded up to the refusal bound
// (DefaultRefusalLimit), like direct refusals; past it each refusal is counted as dropped, not fsynced.
func TestAuthCheckRefusalsBounded(t *testing.T) {
	rec := &memRecorder{}
	reg := prometheus.NewRegistry()
	f, _ := newAuthFixture(t, newAuthenticator(t, htpasswdFile(t, "alice", "s3cret-pw")), func(o *Options) {
		o.Registry, o.Registerer, o.Gatherer = rec, reg, reg
	})
	hdr := map[string]string{auth.RealIPHeader: "192.0.2.66", OriginalURIHeader: "/upload/", OriginalMethodHeader: "PUT"}
	const tries = DefaultRefusalLimit + 10
	for i := range tries {
		r := f.call(t, call{peer: &ownSocket, method: "GET", target: AuthCheckPath, user: "alice", pass: "guess", hdr: hdr})
		if r.Code != http.StatusUnauthorized && r.Code != http.StatusForbidden {
			t.Fatalf("try %d: %d %s, want 401 or the limiter's 403", i+1, r.Code, r.Body)
		}
	}
	if n := len(rec.all()); n != DefaultRefusalLimit {
		t.Errorf("%d refusals recorded, want the bound %d", n, DefaultRefusalLimit)
	}
	dropped := counterValue(t, reg, "rpm_ingestd_refusals_dropped_total")
	if dropped != tries-DefaultRefusalLimit {
		t.Errorf("refusals_dropped_total = %v, want %d", dropped, tries-DefaultRefusalLimit)
	}
}
