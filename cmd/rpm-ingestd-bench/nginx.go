package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Production paths as they appear in the shipped nginx files; the benchmark replaces each with a scratch path,
// the way the e2e suite does, and fails if one of them is gone (the shipped files and the rendering drifted).
const (
	prodTopDir   = "/srv/repo/storage"
	prodSpoolDir = "/srv/repo/incoming"
	prodSocket   = "/run/rpm-ingestd/rpm-ingestd.sock"
	prodHtpasswd = "/etc/rpm-ingestd/htpasswd"
	prodSnippet  = "/etc/nginx/rpm-ingestd.conf"
	prodAccess   = "/var/log/nginx/repo.access.log"
	prodErrorLog = "/var/log/nginx/repo.error.log"

	uploadUser = "bench"
	uploadPass = "bench-secret"
)

// nginxStack is real nginx in front of a daemon, with the shipped snippet, plus a /sink/ location where nginx
// alone stores uploads (DAV PUT) for comparison.
type nginxStack struct {
	*proc
	dir  string
	base string // http://127.0.0.1:port
	sink string // directory the /sink/ location stores into
	web  *http.Client
}

// startNginx renders the shipped files for d's paths (the repository source tree is at src) and starts nginx.
func startNginx(ps *procSet, nginxBin, src, dir string, d *daemon) (*nginxStack, error) {
	s := &nginxStack{dir: dir, sink: filepath.Join(dir, "sink")}
	for _, p := range []string{dir, s.sink} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, err
		}
	}
	htpasswd := d.conf.htpasswd
	if htpasswd == "" {
		return nil, fmt.Errorf("the daemon has no server.htpasswd: nginx asks it about every login (daemonConf.withHtpasswd)")
	}
	shipped, err := os.ReadFile(filepath.Join(src, "nginx", "rpm-ingestd.conf"))
	if err != nil {
		return nil, err
	}
	snippet, err := render(string(shipped), map[string]string{prodTopDir: d.conf.top, prodSpoolDir: d.conf.spool,
		prodSocket: d.socket, prodHtpasswd: htpasswd})
	if err != nil {
		return nil, fmt.Errorf("nginx/rpm-ingestd.conf: %w", err)
	}
	snippetPath := filepath.Join(dir, "rpm-ingestd.conf")
	// nginx alone: the same auth, size limit and spool as the upload location, but nginx stores the body itself.
	sinkConf := fmt.Sprintf(`location ^~ /sink/ {
    auth_basic "rpm-ingestd upload";
    auth_basic_user_file %s;
    client_max_body_size 512m;
    client_body_timeout 60s;
    client_body_temp_path %s/nginx 1 2;
    client_body_in_file_only clean;
    dav_methods PUT;
    alias %s/;
}
`, htpasswd, d.conf.spool, s.sink)
	// The upload location caps bodies at 128m like server.max_upload_size; scenario 2's 10 MiB fit.
	if err := os.WriteFile(snippetPath, []byte(snippet+"\n"+sinkConf), 0o644); err != nil {
		return nil, err
	}
	example, err := os.ReadFile(filepath.Join(src, "nginx", "rpm-ingestd.example.conf"))
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.base = fmt.Sprintf("http://127.0.0.1:%d", port)
	server, err := render(string(example), map[string]string{"listen 80;": fmt.Sprintf("listen 127.0.0.1:%d;", port),
		"listen [::]:80;": "", prodSnippet: snippetPath, prodAccess: filepath.Join(dir, "access.log"),
		prodErrorLog: filepath.Join(dir, "error.log")})
	if err != nil {
		return nil, fmt.Errorf("nginx/rpm-ingestd.example.conf: %w", err)
	}
	serverPath := filepath.Join(dir, "server.conf")
	if err := os.WriteFile(serverPath, []byte(server), 0o644); err != nil {
		return nil, err
	}
	// The main configuration stands for the distribution's nginx.conf. Workers run as root here because the
	// daemon does: the two must share a user so the daemon can take nginx's 0600 spool files.
	mainConf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 2;
user root root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log notice;
worker_shutdown_timeout 5s;
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    types { text/xml xml; application/gzip gz; application/x-rpm rpm; }
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[2]s;
}
`, dir, serverPath)
	mainPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(mainPath, []byte(mainConf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(nginxBin, "-c", mainPath, "-p", dir+"/")
	var errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &errOut, &errOut
	p, err := startProc(ps, "nginx", cmd)
	if err != nil {
		return nil, err
	}
	s.proc = p
	s.web = &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := s.web.Get(s.base + "/repo/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
			err = fmt.Errorf("GET /repo/: %s", resp.Status)
		}
		if p.exited() || time.Now().After(deadline) {
			p.stop(syscall.SIGKILL, time.Second)
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, fmt.Errorf("nginx did not come up: %v\n%s\n%s", err, errOut.String(), tail(string(log), 2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// close stops nginx gracefully.
func (s *nginxStack) close() {
	s.web.CloseIdleConnections()
	s.stop(syscall.SIGQUIT, 10*time.Second)
}

// put is an authenticated upload of the file at path to urlPath through nginx.
func (s *nginxStack) put(urlPath, path string) (*http.Request, error) {
	req, err := bodyPut(s.base+urlPath, path)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(uploadUser, uploadPass)
	return req, nil
}

// render replaces every key of repl in text; each must occur.
func render(text string, repl map[string]string) (string, error) {
	for old, new := range repl {
		if !strings.Contains(text, old) {
			return "", fmt.Errorf("no longer contains %q: update cmd/rpm-ingestd-bench together with the shipped file", old)
		}
		text = strings.ReplaceAll(text, old, new)
	}
	return text, nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// withHtpasswd writes the benchmark's user file (bcrypt, as the docs recommend; htpasswd -B's default cost) into
// c.dir and sets it as server.htpasswd: behind the shipped nginx snippet the daemon checks every login.
func (c daemonConf) withHtpasswd() (daemonConf, error) {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return c, err
	}
	c.htpasswd = filepath.Join(c.dir, "htpasswd")
	if out, err := exec.Command("htpasswd", "-bcB", c.htpasswd, uploadUser, uploadPass).CombinedOutput(); err != nil {
		return c, fmt.Errorf("htpasswd: %w: %s (Debian: apt-get install apache2-utils)", err, out)
	}
	return c, nil
}
