package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/doccheck"
)

// The README's quick start, as a reader runs it. Its fenced blocks are marked with an info string:
//
//	```sh quickstart-server    the command that starts the daemon (make run); runs until stopped
//	```sh quickstart-client    the commands of the second terminal: an upload and a dnf query
//	```text quickstart-output  lines the client commands must print
//
// The one change to what the README says is the port, made the way the README tells a reader to change it:
// server.listen in deploy/config.dev.yml, and 127.0.0.1:5000 in the commands, both to a free port. Everything
// runs in a temporary copy of the checkout, so the checkout is left as it was.
const (
	quickstartAddr   = "127.0.0.1:5000"
	quickstartListen = `listen: "` + quickstartAddr + `"`
)

func TestReadmeQuickStart(t *testing.T) {
	requireTools(t)
	for _, tool := range []string{"make", "bash", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the quick start needs %s on PATH: run `make deps` (as root)", tool)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	server := oneBlock(t, string(readme), "sh quickstart-server")
	client := oneBlock(t, string(readme), "sh quickstart-client")
	output := oneBlock(t, string(readme), "text quickstart-output")
	if !strings.Contains(client, quickstartAddr) {
		t.Fatalf("the quick start's client commands do not use %s, the address deploy/config.dev.yml listens on", quickstartAddr)
	}

	before := checkoutStatus(t)
	copyDir := copyCheckout(t)
	port := strconv.Itoa(freePort(t))
	addr := "127.0.0.1:" + port

	// The port change the README describes: server.listen in deploy/config.dev.yml.
	devConfig := filepath.Join(copyDir, "deploy", "config.dev.yml")
	conf, err := os.ReadFile(devConfig)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(conf, []byte(quickstartListen)) != 1 {
		t.Fatalf("deploy/config.dev.yml does not hold exactly one %q line, which the README tells readers to edit to change the port", quickstartListen)
	}
	conf = bytes.Replace(conf, []byte(quickstartListen), []byte(`listen: "`+addr+`"`), 1)
	if err := os.WriteFile(devConfig, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	server = strings.ReplaceAll(server, quickstartAddr, addr)
	client = strings.ReplaceAll(client, quickstartAddr, addr)

	env := quickstartEnv(t)
	log := startQuickstartServer(t, copyDir, server, env, addr)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", client)
	cmd.Dir = copyDir
	cmd.Env = append(env, "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the quick start's client commands failed: %v\n--- commands\n%s--- output\n%s--- daemon log\n%s", err, client, out, log.String())
	}
	for _, want := range strings.Split(strings.TrimSpace(output), "\n") {
		if want = strings.TrimSpace(want); want != "" && !strings.Contains(string(out), want) {
			t.Errorf("the quick start's output lacks the README's line %q\n--- output\n%s", want, out)
		}
	}

	if after := checkoutStatus(t); after != before {
		t.Errorf("the quick start changed the checkout:\n--- before\n%s--- after\n%s", before, after)
	}
}

// oneBlock returns the single fenced block of the README marked with info.
func oneBlock(t *testing.T, readme, info string) string {
	t.Helper()
	blocks := doccheck.FencedBlocks(readme, info)
	if len(blocks) != 1 {
		t.Fatalf("README.md has %d fenced blocks marked ```%s; the quick start test needs exactly one", len(blocks), info)
	}
	return blocks[0]
}

// checkoutStatus is git's view of the checkout, ignored files included, so anything the test leaves behind shows.
func checkoutStatus(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", "..", "status", "--porcelain", "--ignored", "--untracked-files=all").Output()
	if err != nil {
		t.Fatalf("git status: %v", err)
	}
	return string(out)
}

// copyCheckout copies the files git knows of (tracked, and untracked but not ignored: a fresh clone plus the
// work in progress) into a temporary directory, then the binary under test as bin/rpm-ingestd, newest, so that
// make finds it up to date.
func copyCheckout(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", "..", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v (the quick start test copies the checkout)", err)
	}
	dst := t.TempDir()
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join("..", rel)
		fi, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the work tree, not yet in the index
		}
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		copyFile(t, src, filepath.Join(dst, rel), fi.Mode().Perm())
	}
	bin := filepath.Join(dst, "bin", "rpm-ingestd")
	copyFile(t, daemonBin, bin, 0o755)
	now := time.Now().Add(time.Second)
	if err := os.Chtimes(bin, now, now); err != nil {
		t.Fatal(err)
	}
	return dst
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// quickstartEnv is the test's environment with the go command on PATH, as a reader's shell would have it: make
// run checks for Go before building.
func quickstartEnv(t *testing.T) []string {
	t.Helper()
	goDir := filepath.Dir(goTool())
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") {
			kv = "PATH=" + goDir + string(os.PathListSeparator) + strings.TrimPrefix(kv, "PATH=") +
				string(os.PathListSeparator) + "/usr/sbin:/sbin"
		}
		env = append(env, kv)
	}
	return env
}

// startQuickstartServer runs the server block in its own process group and waits until the daemon answers
// /healthz on addr. On cleanup the whole group gets SIGTERM (make, the daemon), then SIGKILL if it lingers.
func startQuickstartServer(t *testing.T, dir, script string, env []string, addr string) *syncBuffer {
	t.Helper()
	log := &syncBuffer{}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the quick start's server block: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(90 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})

	deadline := time.After(2 * time.Minute)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return log
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the quick start's server block exited (%v) before the daemon answered on %s:\n--- commands\n%s--- log\n%s", err, addr, script, log.String())
		case <-deadline:
			t.Fatalf("the daemon started by the quick start's server block did not answer on %s:\n--- commands\n%s--- log\n%s", addr, script, log.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestQuickstartPortRewrite guards the one documented rewrite: the README's address must appear in both places it
// is rewritten, so the quick start cannot pass by talking to some other daemon on the default port.
func TestQuickstartPortRewrite(t *testing.T) {
	conf, err := os.ReadFile("../deploy/config.dev.yml")
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(conf, []byte(quickstartListen)); n != 1 {
		t.Errorf("deploy/config.dev.yml holds %q %d times, want once", quickstartListen, n)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "change `server.listen` in `deploy/config.dev.yml`") {
		t.Error("README.md no longer says how to change the port (server.listen in deploy/config.dev.yml), which the quick start test relies on")
	}
}
