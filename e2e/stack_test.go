package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testport"
)

// The stack's fixed names. The upload user's password only guards a loopback port for the test's lifetime.
const (
	uploadUser = "alice"
	uploadPass = "e2e-secret"

	// Production paths as they appear in the shipped nginx files; the test swaps each for a temporary one.
	prodTopDir   = "/srv/repo/storage"
	prodSpoolDir = "/srv/repo/incoming"
	prodSocket   = "/run/rpm-ingestd/rpm-ingestd.sock"
	prodHtpasswd = "/etc/rpm-ingestd/htpasswd" // server.htpasswd; the snippet names it, nginx does not read it
	prodSnippet  = "/etc/nginx/rpm-ingestd.conf"
	prodAccess   = "/var/log/nginx/repo.access.log"
	prodErrorLog = "/var/log/nginx/repo.error.log"
)

// Generous bounds for things that normally take well under a second; they only decide when a hung stack is
// declared failed, and no assertion depends on how fast anything is.
const (
	startTimeout = 30 * time.Second
	indexTimeout = 90 * time.Second
	stopTimeout  = 40 * time.Second
	cmdTimeout   = 2 * time.Minute
)

// account is the unprivileged user that nginx's workers and the daemon share, as in production (nginx's `user`
// equals the unit's User=), so the test proves the daemon can take nginx's 0600 spool files.
type account struct {
	name, group string
	uid, gid    uint32
	cred        *syscall.Credential
}

// runAccount returns nobody and nobody's primary group (nogroup on Debian, nobody on RHEL). The suite runs as
// root: nginx only switches its workers to `user` when started as root, and dnf installs into an installroot
// only as root ("This command has to be run with superuser privileges").
func runAccount(t testing.TB) account {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the e2e suite must run as root (nginx drops its workers to an unprivileged user, dnf installs into an installroot): run `make test` as root, as CI does, after `make deps`")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("look up user nobody: %v", err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatalf("look up group %s: %v", u.Gid, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return account{name: u.Username, group: g.Name, uid: uint32(uid), gid: uint32(gid),
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
}

// indexerTiming is the part of the daemon's configuration that subtests vary between restarts.
type indexerTiming struct{ quiet, maxDelay time.Duration }

// defaultTiming is what the suite normally runs with: uploads show up in dnf about two seconds later.
var defaultTiming = indexerTiming{quiet: 2 * time.Second, maxDelay: time.Minute}

// stack is one nginx + rpm-ingestd pair on temporary directories.
type stack struct {
	t     *testing.T
	tools map[string]string
	acct  account

	dir      string // everything below; removed at the end
	top      string // repo.top_dir, nginx's /repo/ alias
	spool    string // server.spool_dir; nginx's client_body_temp_path is spool/nginx
	socket   string // the daemon's unix socket, as in production
	ngxDir   string // nginx prefix: rendered configuration, logs, pid file, nginx's other temp paths
	dnfDir   string
	daemonLg string // the daemon's stderr, appended across restarts
	port     int
	base     string // http://127.0.0.1:port

	nginx  *proc
	daemon *proc
	starts int
	web    *http.Client // through nginx
	direct *http.Client // straight to the daemon's socket, bypassing nginx

	layout                  string   // repo.layout; "" means the suite's default, {{.OSRelease}}/{{.Arch}}
	repoExtra, indexerExtra string   // YAML lines added to the daemon's repo: and indexer: sections
	serverExtra             string   // YAML lines added to the daemon's server: section
	logExtra                string   // YAML lines added to the daemon's log: section
	dnfGPG                  []string // dnf's signature options; nil means --nogpgcheck
}

// newStack renders the shipped nginx files for temporary paths and starts nginx and the daemon. Every process
// is stopped in t.Cleanup, and on failure the nginx error log and the daemon log are dumped.
func newStack(t *testing.T) *stack { return newStackWith(t, nil) }

// newStackWith is newStack with a hook that adjusts the stack (its directories exist, nothing runs yet).
func newStackWith(t *testing.T, setup func(*stack)) *stack {
	t.Helper()
	tools := requireTools(t)
	dir, err := os.MkdirTemp(workRoot, "s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &stack{
		t: t, tools: tools, acct: runAccount(t), dir: dir,
		top:    filepath.Join(dir, "storage"),
		spool:  filepath.Join(dir, "incoming"),
		socket: filepath.Join(dir, "sock", "ingestd.sock"),
		ngxDir: filepath.Join(dir, "nginx"),
		dnfDir: filepath.Join(dir, "dnf"),
	}
	s.daemonLg = filepath.Join(dir, "daemon.log")
	// The daemon's user owns the tree, the spool and the socket directory, as the deploy docs prescribe.
	for _, d := range []string{s.top, s.spool, filepath.Dir(s.socket), filepath.Join(dir, "home"), s.ngxDir, s.dnfDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{dir, s.ngxDir, s.dnfDir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Like systemd's RuntimeDirectoryMode=0750: only the daemon's user (and group) reach the socket.
	if err := os.Chmod(filepath.Dir(s.socket), 0o750); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{s.top, s.spool, filepath.Dir(s.socket), filepath.Join(dir, "home")} {
		if err := os.Chown(d, int(s.acct.uid), int(s.acct.gid)); err != nil {
			t.Fatal(err)
		}
	}
	s.direct = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", s.socket)
		},
	}}
	s.web = &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	// Cleanups run last-registered first: stop the daemon, then nginx, then report, then remove the files.
	t.Cleanup(s.dumpLogsOnFailure)
	t.Cleanup(s.stopNginx)
	t.Cleanup(func() {
		if s.daemon != nil {
			s.stopDaemon(t, false)
		}
	})

	s.writeHtpasswd(t)
	if setup != nil {
		setup(s)
	}
	s.startDaemon(t, defaultTiming)
	s.startNginx(t)
	return s
}

func (s *stack) writeHtpasswd(t testing.TB) {
	p := filepath.Join(s.ngxDir, "htpasswd")
	// -B: bcrypt, as the snippet's comment recommends; -b: password on the command line (test only).
	s.run(t, s.tools["htpasswd"], "-bcB", p, uploadUser, uploadPass)
	// nginx's workers read it per request: production uses root:nginx 0640, here the workers' group.
	if err := os.Chown(p, 0, int(s.acct.gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
}

// replacement is one production path and its temporary stand-in.
type replacement struct{ old, new string }

// render substitutes every replacement in text, failing the test if one of them does not occur: the shipped
// file and the test must not silently drift apart. Then no production path may be left.
func render(t testing.TB, name, text string, repl []replacement, gone []string) string {
	t.Helper()
	for _, r := range repl {
		if !strings.Contains(text, r.old) {
			t.Fatalf("%s no longer contains %q: update the e2e rendering together with the shipped file", name, r.old)
		}
		text = strings.ReplaceAll(text, r.old, r.new)
	}
	for _, g := range gone {
		if strings.Contains(text, g) {
			t.Fatalf("%s still mentions %q after rendering: a production path the e2e rendering does not know", name, g)
		}
	}
	return text
}

// writeNginxConfig renders nginx/rpm-ingestd.conf and nginx/rpm-ingestd.example.conf, exactly as shipped except
// for the paths and the listen address, and writes a main nginx.conf around them.
func (s *stack) writeNginxConfig(t testing.TB) string {
	shipped, err := os.ReadFile("../nginx/rpm-ingestd.conf")
	if err != nil {
		t.Fatal(err)
	}
	snippetPath := filepath.Join(s.ngxDir, "rpm-ingestd.conf")
	snippet := render(t, "nginx/rpm-ingestd.conf", string(shipped), []replacement{
		{prodTopDir, s.top},
		{prodSpoolDir, s.spool},
		{prodSocket, s.socket},
		{prodHtpasswd, filepath.Join(s.ngxDir, "htpasswd")},
	}, []string{"/srv/repo", "/run/rpm-ingestd/", prodHtpasswd, "/etc/nginx/rpm-ingestd.htpasswd"})
	writeFile(t, snippetPath, snippet)

	example, err := os.ReadFile("../nginx/rpm-ingestd.example.conf")
	if err != nil {
		t.Fatal(err)
	}
	errorLog := filepath.Join(s.ngxDir, "error.log")
	server := render(t, "nginx/rpm-ingestd.example.conf", string(example), []replacement{
		{"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", s.port)},
		// IPv6 may be missing in CI containers, and the loopback port was only probed on IPv4.
		{"listen [::]:80;", ""},
		{prodSnippet, snippetPath},
		{prodAccess, filepath.Join(s.ngxDir, "access.log")},
		{prodErrorLog, errorLog},
	}, []string{"/var/log/nginx", prodSnippet, "listen 80", "[::]"})
	serverPath := filepath.Join(s.ngxDir, "server.conf")
	writeFile(t, serverPath, server)

	// The main configuration is the test's own: it stands for the distribution's nginx.conf.
	userLine := fmt.Sprintf("user %s %s;", s.acct.name, s.acct.group)
	main := fmt.Sprintf(`# Written by the rpm-ingestd e2e test.
daemon off;
master_process on;
worker_processes 2;
%[1]s
pid %[2]s/nginx.pid;
error_log %[3]s notice;
# Backstop for the graceful stop in stopNginx: never wait for a client longer than this.
worker_shutdown_timeout 10s;
events { worker_connections 512; }
http {
    default_type application/octet-stream;
    types { text/xml xml; application/gzip gz; application/x-rpm rpm; text/html html; }
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[4]s;
}
`, userLine, s.ngxDir, errorLog, serverPath)
	mainPath := filepath.Join(s.ngxDir, "nginx.conf")
	writeFile(t, mainPath, main)
	return mainPath
}

// startNginx starts nginx on a free loopback port, retrying with another port if one was taken meanwhile.
func (s *stack) startNginx(t testing.TB) {
	for attempt := 1; ; attempt++ {
		s.port = freePort(t)
		s.base = fmt.Sprintf("http://127.0.0.1:%d", s.port)
		conf := s.writeNginxConfig(t)
		var stderr bytes.Buffer
		cmd := exec.Command(s.tools["nginx"], "-c", conf, "-p", s.ngxDir+"/")
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		// Own process group, so a forced stop reaches the workers too. nginx starts as root and drops its
		// workers to `user` itself.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		p := startProc(t, "nginx", cmd)
		err := waitFor(startTimeout, p, func() error {
			resp, err := s.web.Get(s.base + "/repo/")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET /repo/: %s", resp.Status)
			}
			return nil
		})
		if err == nil {
			s.nginx = p
			return
		}
		_ = p.stop(syscall.SIGQUIT, stopTimeout)
		logText := readFile(filepath.Join(s.ngxDir, "error.log"))
		if attempt < 3 && strings.Contains(stderr.String()+logText, "Address already in use") {
			continue
		}
		t.Fatalf("nginx did not come up: %v\nstderr: %s\nerror.log:\n%s", err, stderr.String(), tail(logText, 40))
	}
}

func (s *stack) stopNginx() {
	if s.nginx == nil {
		return
	}
	// nginx 1.22's graceful shutdown closes idle keep-alive connections but waits (up to client_header_timeout)
	// for connections that never sent a request, and Go's Transport keeps such spare connections after
	// concurrent requests. Close ours first.
	s.web.CloseIdleConnections()
	// SIGQUIT: graceful shutdown, workers finish their requests.
	if err := s.nginx.stop(syscall.SIGQUIT, stopTimeout); err != nil {
		s.t.Errorf("nginx: %v", err)
	}
	s.nginx = nil
}

// writeDaemonConfig writes the daemon's configuration. The keys are the documented ones; the values match the
// rendered nginx snippet (socket, spool, tree) as deploy/config.yml matches the shipped one.
func (s *stack) writeDaemonConfig(t testing.TB, tm indexerTiming) string {
	layout := s.layout
	if layout == "" {
		layout = "{{.OSRelease}}/{{.Arch}}"
	}
	cfg := fmt.Sprintf(`# Written by the rpm-ingestd e2e test.
server:
  listen: "unix:%s"
  upload_path: /upload
  upload_header: X-Package-Name
  spool_dir: %s
  direct_upload: false
  max_upload_size: 128MiB
  serve_repo: false
  repo_url: /repo
  # nginx asks the daemon about every login (auth_request), so the daemon holds the user file, as in
  # deploy/config.yml.
  htpasswd: %s
%s
repo:
  top_dir: %s
  layout: %q
  arches: [x86_64, aarch64]
  dist_tags: [el, fc]
  overwrite: false
%s
indexer:
  command: ["createrepo_c", "--update", "--no-database", "--error-exit-val", "--retain-old-md-by-age=10m", "--keep-all-metadata"]
  quiet_period: %s
  max_delay: %s
  workers: 2
  timeout: 2m
  shutdown_timeout: 20s
%s
log:
  level: info
  format: json
%s
`, s.socket, s.spool, filepath.Join(s.ngxDir, "htpasswd"), s.serverExtra, s.top, layout, s.repoExtra, tm.quiet, tm.maxDelay, s.indexerExtra, s.logExtra)
	p := filepath.Join(s.dir, fmt.Sprintf("config-%d.yml", s.starts))
	writeFile(t, p, cfg)
	return p
}

// startDaemon starts rpm-ingestd as the shared account and waits until it answers on its socket.
func (s *stack) startDaemon(t testing.TB, tm indexerTiming) {
	s.starts++
	conf := s.writeDaemonConfig(t, tm)
	logf, err := os.OpenFile(s.daemonLg, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "=== e2e: start %d: quiet_period %s, max_delay %s ===\n", s.starts, tm.quiet, tm.maxDelay)
	cmd := exec.Command(daemonBin, "-c", conf)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH") + ":/usr/sbin:/usr/bin", "HOME=" + filepath.Join(s.dir, "home"), "LC_ALL=C"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.acct.cred}
	p := startProc(t, "rpm-ingestd", cmd)
	err = waitFor(startTimeout, p, func() error {
		resp, err := s.direct.Get("http://rpm-ingestd/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /healthz: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		_ = p.stop(syscall.SIGKILL, stopTimeout)
		t.Fatalf("rpm-ingestd did not come up: %v\nlog:\n%s", err, tail(readFile(s.daemonLg), 40))
	}
	s.daemon = p
}

// stopDaemon stops the daemon: SIGTERM (graceful: finish requests, publish what is pending), which must end in
// exit status 0, or SIGKILL to simulate a crash.
func (s *stack) stopDaemon(t testing.TB, kill bool) {
	p := s.daemon
	s.daemon = nil
	s.direct.CloseIdleConnections()
	if kill {
		if err := p.stop(syscall.SIGKILL, stopTimeout); err != nil {
			t.Errorf("rpm-ingestd: %v", err)
		}
		return
	}
	if err := p.stop(syscall.SIGTERM, stopTimeout); err != nil {
		t.Errorf("rpm-ingestd after SIGTERM: %v (want exit status 0)", err)
	}
}

// restartDaemon replaces the running daemon (stopped gracefully) by one with other indexer timing.
func (s *stack) restartDaemon(t testing.TB, tm indexerTiming) {
	s.stopDaemon(t, false)
	s.startDaemon(t, tm)
}

// dumpLogsOnFailure writes the ends of the nginx error log, the nginx access log and the daemon log into the
// test output when the test failed.
func (s *stack) dumpLogsOnFailure() {
	if !s.t.Failed() {
		return
	}
	for _, f := range []struct{ name, path string }{
		{"nginx error log", filepath.Join(s.ngxDir, "error.log")},
		{"nginx access log", filepath.Join(s.ngxDir, "access.log")},
		{"rpm-ingestd log", s.daemonLg},
	} {
		text := readFile(f.path)
		if strings.HasSuffix(f.path, "access.log") {
			// The status polls would drown everything else.
			var keep []string
			for _, l := range strings.Split(text, "\n") {
				if !strings.Contains(l, "GET /api/v1/repos ") {
					keep = append(keep, l)
				}
			}
			text = strings.Join(keep, "\n")
		}
		s.t.Logf("----- %s (%s), last lines -----\n%s", f.name, f.path, tail(text, 60))
	}
}

// proc is a started child process whose exit is awaited by one goroutine.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, valid after done is closed
}

func startProc(t testing.TB, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig and waits up to timeout; then it kills the whole process group. It returns the exit error
// (nil for status 0; for SIGKILL, nil when the process died of it).
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) error {
	if p.exited() {
		return fmt.Errorf("%s had already exited: %v", p.name, p.err)
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not exit within %s of %s; killed", p.name, timeout, sig)
	}
	if sig == syscall.SIGKILL {
		var ee *exec.ExitError
		if errors.As(p.err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				return nil
			}
		}
	}
	return p.err
}

// waitFor polls check until it returns nil, the process exits or the timeout passes.
func waitFor(timeout time.Duration, p *proc, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited: %v (last check: %v)", p.name, p.err, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still failing after %s: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// --- HTTP through nginx ---

// response is what a test looks at in an HTTP answer.
type response struct {
	code     int
	body     string
	location string
	header   http.Header
}

// do sends one request through nginx. auth says whether to send the upload credentials.
func (s *stack) do(t testing.TB, method, path string, body []byte, hdr map[string]string, auth bool) response {
	t.Helper()
	r, err := s.tryDo(s.web, s.base, method, path, body, hdr, auth)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryDo is do without failing the test, for goroutines and for the daemon's socket client.
func (s *stack) tryDo(c *http.Client, base, method, path string, body []byte, hdr map[string]string, auth bool) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return response{}, err
	}
	if auth {
		req.SetBasicAuth(uploadUser, uploadPass)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return response{code: resp.StatusCode, body: string(b), location: resp.Header.Get("Location"), header: resp.Header}, nil
}

// curlUpload uploads file with the real curl binary (`curl -T`), as users do. extra goes before the URL.
func (s *stack) curlUpload(t testing.TB, file, url string, extra ...string) response {
	t.Helper()
	hdrFile := filepath.Join(s.dir, "curl-headers")
	bodyFile := filepath.Join(s.dir, "curl-body")
	args := append([]string{"-sS", "-T", file, "-D", hdrFile, "-o", bodyFile, "-w", "%{http_code}"}, extra...)
	out := s.run(t, s.tools["curl"], append(args, url)...)
	code, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("curl -w %%{http_code}: %q", out)
	}
	r := response{code: code, body: readFile(bodyFile), header: parseHeaderDump(readFile(hdrFile))}
	r.location = r.header.Get("Location")
	return r
}

// parseHeaderDump reads curl's -D output, keeping the last response (after "100 Continue").
func parseHeaderDump(dump string) http.Header {
	h := http.Header{}
	sc := bufio.NewScanner(strings.NewReader(dump))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.HasPrefix(line, "HTTP/") {
			h = http.Header{}
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	return h
}

// --- the status API, through nginx ---

// repoStatus is one entry of GET /api/v1/repos, decoded on the client side: the wire format is what is tested.
type repoStatus struct {
	Path       string     `json:"path"`
	URL        string     `json:"url"`
	DirtySince *time.Time `json:"dirty_since"`
	NextRun    *time.Time `json:"next_run"`
	Running    bool       `json:"running"`
	LastResult string     `json:"last_result"`
	LastError  string     `json:"last_error"`
	Packages   int        `json:"packages"`
	Runs       int        `json:"runs"`
}

// settled means nothing is pending or running and the last run, if any, did not fail.
func (r repoStatus) settled() bool {
	return r.DirtySince == nil && !r.Running && r.LastResult != "error"
}

func (s *stack) statuses() (map[string]repoStatus, error) {
	r, err := s.tryDo(s.web, s.base, http.MethodGet, "/api/v1/repos", nil, nil, false)
	if err != nil {
		return nil, err
	}
	if r.code != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v1/repos: %d %s", r.code, r.body)
	}
	var list []repoStatus
	if err := json.Unmarshal([]byte(r.body), &list); err != nil {
		return nil, fmt.Errorf("GET /api/v1/repos: %w: %s", err, r.body)
	}
	m := make(map[string]repoStatus, len(list))
	for _, st := range list {
		m[st.URL] = st
	}
	return m, nil
}

// runsOf returns the completed index runs of the repository at url (0 if the daemon does not know it yet).
func (s *stack) runsOf(t testing.TB, url string) int {
	t.Helper()
	m, err := s.statuses()
	if err != nil {
		t.Fatal(err)
	}
	return m[url].Runs
}

// waitIndexed polls the status API until every repository URL (like "/repo/9/x86_64/") has nothing pending,
// no run in flight, and at least minRuns[url] completed runs. A repository the daemon does not know is settled
// when no run is required of it: a freshly started daemon only knows what Recover or an upload triggered. A
// failed run fails the test at once with createrepo_c's message. It returns the final statuses.
func (s *stack) waitIndexed(t testing.TB, minRuns map[string]int, urls ...string) map[string]repoStatus {
	t.Helper()
	deadline := time.Now().Add(indexTimeout)
	for {
		m, err := s.statuses()
		if err != nil {
			t.Fatal(err)
		}
		var waiting []string
		for _, u := range urls {
			st, known := m[u]
			if st.LastResult == "error" {
				t.Fatalf("index run of %s failed: %s", u, st.LastError)
			}
			if known && !st.settled() || st.Runs < minRuns[u] {
				waiting = append(waiting, fmt.Sprintf("%s %+v", u, st))
			}
		}
		if len(waiting) == 0 {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("repositories not indexed after %s:\n%s", indexTimeout, strings.Join(waiting, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// --- dnf ---

// dnfCmd builds an isolated dnf command over the given repository URL paths (ids r0, r1, ... in order):
// its own installroot and cache, no host repositories or plugins, metadata always revalidated.
//
// --refresh as well as metadata_expire=0: libdnf treats the cache as expired only when its age in whole
// seconds is greater than metadata_expire, so with 0 alone a cache written earlier in the same second (the
// previous query) is used as it is, and a package published meanwhile is missing.
func (s *stack) dnfCmd(ctx context.Context, root string, repos []string, args ...string) *exec.Cmd {
	argv := []string{"-y", "-q", "--refresh", "--noplugins", "--installroot=" + root, "--releasever=9",
		"--setopt=reposdir=/dev/null", "--setopt=cachedir=" + filepath.Join(s.dnfDir, "cache"),
		"--setopt=install_weak_deps=False", "--setopt=skip_if_unavailable=False"}
	if s.dnfGPG == nil {
		argv = append(argv, "--nogpgcheck")
	}
	argv = append(argv, s.dnfGPG...)
	for i, r := range repos {
		id := fmt.Sprintf("r%d", i)
		argv = append(argv, fmt.Sprintf("--repofrompath=%s,%s%s", id, s.base, r), "--repo="+id,
			"--setopt="+id+".metadata_expire=0")
	}
	cmd := exec.CommandContext(ctx, s.tools["dnf"], append(argv, args...)...)
	// Debian's rpm keeps its database under $HOME: point HOME into the test's tree so the host's ~/.rpmdb is
	// never opened (inside the installroot it becomes <root>/<HOME>/.rpmdb).
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(s.dnfDir, "home"), "LC_ALL=C.UTF-8"}
	return cmd
}

// dnf runs dnf and fails the test on a non-zero exit; it returns stdout.
func (s *stack) dnf(t testing.TB, root string, repos []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := s.tryDnf(ctx, root, repos, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (s *stack) tryDnf(ctx context.Context, root string, repos []string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := s.dnfCmd(ctx, root, repos, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("dnf %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// repoquery lists "name-evr.arch" of every package in the repositories (with extra arguments such as --arch).
func (s *stack) repoquery(t testing.TB, repos []string, extra ...string) []string {
	t.Helper()
	out := s.dnf(t, filepath.Join(s.dnfDir, "query-root"), repos, append([]string{"repoquery", "--qf", "%{name}-%{evr}.%{arch}"}, extra...)...)
	return lines(out)
}

// --- files ---

// spoolFiles lists everything in the spool that is not a directory: nginx's temp files, the daemon's direct
// upload files, anything a test planted.
func (s *stack) spoolFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(s.spool, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// requireSpoolEmpty waits briefly for the spool to be empty (nginx unlinks its temp file just after sending the
// response, so a file may outlive the response by microseconds) and fails the test otherwise.
func (s *stack) requireSpoolEmpty(t testing.TB, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		files := s.spoolFiles(t)
		if len(files) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s the spool still holds files: %v", what, files)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// packageFiles lists the *.rpm files under Packages/ directories of the tree, relative to top.
func (s *stack) packageFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(s.top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && filepath.Base(filepath.Dir(p)) == "Packages" {
			rel, _ := filepath.Rel(s.top, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// run runs a helper command and fails the test on error; it returns stdout.
func (s *stack) run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// freePort is a loopback port for a server the test starts, below the ephemeral ports (testport).
func freePort(t testing.TB) int {
	t.Helper()
	return testport.FreePort(t)
}

func writeFile(t testing.TB, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readFile returns the file's content, or a note saying why there is none (for reports).
func readFile(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

func tail(text string, n int) string {
	ls := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(ls) > n {
		ls = append([]string{fmt.Sprintf("... (%d lines before)", len(ls)-n)}, ls[len(ls)-n:]...)
	}
	return strings.Join(ls, "\n")
}

func lines(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
