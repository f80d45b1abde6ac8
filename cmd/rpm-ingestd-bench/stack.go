package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// daemonConf is what a scenario varies in the daemon's configuration; the rest is the documented production
// setup (header mode behind nginx, the default createrepo_c command).
type daemonConf struct {
	dir      string // config, log and socket live here
	top      string // repo.top_dir
	spool    string // server.spool_dir
	direct   bool   // server.direct_upload
	quiet    time.Duration
	maxDelay time.Duration
	// htpasswd is server.htpasswd ("" for none). Behind the shipped nginx it is required: nginx asks the daemon
	// about every login (auth_request). withHtpasswd makes one.
	htpasswd string
	// server is YAML added to the server section, each line indented by two spaces (scenario 2's variant).
	server string
	// extra is YAML appended to the configuration (scenario 8: the storage section).
	extra string
}

// daemon is a running bin/rpm-ingestd.
type daemon struct {
	*proc
	conf   daemonConf
	socket string
	logf   string
	client *http.Client // over the unix socket
}

// startDaemon writes a configuration for c and starts the binary, waiting until /healthz answers.
func startDaemon(ps *procSet, bin string, c daemonConf) (*daemon, error) {
	for _, d := range []string{c.dir, c.top, c.spool} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	d := &daemon{conf: c, socket: filepath.Join(c.dir, "ingestd.sock"), logf: filepath.Join(c.dir, "daemon.log")}
	os.Remove(d.socket)
	cfg := fmt.Sprintf(`# Written by rpm-ingestd-bench.
server:
  listen: "unix:%s"
  upload_path: /upload
  upload_header: X-Package-Name
  spool_dir: %s
  direct_upload: %t
  max_upload_size: 512MiB
  serve_repo: false
  repo_url: /repo
%s%srepo:
  top_dir: %s
  layout: "{{.OSRelease}}/{{.Arch}}"
  arches: [x86_64]
  dist_tags: [el]
indexer:
  quiet_period: %s
  max_delay: %s
  workers: 2
  timeout: 10m
  shutdown_timeout: 2s
log:
  level: info
  format: json
%s`, d.socket, c.spool, c.direct, htpasswdKey(c.htpasswd), c.server, c.top, c.quiet, c.maxDelay, c.extra)
	confPath := filepath.Join(c.dir, "config.yml")
	if err := os.WriteFile(confPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(d.logf)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "-c", confPath)
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = []string{"PATH=" + os.Getenv("PATH") + ":/usr/sbin:/usr/bin", "HOME=" + c.dir, "LC_ALL=C"}
	p, err := startProc(ps, "rpm-ingestd", cmd)
	if err != nil {
		return nil, err
	}
	d.proc = p
	d.client = &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{
		MaxIdleConnsPerHost: 128,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.socket)
		},
	}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := d.client.Get("http://rpm-ingestd/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		if p.exited() || time.Now().After(deadline) {
			p.stop(syscall.SIGKILL, time.Second)
			b, _ := os.ReadFile(d.logf)
			return nil, fmt.Errorf("rpm-ingestd did not come up: %v\n%s", err, tail(string(b), 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// close stops the daemon gracefully (SIGTERM; its indexer gets shutdown_timeout to finish).
func (d *daemon) close() {
	d.client.CloseIdleConnections()
	d.stop(syscall.SIGTERM, 15*time.Second)
}

// repoStatus is one entry of GET /api/v1/repos.
type repoStatus struct {
	Path       string     `json:"path"`
	DirtySince *time.Time `json:"dirty_since"`
	Running    bool       `json:"running"`
	LastStart  *time.Time `json:"last_start"`
	LastEnd    *time.Time `json:"last_end"`
	LastResult string     `json:"last_result"`
	LastError  string     `json:"last_error"`
	Packages   int        `json:"packages"`
	Runs       int        `json:"runs"`
}

// status returns the daemon's view of the repository directory repoDir (zero value when unknown).
func (d *daemon) status(repoDir string) (repoStatus, error) {
	resp, err := d.client.Get("http://rpm-ingestd/api/v1/repos")
	if err != nil {
		return repoStatus{}, err
	}
	defer resp.Body.Close()
	var list []repoStatus
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return repoStatus{}, fmt.Errorf("decode /api/v1/repos: %w", err)
	}
	for _, st := range list {
		if filepath.Clean(st.Path) == filepath.Clean(repoDir) {
			return st, nil
		}
	}
	return repoStatus{}, nil
}

// waitSettled polls until repoDir has completed at least minRuns runs with nothing pending or running.
func (d *daemon) waitSettled(repoDir string, minRuns int, timeout time.Duration) (repoStatus, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := d.status(repoDir)
		if err != nil {
			return st, err
		}
		if st.LastResult == "error" {
			return st, fmt.Errorf("index run of %s failed: %s", repoDir, st.LastError)
		}
		if st.Runs >= minRuns && st.DirtySince == nil && !st.Running {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("%s not indexed after %s: %+v", repoDir, timeout, st)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// htpasswdKey is the server.htpasswd line for path, or nothing.
func htpasswdKey(path string) string {
	if path == "" {
		return ""
	}
	return fmt.Sprintf("  htpasswd: %q\n", path)
}
