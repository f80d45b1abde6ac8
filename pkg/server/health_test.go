package server

import (
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
)

// readyServer builds a Server with only what /readyz looks at.
func readyServer(t *testing.T, top, spool, program string) *Server {
	t.Helper()
	s, err := New(Options{UploadPath: "/upload", Auth: allowAll{}, TopDir: top, SpoolDir: spool, IndexerProgram: program},
		nil, &recordingIndexer{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func getReadyz(t *testing.T, s *Server) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Routes().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	return rec.Code, rec.Body.String()
}

// TestReadyz: 200 "ready" when both directories take a file, the program is on PATH and no stop has begun;
// otherwise 503 with every reason, in one line. The probe leaves nothing behind.
func TestReadyz(t *testing.T) {
	dir := t.TempDir()
	top, spool := filepath.Join(dir, "storage"), filepath.Join(dir, "incoming")
	os.Mkdir(top, 0o755)
	os.Mkdir(spool, 0o755)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	tests := []struct {
		name       string
		top, spool string
		program    string
		stopping   bool
		status     int
		body       []string
	}{
		{"ready", top, spool, "sh", false, 200, []string{"ready\n"}},
		{"program by path", top, spool, "/bin/sh", false, 200, []string{"ready\n"}},
		{"nothing to check", "", "", "", false, 200, []string{"ready\n"}},
		{"top_dir missing", filepath.Join(dir, "gone"), spool, "sh", false, 503,
			[]string{"repo.top_dir " + filepath.Join(dir, "gone") + " is not writable: no such file or directory"}},
		{"spool_dir is a file", top, file, "sh", false, 503, []string{"server.spool_dir " + file + " is not writable: not a directory"}},
		{"program missing", top, spool, "no-such-createrepo_c", false, 503,
			[]string{`indexer.command "no-such-createrepo_c" is not found: executable file not found in $PATH`}},
		{"stopping", top, spool, "sh", true, 503, []string{"shutting down"}},
		{"everything at once", filepath.Join(dir, "gone"), file, "/nonexistent/createrepo_c", true, 503,
			[]string{"shutting down; repo.top_dir ", "; server.spool_dir ", `; indexer.command "/nonexistent/createrepo_c" is not found`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := readyServer(t, tc.top, tc.spool, tc.program)
			if tc.stopping {
				s.ShuttingDown()
			}
			status, body := getReadyz(t, s)
			if status != tc.status || strings.Count(body, "\n") != 1 {
				t.Errorf("got %d %q, want %d and one line", status, body, tc.status)
			}
			for _, w := range tc.body {
				if !strings.Contains(body, w) {
					t.Errorf("body %q lacks %q", body, w)
				}
			}
		})
	}
	for _, d := range []string{top, spool} {
		if entries, _ := os.ReadDir(d); len(entries) != 0 {
			t.Errorf("the probe left files in %s: %v", d, entries)
		}
	}
}

// TestReadyzReadOnlyMount: a read-only filesystem under top_dir makes /readyz 503 and a writable one 200 again.
// The test runs as root, which ignores permission bits, so only a real read-only mount shows the check works by
// writing rather than by reading modes.
func TestReadyzReadOnlyMount(t *testing.T) {
	top := tmpfs(t)
	s := readyServer(t, top, t.TempDir(), "sh")
	if status, body := getReadyz(t, s); status != 200 {
		t.Fatalf("writable tmpfs: %d %q", status, body)
	}
	remount(t, top, "ro")
	if status, body := getReadyz(t, s); status != 503 || !strings.Contains(body, "repo.top_dir "+top+" is not writable: read-only file system") {
		t.Errorf("read-only tmpfs: %d %q, want 503 naming repo.top_dir", status, body)
	}
	remount(t, top, "rw")
	if status, body := getReadyz(t, s); status != 200 {
		t.Errorf("writable again: %d %q", status, body)
	}
}

// tmpfs mounts a small tmpfs on a new directory, unmounted at cleanup. It needs root (CAP_SYS_ADMIN).
func tmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs (the test needs root and mount(8)): %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

// remount switches a mount to "ro" or "rw".
func remount(t *testing.T, dir, mode string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+mode, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount -o remount,%s %s: %v\n%s", mode, dir, err, out)
	}
}
