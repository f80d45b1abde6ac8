package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
)

// These tests run the real daemon (as lifecycle_test.go does) and reach it from real peers: TCP from 127.0.0.1,
// from 127.0.0.2 (loopback, but not a trusted proxy), from a non-loopback address of this host, and over the
// unix socket, whose peer uid the kernel reports.

// authDaemon is a running daemon with the client that reaches it and the base URL to use.
type authDaemon struct {
	*child
	base string
}

// startAuth runs the daemon listening on listen ("host:port" or "unix:/path") with more server keys, and waits
// until it answers /healthz through hc.
func (tr tree) startAuth(t *testing.T, listen, serverKeys string, hc *http.Client, base string) *authDaemon {
	t.Helper()
	cfg := tr.writeConfig(t, daemonConfig(listen, "1h", serverKeys, "", ""))
	d := tr.launch(t, listen, cfg)
	deadline := time.Now().Add(30 * time.Second) // bounds a broken daemon, asserts nothing
	for {
		resp, err := hc.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			return &authDaemon{child: d, base: base}
		}
		select {
		case err := <-d.done:
			t.Fatalf("daemon exited: %v\n%s", err, d.log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not healthy\n%s", d.killedLog())
		}
	}
}

// stop ends the daemon with SIGTERM and returns its log, which is only safe to read once it has exited.
func (d *authDaemon) stop(t *testing.T) string {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(t); code != 0 {
		t.Fatalf("exit code %d\n%s", code, d.log)
	}
	return d.log.String()
}

// keepAliveFrom is tcpFrom's client with keep-alive on: it sends no "Connection: close".
func keepAliveFrom(from string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// tcpFrom is a client whose connections come from the local address from, one per request.
func tcpFrom(from string) *http.Client {
	hc := keepAliveFrom(from)
	hc.Transport.(*http.Transport).DisableKeepAlives = true
	return hc
}

// unixClient is a client whose connections all go to the socket at path.
func unixClient(path string) *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", path) }}}
}

// put sends one upload: a body (direct), or headers only (header mode). user "" sends no credentials.
func put(t *testing.T, hc *http.Client, url string, body []byte, hdr map[string]string, user, pass string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("PUT", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// spoolFile writes data as nginx would spool an upload, and returns its path.
func (tr tree) spoolFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(tr.spool, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// stored lists the packages in the tree.
func (tr tree) stored(t *testing.T) []string {
	t.Helper()
	got, _ := filepath.Glob(filepath.Join(tr.top, "*", "*", "Packages", "*.rpm"))
	return got
}

// TestAuthTCPPeers: with trusted_proxies 127.0.0.1/32 and no htpasswd, a client connecting from 127.0.0.2
// may not name a spooled file (403, the file untouched) but, being loopback, may upload directly; 127.0.0.1 may
// name one. A peer on a non-loopback address of this host may not upload directly (403 naming
// server.htpasswd).
func TestAuthTCPPeers(t *testing.T) {
	tr := newTree(t)
	addr := freeAddr(t)
	d := tr.startAuth(t, addr, "  trusted_proxies: [127.0.0.1/32]\n", tcpFrom("127.0.0.1"), "http://"+addr)
	from2 := tcpFrom("127.0.0.2")

	victim := testrpm.Build(t, testrpm.Spec{Name: "victim", Release: "1.el9", Arch: "x86_64"})
	spooled := tr.spoolFile(t, "0000000007", victim)
	code, _, body := put(t, from2, d.base+"/upload/", nil, map[string]string{"X-Package-Name": spooled, "X-Remote-User": "mallory"}, "", "")
	if code != http.StatusForbidden || !strings.Contains(body, "127.0.0.2 is not a trusted proxy") {
		t.Fatalf("header mode from 127.0.0.2: %d %q, want 403", code, body)
	}
	if got, err := os.ReadFile(spooled); err != nil || !bytes.Equal(got, victim) {
		t.Fatalf("the spooled file was touched by a refused request: %v", err)
	}
	if got := tr.stored(t); len(got) != 0 {
		t.Fatalf("stored after a refusal: %v", got)
	}

	// Without htpasswd every loopback address is local, trusted proxy or not: it may upload its own body.
	own := testrpm.Build(t, testrpm.Spec{Name: "own", Release: "1.el9", Arch: "x86_64"})
	if code, _, body := put(t, from2, d.base+"/upload/", own, nil, "", ""); code != http.StatusCreated {
		t.Fatalf("direct upload from 127.0.0.2: %d %q, want 201", code, body)
	}
	// The trusted proxy's address may name the file: the spool file is the real uploader's again.
	if code, _, body := put(t, tcpFrom("127.0.0.1"), d.base+"/upload/", nil, map[string]string{"X-Package-Name": spooled}, "", ""); code != http.StatusCreated {
		t.Fatalf("header mode from 127.0.0.1: %d %q, want 201", code, body)
	}
	log := d.stop(t)
	// The mode says who is trusted (issue 18 item 21): the header-mode upload from 127.0.0.1 above was accepted, so
	// the line must not claim "loopback and the unix socket only" for everything.
	if !strings.Contains(log, "local only: direct uploads, promotions and deletions are accepted from loopback and the unix socket only") ||
		!strings.Contains(log, "uploads naming a spooled file (header mode), with the client's X-Real-IP and X-Remote-User, are accepted from the unix socket as ") ||
		!strings.Contains(log, "and TCP peers in server.trusted_proxies 127.0.0.1/32") ||
		!strings.Contains(log, `"trusted_proxies":["127.0.0.1/32"]`) {
		t.Errorf("the start-up log does not state the mode and the trusted proxies:\n%s", log)
	}
	// A peer that is not local (403 without htpasswd) is covered by pkg/server's tests with a simulated peer
	// address: a real one would need traffic to an address other than loopback, which tests here must not send.
}

// TestAuthUnixSocket: over the unix socket, a peer running as the daemon's uid is the trusted proxy and may
// name a spooled file without credentials (the proxy authenticated the uploader); a direct upload still needs
// htpasswd credentials. The start-up log names the mode and the users with weak hashes.
func TestAuthUnixSocket(t *testing.T) {
	tr := newTree(t)
	htpasswd := filepath.Join(tr.dir, "htpasswd")
	for _, args := range [][]string{{"-cbB", htpasswd, "alice", "s3cret-pw"}, {"-bm", htpasswd, "bob", "old-pw"}} {
		if out, err := exec.Command("htpasswd", args...).CombinedOutput(); err != nil {
			t.Fatalf("htpasswd (install apache2-utils): %v\n%s", err, out)
		}
	}
	sock := filepath.Join(tr.dir, "rpm-ingestd.sock")
	hc := unixClient(sock)
	d := tr.startAuth(t, "unix:"+sock, "  htpasswd: htpasswd\n", hc, "http://rpm-ingestd")

	pkg := testrpm.Build(t, testrpm.Spec{Name: "proxied", Release: "1.el9", Arch: "x86_64"})
	code, _, body := put(t, hc, d.base+"/upload/", nil, map[string]string{"X-Package-Name": tr.spoolFile(t, "0000000003", pkg), "X-Remote-User": "carol"}, "", "")
	if code != http.StatusCreated {
		t.Fatalf("header mode over the socket as uid %d: %d %q, want 201", os.Getuid(), code, body)
	}
	direct := testrpm.Build(t, testrpm.Spec{Name: "direct", Release: "1.el9", Arch: "x86_64"})
	code, hdr, body := put(t, hc, d.base+"/upload/", direct, nil, "", "")
	if code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") != auth.Challenge {
		t.Fatalf("direct upload over the socket without credentials: %d %q (WWW-Authenticate %q), want 401", code, body, hdr.Get("WWW-Authenticate"))
	}
	if code, _, body := put(t, hc, d.base+"/upload/", direct, nil, "alice", "s3cret-pw"); code != http.StatusCreated {
		t.Fatalf("direct upload with credentials: %d %q, want 201", code, body)
	}
	log := d.stop(t)
	for _, want := range []string{
		"htpasswd: direct uploads, promotions and deletions need the Basic credentials of one of the 2 users in " + htpasswd,
		`"users":["bob"]`,
		`"user":"carol"`, `"user":"alice"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("daemon log lacks %q", want)
		}
	}
	if strings.Contains(log, "s3cret-pw") {
		t.Error("a password reached the log")
	}
}

// TestBadHtpasswdIsAConfigError: a line the daemon cannot parse stops it before it serves, as a configuration
// error (exit 2) naming the file and the line; --check-config reports it the same way.
func TestBadHtpasswdIsAConfigError(t *testing.T) {
	tr := newTree(t)
	htpasswd := filepath.Join(tr.dir, "htpasswd")
	// Line 2 is crypt(3) DES, which uses only 8 characters of a password and is refused.
	os.WriteFile(htpasswd, []byte("# users\nold:rOfQ7dMXXNmGo\n"), 0o600)
	cfg := filepath.Join(tr.dir, "config.yml")
	os.WriteFile(cfg, []byte("server:\n  spool_dir: incoming\n  htpasswd: htpasswd\nrepo:\n  top_dir: storage\n"), 0o644)
	for _, args := range [][]string{{"-c", cfg}, {"--check-config", "-c", cfg}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Fatalf("%v: exit %d, want 2\n%s", args, code, stderr.String())
		}
		if got := stderr.String(); !strings.Contains(got, "server.htpasswd: htpasswd file "+htpasswd+" line 2:") {
			t.Errorf("%v: the error does not name the file and line:\n%s", args, got)
		}
	}
}

// TestTrustedProxiesAgree: config validates server.trusted_proxies itself (to report it with every other
// problem) by the rules of auth.NewTrust, which the daemon then builds from it; they must agree, default
// included.
func TestTrustedProxiesAgree(t *testing.T) {
	if !slices.Equal(config.DefaultTrustedProxies(), auth.DefaultTrustedProxies()) {
		t.Fatalf("defaults differ: config %v, auth %v", config.DefaultTrustedProxies(), auth.DefaultTrustedProxies())
	}
	dir := t.TempDir()
	for _, entry := range []string{"127.0.0.0/8", "::1/128", "10.0.0.1", "2001:db8::/32", "0.0.0.0/0", "::/0",
		"", "nginx", "10.0.0.0/33", "10.1.2.3/8", "fe80::1%eth0", "fe80::/10", "::ffff:10.0.0.0/104", "::ffff:10.0.0.1",
		" 10.0.0.1", "10.0.0.1/", "2001:db8::1/64"} {
		cfg := config.Default()
		cfg.Server.SpoolDir, cfg.Repo.TopDir = filepath.Join(dir, "spool"), filepath.Join(dir, "top")
		os.MkdirAll(cfg.Server.SpoolDir, 0o755)
		os.MkdirAll(cfg.Repo.TopDir, 0o755)
		cfg.Server.TrustedProxies = []string{entry}
		configErr := cfg.Validate()
		_, authErr := auth.NewTrust([]string{entry}, 0)
		if (configErr == nil) != (authErr == nil) {
			t.Errorf("%q: config says %v, auth says %v", entry, configErr, authErr)
		}
	}
}
