package indexer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"go.uber.org/zap/zaptest"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
)

// fakeScript is the absolute path of testdata/fake-createrepo_c.sh.
func fakeScript(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "testdata", "fake-createrepo_c.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeCreaterepo returns a Createrepo running the fake script with env
// settings, logging its argv to the returned file.
func fakeCreaterepo(t *testing.T, env ...string) (*Createrepo, string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "argv.log")
	argv := append([]string{"env", "FAKE_CREATEREPO_LOG=" + log}, env...)
	argv = append(argv, fakeScript(t), "--update", "--no-database")
	c := testCreaterepo(t, argv)
	c.Log = zaptest.NewLogger(t)
	return c, log
}

// runs parses the fake's argv log into one argument list per run.
func runs(t *testing.T, log string) [][]string {
	t.Helper()
	b, err := os.ReadFile(log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		switch {
		case line == "run":
			out = append(out, []string{})
		case len(out) > 0:
			out[len(out)-1] = append(out[len(out)-1], line)
		}
	}
	return out
}

func mkfifo(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// readFifo blocks until the script has written its line to p.
func readFifo(t *testing.T, p string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(p)
		got <- string(b)
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(waitLimit):
		t.Fatalf("nothing written to %s", p)
		return ""
	}
}

// runAsync starts c.Run and returns its result channel.
func runAsync(ctx context.Context, c *Createrepo, repo string) chan error {
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, repo) }()
	return done
}

func wait(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(waitLimit):
		t.Fatal("Createrepo.Run did not return")
		return nil
	}
}

func TestCreaterepoSuccess(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "9", "x86_64") // brand new
	if err := MarkDirty(repo); err != nil {
		t.Fatal(err)
	}
	// Stale lock dirs from a SIGKILLed createrepo_c, of ours (in the output
	// dir) or of an admin's run in place; the fake, like the real tool,
	// refuses to run while one exists in its output directory.
	for _, stale := range []string{".repodata", outputDir + "/.repodata"} {
		if err := os.MkdirAll(filepath.Join(repo, stale, "junk"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c, log := fakeCreaterepo(t)
	if err := c.Run(t.Context(), repo); err != nil {
		t.Fatal(err)
	}
	if got, want := runs(t, log), [][]string{{"--update", "--no-database", "--outputdir", filepath.Join(repo, outputDir), repo}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("argv %q, want %q", got, want)
	}
	for _, gone := range []string{".repodata", outputDir, DirtyMarker, IndexingMarker} {
		if exists(t, filepath.Join(repo, gone)) {
			t.Errorf("%s still exists", gone)
		}
	}
	for _, present := range []string{"Packages", "repodata/repomd.xml", LockFile} {
		if !exists(t, filepath.Join(repo, present)) {
			t.Errorf("%s missing", present)
		}
	}
}

func TestCreaterepoFailureKeepsOutputTailAndMarker(t *testing.T) {
	repo := mkRepo(t, t.TempDir(), "r", DirtyMarker)
	c, _ := fakeCreaterepo(t, "FAKE_CREATEREPO_FAIL=3")
	err := c.Run(t.Context(), repo)
	var re *RunError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want *RunError", err)
	}
	if re.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", re.ExitCode)
	}
	if !strings.Contains(re.Output, "broken.rpm: not an rpm") || !strings.Contains(re.Output, "noise line 200") {
		t.Errorf("output tail lacks the last lines: %q", re.Output)
	}
	if len(re.Output) > outputTail+3 || strings.Contains(re.Output, "noise line 1\n") {
		t.Errorf("output not cut to the tail (%d bytes): %q", len(re.Output), re.Output[:80])
	}
	if !strings.Contains(err.Error(), "exit code 3") || !strings.Contains(err.Error(), "not an rpm") {
		t.Errorf("error text %q lacks exit code or output", err)
	}
	if !exists(t, filepath.Join(repo, IndexingMarker)) {
		t.Error("indexing marker removed after a failed run")
	}
}

func TestCreaterepoCancelSendsSIGTERM(t *testing.T) {
	repo := mkRepo(t, t.TempDir(), "r")
	ready := mkfifo(t, "ready")
	c, log := fakeCreaterepo(t, "FAKE_CREATEREPO_SLEEP=600", "FAKE_CREATEREPO_READY="+ready)
	ctx, cancel := context.WithCancel(t.Context())
	done := runAsync(ctx, c, repo)
	readFifo(t, ready)
	cancel()
	err := wait(t, done)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled in the chain", err)
	}
	var re *RunError
	if !errors.As(err, &re) || re.ExitCode != 143 {
		t.Fatalf("err = %#v, want exit code 143 from the TERM trap", err)
	}
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "TERM\n") {
		t.Fatalf("script did not see SIGTERM; log:\n%s", b)
	}
}

func TestCreaterepoKillsAfterKillDelay(t *testing.T) {
	repo := mkRepo(t, t.TempDir(), "r")
	ready := mkfifo(t, "ready")
	c, _ := fakeCreaterepo(t, "FAKE_CREATEREPO_SLEEP=600", "FAKE_CREATEREPO_IGNORE_TERM=1", "FAKE_CREATEREPO_READY="+ready)
	c.KillDelay = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := runAsync(ctx, c, repo)
	readFifo(t, ready)
	cancel()
	err := wait(t, done)
	var re *RunError
	if !errors.As(err, &re) || re.ExitCode != -1 || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("err = %v, want a SIGKILLed run", err)
	}
}

func TestCreaterepoLockedByAnotherHolder(t *testing.T) {
	repo := mkRepo(t, t.TempDir(), "r", DirtyMarker)
	other := flock.New(filepath.Join(repo, LockFile))
	if ok, err := other.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	c, log := fakeCreaterepo(t)
	if err := c.Run(t.Context(), repo); !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
	if r := runs(t, log); len(r) != 0 {
		t.Fatalf("command ran while locked: %q", r)
	}
	if !exists(t, filepath.Join(repo, DirtyMarker)) {
		t.Fatal("dirty marker claimed without the lock")
	}
	if err := other.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := c.Run(t.Context(), repo); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
}

func TestCreaterepoKeepsMarkerWhenPackagesChangeDuringRun(t *testing.T) {
	repo := mkRepo(t, t.TempDir(), "r", DirtyMarker)
	ready, proceed := mkfifo(t, "ready"), mkfifo(t, "proceed")
	c, _ := fakeCreaterepo(t, "FAKE_CREATEREPO_READY="+ready, "FAKE_CREATEREPO_WAIT="+proceed)
	done := runAsync(t.Context(), c, repo)
	readFifo(t, ready)
	// An upload that found DirtyMarker already present (so MarkDirty was a
	// no-op) moves its package in after the claim.
	if err := os.WriteFile(filepath.Join(repo, "Packages", "late-1-1.noarch.rpm"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(proceed, []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	// The change stays pending (the fs Work records it again when its second listing differs), so a restart
	// publishes it.
	if !hasMarker(repo) {
		t.Fatal("no pending marker left although Packages/ changed during the run")
	}
	plain, _ := fakeCreaterepo(t)
	if err := plain.Run(t.Context(), repo); err != nil {
		t.Fatal(err)
	}
	if hasMarker(repo) {
		t.Fatal("pending marker left after a run with no concurrent change")
	}
}

func TestRefreshMetadataTimes(t *testing.T) {
	repo := mkRepo(t, t.TempDir(), "r", "repodata/aaa-primary.xml.gz", "repodata/bbb-other.xml.gz", "repodata/old-primary.xml.gz", "outside")
	repomd := `<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo">
  <data type="primary"><location href="repodata/aaa-primary.xml.gz"/></data>
  <data type="other"><location href="repodata/bbb-other.xml.gz"/></data>
  <data type="filelists"><location href="repodata/missing-filelists.xml.gz"/></data>
  <data type="evil"><location href="repodata/../outside"/></data>
</repomd>`
	if err := os.WriteFile(filepath.Join(repo, "repodata", "repomd.xml"), []byte(repomd), 0o644); err != nil {
		t.Fatal(err)
	}
	old, now := time.Unix(1_000_000, 0), time.Unix(2_000_000, 0)
	for _, f := range []string{"repodata/aaa-primary.xml.gz", "repodata/bbb-other.xml.gz", "repodata/old-primary.xml.gz", "outside"} {
		if err := os.Chtimes(filepath.Join(repo, f), old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := fstree.RefreshMetadataTimes(repo, now); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file string
		want time.Time
	}{
		{"repodata/aaa-primary.xml.gz", now},
		{"repodata/bbb-other.xml.gz", now},
		{"repodata/old-primary.xml.gz", old}, // not named by repomd.xml: ages out
		{"outside", old},                     // never follow hrefs out of repodata/
	}
	for _, tc := range tests {
		fi, err := os.Stat(filepath.Join(repo, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(tc.want) {
			t.Errorf("%s mtime %v, want %v", tc.file, fi.ModTime(), tc.want)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		writes []string
		want   string
	}{
		{"short", 10, []string{"ab", "cd"}, "abcd"},
		{"exact", 4, []string{"ab", "cd"}, "abcd"},
		{"cut on a line boundary", 8, []string{"line1\nline2\n", "x\n"}, "...line2\nx\n"},
		{"cut mid-line drops the fragment", 7, []string{"line1\nline2\n", "x\n"}, "...x\n"},
		{"cut without newline", 4, []string{"abcdefgh"}, "...efgh"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &tailBuffer{max: tc.max}
			for _, w := range tc.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := b.String(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDefaultCommand(t *testing.T) {
	tests := []struct {
		name      string
		installed []string
		want      string
	}{
		{"prefers createrepo_c", []string{"createrepo_c", "createrepo"}, "createrepo_c"},
		{"falls back to createrepo", []string{"createrepo"}, "createrepo"},
		{"neither: names createrepo_c in the error", nil, "createrepo_c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bin := t.TempDir()
			for _, name := range tc.installed {
				if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("PATH", bin)
			got := DefaultCommand()
			want := []string{tc.want, "--update", "--no-database", "--error-exit-val", "--retain-old-md-by-age=10m", "--keep-all-metadata"}
			if !slices.Equal(got, want) {
				t.Fatalf("DefaultCommand() = %q, want %q", got, want)
			}
		})
	}
}

func TestCreaterepoThroughScheduler(t *testing.T) {
	// The real Runner under a Scheduler with the real clock: a failing run
	// is recorded with its output tail.
	repo := mkRepo(t, t.TempDir(), "r")
	c, _ := fakeCreaterepo(t, "FAKE_CREATEREPO_FAIL=2")
	s := NewScheduler(c, Options{QuietPeriod: time.Millisecond, MaxDelay: time.Millisecond}, zaptest.NewLogger(t))
	done := make(chan string, 1)
	s.runDone = func(dir string) {
		select {
		case done <- dir:
		default: // later retries are not awaited
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	result := make(chan error, 1)
	go func() { result <- s.Run(ctx) }()
	s.Trigger(repo)
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("no run")
	}
	st := s.Status()[0]
	if st.LastResult != "error" || !strings.Contains(st.LastError, "exit code 2") || !strings.Contains(st.LastError, "not an rpm") {
		t.Fatalf("status %+v", st)
	}
	cancel()
	select {
	case <-result:
	case <-time.After(waitLimit):
		t.Fatal("Run did not return")
	}
}
