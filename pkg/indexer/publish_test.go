package indexer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// expectPublished waits for the next OnPublish event.
func expectPublished(t *testing.T, pubs chan Published) Published {
	t.Helper()
	select {
	case p := <-pubs:
		return p
	case <-time.After(waitLimit):
		t.Fatal("no OnPublish event")
		return Published{}
	}
}

func TestOnPublishReportsSetAndChanges(t *testing.T) {
	repo := t.TempDir()
	a := writePkg(t, repo, "a-1-1.x86_64.rpm", 10, t0)
	writePkg(t, repo, "b-1-1.x86_64.rpm", 20, t0)
	// The metadata on disk, from before this process, lists a only.
	writeRepodata(t, repo, "", gz(t, primaryXML(pkgSet{"Packages/a-1-1.x86_64.rpm": a})))

	pubs := make(chan Published, 10) // more than the runs below; OnPublish must not block
	opts := testOptions()
	opts.OnPublish = func(p Published) { pubs <- p }
	h := newHarness(t, opts)
	h.start()

	h.s.Trigger(repo)
	h.clock.Advance(opts.QuietPeriod)
	c := h.expectCall(repo)
	// Linked after the run started: createrepo_c may or may not see it, so
	// it is not in this run's set; its own Trigger earns the next run.
	writePkg(t, repo, "c-1-1.x86_64.rpm", 30, t0)
	h.complete(c, nil)
	p := expectPublished(t, pubs)
	if p.Dir != repo || !p.At.Equal(h.clock.Now()) {
		t.Fatalf("event %+v, want Dir %s At %v", p, repo, h.clock.Now())
	}
	if want := []string{"Packages/a-1-1.x86_64.rpm", "Packages/b-1-1.x86_64.rpm"}; !slices.Equal(p.Packages, want) {
		t.Fatalf("Packages = %v, want %v", p.Packages, want)
	}
	if !slices.Equal(p.Added, []string{"Packages/b-1-1.x86_64.rpm"}) || len(p.Removed) != 0 {
		t.Fatalf("Added %v Removed %v, want only b added (a was already published)", p.Added, p.Removed)
	}
	if !h.s.listed(repo, "Packages/b-1-1.x86_64.rpm") || h.s.listed(repo, "Packages/c-1-1.x86_64.rpm") {
		t.Fatal("Visible disagrees with the published set")
	}

	if err := os.Remove(filepath.Join(repo, "Packages", "a-1-1.x86_64.rpm")); err != nil {
		t.Fatal(err)
	}
	h.s.Trigger(repo)
	h.clock.Advance(opts.QuietPeriod)
	h.complete(h.expectCall(repo), nil)
	p = expectPublished(t, pubs)
	if want := []string{"Packages/b-1-1.x86_64.rpm", "Packages/c-1-1.x86_64.rpm"}; !slices.Equal(p.Packages, want) {
		t.Fatalf("Packages = %v, want %v", p.Packages, want)
	}
	if !slices.Equal(p.Added, []string{"Packages/c-1-1.x86_64.rpm"}) || !slices.Equal(p.Removed, []string{"Packages/a-1-1.x86_64.rpm"}) {
		t.Fatalf("Added %v Removed %v, want c added and a removed", p.Added, p.Removed)
	}

	// A failed run publishes nothing and changes no visibility.
	writePkg(t, repo, "d-1-1.x86_64.rpm", 40, t0)
	h.s.Trigger(repo)
	h.clock.Advance(opts.QuietPeriod)
	h.complete(h.expectCall(repo), errBoom)
	if len(pubs) != 0 || h.s.listed(repo, "Packages/d-1-1.x86_64.rpm") {
		t.Fatalf("a failed run published: %d events, d visible %v", len(pubs), h.s.listed(repo, "Packages/d-1-1.x86_64.rpm"))
	}
}

func TestPublishNowSkipsQuietPeriod(t *testing.T) {
	h := newHarness(t, testOptions())
	h.start()
	const dir = "/r/now"
	h.s.PublishNow(dir)
	h.complete(h.expectCall(dir), nil) // no Advance: due at once
	h.idle(dir)
	if n := h.clock.Pending(); n != 0 {
		t.Fatalf("%d timers armed for an urgent change", n)
	}

	// A Trigger waiting for its quiet period is pulled forward.
	h.s.Trigger(dir)
	h.clock.Advance(time.Second)
	h.s.PublishNow(dir)
	h.complete(h.expectCall(dir), nil)
	h.idle(dir)
	if n := h.clock.Pending(); n != 0 {
		t.Fatalf("the quiet-period timer is still armed (%d timers)", n)
	}
}

func TestPublishNowDuringRunCoalescesIntoOneMore(t *testing.T) {
	h := newHarness(t, testOptions())
	h.start()
	const dir = "/r/busy"
	h.s.Trigger(dir)
	h.clock.Advance(30 * time.Second)
	c := h.expectCall(dir)
	// A burst during the run, the last upload with publish=now.
	for range 3 {
		h.s.Trigger(dir)
		h.s.PublishNow(dir)
	}
	h.s.Trigger(dir)
	h.complete(c, nil)
	// Exactly one more, right after the first, without waiting for the
	// quiet period; the fakeRunner's overlap check proves it never ran
	// beside the first.
	h.complete(h.expectCall(dir), nil)
	h.idle(dir)
	if st := h.status(dir); st.Runs != 2 {
		t.Fatalf("runs = %d, want 2", st.Runs)
	}
}

func TestPublishNowKeepsFailureBackoff(t *testing.T) {
	h := newHarness(t, testOptions())
	h.start()
	const dir = "/r/failing"
	h.s.PublishNow(dir)
	h.complete(h.expectCall(dir), errBoom)
	failedAt := h.clock.Now()
	h.s.PublishNow(dir)
	st := h.status(dir)
	if st.NextRun == nil || !st.NextRun.Equal(failedAt.Add(minBackoff)) {
		t.Fatalf("next run %v, want the backoff's end %v", st.NextRun, failedAt.Add(minBackoff))
	}
	h.clock.Advance(minBackoff)
	h.complete(h.expectCall(dir), nil)
	h.idle(dir)
}

func TestPublishNowBeforeRun(t *testing.T) {
	h := newHarness(t, testOptions())
	const dir = "/r/early"
	h.s.PublishNow(dir)
	h.start()
	h.complete(h.expectCall(dir), nil)
	h.idle(dir)
}

func TestWaitVisible(t *testing.T) {
	repo := t.TempDir()
	writePkg(t, repo, "a-1-1.x86_64.rpm", 10, t0)
	h := newHarness(t, testOptions())
	h.start()
	hrefA, hrefB := "Packages/a-1-1.x86_64.rpm", "Packages/b-1-1.x86_64.rpm"

	if err := h.s.waitListed(t.Context(), repo, nil); err != nil {
		t.Fatalf("WaitVisible for nothing = %v", err)
	}
	// Not published yet (no repodata): a waiter gives up with its ctx.
	errGiveUp := errors.New("client went away")
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(errGiveUp)
	if err := h.s.waitListed(ctx, repo, []string{hrefA}); !errors.Is(err, errGiveUp) {
		t.Fatalf("WaitVisible with a cancelled ctx = %v, want %v", err, errGiveUp)
	}
	tctx, tcancel := context.WithTimeout(t.Context(), time.Millisecond)
	defer tcancel()
	if err := h.s.waitListed(tctx, repo, []string{hrefA}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitVisible past its deadline = %v, want DeadlineExceeded", err)
	}

	waitA, waitAB := make(chan error, 1), make(chan error, 1)
	go func() { waitA <- h.s.waitListed(t.Context(), repo, []string{hrefA}) }()
	go func() { waitAB <- h.s.waitListed(t.Context(), repo, []string{hrefA, hrefB}) }()

	h.s.PublishNow(repo)
	c := h.expectCall(repo)
	writePkg(t, repo, "b-1-1.x86_64.rpm", 10, t0) // after the run's listing
	h.s.PublishNow(repo)
	h.complete(c, nil)
	select {
	case err := <-waitA:
		if err != nil {
			t.Fatalf("WaitVisible(a) = %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("WaitVisible(a) not woken by the publish")
	}
	if !h.s.listed(repo, hrefA) || h.s.listed(repo, hrefB) {
		t.Fatal("after the first run only a must be visible")
	}
	select {
	case err := <-waitAB:
		t.Fatalf("WaitVisible(a, b) returned %v before b was published", err)
	default:
	}
	h.complete(h.expectCall(repo), nil)
	select {
	case err := <-waitAB:
		if err != nil {
			t.Fatalf("WaitVisible(a, b) = %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("WaitVisible(a, b) not woken by the second publish")
	}
}

func TestVisibleReadsExistingMetadata(t *testing.T) {
	repo := t.TempDir()
	a := writePkg(t, repo, "a-1-1.x86_64.rpm", 10, t0)
	writeRepodata(t, repo, "", gz(t, primaryXML(pkgSet{"Packages/a-1-1.x86_64.rpm": a})))
	h := newHarness(t, testOptions())
	// No run in this process, not even Run: the set comes from repodata/.
	if !h.s.listed(repo, "Packages/a-1-1.x86_64.rpm") {
		t.Fatal("a package listed by the existing metadata is not visible")
	}
	if err := h.s.waitListed(t.Context(), repo, []string{"Packages/a-1-1.x86_64.rpm"}); err != nil {
		t.Fatal(err)
	}
	if h.s.listed(repo, "Packages/b-1-1.x86_64.rpm") || h.s.listed(t.TempDir(), "Packages/a-1-1.x86_64.rpm") {
		t.Fatal("visible without being listed")
	}

	// Unreadable metadata (xz, which createrepo_c writes only when told)
	// counts as nothing published.
	bad := t.TempDir()
	writePkg(t, bad, "a-1-1.x86_64.rpm", 10, t0)
	writeRepodata(t, bad, "p-primary.xml.xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0, 0})
	if h.s.listed(bad, "Packages/a-1-1.x86_64.rpm") {
		t.Fatal("visible from metadata that cannot be read")
	}
}
