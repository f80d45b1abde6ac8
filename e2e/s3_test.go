package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/seaweed"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
)

// s3Daemon is one rpm-ingestd in embedded mode (direct uploads and serve_repo on a loopback TCP port) with
// storage.backend s3 on a bucket of a real SeaweedFS. Its stack carries the dnf and HTTP helpers of the fs suite,
// pointed at the daemon itself.
type s3Daemon struct {
	*stack
	srv     *seaweed.Server
	bucket  string
	prefix  string
	conf    string
	logPath string
	proc    *proc
}

// s3Extra is YAML added to the daemon's configuration.
type s3Extra struct {
	server, repo, indexer string
}

// newS3Daemon writes a configuration for srv's bucket (a fresh one when bucket is "") and starts the daemon.
func newS3Daemon(t *testing.T, srv *seaweed.Server, bucket, prefix string, extra s3Extra) *s3Daemon {
	t.Helper()
	d := prepareS3Daemon(t, srv, bucket, prefix, extra)
	d.start(t)
	return d
}

func prepareS3Daemon(t *testing.T, srv *seaweed.Server, bucket, prefix string, extra s3Extra) *s3Daemon {
	t.Helper()
	tools := requireTools(t)
	if bucket == "" {
		bucket = srv.NewBucketFor(t)
	}
	dir, err := os.MkdirTemp(workRoot, "s3-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	port := freePort(t)
	d := &s3Daemon{srv: srv, bucket: bucket, prefix: prefix, logPath: filepath.Join(dir, "daemon.log")}
	d.stack = &stack{t: t, tools: tools, dir: dir, top: filepath.Join(dir, "storage"), spool: filepath.Join(dir, "incoming"),
		dnfDir: filepath.Join(dir, "dnf"), port: port, base: fmt.Sprintf("http://127.0.0.1:%d", port),
		web: &http.Client{Timeout: 3 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	for _, p := range []string{d.top, d.spool, d.dnfDir} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.conf = filepath.Join(dir, "config.yml")
	writeFile(t, d.conf, fmt.Sprintf(`# Written by the rpm-ingestd s3 e2e test.
server:
  listen: 127.0.0.1:%d
  spool_dir: %s
  direct_upload: true
  serve_repo: true
  max_wait: 2m
%s
repo:
  top_dir: %s
  arches: [x86_64, aarch64]
  dist_tags: [el, fc]
%s
indexer:
  quiet_period: 300ms
  max_delay: 2s
  workers: 2
  timeout: 2m
  shutdown_timeout: 30s
  rescan_interval: 0s
%s
log:
  level: debug
  format: json
storage:
  backend: s3
  s3:
    endpoint: %s
    bucket: %s
    prefix: %q
    path_style: true
`, port, d.spool, extra.server, d.top, extra.repo, extra.indexer, srv.Endpoint(), bucket, prefix))
	t.Cleanup(func() {
		if d.proc != nil && !d.proc.exited() {
			if err := d.proc.stop(syscall.SIGTERM, stopTimeout); err != nil {
				t.Errorf("rpm-ingestd after SIGTERM: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("daemon log %s (last 60 lines):\n%s", d.logPath, tail(readFile(d.logPath), 60))
		}
	})
	return d
}

func (d *s3Daemon) start(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(daemonBin, "-c", d.conf)
	cmd.Dir = d.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH") + ":/usr/sbin:/usr/bin", "HOME=" + d.dir, "LC_ALL=C"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := startProc(t, "rpm-ingestd", cmd)
	if err := waitFor(startTimeout, p, func() error {
		resp, err := d.web.Get(d.base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /healthz: %s", resp.Status)
		}
		return nil
	}); err != nil {
		_ = p.stop(syscall.SIGKILL, stopTimeout)
		t.Fatalf("rpm-ingestd did not come up: %v\nlog:\n%s", err, tail(readFile(d.logPath), 40))
	}
	d.proc = p
}

// store is a client of the daemon's bucket and prefix, to look at what the daemon stored.
func (d *s3Daemon) store(t *testing.T) *objstore.Store {
	t.Helper()
	st, err := objstore.New(objstore.Options{Endpoint: d.srv.Endpoint(), Bucket: d.bucket, Prefix: d.prefix,
		Region: seaweed.Region, PathStyle: true, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// upload PUTs a file's bytes to /upload/<name><query> straight to the daemon.
func (d *s3Daemon) upload(t *testing.T, name string, body []byte, query string) response {
	t.Helper()
	return d.do(t, http.MethodPut, "/upload/"+name+query, body, nil, false)
}

func rpmFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "rpms", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sortedQuery is repoquery's answer, sorted.
func (d *s3Daemon) sortedQuery(t *testing.T, repo string, extra ...string) []string {
	t.Helper()
	got := d.repoquery(t, []string{repo}, extra...)
	slices.Sort(got)
	return got
}

// keys lists the bucket's keys under prefix (relative to the daemon's prefix).
func (d *s3Daemon) keys(t *testing.T, prefix string) []string {
	t.Helper()
	infos, err := d.store(t).List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, i := range infos {
		out = append(out, i.Key)
	}
	return out
}

// logLines returns the daemon log's lines containing every one of the strings.
func (d *s3Daemon) logLines(all ...string) []string {
	var out []string
	for _, l := range strings.Split(readFile(d.logPath), "\n") {
		ok := true
		for _, s := range all {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}
