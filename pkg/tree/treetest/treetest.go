// Package treetest is the backend-agnostic contract of pkg/tree: the same table of cases runs against every
// backend (fs in pkg/tree/fstree, s3 when it lands), which is the proof that the seam is real. A backend's test
// calls Run with a constructor that returns a fresh, empty tree per test.
package treetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// Run runs every contract case against trees made by newTree, each in its own subtest with a fresh tree.
func Run(t *testing.T, newTree func(t *testing.T) tree.Tree) {
	cases := []struct {
		name string
		fn   func(t *testing.T, tr tree.Tree)
	}{
		{"PlaceIfAbsent", testPlaceIfAbsent},
		{"PlaceSameBytesIsPresent", testPlaceSame},
		{"PlaceDifferentBytesIsExists", testPlaceDifferent},
		{"PlaceOverwriteReplaces", testPlaceOverwrite},
		{"PlaceAllOrNothing", testPlaceAllOrNothing},
		{"PlaceCommit", testPlaceCommit},
		{"PlaceCommitFailureKeepsNothing", testPlaceCommitFails},
		{"PlaceRefusesBadNames", testPlaceBadNames},
		{"ConcurrentPlacementsOneWinner", testConcurrentPlace},
		{"ConcurrentSameBytesOneCreated", testConcurrentSame},
		{"ConcurrentOverwriteNeverSplit", testConcurrentOverwrite},
		{"StatOpenList", testStatOpenList},
		{"Remove", testRemove},
		{"Repos", testRepos},
		{"StageStored", testStageStored},
		{"PendingRecordClaimConsume", testPending},
		{"LockExclusive", testLock},
		{"PublishAndReadMetadata", testPublish},
		{"PublishAtomicForReaders", testPublishAtomic},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newTree(t)) })
	}
}

var ctx = context.Background()

// pkgFile is a file of bytes to stage, with its sha256.
type pkgFile struct {
	f   *os.File
	sum string
}

func newPkg(t *testing.T, content string) pkgFile {
	t.Helper()
	p := filepath.Join(t.TempDir(), "upload")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	h := sha256.Sum256([]byte(content))
	return pkgFile{f: f, sum: hex.EncodeToString(h[:])}
}

func stage(t *testing.T, tr tree.Tree, content string) (tree.Staged, string) {
	t.Helper()
	p := newPkg(t, content)
	s, err := tr.Stage(ctx, p.f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, p.sum
}

// place stages content and places it as name into repos.
func place(t *testing.T, tr tree.Tree, content, name string, opts tree.PlaceOptions, repos ...string) (tree.Placed, error) {
	t.Helper()
	s, sum := stage(t, tr, content)
	return tr.Place(ctx, []tree.Unit{{Staged: s, SHA256: sum, Name: name, Repos: repos}}, opts)
}

func mustPlace(t *testing.T, tr tree.Tree, content, name string, want tree.Status, repos ...string) {
	t.Helper()
	res, err := place(t, tr, content, name, tree.PlaceOptions{}, repos...)
	if err != nil {
		t.Fatalf("place %s: %v", name, err)
	}
	if res.Status != want {
		t.Fatalf("place %s: status %q, want %q", name, res.Status, want)
	}
}

// read returns the stored bytes of ref, or fails the test.
func read(t *testing.T, tr tree.Tree, ref tree.Ref) string {
	t.Helper()
	o, err := tr.Open(ctx, ref)
	if err != nil {
		t.Fatalf("open %s: %v", ref, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatal(err)
	}
	if o.Stamp().Size != int64(len(b)) {
		t.Errorf("open %s: stamp size %d, read %d bytes", ref, o.Stamp().Size, len(b))
	}
	return string(b)
}

func absent(t *testing.T, tr tree.Tree, ref tree.Ref) {
	t.Helper()
	if _, err := tr.Stat(ctx, ref); !errors.Is(err, tree.ErrNotFound) {
		t.Errorf("stat %s: %v, want ErrNotFound", ref, err)
	}
}

const name = "foo-1.0-1.el9.noarch.rpm"

func testPlaceIfAbsent(t *testing.T, tr tree.Tree) {
	res, err := place(t, tr, "A", name, tree.PlaceOptions{}, "9/x86_64", "9/aarch64")
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != tree.Created {
		t.Errorf("status %q, want created", res.Status)
	}
	if want := []string{"9/x86_64", "9/aarch64"}; !slices.Equal(sorted(res.Pending), sorted(want)) {
		t.Errorf("pending %v, want %v", res.Pending, want)
	}
	for _, repo := range []string{"9/x86_64", "9/aarch64"} {
		if got := read(t, tr, tree.Ref{Repo: repo, Name: name}); got != "A" {
			t.Errorf("%s holds %q, want A", repo, got)
		}
	}
}

func testPlaceSame(t *testing.T, tr tree.Tree) {
	mustPlace(t, tr, "A", name, tree.Created, "9/x86_64")
	mustPlace(t, tr, "A", name, tree.Present, "9/x86_64")
	// Present in one, absent in the other: created.
	mustPlace(t, tr, "A", name, tree.Created, "9/x86_64", "9/aarch64")
}

func testPlaceDifferent(t *testing.T, tr tree.Tree) {
	mustPlace(t, tr, "A", name, tree.Created, "9/x86_64")
	_, err := place(t, tr, "B", name, tree.PlaceOptions{}, "9/x86_64")
	var ee *tree.ExistsError
	if !errors.Is(err, tree.ErrExists) || !errors.As(err, &ee) {
		t.Fatalf("placing different bytes: %v, want an *ExistsError", err)
	}
	if h := sha256.Sum256([]byte("A")); ee.Stored != hex.EncodeToString(h[:]) {
		t.Errorf("ExistsError.Stored %q, want the sha256 of A", ee.Stored)
	}
	if ee.Ref != (tree.Ref{Repo: "9/x86_64", Name: name}) {
		t.Errorf("ExistsError.Ref %v", ee.Ref)
	}
	if got := read(t, tr, tree.Ref{Repo: "9/x86_64", Name: name}); got != "A" {
		t.Errorf("stored %q after a refused placement, want A", got)
	}
}

func testPlaceOverwrite(t *testing.T, tr tree.Tree) {
	mustPlace(t, tr, "A", name, tree.Created, "9/x86_64")
	ref := tree.Ref{Repo: "9/x86_64", Name: name}
	before, err := tr.Stat(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	var committed tree.Status
	res, err := place(t, tr, "B", name, tree.PlaceOptions{Overwrite: true, Commit: func(s tree.Status) error {
		committed = s
		if got := read(t, tr, ref); got != "A" {
			t.Errorf("stored %q at commit time, want A: replacements come after Commit", got)
		}
		return nil
	}}, "9/x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != tree.Replaced || committed != tree.Replaced {
		t.Errorf("status %q, committed %q, want replaced", res.Status, committed)
	}
	if got := read(t, tr, ref); got != "B" {
		t.Errorf("stored %q, want B", got)
	}
	after, err := tr.Stat(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	// Same size, new content: the stamp must differ, or a publisher comparing stamps would miss it.
	if after == before {
		t.Errorf("stamp unchanged by a replacement: %+v", after)
	}
}

func testPlaceAllOrNothing(t *testing.T, tr tree.Tree) {
	mustPlace(t, tr, "A", name, tree.Created, "9/aarch64")
	_, err := place(t, tr, "B", name, tree.PlaceOptions{}, "9/x86_64", "9/aarch64")
	if !errors.Is(err, tree.ErrExists) {
		t.Fatalf("err %v, want ErrExists", err)
	}
	absent(t, tr, tree.Ref{Repo: "9/x86_64", Name: name})
	// Two units, the second refused: the first is placed nowhere either.
	s1, sum1 := stage(t, tr, "C")
	s2, sum2 := stage(t, tr, "B")
	_, err = tr.Place(ctx, []tree.Unit{
		{Staged: s1, SHA256: sum1, Name: "bar-1-1.el9.x86_64.rpm", Repos: []string{"9/x86_64"}},
		{Staged: s2, SHA256: sum2, Name: name, Repos: []string{"9/aarch64"}},
	}, tree.PlaceOptions{})
	if !errors.Is(err, tree.ErrExists) {
		t.Fatalf("err %v, want ErrExists", err)
	}
	absent(t, tr, tree.Ref{Repo: "9/x86_64", Name: "bar-1-1.el9.x86_64.rpm"})
}

func testPlaceCommit(t *testing.T, tr tree.Tree) {
	ref := tree.Ref{Repo: "9/x86_64", Name: name}
	calls := 0
	res, err := place(t, tr, "A", name, tree.PlaceOptions{Commit: func(s tree.Status) error {
		calls++
		if s != tree.Created {
			t.Errorf("commit with %q, want created", s)
		}
		if got := read(t, tr, ref); got != "A" {
			t.Errorf("at commit the new name holds %q, want A (durable before commit)", got)
		}
		return nil
	}}, "9/x86_64")
	if err != nil || res.Status != tree.Created || calls != 1 {
		t.Fatalf("place: %v, status %q, %d commits", err, res.Status, calls)
	}
	// A refused placement never commits.
	_, err = place(t, tr, "B", name, tree.PlaceOptions{Commit: func(tree.Status) error {
		t.Error("commit called for a refused placement")
		return nil
	}}, "9/x86_64")
	if !errors.Is(err, tree.ErrExists) {
		t.Fatalf("err %v, want ErrExists", err)
	}
}

func testPlaceCommitFails(t *testing.T, tr tree.Tree) {
	mustPlace(t, tr, "A", name, tree.Created, "9/aarch64")
	boom := errors.New("audit log full")
	_, err := place(t, tr, "A", name, tree.PlaceOptions{Commit: func(tree.Status) error { return boom }}, "9/x86_64", "9/aarch64")
	if !errors.Is(err, tree.ErrAborted) || !errors.Is(err, boom) {
		t.Fatalf("err %v, want ErrAborted wrapping the commit's error", err)
	}
	absent(t, tr, tree.Ref{Repo: "9/x86_64", Name: name})
	// What was there before stays.
	if got := read(t, tr, tree.Ref{Repo: "9/aarch64", Name: name}); got != "A" {
		t.Errorf("pre-existing copy holds %q, want A", got)
	}
	// Overwrite: nothing replaced either.
	_, err = place(t, tr, "B", name, tree.PlaceOptions{Overwrite: true, Commit: func(tree.Status) error { return boom }}, "9/aarch64")
	if !errors.Is(err, tree.ErrAborted) {
		t.Fatalf("err %v, want ErrAborted", err)
	}
	if got := read(t, tr, tree.Ref{Repo: "9/aarch64", Name: name}); got != "A" {
		t.Errorf("aborted overwrite left %q, want A", got)
	}
}

func testPlaceBadNames(t *testing.T, tr tree.Tree) {
	for _, c := range []struct{ repo, name string }{
		{"../x", name}, {"9/../../x", name}, {"/abs", name}, {"9/.hidden", name}, {"", name},
		{"9/x86_64", "../evil.rpm"}, {"9/x86_64", "a/b.rpm"}, {"9/x86_64", ".x.rpm"}, {"9/x86_64", "notrpm.txt"},
	} {
		_, err := place(t, tr, "A", c.name, tree.PlaceOptions{}, c.repo)
		if !errors.Is(err, tree.ErrInvalid) {
			t.Errorf("place %q into %q: %v, want ErrInvalid", c.name, c.repo, err)
		}
		if _, err := tr.Stat(ctx, tree.Ref{Repo: c.repo, Name: c.name}); !errors.Is(err, tree.ErrInvalid) {
			t.Errorf("stat %q in %q: %v, want ErrInvalid", c.name, c.repo, err)
		}
	}
	repos, err := tr.Repos(ctx)
	if err != nil || len(repos) != 0 {
		t.Errorf("refused placements left repositories %v (%v)", repos, err)
	}
}

func testConcurrentPlace(t *testing.T, tr tree.Tree) {
	const n = 8
	var created, exists atomic.Int32
	var wg sync.WaitGroup
	staged := make([]tree.Staged, n)
	sums := make([]string, n)
	for i := range n {
		staged[i], sums[i] = stage(t, tr, fmt.Sprintf("build %d", i))
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := tr.Place(ctx, []tree.Unit{{Staged: staged[i], SHA256: sums[i], Name: name, Repos: []string{"9/x86_64", "9/aarch64"}}}, tree.PlaceOptions{})
			switch {
			case err == nil && res.Status == tree.Created:
				created.Add(1)
			case errors.Is(err, tree.ErrExists):
				exists.Add(1)
			default:
				t.Errorf("placement %d: %v, status %q", i, err, res.Status)
			}
		}()
	}
	wg.Wait()
	if created.Load() != 1 || exists.Load() != n-1 {
		t.Fatalf("%d created, %d refused; want exactly one winner", created.Load(), exists.Load())
	}
	// The winner is whole: both arches hold the same build.
	a := read(t, tr, tree.Ref{Repo: "9/x86_64", Name: name})
	if b := read(t, tr, tree.Ref{Repo: "9/aarch64", Name: name}); a != b {
		t.Errorf("split placement: %q and %q", a, b)
	}
}

// testConcurrentOverwrite: different builds of one noarch file placed at once with Overwrite, each into two
// arches, over many rounds: every placement succeeds, and each round ends with both arches holding the same build
// (a placement is one decision over all its targets, not one per target).
func testConcurrentOverwrite(t *testing.T, tr tree.Tree) {
	const n, rounds = 6, 15
	for r := range rounds {
		staged := make([]tree.Staged, n)
		sums := make([]string, n)
		for i := range n {
			staged[i], sums[i] = stage(t, tr, fmt.Sprintf("round %d build %d", r, i))
		}
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := tr.Place(ctx, []tree.Unit{{Staged: staged[i], SHA256: sums[i], Name: name, Repos: []string{"9/x86_64", "9/aarch64"}}}, tree.PlaceOptions{Overwrite: true})
				if err != nil {
					t.Errorf("round %d placement %d: %v", r, i, err)
				}
			}()
		}
		wg.Wait()
		a := read(t, tr, tree.Ref{Repo: "9/x86_64", Name: name})
		if b := read(t, tr, tree.Ref{Repo: "9/aarch64", Name: name}); a != b {
			t.Fatalf("round %d: split placement: x86_64 holds %q, aarch64 %q", r, a, b)
		}
	}
}

func testConcurrentSame(t *testing.T, tr tree.Tree) {
	const n = 8
	var created, present atomic.Int32
	var wg sync.WaitGroup
	for range n {
		s, sum := stage(t, tr, "same bytes")
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := tr.Place(ctx, []tree.Unit{{Staged: s, SHA256: sum, Name: name, Repos: []string{"9/x86_64"}}}, tree.PlaceOptions{})
			switch {
			case err != nil:
				t.Error(err)
			case res.Status == tree.Created:
				created.Add(1)
			case res.Status == tree.Present:
				present.Add(1)
			}
		}()
	}
	wg.Wait()
	if created.Load() != 1 || present.Load() != n-1 {
		t.Fatalf("%d created, %d present; want 1 and %d", created.Load(), present.Load(), n-1)
	}
}

func testStatOpenList(t *testing.T, tr tree.Tree) {
	if l, err := tr.List(ctx, "9/x86_64"); err != nil || len(l) != 0 {
		t.Errorf("list of a missing repository: %v, %v; want empty", l, err)
	}
	mustPlace(t, tr, "AAAA", name, tree.Created, "9/x86_64")
	mustPlace(t, tr, "BB", "bar-2-1.el9.x86_64.rpm", tree.Created, "9/x86_64")
	st, err := tr.Stat(ctx, tree.Ref{Repo: "9/x86_64", Name: name})
	if err != nil || st.Size != 4 || st.ModTime.IsZero() {
		t.Errorf("stat: %+v, %v", st, err)
	}
	l, err := tr.List(ctx, "9/x86_64")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, e := range l {
		got[e.Name] = e.Size
		if e.ModTime.IsZero() {
			t.Errorf("list entry %s has no time", e.Name)
		}
	}
	if len(got) != 2 || got[name] != 4 || got["bar-2-1.el9.x86_64.rpm"] != 2 {
		t.Errorf("list %v", got)
	}
	absent(t, tr, tree.Ref{Repo: "9/x86_64", Name: "nope-1-1.el9.x86_64.rpm"})
	if _, err := tr.Open(ctx, tree.Ref{Repo: "9/x86_64", Name: "nope-1-1.el9.x86_64.rpm"}); !errors.Is(err, tree.ErrNotFound) {
		t.Errorf("open of a missing package: %v", err)
	}
	o, err := tr.Open(ctx, tree.Ref{Repo: "9/x86_64", Name: name})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b := make([]byte, 2)
	if _, err := o.ReadAt(b, 2); err != nil || string(b) != "AA" {
		t.Errorf("ReadAt: %q, %v", b, err)
	}
}

func testRemove(t *testing.T, tr tree.Tree) {
	mustPlace(t, tr, "A", name, tree.Created, "9/x86_64", "9/aarch64")
	drain(t, tr, "9/x86_64")
	drain(t, tr, "9/aarch64")
	refs := []tree.Ref{{Repo: "9/x86_64", Name: name}, {Repo: "9/aarch64", Name: name}}
	pending, err := tr.Remove(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sorted(pending), []string{"9/aarch64", "9/x86_64"}) {
		t.Errorf("pending %v", pending)
	}
	for _, r := range refs {
		absent(t, tr, r)
		if ok, err := tr.HasPending(ctx, r.Repo); err != nil || !ok {
			t.Errorf("%s: no pending change after a removal (%v)", r.Repo, err)
		}
	}
	if _, err := tr.Remove(ctx, refs[:1]); !errors.Is(err, tree.ErrNotFound) {
		t.Errorf("second removal: %v, want ErrNotFound", err)
	}
}

func testRepos(t *testing.T, tr tree.Tree) {
	mustPlace(t, tr, "A", name, tree.Created, "9/x86_64", "stable/9/aarch64")
	repos, err := tr.Repos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"9/x86_64", "stable/9/aarch64"}; !slices.Equal(sorted(repos), want) {
		t.Errorf("repos %v, want %v", repos, want)
	}
}

func testStageStored(t *testing.T, tr tree.Tree) {
	mustPlace(t, tr, "build bytes", name, tree.Created, "testing/9/x86_64")
	s, err := tr.StageStored(ctx, tree.Ref{Repo: "testing/9/x86_64", Name: name})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := make([]byte, s.Size())
	if _, err := s.ReadAt(b, 0); err != nil || string(b) != "build bytes" {
		t.Fatalf("staged %q, %v", b, err)
	}
	h := sha256.Sum256(b)
	res, err := tr.Place(ctx, []tree.Unit{{Staged: s, SHA256: hex.EncodeToString(h[:]), Name: name, Repos: []string{"stable/9/x86_64"}}}, tree.PlaceOptions{})
	if err != nil || res.Status != tree.Created {
		t.Fatalf("promote: %v, %q", err, res.Status)
	}
	if got := read(t, tr, tree.Ref{Repo: "stable/9/x86_64", Name: name}); got != "build bytes" {
		t.Errorf("promoted %q", got)
	}
	if _, err := tr.StageStored(ctx, tree.Ref{Repo: "testing/9/x86_64", Name: "nope-1-1.el9.x86_64.rpm"}); !errors.Is(err, tree.ErrNotFound) {
		t.Errorf("staging a missing package: %v, want ErrNotFound", err)
	}
}

// drain claims and consumes repo's pending changes under its lock, as a publish would.
func drain(t *testing.T, tr tree.Tree, repo string) {
	t.Helper()
	l, err := tr.TryLock(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	c, err := tr.ClaimPending(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.ConsumePending(ctx, c); err != nil {
		t.Fatal(err)
	}
}

func testPending(t *testing.T, tr tree.Tree) {
	const repo = "9/x86_64"
	if ok, err := tr.HasPending(ctx, repo); err != nil || ok {
		t.Fatalf("fresh tree has pending changes: %v, %v", ok, err)
	}
	res, err := place(t, tr, "A", name, tree.PlaceOptions{}, repo)
	if err != nil || !slices.Equal(res.Pending, []string{repo}) {
		t.Fatalf("place: %v, pending %v", err, res.Pending)
	}
	if ok, _ := tr.HasPending(ctx, repo); !ok {
		t.Fatal("no pending change after a placement")
	}
	l, err := tr.TryLock(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tr.ClaimPending(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if c.Repo() != repo {
		t.Errorf("claim of %q", c.Repo())
	}
	// Claimed is still pending: a crash now must not lose it.
	if ok, _ := tr.HasPending(ctx, repo); !ok {
		t.Error("claimed changes are no longer pending before they were consumed")
	}
	// A change recorded after the claim survives its consumption.
	if err := tr.RecordPending(ctx, repo); err != nil {
		t.Fatal(err)
	}
	if err := tr.ConsumePending(ctx, c); err != nil {
		t.Fatal(err)
	}
	if ok, _ := tr.HasPending(ctx, repo); !ok {
		t.Error("a change recorded after the claim was consumed with it")
	}
	c, err = tr.ClaimPending(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.ConsumePending(ctx, c); err != nil {
		t.Fatal(err)
	}
	if ok, _ := tr.HasPending(ctx, repo); ok {
		t.Error("still pending after everything was consumed")
	}
	l.Release()
	// RecordPending on a repository that does not exist yet creates what it needs.
	if err := tr.RecordPending(ctx, "10/x86_64"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := tr.HasPending(ctx, "10/x86_64"); !ok {
		t.Error("RecordPending on a new repository recorded nothing")
	}
}

func testLock(t *testing.T, tr tree.Tree) {
	const repo = "9/x86_64"
	l, err := tr.TryLock(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if l.Repo() != repo {
		t.Errorf("lock of %q", l.Repo())
	}
	if _, err := tr.TryLock(ctx, repo); !errors.Is(err, tree.ErrLocked) {
		t.Fatalf("second TryLock: %v, want ErrLocked", err)
	}
	// Another repository is independent.
	o, err := tr.TryLock(ctx, "9/aarch64")
	if err != nil {
		t.Fatalf("lock of another repository: %v", err)
	}
	o.Release()
	if err := l.Renew(ctx); err != nil {
		t.Errorf("renew: %v", err)
	}
	if _, err := tr.TryLock(ctx, repo); !errors.Is(err, tree.ErrLocked) {
		t.Fatalf("TryLock after renew: %v, want ErrLocked", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := tr.TryLock(ctx, repo)
	if err != nil {
		t.Fatalf("TryLock after release: %v", err)
	}
	l2.Release()
	// Exclusive among many goroutines at once: exactly one holder.
	var got atomic.Int32
	var wg sync.WaitGroup
	var mu sync.Mutex
	var held []tree.Lock
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := tr.TryLock(ctx, repo)
			if err == nil {
				got.Add(1)
				mu.Lock()
				held = append(held, l)
				mu.Unlock()
			} else if !errors.Is(err, tree.ErrLocked) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, l := range held {
		l.Release()
	}
	if got.Load() != 1 {
		t.Errorf("%d concurrent holders, want 1", got.Load())
	}
}

// repomdXML is a minimal repomd.xml naming files in repodata/.
func repomdXML(files ...string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<repomd>\n")
	for i, f := range files {
		fmt.Fprintf(&b, "<data type=\"t%d\"><location href=\"repodata/%s\"/></data>\n", i, f)
	}
	b.WriteString("</repomd>\n")
	return b.Bytes()
}

// hrefs parses repomd.xml's location hrefs.
func hrefs(b []byte) ([]string, error) {
	var md struct {
		Data []struct {
			Location struct {
				Href string `xml:"href,attr"`
			} `xml:"location"`
		} `xml:"data"`
	}
	if err := xml.Unmarshal(b, &md); err != nil {
		return nil, err
	}
	var out []string
	for _, d := range md.Data {
		out = append(out, filepath.Base(d.Location.Href))
	}
	return out, nil
}

// Begin takes repo's publish lock on tr and begins a publish under it, failing the test on an error; done closes
// the work and releases the lock.
func Begin(t testing.TB, tr tree.Tree, repo string) (w tree.Work, done func()) {
	t.Helper()
	l, err := tr.TryLock(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	w, err = tr.Begin(ctx, l)
	if err != nil {
		l.Release()
		t.Fatal(err)
	}
	return w, func() {
		w.Close()
		l.Release()
	}
}

// publishGen publishes generation gen of repo: a data file named by its content, and a repomd.xml naming it. As
// createrepo_c does with --retain-old-md-by-age, the previous generation's files (seeded into Output) are kept.
func publishGen(t *testing.T, tr tree.Tree, repo string, gen int) {
	t.Helper()
	w, done := Begin(t, tr, repo)
	defer done()
	rd := filepath.Join(w.Output(), "repodata")
	if err := os.MkdirAll(rd, 0o755); err != nil {
		t.Fatal(err)
	}
	if gen > 0 {
		// The previous generation is seeded: createrepo_c --update reads it from there.
		if _, err := os.Stat(filepath.Join(rd, fmt.Sprintf("gen%d-primary.xml", gen-1))); err != nil {
			t.Fatalf("output not seeded with the published generation: %v", err)
		}
	}
	data := fmt.Sprintf("gen%d-primary.xml", gen)
	if err := os.WriteFile(filepath.Join(rd, data), []byte(fmt.Sprintf("generation %d", gen)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Never write into a seeded file in place: on fs it is a hard link to the published one. createrepo_c
	// writes new files and renames them.
	if err := os.WriteFile(filepath.Join(rd, ".repomd.xml.new"), repomdXML(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(rd, ".repomd.xml.new"), filepath.Join(rd, "repomd.xml")); err != nil {
		t.Fatal(err)
	}
	if err := w.Publish(ctx); err != nil {
		t.Fatalf("publish generation %d: %v", gen, err)
	}
	// After Publish every package has its stamp (fs takes them after the exchange).
	for _, e := range w.Packages() {
		st, err := tr.Stat(ctx, tree.Ref{Repo: repo, Name: e.Name})
		if err != nil || st.Size != e.Size || st.ModTime.Unix() != e.ModTime.Unix() {
			t.Errorf("after publish, package %s has stamp %+v; stored: %+v, %v", e.Name, e.Stamp, st, err)
		}
	}
}

func testPublish(t *testing.T, tr tree.Tree) {
	const repo = "9/x86_64"
	if _, err := tr.OpenMetadata(ctx, repo, "repomd.xml"); !errors.Is(err, tree.ErrNotFound) {
		t.Errorf("metadata of an unpublished repository: %v, want ErrNotFound", err)
	}
	if _, err := tr.OpenMetadata(ctx, repo, "../Packages/x.rpm"); !errors.Is(err, tree.ErrInvalid) {
		t.Errorf("metadata name with a slash: %v, want ErrInvalid", err)
	}
	mustPlace(t, tr, "A", name, tree.Created, repo)
	l, err := tr.TryLock(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	w, err := tr.Begin(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	// The names are known at Begin (the --pkglist); the stamps only once Publish returned (publishGen checks them).
	if ps := w.Packages(); len(ps) != 1 || ps[0].Name != name {
		t.Errorf("work packages %+v", ps)
	}
	// The work directory holds the packages createrepo_c must read.
	if b, err := os.ReadFile(filepath.Join(w.Dir(), "Packages", name)); err != nil || string(b) != "A" {
		t.Errorf("work dir package: %q, %v", b, err)
	}
	w.Close()
	l.Release()
	publishGen(t, tr, repo, 0)
	o, err := tr.OpenMetadata(ctx, repo, "repomd.xml")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(o)
	o.Close()
	if !bytes.Equal(b, repomdXML("gen0-primary.xml")) {
		t.Errorf("published repomd.xml %q", b)
	}
	publishGen(t, tr, repo, 1)
	o, err = tr.OpenMetadata(ctx, repo, "gen1-primary.xml")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(o)
	o.Close()
	if string(b) != "generation 1" {
		t.Errorf("data file %q", b)
	}
	// A publish leaves the packages alone.
	if got := read(t, tr, tree.Ref{Repo: repo, Name: name}); got != "A" {
		t.Errorf("package after publish: %q", got)
	}
}

func testPublishAtomic(t *testing.T, tr tree.Tree) {
	const repo = "9/x86_64"
	publishGen(t, tr, repo, 0)
	stop := make(chan struct{})
	var reads, missing atomic.Int32
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				o, err := tr.OpenMetadata(ctx, repo, "repomd.xml")
				if err != nil {
					t.Errorf("repomd.xml missing during a publish: %v", err)
					missing.Add(1)
					return
				}
				b, err := io.ReadAll(o)
				o.Close()
				if err != nil {
					t.Error(err)
					return
				}
				names, err := hrefs(b)
				if err != nil || len(names) == 0 {
					t.Errorf("torn repomd.xml %q: %v", b, err)
					return
				}
				for _, n := range names {
					f, err := tr.OpenMetadata(ctx, repo, n)
					if err != nil {
						t.Errorf("repomd.xml names %s, which is missing: %v", n, err)
						missing.Add(1)
						return
					}
					f.Close()
				}
				reads.Add(1)
			}
		}()
	}
	for gen := 1; gen <= 20; gen++ {
		publishGen(t, tr, repo, gen)
	}
	close(stop)
	wg.Wait()
	if missing.Load() != 0 {
		t.Fatalf("%d reads saw a missing file", missing.Load())
	}
	if reads.Load() == 0 {
		t.Log("no reader loop completed during the publishes")
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// RunShared runs the cases that need two handles on the same storage, as two daemons have: newPair returns two
// trees over one fresh, empty store (fs: two fstree.Tree on one top; s3: two clients on one bucket and prefix).
func RunShared(t *testing.T, newPair func(t *testing.T) (tree.Tree, tree.Tree)) {
	t.Run("LockExclusiveAcrossHandles", func(t *testing.T) {
		a, b := newPair(t)
		l, err := a.TryLock(ctx, "9/x86_64")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.TryLock(ctx, "9/x86_64"); !errors.Is(err, tree.ErrLocked) {
			t.Fatalf("the other handle's TryLock: %v, want ErrLocked", err)
		}
		l.Release()
		l2, err := b.TryLock(ctx, "9/x86_64")
		if err != nil {
			t.Fatalf("TryLock after the other handle released: %v", err)
		}
		l2.Release()
	})
	t.Run("PlacementAcrossHandles", func(t *testing.T) {
		a, b := newPair(t)
		const n = 8
		var created, exists atomic.Int32
		var wg sync.WaitGroup
		for i := range n {
			tr := a
			if i%2 == 1 {
				tr = b
			}
			s, sum := stage(t, tr, fmt.Sprintf("build %d", i))
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := tr.Place(ctx, []tree.Unit{{Staged: s, SHA256: sum, Name: name, Repos: []string{"9/x86_64", "9/aarch64"}}}, tree.PlaceOptions{})
				switch {
				case err == nil && res.Status == tree.Created:
					created.Add(1)
				case errors.Is(err, tree.ErrExists):
					exists.Add(1)
				default:
					t.Errorf("placement %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		if created.Load() != 1 || exists.Load() != n-1 {
			t.Fatalf("%d created, %d refused; want exactly one winner", created.Load(), exists.Load())
		}
		x := read(t, b, tree.Ref{Repo: "9/x86_64", Name: name})
		if y := read(t, a, tree.Ref{Repo: "9/aarch64", Name: name}); x != y {
			t.Errorf("split placement across handles: %q and %q", x, y)
		}
		// What one handle recorded as pending, the other sees.
		if ok, err := b.HasPending(ctx, "9/x86_64"); err != nil || !ok {
			t.Errorf("pending change not visible to the other handle: %v, %v", ok, err)
		}
	})
}
