package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testport"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// These tests run the real daemon as a child process (the test binary re-executes itself into run(), the
// stdlib's helper-process trick) with the real createrepo_c, and check what happens when it is stopped.
// (kill -9 between upload and index is tested through the whole stack in e2e, CrashRecovery.) A deadline only bounds how long a broken daemon can hang the test; nothing asserts
// how fast anything is.

const daemonEnv = "RPM_INGESTD_TEST_DAEMON_CONFIG"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(daemonEnv); cfg != "" {
		os.Exit(run([]string{"-c", cfg}, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// child is one rpm-ingestd process.
type child struct {
	cmd    *exec.Cmd
	addr   string
	log    *bytes.Buffer // written by exec's copying goroutine until the process has exited: read it after exited
	done   chan error
	exited chan struct{} // closed once Wait has returned, and with it the copying into log
}

// tree is a top_dir and spool_dir pair with a config writer.
type tree struct{ dir, top, spool string }

func newTree(t *testing.T) tree {
	t.Helper()
	for _, tool := range []string{"createrepo_c", "dnf"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not on PATH: run `make deps`", tool)
		}
	}
	dir := t.TempDir()
	tr := tree{dir: dir, top: filepath.Join(dir, "storage"), spool: filepath.Join(dir, "incoming")}
	os.Mkdir(tr.top, 0o755)
	os.Mkdir(tr.spool, 0o755)
	return tr
}

// start runs the daemon on a free port with the given quiet period; extraEnv is added to its environment.
func (tr tree) start(t *testing.T, quiet string, extraEnv ...string) *child {
	t.Helper()
	return tr.startWith(t, quiet, "", extraEnv...)
}

// startWith is start with more keys for the server section, given as indented YAML lines.
func (tr tree) startWith(t *testing.T, quiet, serverKeys string, extraEnv ...string) *child {
	t.Helper()
	addr := freeAddr(t)
	d := tr.launch(t, addr, tr.writeConfig(t, daemonConfig(addr, quiet, serverKeys, "", "")), extraEnv...)
	d.waitHealthy(t)
	return d
}

// daemonConfig is the tests' daemon configuration: listening on listen, spool and tree under the config file's
// directory, direct uploads, the given quiet period, debug logs. serverKeys, repoKeys and logKeys are more keys for
// those sections, as indented YAML lines ("" for none).
func daemonConfig(listen, quiet, serverKeys, repoKeys, logKeys string) string {
	return fmt.Sprintf(`server:
  listen: %q
  spool_dir: incoming
  direct_upload: true
%srepo:
  top_dir: storage
%sindexer:
  quiet_period: %s
  max_delay: 2h
log:
  level: debug
%s`, listen, serverKeys, repoKeys, quiet, logKeys)
}

// writeConfig writes text to the tree's config.yml and returns its path.
func (tr tree) writeConfig(t *testing.T, text string) string {
	t.Helper()
	cfg := filepath.Join(tr.dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// freeAddr returns a loopback TCP address that was free a moment ago, below the ephemeral ports (testport).
func freeAddr(t *testing.T) string {
	t.Helper()
	return testport.Free(t, "127.0.0.1")
}

// launch runs the daemon on the configuration file cfg (which listens on addr) with extraEnv added to its
// environment; it is killed when the test ends, and its log shown if the test failed. It does not wait for the
// daemon to answer.
func (tr tree) launch(t *testing.T, addr, cfg string, extraEnv ...string) *child {
	t.Helper()
	d := &child{addr: addr, log: &bytes.Buffer{}, done: make(chan error, 1), exited: make(chan struct{})}
	d.cmd = exec.Command(os.Args[0])
	d.cmd.Env = append(append(os.Environ(), daemonEnv+"="+cfg), extraEnv...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.done <- d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		if log := d.killedLog(); t.Failed() {
			t.Logf("daemon log:\n%s", log)
		}
	})
	return d
}

func (d *child) waitHealthy(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + d.addr + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
		select {
		case err := <-d.done:
			t.Fatalf("daemon exited: %v\n%s", err, d.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("daemon not healthy\n%s", d.killedLog())
}

func (d *child) upload(t *testing.T, data []byte) {
	t.Helper()
	req, _ := http.NewRequest("PUT", "http://"+d.addr+"/upload/", bytes.NewReader(data))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %s", resp.Status)
	}
}

// killedLog kills the daemon if it still runs and returns its log once the process has exited (reading it before
// races with the copying of its output).
func (d *child) killedLog() string {
	d.cmd.Process.Kill()
	select {
	case <-d.exited:
		return d.log.String()
	case <-time.After(10 * time.Second):
		return "(not shown: the daemon did not exit within 10 s of SIGKILL)"
	}
}

// wait waits for the process to exit and returns its exit code.
func (d *child) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-d.done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(60 * time.Second):
		t.Fatalf("daemon did not exit within 60 s; killed it. Its log:\n%s", d.killedLog())
		return -1
	}
}

// repoquery lists the package names a real dnf client sees in repo.
func repoquery(t *testing.T, repo string) string {
	t.Helper()
	tmp := t.TempDir()
	out, err := exec.Command("dnf", "-q", "repoquery", "--installroot", filepath.Join(tmp, "root"),
		"--setopt=reposdir=/dev/null", "--setopt=cachedir="+filepath.Join(tmp, "cache"), "--releasever=9",
		"--repofrompath=t,"+repo, "--repo=t", "--setopt=t.metadata_expire=0", "--nogpgcheck",
		"--qf", "%{name}-%{version}-%{release}.%{arch}").CombinedOutput()
	if err != nil {
		t.Fatalf("dnf repoquery: %v\n%s", err, out)
	}
	return string(out)
}

// TestSIGTERMPublishesPendingAndNotifiesSystemd: on SIGTERM the daemon indexes what is pending now, even with
// an hour of quiet period left, tells systemd READY=1 and STOPPING=1, and exits 0.
func TestSIGTERMPublishesPendingAndNotifiesSystemd(t *testing.T) {
	tr := newTree(t)
	sockPath := filepath.Join(t.TempDir(), "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	d := tr.start(t, "1h", "NOTIFY_SOCKET="+sockPath)
	d.upload(t, testrpm.Build(t, testrpm.Spec{Name: "pending", Release: "1.el9", Arch: "x86_64"}))
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t); code != 0 {
		t.Fatalf("exit code %d\n%s", code, d.log)
	}
	if got := repoquery(t, filepath.Join(tr.top, "9", "x86_64")); !strings.Contains(got, "pending-1.0-1.el9.x86_64") {
		t.Fatalf("pending package not published on shutdown; dnf sees:\n%s", got)
	}
	var msgs []string
	notify.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	for len(msgs) < 2 {
		n, _, err := notify.ReadFromUnix(buf)
		if err != nil {
			break
		}
		msgs = append(msgs, string(buf[:n]))
	}
	if strings.Join(msgs, ",") != "READY=1,STOPPING=1" {
		t.Errorf("sd_notify messages %q, want READY=1 then STOPPING=1", msgs)
	}
}
