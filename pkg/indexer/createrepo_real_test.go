package indexer

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// These tests run the real createrepo_c and prove the result with a real
// client (dnf repoquery). They fail, not skip, without the tools: CI must
// install them (`make deps`).

func requireTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"createrepo_c", "dnf"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not on PATH (%v): run `make deps` to install the test dependencies", tool, err)
		}
	}
}

// addRPM builds a tiny package and moves it into
// repo/Packages the way the uploader does: MarkDirty first, then write a
// temporary file outside Packages/ and rename it in.
func addRPM(t *testing.T, repo, name string) {
	t.Helper()
	if err := MarkDirty(repo); err != nil {
		t.Fatal(err)
	}
	data := testrpm.Build(t, testrpm.Spec{Name: name, Release: "1.el9", Arch: "x86_64"})
	tmp := filepath.Join(repo, ".upload-"+name)
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(repo, "Packages"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(repo, "Packages", name+"-1.0-1.el9.x86_64.rpm")); err != nil {
		t.Fatal(err)
	}
}

// repoquery lists the package names dnf sees in repo. A fresh cache dir per
// call plus metadata_expire=0 avoids dnf's 48 h metadata cache hiding a
// re-index.
func repoquery(t *testing.T, repo string) []string {
	t.Helper()
	cmd := exec.Command("dnf", "-q", "repoquery",
		"--setopt=reposdir=/dev/null", "--setopt=cachedir="+t.TempDir(),
		"--repofrompath=t,"+repo, "--repo=t", "--setopt=t.metadata_expire=0",
		"--nogpgcheck", "--releasever=9", "--installroot="+t.TempDir(),
		"-a", "--qf", "%{name}")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dnf repoquery %s: %v\n%s", repo, err, out)
	}
	names := strings.Fields(string(out))
	slices.Sort(names)
	return names
}

// metadataFiles returns the repodata/ paths named by repo's repomd.xml.
func metadataFiles(t *testing.T, repo string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var md repomd
	if err := xml.Unmarshal(b, &md); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, d := range md.Data {
		files = append(files, filepath.Join(repo, d.Location.Href))
	}
	if len(files) == 0 {
		t.Fatalf("repomd.xml names no files:\n%s", b)
	}
	return files
}

// age sets the mtime of files to an hour ago, like metadata of a repository
// that has been quiet for a while.
func age(t *testing.T, files []string) {
	t.Helper()
	old := time.Now().Add(-time.Hour)
	for _, f := range files {
		if err := os.Chtimes(f, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// realScheduler runs a Scheduler with the real clock and createrepo_c.
type realScheduler struct {
	t      *testing.T
	s      *Scheduler
	done   chan string
	cancel context.CancelFunc
	result chan error
}

func newRealScheduler(t *testing.T) *realScheduler {
	t.Helper()
	c := testCreaterepo(t, DefaultCommand())
	c.Log = zaptest.NewLogger(t)
	s := NewScheduler(c, Options{QuietPeriod: 50 * time.Millisecond, MaxDelay: 2 * time.Second,
		Timeout: time.Minute, ShutdownTimeout: time.Minute, Workers: 2}, zaptest.NewLogger(t))
	// Buffered beyond the handful of runs these tests make, so the hook
	// never blocks a worker.
	rs := &realScheduler{t: t, s: s, done: make(chan string, 100), result: make(chan error, 1)}
	s.runDone = func(dir string) { rs.done <- dir }
	return rs
}

func (rs *realScheduler) start() {
	ctx, cancel := context.WithCancel(context.Background())
	rs.cancel = cancel
	go func() { rs.result <- rs.s.Run(ctx) }()
	rs.t.Cleanup(func() { _ = rs.stop() })
}

func (rs *realScheduler) stop() error {
	if rs.cancel == nil {
		return nil
	}
	rs.cancel()
	rs.cancel = nil
	select {
	case err := <-rs.result:
		return err
	case <-time.After(waitLimit):
		rs.t.Error("Run did not return")
		return nil
	}
}

// waitIndexed waits until every dir has been indexed successfully with
// nothing pending, and returns its status.
func (rs *realScheduler) waitIndexed(dirs ...string) map[string]RepoStatus {
	rs.t.Helper()
	deadline := time.After(waitLimit)
	for {
		got := map[string]RepoStatus{}
		for _, st := range rs.s.Status() {
			if slices.Contains(dirs, st.Dir) && st.LastResult == "ok" && !st.Running && st.DirtySince == nil && st.NextRun == nil {
				got[st.Dir] = st
			}
			if st.LastResult == "error" {
				rs.t.Fatalf("run failed: %s", st.LastError)
			}
		}
		if len(got) == len(dirs) {
			return got
		}
		select {
		case <-rs.done:
		case <-deadline:
			rs.t.Fatalf("not indexed: %+v", rs.s.Status())
		}
	}
}

func TestRealCreaterepo(t *testing.T) {
	requireTools(t)
	top := t.TempDir()
	repo := filepath.Join(top, "9", "x86_64")

	rs := newRealScheduler(t)
	rs.start()
	for _, name := range []string{"alpha", "bravo", "charlie"} {
		addRPM(t, repo, name)
		rs.s.Trigger(repo)
	}
	st := rs.waitIndexed(repo)[repo]
	if st.Packages != 3 {
		t.Fatalf("status packages = %d, want 3", st.Packages)
	}
	if got, want := repoquery(t, repo), []string{"alpha", "bravo", "charlie"}; !slices.Equal(got, want) {
		t.Fatalf("repoquery = %v, want %v", got, want)
	}
	for _, m := range []string{DirtyMarker, IndexingMarker, tmpRepodata} {
		if exists(t, filepath.Join(repo, m)) {
			t.Fatalf("%s left after a successful run", m)
		}
	}

	// Retained metadata: a client that read the previous repomd.xml (written
	// an hour ago) can still fetch the files it names after the next run.
	gen1 := metadataFiles(t, repo)
	age(t, gen1)
	addRPM(t, repo, "delta")
	rs.s.Trigger(repo)
	rs.waitIndexed(repo)
	for _, f := range gen1 {
		if !exists(t, f) {
			t.Errorf("previous generation's %s deleted by the next run", filepath.Base(f))
		}
	}
	if slices.Equal(metadataFiles(t, repo), gen1) {
		t.Fatal("repomd.xml did not change after adding a package")
	}
	if got := repoquery(t, repo); !slices.Contains(got, "delta") {
		t.Fatalf("repoquery = %v, want delta", got)
	}

	// Crash: the daemon is gone (kill -9 left createrepo_c's lock dir and a
	// dirty marker), a package was added meanwhile, and a new repository
	// directory exists without metadata.
	if err := rs.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(repo, tmpRepodata, "primary.xml.gz.tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	addRPM(t, repo, "echo")
	empty := filepath.Join(top, "9", "aarch64")
	if err := os.MkdirAll(filepath.Join(empty, "Packages"), 0o755); err != nil {
		t.Fatal(err)
	}

	rs2 := newRealScheduler(t)
	n, err := rs2.s.Recover(top)
	if err != nil || n != 2 {
		t.Fatalf("Recover = %d, %v; want 2 (dirty repo and the one without metadata)", n, err)
	}
	rs2.start()
	rs2.waitIndexed(repo, empty)
	if got, want := repoquery(t, repo), []string{"alpha", "bravo", "charlie", "delta", "echo"}; !slices.Equal(got, want) {
		t.Fatalf("after recovery repoquery = %v, want %v", got, want)
	}
	if got := repoquery(t, empty); len(got) != 0 {
		t.Fatalf("empty repo lists %v", got)
	}
	for _, m := range []string{DirtyMarker, IndexingMarker, tmpRepodata} {
		if exists(t, filepath.Join(repo, m)) {
			t.Fatalf("%s left after recovery", m)
		}
	}
}

// TestRealRetainByAgeNeedsFreshMtimes is the control for the mtime refresh
// in Createrepo.Run: createrepo_c 0.17.3 alone deletes the previous
// generation when its files are older than --retain-old-md-by-age. If this
// starts failing, createrepo_c changed and DefaultCommand's notes need a
// re-check.
func TestRealRetainByAgeNeedsFreshMtimes(t *testing.T) {
	requireTools(t)
	repo := filepath.Join(t.TempDir(), "9", "x86_64")
	createrepo := func() {
		t.Helper()
		cmd := exec.Command(DefaultCommand()[0], append(DefaultCommand()[1:], repo)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("createrepo_c: %v\n%s", err, out)
		}
	}
	addRPM(t, repo, "alpha")
	createrepo()
	gen1 := metadataFiles(t, repo)
	age(t, gen1)
	addRPM(t, repo, "bravo")
	createrepo()
	for _, f := range gen1 {
		if exists(t, f) {
			t.Errorf("%s kept although older than the retention age", filepath.Base(f))
		}
	}
}

// TestRealPublishIsAtomic polls repodata/ from another goroutine while createrepo_c publishes generation after
// generation: repomd.xml must always exist, and every file it names must exist. createrepo_c's own publishing
// (two renames) fails this; the runner's output directory and RENAME_EXCHANGE must not.
func TestRealPublishIsAtomic(t *testing.T) {
	requireTools(t)
	repo := filepath.Join(t.TempDir(), "9", "x86_64")
	addRPM(t, repo, "base")
	c := testCreaterepo(t, DefaultCommand())
	if err := c.Run(t.Context(), repo); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	misses := make(chan string, 1)
	var checks int
	go func() {
		defer close(misses)
		for {
			select {
			case <-stop:
				return
			default:
			}
			checks++
			b, err := os.ReadFile(filepath.Join(repo, "repodata", "repomd.xml"))
			if err != nil {
				misses <- "repomd.xml: " + err.Error()
				return
			}
			var md repomd
			if err := xml.Unmarshal(b, &md); err != nil {
				misses <- "repomd.xml: " + err.Error()
				return
			}
			for _, d := range md.Data {
				if _, err := os.Stat(filepath.Join(repo, d.Location.Href)); err != nil {
					misses <- d.Location.Href + ": " + err.Error()
					return
				}
			}
		}
	}()
	for i := range 15 {
		addRPM(t, repo, fmt.Sprintf("gen%02d", i))
		if err := c.Run(t.Context(), repo); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if miss, ok := <-misses; ok {
		t.Fatalf("a reader found the repository broken: %s", miss)
	}
	t.Logf("%d consistent reads across 15 publications", checks)
}

// TestRealPkglistMatchesWalk: the sorted --pkglist that Run hands createrepo_c publishes the same packages as
// createrepo_c's own walk of the directory (run through a symlink of another name, which Run gives no list),
// including a hidden package file, without non-rpm files, and for an empty repository.
func TestRealPkglistMatchesWalk(t *testing.T) {
	requireTools(t)
	prog, err := exec.LookPath("createrepo_c")
	if err != nil {
		t.Fatal(err)
	}
	walker := filepath.Join(t.TempDir(), "createrepo-walk")
	if err := os.Symlink(prog, walker); err != nil {
		t.Fatal(err)
	}
	// The real createrepo_c behind a script of the same name that notes its arguments, to show the list is used.
	argsLog := filepath.Join(t.TempDir(), "args")
	recorder := filepath.Join(t.TempDir(), "createrepo_c")
	script := "#!/bin/sh\necho \"$*\" >> " + argsLog + "\nexec " + prog + " \"$@\"\n"
	if err := os.WriteFile(recorder, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	withList := testCreaterepo(t, append([]string{recorder}, DefaultCommand()[1:]...))
	walk := testCreaterepo(t, append([]string{walker}, DefaultCommand()[1:]...))

	for _, names := range [][]string{nil, {"zeta", "alpha", "mid"}} {
		sets := map[string][]string{}
		for label, c := range map[string]*Createrepo{"pkglist": withList, "walk": walk} {
			repo := filepath.Join(t.TempDir(), "9", "x86_64")
			for _, n := range names {
				addRPM(t, repo, n)
			}
			if len(names) > 0 {
				if err := os.Rename(filepath.Join(repo, "Packages", "mid-1.0-1.el9.x86_64.rpm"),
					filepath.Join(repo, "Packages", ".mid-1.0-1.el9.x86_64.rpm")); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(repo, "Packages", "notes.txt"), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Run(context.Background(), repo); err != nil {
				t.Fatalf("%s: %v", label, err)
			}
			set, _, err := readPublished(repo)
			if err != nil {
				t.Fatalf("%s: %v", label, err)
			}
			sets[label] = set.hrefs()
		}
		if !slices.Equal(sets["pkglist"], sets["walk"]) || len(sets["walk"]) != len(names) {
			t.Errorf("packages %v: with --pkglist %v, createrepo_c's walk %v", names, sets["pkglist"], sets["walk"])
		}
	}
	if args, _ := os.ReadFile(argsLog); strings.Count(string(args), "--pkglist ") != 2 {
		t.Errorf("createrepo_c was not given --pkglist on each run: %s", args)
	}
}
