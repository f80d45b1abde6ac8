package indexer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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

// newRealSchedulerWith is newRealScheduler with its Options adjusted.
func newRealSchedulerWith(t *testing.T, adjust func(*Options)) *realScheduler {
	t.Helper()
	c := testCreaterepo(t, DefaultCommand())
	c.Log = zaptest.NewLogger(t)
	opts := Options{QuietPeriod: 50 * time.Millisecond, MaxDelay: 2 * time.Second,
		Timeout: time.Minute, ShutdownTimeout: time.Minute, Workers: 2}
	adjust(&opts)
	s := NewScheduler(c, opts, zaptest.NewLogger(t))
	rs := &realScheduler{t: t, s: s, done: make(chan string, 100), result: make(chan error, 1)}
	s.runDone = func(dir string) { rs.done <- dir }
	return rs
}

// copyByHand puts a package into repo/Packages the way an admin's cp does:
// no dirty marker, no Trigger.
func copyByHand(t *testing.T, repo, name string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(repo, "Packages"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := name + "-1.0-1.el9.x86_64.rpm"
	data := testrpm.Build(t, testrpm.Spec{Name: name, Release: "1.el9", Arch: "x86_64"})
	if err := os.WriteFile(filepath.Join(repo, "Packages", file), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return "Packages/" + file
}

// createrepo runs createrepo_c directly with extra arguments.
func createrepo(t *testing.T, repo string, extra ...string) {
	t.Helper()
	argv := append(DefaultCommand(), extra...)
	out, err := exec.Command(argv[0], append(argv[1:], repo)...).CombinedOutput()
	if err != nil {
		t.Fatalf("createrepo_c: %v\n%s", err, out)
	}
}

// TestRealPublishedSetMatchesMetadata: the set the scheduler keeps after a
// run (the listing made at its start) is exactly what createrepo_c wrote,
// names, sizes and mtimes alike, so after a restart the set read back from
// repodata/ agrees and a rescan finds nothing to do.
func TestRealPublishedSetMatchesMetadata(t *testing.T) {
	requireTools(t)
	top := t.TempDir()
	repo := filepath.Join(top, "9", "x86_64")
	pubs := make(chan Published, 10)
	rs := newRealSchedulerWith(t, func(o *Options) {
		o.TopDir = top
		o.OnPublish = func(p Published) { pubs <- p }
	})
	rs.start()
	for _, name := range []string{"alpha", "bravo"} {
		addRPM(t, repo, name)
		rs.s.Trigger(repo)
	}
	// createrepo_c indexes hidden files too; the set must list it.
	hidden := copyByHand(t, repo, "charlie")
	if err := os.Rename(filepath.Join(repo, hidden), filepath.Join(repo, "Packages", ".charlie.rpm")); err != nil {
		t.Fatal(err)
	}
	rs.s.Trigger(repo)
	rs.waitIndexed(repo)
	p := expectPublished(t, pubs)
	want := []string{"Packages/.charlie.rpm", "Packages/alpha-1.0-1.el9.x86_64.rpm", "Packages/bravo-1.0-1.el9.x86_64.rpm"}
	// Triggers can split into two runs; the last event has the full set.
	for len(p.Packages) < len(want) {
		p = expectPublished(t, pubs)
	}
	if !slices.Equal(p.Packages, want) {
		t.Fatalf("published %v, want %v", p.Packages, want)
	}
	onDisk, _, err := readPublished(repo)
	if err != nil {
		t.Fatal(err)
	}
	listing, err := listPackages(repo)
	if err != nil {
		t.Fatal(err)
	}
	if !onDisk.equal(listing) {
		t.Fatalf("createrepo_c's primary.xml %v differs from the listing %v", onDisk, listing)
	}
	if err := rs.stop(); err != nil {
		t.Fatal(err)
	}

	// Restart: the set comes from repodata/, and nothing was changed.
	rs2 := newRealSchedulerWith(t, func(o *Options) { o.TopDir = top })
	if n, err := rs2.s.Rescan(); err != nil || n != 0 {
		t.Fatalf("Rescan after restart = %d, %v; want 0", n, err)
	}
	for _, h := range want {
		if !rs2.s.listed(repo, h) {
			t.Fatalf("%s not visible after restart", h)
		}
	}
}

// TestRealRescanIndexesChangesByHand: files copied in and deleted by hand,
// and a repository directory created by hand, reach dnf after a rescan.
func TestRealRescanIndexesChangesByHand(t *testing.T) {
	requireTools(t)
	top := t.TempDir()
	repo := filepath.Join(top, "9", "x86_64")
	rs := newRealSchedulerWith(t, func(o *Options) { o.TopDir = top })
	rs.start()
	addRPM(t, repo, "alpha")
	rs.s.Trigger(repo)
	rs.waitIndexed(repo)

	copyByHand(t, repo, "bravo")
	other := filepath.Join(top, "10", "x86_64") // a new repository, made by hand
	copyByHand(t, other, "charlie")
	if n, err := rs.s.Rescan(); err != nil || n != 2 {
		t.Fatalf("Rescan = %d, %v; want 2", n, err)
	}
	rs.waitIndexed(repo, other)
	if got, want := repoquery(t, repo), []string{"alpha", "bravo"}; !slices.Equal(got, want) {
		t.Fatalf("repoquery = %v, want %v", got, want)
	}
	if got, want := repoquery(t, other), []string{"charlie"}; !slices.Equal(got, want) {
		t.Fatalf("repoquery new repo = %v, want %v", got, want)
	}

	if err := os.Remove(filepath.Join(repo, "Packages", "alpha-1.0-1.el9.x86_64.rpm")); err != nil {
		t.Fatal(err)
	}
	if n, err := rs.s.Rescan(); err != nil || n != 1 {
		t.Fatalf("Rescan after a deletion = %d, %v; want 1", n, err)
	}
	rs.waitIndexed(repo)
	if got, want := repoquery(t, repo), []string{"bravo"}; !slices.Equal(got, want) {
		t.Fatalf("repoquery after deletion = %v, want %v", got, want)
	}
	if n, err := rs.s.Rescan(); err != nil || n != 0 {
		t.Fatalf("Rescan with nothing changed = %d, %v; want 0", n, err)
	}
}

// TestRealPublishNowAndWaitVisible: with a quiet period far beyond the test,
// only PublishNow can publish; WaitVisible returns once dnf can see the
// package, and the burst before it gave one run.
func TestRealPublishNowAndWaitVisible(t *testing.T) {
	requireTools(t)
	repo := filepath.Join(t.TempDir(), "9", "x86_64")
	rs := newRealSchedulerWith(t, func(o *Options) { o.QuietPeriod, o.MaxDelay = time.Hour, time.Hour })
	rs.start()
	var hrefs []string
	for _, name := range []string{"alpha", "bravo", "charlie"} {
		addRPM(t, repo, name)
		hrefs = append(hrefs, "Packages/"+name+"-1.0-1.el9.x86_64.rpm")
		rs.s.Trigger(repo)
	}
	rs.s.PublishNow(repo)
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit) // a safety net, not a timing assertion
	defer cancel()
	if err := rs.s.waitListed(ctx, repo, hrefs); err != nil {
		t.Fatal(err)
	}
	if got, want := repoquery(t, repo), []string{"alpha", "bravo", "charlie"}; !slices.Equal(got, want) {
		t.Fatalf("repoquery right after WaitVisible = %v, want %v", got, want)
	}
	if st := rs.waitIndexed(repo)[repo]; st.Runs != 1 {
		t.Fatalf("runs = %d, want 1 for the burst", st.Runs)
	}
}

// TestRealReadPublishedCompressions: createrepo_c's other compressions.
func TestRealReadPublishedCompressions(t *testing.T) {
	requireTools(t)
	tests := []struct {
		name    string
		args    []string
		wantErr error
	}{
		{name: "gz (default)"},
		{name: "bz2", args: []string{"--general-compress-type=bz2"}},
		{name: "xz", args: []string{"--general-compress-type=xz"}, wantErr: errCompression},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "9", "x86_64")
			addRPM(t, repo, "alpha")
			addRPM(t, repo, "bravo")
			createrepo(t, repo, tc.args...)
			got, _, err := readPublished(repo)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), "--compress-type gz") {
					t.Fatalf("err = %v, want %v with a hint", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			listing, err := listPackages(repo)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || !got.equal(listing) {
				t.Fatalf("read %v, listing %v", got, listing)
			}
		})
	}
}

// TestRealVisibleMeansTheseBytes (issue 18 item 9): new bytes under a file
// name that is already published are not visible until the metadata lists
// their checksum, whatever the name says; in this process and in a new one
// that reads the metadata from disk.
func TestRealVisibleMeansTheseBytes(t *testing.T) {
	requireTools(t)
	repo := filepath.Join(t.TempDir(), "9", "x86_64")
	rs := newRealSchedulerWith(t, func(o *Options) { o.QuietPeriod, o.MaxDelay = time.Hour, time.Hour })
	rs.start()
	spec := testrpm.Spec{Name: "alpha", Release: "1.el9", Arch: "x86_64", Salt: "first build"}
	href := "Packages/" + spec.FileName()
	put := func(salt string) string {
		spec.Salt = salt
		data := testrpm.Build(t, spec)
		if err := os.MkdirAll(filepath.Join(repo, "Packages"), 0o755); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(repo, ".upload")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(repo, filepath.FromSlash(href))); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		return hex.EncodeToString(sum[:])
	}
	wait := func(sum string) {
		t.Helper()
		rs.s.PublishNow(repo)
		ctx, cancel := context.WithTimeout(t.Context(), waitLimit) // a safety net, not a timing assertion
		defer cancel()
		if err := rs.s.WaitVisible(ctx, repo, href, sum); err != nil {
			t.Fatal(err)
		}
	}
	first := put("first build")
	wait(first)
	// Another build under the same name (a re-upload after DELETE, or overwrite: true), longer so that
	// createrepo_c --update sees a different size.
	second := put("second build, a different one")
	if rs.s.Visible(repo, href, second) {
		t.Fatal("new bytes under a published name are visible before any run published them")
	}
	if !rs.s.Visible(repo, href, first) {
		t.Error("the published bytes are not visible any more before the run")
	}
	wait(second)
	if rs.s.Visible(repo, href, first) {
		t.Error("the replaced bytes are still visible after the new ones were published")
	}
	_, sums, _, err := readPublishedSums(repo)
	if err != nil || sums[href] != second {
		t.Fatalf("primary.xml lists %s with %q (%v), want %s", href, sums[href], err, second)
	}
	// A new process reads it all from disk.
	rs2 := newRealSchedulerWith(t, func(*Options) {})
	if !rs2.s.Visible(repo, href, second) || rs2.s.Visible(repo, href, first) {
		t.Error("read from disk, visibility disagrees with primary.xml")
	}
}
