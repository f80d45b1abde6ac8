package indexer

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// dirtyRepos returns the repositories Status reports with pending changes.
func dirtyRepos(s *Scheduler) []string {
	var out []string
	for _, st := range s.Status() {
		if st.DirtySince != nil {
			out = append(out, st.Dir)
		}
	}
	return out
}

func TestRescanFindsChangesMadeByHand(t *testing.T) {
	top := t.TempDir()
	repo := func(name string) string { return filepath.Join(top, name, "x86_64") }
	meta := func(dir string, set pkgSet) { writeRepodata(t, dir, "", gz(t, primaryXML(set))) }
	const a, b = "a-1-1.x86_64.rpm", "b-1-1.x86_64.rpm"

	// clean: metadata matches the files.
	sa := writePkg(t, repo("clean"), a, 10, t0)
	meta(repo("clean"), pkgSet{"Packages/" + a: sa})
	// copied: b was copied in by hand.
	sa = writePkg(t, repo("copied"), a, 10, t0)
	writePkg(t, repo("copied"), b, 10, t0)
	meta(repo("copied"), pkgSet{"Packages/" + a: sa})
	// deleted: b was removed by hand.
	sa = writePkg(t, repo("deleted"), a, 10, t0)
	meta(repo("deleted"), pkgSet{"Packages/" + a: sa, "Packages/" + b: sa})
	// replaced: a was overwritten in place (new size and mtime).
	sa = writePkg(t, repo("replaced"), a, 10, t0)
	meta(repo("replaced"), pkgSet{"Packages/" + a: sa})
	writePkg(t, repo("replaced"), a, 11, t0.Add(time.Minute))
	// touched: same size, new mtime (createrepo_c --update re-reads it).
	sa = writePkg(t, repo("touched"), a, 10, t0)
	meta(repo("touched"), pkgSet{"Packages/" + a: sa})
	writePkg(t, repo("touched"), a, 10, t0.Add(time.Second))
	// created: a repository directory made by hand, no metadata yet.
	writePkg(t, repo("created"), a, 10, t0)
	// empty: no metadata and no packages: nothing to publish.
	if err := os.MkdirAll(filepath.Join(repo("empty"), "Packages"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Hidden trees are not repositories.
	writePkg(t, filepath.Join(top, ".trash", "x86_64"), a, 10, t0)
	// marked: metadata matches, but an operator asked for a run (touch .rpm-ingestd-dirty after modifyrepo_c).
	sa = writePkg(t, repo("marked"), a, 10, t0)
	meta(repo("marked"), pkgSet{"Packages/" + a: sa})
	if err := os.WriteFile(filepath.Join(repo("marked"), DirtyMarker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// busy: already pending; its run will publish what is there anyway.
	writePkg(t, repo("busy"), a, 10, t0)

	opts := testOptions()
	opts.TopDir = top
	h := newHarness(t, opts)
	h.s.Trigger(repo("busy"))

	n, err := h.s.Rescan()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{repo("busy"), repo("copied"), repo("created"), repo("deleted"), repo("marked"), repo("replaced"), repo("touched")}
	if got := dirtyRepos(h.s); n != 6 || !slices.Equal(got, want) {
		t.Fatalf("Rescan triggered %d, dirty %v; want 6 and %v", n, got, want)
	}
	os.Remove(filepath.Join(repo("marked"), DirtyMarker)) // what its (real) run does

	// Once indexed, the published sets are the listings: nothing to do.
	h.start()
	h.clock.Advance(opts.QuietPeriod)
	for range want {
		h.complete(h.nextCall(), nil)
	}
	if n, err := h.s.Rescan(); err != nil || n != 0 {
		t.Fatalf("Rescan after indexing = %d, %v; want 0", n, err)
	}

	// A deletion by hand in an indexed repository.
	if err := os.Remove(filepath.Join(repo("copied"), "Packages", b)); err != nil {
		t.Fatal(err)
	}
	if n, err := h.s.Rescan(); err != nil || n != 1 || !slices.Equal(dirtyRepos(h.s), []string{repo("copied")}) {
		t.Fatalf("Rescan after a deletion = %d, %v, dirty %v; want 1 (copied)", n, err, dirtyRepos(h.s))
	}
}

func TestRescanErrors(t *testing.T) {
	h := newHarness(t, testOptions())
	if _, err := h.s.Rescan(); !errors.Is(err, errNoTopDir) {
		t.Fatalf("Rescan without TopDir = %v, want %v", err, errNoTopDir)
	}

	opts := testOptions()
	opts.TopDir = filepath.Join(t.TempDir(), "missing")
	h = newHarness(t, opts)
	if _, err := h.s.Rescan(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Rescan of a missing top dir = %v, want ErrNotExist", err)
	}
}

func TestPeriodicRescan(t *testing.T) {
	top := t.TempDir()
	repo := filepath.Join(top, "9", "x86_64")
	opts := testOptions()
	opts.TopDir, opts.RescanInterval = top, 5*time.Minute
	h := newHarness(t, opts)
	armed := make(chan struct{}, 10)
	type result struct {
		n   int
		err error
	}
	rescans := make(chan result, 10)
	h.s.rescanArmed = func() { armed <- struct{}{} }
	h.s.rescanDone = func(n int, err error) { rescans <- result{n, err} }
	waitArmed := func() {
		t.Helper()
		select {
		case <-armed:
		case <-time.After(waitLimit):
			t.Fatal("rescan timer not armed")
		}
	}
	waitRescan := func() result {
		t.Helper()
		select {
		case r := <-rescans:
			return r
		case <-time.After(waitLimit):
			t.Fatal("no rescan")
			return result{}
		}
	}
	h.start()
	waitArmed()

	// A package copied in by hand, no Trigger: indexed within the interval.
	writePkg(t, repo, "a-1-1.x86_64.rpm", 10, t0)
	h.clock.Advance(opts.RescanInterval)
	if r := waitRescan(); r.n != 1 || r.err != nil {
		t.Fatalf("rescan = %+v, want 1 triggered", r)
	}
	waitArmed()
	h.clock.Advance(opts.QuietPeriod)
	h.complete(h.expectCall(repo), nil)
	if !h.s.listed(repo, "Packages/a-1-1.x86_64.rpm") {
		t.Fatal("hand-copied package not visible after the rescan's run")
	}

	h.clock.Advance(opts.RescanInterval - opts.QuietPeriod)
	if r := waitRescan(); r.n != 0 || r.err != nil {
		t.Fatalf("rescan = %+v, want nothing to do", r)
	}
}

func TestNoPeriodicRescanByDefault(t *testing.T) {
	opts := testOptions()
	opts.TopDir = t.TempDir()
	h := newHarness(t, opts)
	h.s.rescanArmed = func() { t.Error("rescan timer armed with RescanInterval 0") }
	h.start()
	h.s.PublishNow("/r/a") // proves Run is up: a worker took it
	h.complete(h.expectCall("/r/a"), nil)
	if n := h.clock.Pending(); n != 0 {
		t.Fatalf("%d timers armed", n)
	}
}
