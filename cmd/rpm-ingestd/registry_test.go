package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// These tests run the real daemon (see lifecycle_test.go) with log.audit_file set, and check the audit trail
// and /api/v1/packages across SIGHUP rotation, a restart, and a disk that fills up.

// startAudit runs the daemon on tr with log.audit_file set to audit (relative to the config file).
func (tr tree) startAudit(t *testing.T, audit string) *child {
	t.Helper()
	addr := freeAddr(t)
	cfg := tr.writeConfig(t, daemonConfig(addr, "1h", "", "", "  audit_file: "+audit+"\n"))
	d := tr.launch(t, addr, cfg)
	d.waitHealthy(t)
	return d
}

// put uploads data as /upload/<name> and returns the status.
func (d *child) put(t *testing.T, name string, data []byte) int {
	t.Helper()
	req, _ := http.NewRequest("PUT", "http://"+d.addr+"/upload/"+name, bytes.NewReader(data))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// apiPackage is one item of /api/v1/packages, its record fields raw to tell null from "".
type apiPackage struct {
	Path       string          `json:"path"`
	UploadedBy json.RawMessage `json:"uploaded_by"`
	RequestID  json.RawMessage `json:"request_id"`
}

// packages returns /api/v1/packages (one page is enough here) by path.
func (d *child) packages(t *testing.T) map[string]apiPackage {
	t.Helper()
	resp, err := http.Get("http://" + d.addr + "/api/v1/packages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct{ Items []apiPackage }
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/api/v1/packages: %s, %v", resp.Status, err)
	}
	out := map[string]apiPackage{}
	for _, it := range page.Items {
		out[it.Path] = it
	}
	return out
}

// auditLines returns each line's result and file name, "result:file_name"; a line that is not JSON fails the test.
func auditLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			Result   string `json:"result"`
			FileName string `json:"file_name"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("%s: line %d is not JSON: %q", path, len(out)+1, sc.Text())
		}
		out = append(out, rec.Result+":"+rec.FileName)
	}
	return out
}

// TestAuditRotationAndRestart: one line per decision; after logrotate's rename and a SIGHUP new lines go to a
// new file at the configured path and the daemon keeps running; after a restart the index shows the records of
// the current file (not of the rotated one, which is not read), a file copied in by hand shows uploaded_by null,
// and new lines are appended, not written over.
func TestAuditRotationAndRestart(t *testing.T) {
	tr := newTree(t)
	const manual = "9/x86_64/Packages/manual-1.0-1.el9.x86_64.rpm"
	os.MkdirAll(filepath.Join(tr.top, "9/x86_64/Packages"), 0o755)
	os.WriteFile(filepath.Join(tr.top, manual), testrpm.Build(t, testrpm.Spec{Name: "manual", Release: "1.el9", Arch: "x86_64"}), 0o644)
	audit := filepath.Join(tr.dir, "audit.log")

	d := tr.startAudit(t, "audit.log")
	hello := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"})
	for _, step := range []struct {
		name   string
		data   []byte
		status int
	}{
		{"hello.rpm", hello, 201},
		{"again.rpm", hello, 200},
		{"junk.rpm", []byte("junk"), 400},
	} {
		if got := d.put(t, step.name, step.data); got != step.status {
			t.Fatalf("%s: %d, want %d", step.name, got, step.status)
		}
	}
	if got := strings.Join(auditLines(t, audit), " "); got != "created:hello.rpm exists:again.rpm invalid:junk.rpm" {
		t.Fatalf("audit before rotation: %s", got)
	}

	// logrotate: rename, then postrotate sends SIGHUP.
	if err := os.Rename(audit, audit+".1"); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitExists(t, d, audit)
	world := testrpm.Build(t, testrpm.Spec{Name: "world", Release: "1.el9", Arch: "x86_64"})
	if got := d.put(t, "world.rpm", world); got != 201 {
		t.Fatalf("upload after SIGHUP: %d", got)
	}
	if got := strings.Join(auditLines(t, audit), " "); got != "created:world.rpm" {
		t.Errorf("new audit file: %s", got)
	}
	if got := len(auditLines(t, audit+".1")); got != 3 {
		t.Errorf("rotated file has %d lines, want its 3", got)
	}
	pkgs := d.packages(t)
	const (
		helloPath = "9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"
		worldPath = "9/x86_64/Packages/world-1.0-1.el9.x86_64.rpm"
	)
	// A local peer without htpasswd uploads as "": recorded, but anonymous. Only the hand-copied file has null.
	if string(pkgs[helloPath].UploadedBy) != `""` || string(pkgs[worldPath].UploadedBy) != `""` || string(pkgs[manual].UploadedBy) != "null" {
		t.Errorf("before restart: %+v", pkgs)
	}

	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	worldID := pkgs[worldPath].RequestID

	d = tr.startAudit(t, "audit.log")
	pkgs = d.packages(t)
	if len(pkgs) != 3 {
		t.Errorf("after restart %d packages, want 3: %+v", len(pkgs), pkgs)
	}
	if string(pkgs[worldPath].RequestID) != string(worldID) || string(pkgs[worldPath].UploadedBy) != `""` {
		t.Errorf("world's record did not survive the restart: %+v (was %s)", pkgs[worldPath], worldID)
	}
	if string(pkgs[helloPath].UploadedBy) != "null" {
		t.Errorf("hello's record is only in the rotated file, which is not read: %+v", pkgs[helloPath])
	}
	if string(pkgs[manual].UploadedBy) != "null" {
		t.Errorf("hand-copied file: %+v", pkgs[manual])
	}
	if got := d.put(t, "junk2.rpm", []byte("junk")); got != 400 {
		t.Fatalf("junk after restart: %d", got)
	}
	if got := strings.Join(auditLines(t, audit), " "); got != "created:world.rpm invalid:junk2.rpm" {
		t.Errorf("audit after restart: %s", got)
	}
}

// waitExists waits until path exists: the daemon has reopened its audit file. (The daemon's log buffer cannot be
// read while it runs without a race.)
func waitExists(t *testing.T, d *child, path string) {
	t.Helper()
	for range 600 {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case err := <-d.done:
			t.Fatalf("daemon exited: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s never appeared", path)
}

// TestAuditDiskFull: the audit file's filesystem fills up; an upload is then answered 500 and its package is not
// in the tree, and once space is freed the next upload is stored and recorded.
func TestAuditDiskFull(t *testing.T) {
	tr := newTree(t)
	if os.Getuid() != 0 {
		t.Fatal("needs root to mount a tmpfs: run make test as root")
	}
	logs := filepath.Join(tr.dir, "logs")
	os.Mkdir(logs, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", logs).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { syscall.Unmount(logs, 0) })
	d := tr.startAudit(t, "logs/audit.log")

	filler := filepath.Join(logs, "filler")
	f, _ := os.Create(filler)
	_, err := f.Write(make([]byte, 1<<20))
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the tmpfs: %v, want ENOSPC", err)
	}
	hello := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"})
	if got := d.put(t, "hello.rpm", hello); got != 500 {
		t.Fatalf("upload with a full audit disk: %d, want 500", got)
	}
	pkgDir := filepath.Join(tr.top, "9/x86_64/Packages")
	if entries, _ := os.ReadDir(pkgDir); len(entries) != 0 {
		t.Errorf("the unrecorded package is in the tree: %v", entries)
	}

	os.Remove(filler)
	if got := d.put(t, "hello.rpm", hello); got != 201 {
		t.Fatalf("upload after freeing space: %d, want 201", got)
	}
	if got := strings.Join(auditLines(t, filepath.Join(logs, "audit.log")), " "); got != "created:hello.rpm" {
		t.Errorf("audit: %s (the failed decision left no line)", got)
	}
	// Stopped here, so that the tmpfs is no longer busy when it is unmounted.
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(t); code != 0 {
		t.Errorf("exit %d", code)
	}
}
