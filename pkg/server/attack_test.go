package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
)

// attackRules give each user one narrow right, so that a request that gets further than its rule shows.
var attackRules = []auth.Rule{
	{Users: []string{"ci"}, Actions: []string{"upload"}, Channels: []string{"testing"}, OSReleases: []string{"9"}},
	{Users: []string{"rel9"}, Actions: []string{"promote"}, Channels: []string{"stable"}, OSReleases: []string{"9"}},
	{Users: []string{"tdel"}, Actions: []string{"delete"}, Channels: []string{"testing"}},
	{Users: []string{"admin"}, Actions: []string{"upload", "promote", "delete"}},
}

// attackStep is one hostile request. ok is the status it may get; a refusal must leave the tree as it was.
type attackStep struct {
	name         string
	user         string // htpasswd user ("" sends no credentials)
	pass         string // "" means the user's own password
	peer         auth.Peer
	method, path string
	body         []byte
	hdr          map[string]string
	status       int
}

func runAttacks(t *testing.T, f *permFixture, pw map[string]string, steps []attackStep) {
	t.Helper()
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := treeSums(t, f.top)
			req := httptest.NewRequest(st.method, "/", strings.NewReader(string(st.body)))
			// As net/http's server parses a request line: "//x" is a path, not a host.
			u, err := url.ParseRequestURI(st.path)
			if err != nil {
				t.Fatal(err)
			}
			req.URL, req.RequestURI = u, st.path
			peer := st.peer
			if peer == (auth.Peer{}) {
				peer = remote
			}
			req = req.WithContext(auth.WithPeer(req.Context(), peer))
			if st.user != "" || st.pass != "" {
				pass := st.pass
				if pass == "" {
					pass = pw[st.user]
				}
				req.SetBasicAuth(st.user, pass)
			}
			for k, v := range st.hdr {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, req)
			if rec.Code != st.status {
				t.Fatalf("%s %s: got %d %q, want %d", st.method, st.path, rec.Code, rec.Body, st.status)
			}
			if rec.Code >= 300 {
				if after := treeSums(t, f.top); fmt.Sprint(after) != fmt.Sprint(before) {
					t.Errorf("refused, but the tree changed:\nbefore %v\nafter  %v", before, after)
				}
			}
		})
	}
}

// TestAttackPermissions: requests that try to get past a permission scoped to a channel or an OS release by
// spelling the path, the channel, the OS release or the promotion target differently, by a noarch or source
// package's fan-out, by all_arches, or by headers that only a trusted proxy may set. Each must be refused with
// nothing changed, or reach only what the rule allows.
func TestAttackPermissions(t *testing.T) {
	pw := map[string]string{"ci": "ci-pw", "rel9": "rel9-pw", "tdel": "tdel-pw", "admin": "admin-pw"}
	f := newPermFixtureRules(t, attackRules, "ci", "ci-pw", "rel9", "rel9-pw", "tdel", "tdel-pw", "admin", "admin-pw")
	build := func(name, release, arch string) []byte {
		return testrpm.Build(t, testrpm.Spec{Name: name, Version: "1", Release: release, Arch: arch})
	}
	// The tree the attacks aim at: builds in both channels, for 9 and 8, binary and noarch.
	seed := []attackStep{
		{name: "seed stable el9", user: "admin", method: "PUT", path: "/upload/stable/", body: build("s", "1.el9", "x86_64"), status: 201},
		{name: "seed stable noarch", user: "admin", method: "PUT", path: "/upload/stable/", body: build("sn", "1.el9", "noarch"), status: 201},
		{name: "seed testing noarch", user: "admin", method: "PUT", path: "/upload/testing/", body: build("tn", "1.el9", "noarch"), status: 201},
		{name: "seed testing el8", user: "admin", method: "PUT", path: "/upload/testing/", body: build("t8", "1.el8", "x86_64"), status: 201},
		{name: "seed testing el9", user: "admin", method: "PUT", path: "/upload/testing/", body: build("t9", "1.el9", "x86_64"), status: 201},
	}
	runAttacks(t, f, pw, seed)

	// Packages in directories repo.layout does not render (copied in by hand): their channel is unknown.
	for _, rel := range []string{"testing/Packages", "testing/9/x86_64/sub/Packages"} {
		if err := os.MkdirAll(filepath.Join(f.top, rel), 0o755); err != nil {
			t.Fatal(err)
		}
		testrpm.WriteFile(t, filepath.Join(f.top, rel), testrpm.Spec{Name: "h", Version: "1", Release: "1.el9", Arch: "x86_64"})
	}
	noDist := build("nd", "1", "noarch")
	promote := func(from, to, name, release, arch, osRelease string) []byte {
		b, _ := json.Marshal(map[string]string{"from": from, "to": to, "name": name, "version": "1", "release": release, "arch": arch, "os_release": osRelease})
		return []byte(strings.ReplaceAll(strings.ReplaceAll(string(b), `,"arch":""`, ""), `,"os_release":""`, ""))
	}
	del := "/api/v1/packages/"
	steps := []attackStep{
		// Uploads by ci (testing, OS release 9 only).
		{name: "ci: os_release=8 on a noarch package without dist tag", user: "ci", method: "PUT", path: "/upload/testing/?os_release=8", body: noDist, status: 403},
		{name: "ci: X-OS-Release: 8", user: "ci", method: "PUT", path: "/upload/testing/", body: noDist, hdr: map[string]string{"X-OS-Release": "8"}, status: 403},
		{name: "ci: os_release=el8 (dist tag form)", user: "ci", method: "PUT", path: "/upload/testing/?os_release=el8", body: noDist, status: 403},
		{name: "ci: os_release=9 in the query, el8 in the header", user: "ci", method: "PUT", path: "/upload/testing/?os_release=9", body: build("q", "1.el8", "x86_64"), hdr: map[string]string{"X-OS-Release": "8"}, status: 201},
		{name: "ci: el9 SRPM with os_release=8", user: "ci", method: "PUT", path: "/upload/testing/?os_release=8", body: rpmFixture(t, "hello-1.0-1.el9.src.rpm"), status: 403},
		{name: "ci: el9 SRPM into stable", user: "ci", method: "PUT", path: "/upload/stable/", body: rpmFixture(t, "hello-1.0-1.el9.src.rpm"), status: 403},
		{name: "ci: el9 SRPM into testing (allowed)", user: "ci", method: "PUT", path: "/upload/testing/", body: rpmFixture(t, "hello-1.0-1.el9.src.rpm"), status: 201},
		{name: "ci: channel ..", user: "ci", method: "PUT", path: "/upload/../", body: build("x", "1.el9", "x86_64"), status: 404},
		{name: "ci: channel %2e%2e", user: "ci", method: "PUT", path: "/upload/%2e%2e/", body: build("x", "1.el9", "x86_64"), status: 404},
		{name: "ci: channel Stable", user: "ci", method: "PUT", path: "/upload/Stable/", body: build("x", "1.el9", "x86_64"), status: 404},
		{name: "ci: channel stable%2F", user: "ci", method: "PUT", path: "/upload/stable%2F/", body: build("x", "1.el9", "x86_64"), status: 403},
		{name: "ci: testing%2F..%2Fstable", user: "ci", method: "PUT", path: "/upload/testing%2F..%2Fstable/", body: build("x", "1.el9", "x86_64"), status: 404},
		{name: "admin: stable%2F..%2Ftesting names no channel", user: "admin", method: "PUT", path: "/upload/stable%2F..%2Ftesting/", body: build("x", "1.el9", "x86_64"), status: 404},
		{name: "admin: stable%2Fx%2Fy.rpm", user: "admin", method: "PUT", path: "/upload/stable%2Fx%2Fy.rpm", body: build("x", "1.el9", "x86_64"), status: 404},
		{name: "ci: stable%2Fx.rpm as one file name", user: "ci", method: "PUT", path: "/upload/stable%2Fx.rpm", body: build("x", "1.el9", "x86_64"), status: 403},
		{name: "ci: double slash before the channel", user: "ci", method: "PUT", path: "/upload//stable/", body: build("x", "1.el9", "x86_64"), status: 404},
		{name: "ci: X-Remote-User admin (direct, htpasswd)", user: "ci", method: "PUT", path: "/upload/stable/", body: build("x", "1.el9", "x86_64"), hdr: map[string]string{"X-Remote-User": "admin"}, status: 403},
		{name: "ci: upload header from an untrusted peer", user: "ci", method: "PUT", path: "/upload/stable/", hdr: map[string]string{"X-Package-Name": "/nonexistent", "X-Remote-User": "admin"}, status: 403},
		{name: "ci: delete with X-Remote-User admin", user: "ci", method: "DELETE", path: del + "stable/9/x86_64/Packages/s-1-1.el9.x86_64.rpm", hdr: map[string]string{"X-Remote-User": "admin"}, status: 403},
		{name: "ci: delete with the upload header from the trusted proxy", user: "ci", peer: loopback, method: "DELETE", path: del + "stable/9/x86_64/Packages/s-1-1.el9.x86_64.rpm", hdr: map[string]string{"X-Package-Name": "/x", "X-Remote-User": "admin"}, status: 403},
		{name: "nobody: delete with the upload header from the trusted proxy", peer: loopback, method: "DELETE", path: del + "stable/9/x86_64/Packages/s-1-1.el9.x86_64.rpm", hdr: map[string]string{"X-Package-Name": "/x", "X-Remote-User": "admin"}, status: 401},
		{name: "empty user name", user: "", pass: "admin-pw", method: "DELETE", path: del + "stable/9/x86_64/Packages/s-1-1.el9.x86_64.rpm", status: 401},
		{name: "user admin:x (colon) with admin's password", user: "admin:x", pass: "admin-pw", method: "DELETE", path: del + "stable/9/x86_64/Packages/s-1-1.el9.x86_64.rpm", status: 401},
		{name: "user * with admin's password", user: "*", pass: "admin-pw", method: "DELETE", path: del + "stable/9/x86_64/Packages/s-1-1.el9.x86_64.rpm", status: 401},

		// Promotions by rel9 (into stable, OS release 9 only).
		{name: "rel9: el8 build into stable", user: "rel9", method: "POST", path: "/api/v1/promote", body: promote("testing", "stable", "t8", "1.el8", "", ""), status: 403},
		{name: "rel9: el8 build with os_release 9", user: "rel9", method: "POST", path: "/api/v1/promote", body: promote("testing", "stable", "t8", "1.el8", "", "9"), status: 404},
		{name: "rel9: into testing", user: "rel9", method: "POST", path: "/api/v1/promote", body: promote("stable", "testing", "s", "1.el9", "", ""), status: 403},
		{name: "rel9: to Stable", user: "rel9", method: "POST", path: "/api/v1/promote", body: promote("testing", "Stable", "t9", "1.el9", "", ""), status: 404},
		{name: "rel9: to ' stable'", user: "rel9", method: "POST", path: "/api/v1/promote", body: promote("testing", " stable", "t9", "1.el9", "", ""), status: 404},
		{name: "rel9: to stable/../testing", user: "rel9", method: "POST", path: "/api/v1/promote", body: promote("stable", "stable/../testing", "s", "1.el9", "", ""), status: 404},
		{name: "rel9: two to fields", user: "rel9", method: "POST", path: "/api/v1/promote", body: []byte(`{"from":"stable","to":"stable","to":"testing","name":"s","version":"1","release":"1.el9"}`), status: 403},
		{name: "rel9: noarch build, all arches, into stable (allowed)", user: "rel9", method: "POST", path: "/api/v1/promote", body: promote("testing", "stable", "tn", "1.el9", "", ""), status: 201},
		{name: "rel9: promote spelled /api/v1/promote/", user: "rel9", method: "POST", path: "/api/v1/promote/", body: promote("stable", "testing", "s", "1.el9", "", ""), status: 404},
		{name: "rel9: promote spelled //api/v1/promote", user: "rel9", method: "POST", path: "//api/v1/promote", body: promote("stable", "testing", "s", "1.el9", "", ""), status: 404},
		{name: "rel9: promote spelled /api/v1/Promote", user: "rel9", method: "POST", path: "/api/v1/Promote", body: promote("stable", "testing", "s", "1.el9", "", ""), status: 404},
		{name: "tdel: HEAD on a package path", user: "tdel", method: "HEAD", path: del + "testing/9/x86_64/Packages/t9-1-1.el9.x86_64.rpm", status: 405},
		{name: "tdel: OPTIONS on a package path", user: "tdel", method: "OPTIONS", path: del + "testing/9/x86_64/Packages/t9-1-1.el9.x86_64.rpm", status: 405},
		{name: "tdel: POST with X-HTTP-Method-Override: DELETE", user: "tdel", method: "POST", path: del + "testing/9/x86_64/Packages/t9-1-1.el9.x86_64.rpm", hdr: map[string]string{"X-HTTP-Method-Override": "DELETE"}, status: 405},
		{name: "rel9: promote by PUT", user: "rel9", method: "PUT", path: "/api/v1/promote", body: promote("stable", "testing", "s", "1.el9", "", ""), status: 405},

		// Deletions by tdel (testing only).
		{name: "tdel: a stable path", user: "tdel", method: "DELETE", path: del + "stable/9/x86_64/Packages/s-1-1.el9.x86_64.rpm", status: 403},
		{name: "tdel: a stable path through testing/..", user: "tdel", method: "DELETE", path: del + "testing/../stable/9/x86_64/Packages/s-1-1.el9.x86_64.rpm", status: 403},
		{name: "tdel: a stable path with %2F", user: "tdel", method: "DELETE", path: del + "stable%2F9%2Fx86_64%2FPackages%2Fs-1-1.el9.x86_64.rpm", status: 403},
		{name: "tdel: a stable path with %2e%2e", user: "tdel", method: "DELETE", path: del + "testing/%2e%2e/stable/9/x86_64/Packages/s-1-1.el9.x86_64.rpm", status: 403},
		{name: "tdel: double slash", user: "tdel", method: "DELETE", path: del + "/stable/9/x86_64/Packages/s-1-1.el9.x86_64.rpm", status: 403},
		{name: "tdel: stable noarch with all_arches", user: "tdel", method: "DELETE", path: del + "stable/9/x86_64/Packages/sn-1-1.el9.noarch.rpm?all_arches=1", status: 403},
		{name: "tdel: a package outside the layout (testing/Packages)", user: "tdel", method: "DELETE", path: del + "testing/Packages/h-1-1.el9.x86_64.rpm", status: 403},
		{name: "tdel: a package outside the layout (below a repository)", user: "tdel", method: "DELETE", path: del + "testing/9/x86_64/sub/Packages/h-1-1.el9.x86_64.rpm", status: 403},
		{name: "tdel: DELETE /api/v1/packages (the list)", user: "tdel", method: "DELETE", path: "/api/v1/packages", status: 405},
		{name: "tdel: testing noarch with all_arches (allowed, testing only)", user: "tdel", method: "DELETE", path: del + "testing/9/x86_64/Packages/tn-1-1.el9.noarch.rpm?all_arches=1", status: 200},
		{name: "admin: the stable copy of tn is still there", user: "admin", method: "DELETE", path: del + "stable/9/aarch64/Packages/tn-1-1.el9.noarch.rpm", status: 200},
	}
	runAttacks(t, f, pw, steps)
}

// TestAttackWhoami: whoami names only the rules of the user it authenticated, never another user's, whatever
// the client claims in X-Remote-User.
func TestAttackWhoami(t *testing.T) {
	f := newPermFixtureRules(t, attackRules, "ci", "ci-pw", "admin", "admin-pw")
	for _, peer := range []auth.Peer{remote, loopback} {
		req := httptest.NewRequest("GET", "/api/v1/whoami", nil)
		req = req.WithContext(auth.WithPeer(req.Context(), peer))
		req.SetBasicAuth("ci", "ci-pw")
		req.Header.Set("X-Remote-User", "admin")
		req.Header.Set("X-Package-Name", "/x")
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		var got whoamiResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("%v: %d %s", peer, rec.Code, rec.Body)
		}
		if got.User != "ci" || len(got.Permissions) != 1 || strings.Contains(rec.Body.String(), "delete") {
			t.Errorf("%v: whoami as ci claiming admin: %s", peer, rec.Body)
		}
	}
}

// TestAttackAnonymousStar: without htpasswd, a local peer has no user name; a rule for "*" (any authenticated
// user) must not cover it, nor a remote peer claiming a user, nor a proxy naming a user of blanks (direct or in
// header mode).
func TestAttackAnonymousStar(t *testing.T) {
	star := []auth.Rule{{Users: []string{"*"}, Actions: []string{"upload", "promote", "delete"}}}
	f := newFixture(t, func(o *Options) {
		o.Auth = newAuthenticator(t, "")
		o.Permissions = auth.NewPermissions(star)
	})
	body := hello(t, "")
	for _, tc := range []struct {
		name   string
		peer   auth.Peer
		hdr    map[string]string
		status int
	}{
		{"local peer outside trusted_proxies, no name", loopback2, nil, 403},
		{"local peer outside trusted_proxies, X-Remote-User", loopback2, map[string]string{"X-Remote-User": "admin"}, 403},
		{"unix socket as another uid, X-Remote-User", otherUser, map[string]string{"X-Remote-User": "admin"}, 403},
		{"trusted proxy without X-Remote-User", loopback, nil, 403},
		{"trusted proxy, X-Remote-User of blanks", loopback, map[string]string{"X-Remote-User": "  "}, 403},
		{"remote peer, X-Remote-User", remote, map[string]string{"X-Remote-User": "admin"}, 403},
		{"trusted proxy naming a user (the configured trust)", loopback, map[string]string{"X-Remote-User": "carol"}, 201},
		// Header mode (Proxied): the same rule; blanks are no user name there either.
		{"header mode, no X-Remote-User", loopback, map[string]string{"X-Package-Name": "spool"}, 403},
		{"header mode, X-Remote-User of blanks", loopback, map[string]string{"X-Package-Name": "spool", "X-Remote-User": " \t "}, 403},
		{"header mode from an untrusted local peer", loopback2, map[string]string{"X-Package-Name": "spool", "X-Remote-User": "carol"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.hdr["X-Package-Name"] == "spool" {
				tc.hdr["X-Package-Name"] = f.spoolFile(t, body)
			}
			before := treeSums(t, f.top)
			rec := f.call(t, call{peer: &tc.peer, target: "/upload", body: body, hdr: tc.hdr})
			if rec.Code != tc.status {
				t.Fatalf("got %d %q, want %d", rec.Code, rec.Body, tc.status)
			}
			if rec.Code >= 300 && fmt.Sprint(treeSums(t, f.top)) != fmt.Sprint(before) {
				t.Error("refused, but the tree changed")
			}
		})
	}
}

// TestAttackRefusalBoundRotation: a client that sends a fresh X-Real-IP with every refused request must still be
// counted as itself (its peer) where the daemon may not believe the header: direct requests from the trusted
// loopback proxy and header-mode requests from an untrusted peer. The login check, asked by anyone but a trusted
// proxy or without a client address, is no client's login and writes nothing.
func TestAttackRefusalBoundRotation(t *testing.T) {
	for _, tc := range []struct {
		name string
		peer auth.Peer
		call func(i int) call
	}{
		{"direct wrong passwords from loopback (a trusted proxy)", loopback, func(i int) call {
			return call{method: "DELETE", target: "/api/v1/packages/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", user: "alice", pass: "wrong",
				hdr: map[string]string{"X-Real-IP": fmt.Sprintf("203.0.113.%d", i%250+1)}}
		}},
		{"header mode from an untrusted peer", remote, func(i int) call {
			return call{target: "/upload", hdr: map[string]string{"X-Package-Name": "/x", "X-Real-IP": fmt.Sprintf("203.0.113.%d", i%250+1)}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			audit := &memRecorder{}
			f, _ := newAuthFixture(t, newAuthenticator(t, htpasswdFile(t, "alice", "s3cret-pw")), func(o *Options) { o.Registry = audit })
			const n = DefaultRefusalLimit + 10
			last := 0
			for i := range n {
				c := tc.call(i)
				c.peer = &tc.peer
				last = f.call(t, c).Code
			}
			if got := len(audit.all()); got != DefaultRefusalLimit || last != http.StatusTooManyRequests {
				t.Errorf("%d refusals with rotating X-Real-IP: %d recorded, last %d; want %d recorded, then 429", n, got, last, DefaultRefusalLimit)
			}
		})
	}

	audit := &memRecorder{}
	f, _ := newAuthFixture(t, newAuthenticator(t, htpasswdFile(t, "alice", "s3cret-pw")), func(o *Options) { o.Registry = audit })
	for _, tc := range []struct {
		name string
		peer auth.Peer
		hdr  map[string]string
	}{
		{"login check from an untrusted peer", remote, map[string]string{"X-Real-IP": "203.0.113.9"}},
		{"login check from a trusted proxy without X-Real-IP", loopback, nil},
		{"login check from a trusted proxy with a bad X-Real-IP", loopback, map[string]string{"X-Real-IP": "203.0.113.9, 10.0.0.1"}},
	} {
		for range DefaultRefusalLimit + 5 {
			rec := f.call(t, call{peer: &tc.peer, method: "GET", target: AuthCheckPath, user: "alice", pass: "wrong", hdr: tc.hdr})
			if rec.Code != http.StatusForbidden || rec.Header().Get(AuthRetryAfterHeader) != "" {
				t.Fatalf("%s: %d %q, want a plain 403", tc.name, rec.Code, rec.Body)
			}
		}
		if got := len(audit.all()); got != 0 {
			t.Errorf("%s: %d audit records, want none", tc.name, got)
		}
	}
}

// countingBody counts what a handler read of a request body.
type countingBody struct{ n *int }

func (c countingBody) Read(p []byte) (int, error) {
	*c.n += len(p)
	for i := range p {
		p[i] = 0
	}
	return len(p), nil
}

// TestAttackPermissionBeforeBody: a user without any upload right is refused before a byte of the body is read,
// on every upload route, whatever the channel.
func TestAttackPermissionBeforeBody(t *testing.T) {
	f := newPermFixtureRules(t, attackRules, "rel9", "rel9-pw", "tdel", "tdel-pw")
	for _, target := range []string{"/upload", "/upload/", "/upload/x.rpm", "/upload/testing/", "/upload/stable/x.rpm"} {
		for _, user := range []string{"rel9", "tdel"} {
			read := 0
			req := httptest.NewRequest("PUT", target, countingBody{&read})
			req.ContentLength = 1 << 19
			req = req.WithContext(auth.WithPeer(req.Context(), remote))
			req.SetBasicAuth(user, user+"-pw")
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, req)
			if rec.Code != http.StatusForbidden || read != 0 {
				t.Errorf("%s by %s: %d %q after reading %d bytes, want 403 before the body", target, user, rec.Code, rec.Body, read)
			}
		}
	}
}
