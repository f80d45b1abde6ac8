package indexer

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBurstGivesOneRun(t *testing.T) {
	h := newHarness(t, testOptions())
	h.start()
	const repo = "/srv/repo/9/x86_64"
	for range 40 {
		h.s.Trigger(repo)
		h.clock.Advance(time.Second)
	}
	// Last change at +39s: due at +69s, the clock is at +40s.
	h.clock.Advance(28 * time.Second)
	if st := h.status(repo); st.Running || st.Runs != 0 {
		t.Fatalf("ran before the quiet period: %+v", st)
	}
	h.clock.Advance(time.Second)
	h.complete(h.expectCall(repo), nil)
	h.clock.Advance(time.Hour)
	if st := h.idle(repo); st.Runs != 1 || st.LastResult != "ok" {
		t.Fatalf("runs=%d result=%q, want 1 ok", st.Runs, st.LastResult)
	}
}

func TestSteadyStreamRunsAtMaxDelay(t *testing.T) {
	h := newHarness(t, testOptions())
	h.start()
	const repo = "/r"
	t0 := h.clock.Now()
	// A change every 10s never leaves 30s of quiet.
	for range 29 {
		h.s.Trigger(repo)
		h.clock.Advance(10 * time.Second)
	}
	h.s.Trigger(repo) // at +290s
	if st := h.status(repo); st.Running || st.NextRun == nil || !st.NextRun.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("before max delay: %+v, want next_run at +5m", st)
	}
	h.clock.Advance(10 * time.Second) // +300s: MaxDelay after the first change
	c := h.expectCall(repo)
	if st := h.status(repo); !st.LastStart.Equal(t0.Add(5 * time.Minute)) {
		t.Fatalf("run started at %v, want %v", st.LastStart, t0.Add(5*time.Minute))
	}
	// The stream continues during the run; the follow-up is again capped.
	h.s.Trigger(repo)
	h.complete(c, nil)
	if st := h.status(repo); st.NextRun == nil || !st.NextRun.Equal(t0.Add(330*time.Second)) {
		t.Fatalf("follow-up due %v, want +330s (quiet period after the change at +300s)", st.NextRun)
	}
}

func TestChangeDuringRunRerunsExactlyOnce(t *testing.T) {
	h := newHarness(t, testOptions())
	h.start()
	const repo = "/r"
	h.s.Trigger(repo)
	h.clock.Advance(30 * time.Second)
	first := h.expectCall(repo)
	for range 5 {
		h.s.Trigger(repo)
		h.clock.Advance(time.Minute)
	}
	// Long past the debounce, but the first run is still going.
	if st := h.status(repo); !st.Running || st.Runs != 0 || st.DirtySince == nil {
		t.Fatalf("during run: %+v", st)
	}
	h.complete(first, nil)
	// The follow-up's debounce already expired: it runs at once.
	h.complete(h.expectCall(repo), nil)
	h.clock.Advance(time.Hour)
	if st := h.idle(repo); st.Runs != 2 {
		t.Fatalf("runs = %d, want 2", st.Runs)
	}
}

func TestChangeDuringRunIsDebounced(t *testing.T) {
	h := newHarness(t, testOptions())
	h.start()
	const repo = "/r"
	h.s.Trigger(repo)
	h.clock.Advance(30 * time.Second)
	first := h.expectCall(repo)
	h.s.Trigger(repo)
	changed := h.clock.Now()
	h.complete(first, nil)
	st := h.status(repo)
	if st.NextRun == nil || !st.NextRun.Equal(changed.Add(30*time.Second)) {
		t.Fatalf("follow-up due %v, want %v", st.NextRun, changed.Add(30*time.Second))
	}
	h.clock.Advance(30 * time.Second)
	h.complete(h.expectCall(repo), nil)
}

func TestParallelismBoundedByWorkers(t *testing.T) {
	opts := testOptions()
	opts.Workers = 2
	h := newHarness(t, opts)
	h.start()
	repos := []string{"/a", "/b", "/c", "/d", "/e"}
	for _, r := range repos {
		h.s.Trigger(r)
	}
	h.clock.Advance(30 * time.Second)
	held := map[string]*call{}
	for range 2 {
		c := h.nextCall()
		held[c.dir] = c
	}
	running, waiting := 0, 0
	for _, st := range h.s.Status() {
		if st.Running {
			running++
		} else if st.NextRun != nil {
			waiting++
		}
	}
	if running != 2 || waiting != 3 {
		t.Fatalf("running=%d waiting=%d, want 2 and 3", running, waiting)
	}
	// Release one at a time; each frees a worker for the next repository.
	for done := 0; done < len(repos); done++ {
		var c *call
		for _, c = range held {
			break
		}
		delete(held, c.dir)
		h.complete(c, nil)
		if done+2 < len(repos) {
			n := h.nextCall()
			held[n.dir] = n
		}
	}
	if p := h.runner.peak(); p != 2 {
		t.Fatalf("peak parallelism %d, want 2", p)
	}
	for _, r := range repos {
		if st := h.idle(r); st.Runs != 1 {
			t.Fatalf("%s runs = %d", r, st.Runs)
		}
	}
}

func TestTimeoutCountsAsFailure(t *testing.T) {
	opts := testOptions()
	opts.Timeout = time.Minute
	h := newHarness(t, opts)
	h.start()
	const repo = "/r"
	h.s.Trigger(repo)
	h.clock.Advance(30 * time.Second)
	c := h.expectCall(repo)
	h.clock.Advance(time.Minute) // the runner ignores release and waits for ctx
	h.waitDone(repo)
	if cause := context.Cause(c.ctx); !errors.Is(cause, errTimeout) {
		t.Fatalf("runner ctx cause = %v, want errTimeout", cause)
	}
	st := h.status(repo)
	if st.LastResult != "error" || st.Failures != 1 || !strings.Contains(st.LastError, "run timed out after 1m0s") {
		t.Fatalf("status after timeout: %+v", st)
	}
	if st.DirtySince == nil || st.NextRun == nil || !st.NextRun.Equal(st.LastEnd.Add(time.Second)) {
		t.Fatalf("want dirty and retried after 1s: %+v", st)
	}
}

func TestRetryBackoffDoublesAndResets(t *testing.T) {
	h := newHarness(t, testOptions())
	h.start()
	const repo = "/r"
	h.s.Trigger(repo)
	h.clock.Advance(30 * time.Second)
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300}
	for i, w := range want {
		w *= time.Second
		h.complete(h.expectCall(repo), errBoom)
		st := h.status(repo)
		if st.Failures != i+1 || st.NextRun == nil || st.NextRun.Sub(*st.LastEnd) != w {
			t.Fatalf("failure %d: failures=%d next_run-last_end=%v, want %v", i+1, st.Failures, st.NextRun.Sub(*st.LastEnd), w)
		}
		if w > 30*time.Second {
			// A new change neither shortens a long backoff nor extends it
			// (its quiet period ends earlier).
			h.s.Trigger(repo)
			if again := h.status(repo); !again.NextRun.Equal(*st.NextRun) {
				t.Fatalf("trigger moved the retry from %v to %v", st.NextRun, again.NextRun)
			}
		}
		h.clock.Advance(w - time.Millisecond)
		if st := h.status(repo); st.Running || st.Runs != i+1 {
			t.Fatalf("retried before the backoff: %+v", st)
		}
		h.clock.Advance(time.Millisecond)
	}
	h.complete(h.expectCall(repo), nil)
	if st := h.idle(repo); st.Failures != 0 || st.LastError != "" {
		t.Fatalf("after success: %+v", st)
	}
	// The backoff starts over.
	h.s.Trigger(repo)
	h.clock.Advance(30 * time.Second)
	h.complete(h.expectCall(repo), errBoom)
	if st := h.status(repo); st.NextRun.Sub(*st.LastEnd) != time.Second {
		t.Fatalf("backoff after reset = %v, want 1s", st.NextRun.Sub(*st.LastEnd))
	}
}

func TestShutdownFlushesPendingNow(t *testing.T) {
	opts := testOptions()
	opts.Workers = 1
	h := newHarness(t, opts)
	h.start()
	// /failed is in a 1s backoff, /a and /b are waiting for their debounce.
	h.s.Trigger("/failed")
	h.clock.Advance(30 * time.Second)
	h.complete(h.expectCall("/failed"), errBoom)
	h.s.Trigger("/a")
	h.s.Trigger("/b")
	if h.clock.Pending() != 3 {
		t.Fatalf("pending timers = %d, want 3", h.clock.Pending())
	}
	h.cancel()
	h.waitFlush()
	// No time passes: the flush ignores debounce and backoff.
	seen := map[string]bool{}
	for range 3 {
		c := h.nextCall()
		seen[c.dir] = true
		h.complete(c, nil)
	}
	if !seen["/a"] || !seen["/b"] || !seen["/failed"] {
		t.Fatalf("flushed %v", seen)
	}
	if err := h.waitResult(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := h.clock.Pending(); n != 0 {
		t.Fatalf("%d timers left armed", n)
	}
	if p := h.runner.peak(); p != 1 {
		t.Fatalf("flush parallelism %d, want 1 (workers)", p)
	}
}

func TestShutdownTimeoutCancelsInFlightRuns(t *testing.T) {
	h := newHarness(t, testOptions())
	h.start()
	h.s.Trigger("/slow")
	h.clock.Advance(30 * time.Second)
	c := h.expectCall("/slow")
	h.cancel()
	h.waitFlush()
	h.clock.Advance(time.Minute) // ShutdownTimeout
	err := h.waitResult()
	if err == nil || !strings.Contains(err.Error(), "/slow") {
		t.Fatalf("Run = %v, want an error naming /slow", err)
	}
	if c.ctx.Err() == nil {
		t.Fatal("in-flight run not cancelled")
	}
	if st := h.status("/slow"); st.LastResult != "error" || !strings.Contains(st.LastError, errShutdown.Error()) || st.DirtySince == nil {
		t.Fatalf("status: %+v", st)
	}
}

func TestTriggerDuringAndAfterShutdown(t *testing.T) {
	opts := testOptions()
	opts.Workers = 1
	h := newHarness(t, opts)
	h.start()
	h.s.Trigger("/a")
	h.clock.Advance(30 * time.Second)
	a := h.expectCall("/a")
	h.cancel()
	h.waitFlush()
	// Accepted into the flush while it is still going.
	h.s.Trigger("/late")
	h.s.Trigger("/a")
	h.complete(a, nil)
	seen := map[string]bool{}
	for range 2 {
		c := h.nextCall()
		seen[c.dir] = true
		h.complete(c, nil)
	}
	if !seen["/a"] || !seen["/late"] {
		t.Fatalf("flush ran %v, want /a again and /late", seen)
	}
	if err := h.waitResult(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// After Run returned: recorded, never blocks, arms nothing.
	h.s.Trigger("/after")
	if st := h.status("/after"); st.DirtySince == nil || st.NextRun != nil {
		t.Fatalf("after stop: %+v", st)
	}
	if n := h.clock.Pending(); n != 0 {
		t.Fatalf("%d timers armed after stop", n)
	}
}

func TestRunTwice(t *testing.T) {
	h := newHarness(t, testOptions())
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // nothing to flush: the first Run returns at once
	if err := h.s.Run(ctx); err != nil {
		t.Fatalf("first Run: %v", err)
	}
	if err := h.s.Run(ctx); err == nil {
		t.Fatal("second Run returned nil")
	}
}

func TestTriggerBeforeRunIsQueued(t *testing.T) {
	h := newHarness(t, testOptions())
	h.s.Trigger("/early")
	h.clock.Advance(time.Minute) // due and queued, no workers yet
	if st := h.status("/early"); st.NextRun == nil || st.Running {
		t.Fatalf("before Run: %+v", st)
	}
	h.start()
	h.complete(h.expectCall("/early"), nil)
}

func TestStatusAndExpectedAt(t *testing.T) {
	h := newHarness(t, testOptions())
	h.start()
	repo := filepath.Join(t.TempDir(), "9", "x86_64")
	if err := os.MkdirAll(filepath.Join(repo, "Packages"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a-1-1.x86_64.rpm", "b-1-1.noarch.rpm", ".hidden-1-1.noarch.rpm", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(repo, "Packages", n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t0 := h.clock.Now()
	if got := h.s.ExpectedAt("/unknown"); !got.Equal(t0) {
		t.Fatalf("ExpectedAt(unknown) = %v, want now", got)
	}
	h.s.Trigger(repo + "/") // paths are cleaned
	h.clock.Advance(10 * time.Second)
	h.s.Trigger(repo)
	if got := h.s.ExpectedAt(repo); !got.Equal(t0.Add(40 * time.Second)) {
		t.Fatalf("ExpectedAt = %v, want +40s", got)
	}
	st := h.status(repo)
	if !st.DirtySince.Equal(t0) || !st.NextRun.Equal(t0.Add(40*time.Second)) || st.LastResult != "" || st.Runs != 0 {
		t.Fatalf("pending status: %+v", st)
	}
	h.clock.Advance(30 * time.Second)
	c := h.expectCall(repo)
	if got := h.s.ExpectedAt(repo); !got.Equal(h.clock.Now()) {
		t.Fatalf("ExpectedAt while running = %v, want now", got)
	}
	h.clock.Advance(1200 * time.Millisecond) // the run "takes" 1.2s
	h.s.Trigger(repo)
	if got, want := h.s.ExpectedAt(repo), h.clock.Now().Add(30*time.Second); !got.Equal(want) {
		t.Fatalf("ExpectedAt for a change during the run = %v, want %v", got, want)
	}
	h.complete(c, nil)
	st = h.status(repo)
	if st.LastDuration != "1.2s" || st.Packages != 3 || st.LastResult != "ok" || st.Runs != 1 ||
		!st.LastStart.Equal(t0.Add(40*time.Second)) || st.LastEnd.Sub(*st.LastStart) != 1200*time.Millisecond {
		t.Fatalf("after run: %+v", st)
	}
	b, err := json.Marshal(h.s.Status())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"path":`, `"dirty_since":`, `"next_run":`, `"running":false`, `"last_start":`,
		`"last_end":`, `"last_duration":"1.2s"`, `"last_result":"ok"`, `"failures":0`, `"packages":3`, `"runs":1`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("status JSON %s lacks %s", b, key)
		}
	}
	if strings.Contains(string(b), `"last_error"`) {
		t.Errorf("status JSON %s has an empty last_error", b)
	}
}

func TestStatusSortedByDir(t *testing.T) {
	h := newHarness(t, testOptions())
	for _, d := range []string{"/c", "/a", "/b"} {
		h.s.Trigger(d)
	}
	var got []string
	for _, st := range h.s.Status() {
		got = append(got, st.Dir)
	}
	if strings.Join(got, ",") != "/a,/b,/c" {
		t.Fatalf("order %v", got)
	}
}

func TestBackoffFor(t *testing.T) {
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {9, 256 * time.Second},
		{10, 5 * time.Minute}, {1000, 5 * time.Minute},
	}
	for _, tc := range tests {
		if got := backoffFor(tc.failures); got != tc.want {
			t.Errorf("backoffFor(%d) = %v, want %v", tc.failures, got, tc.want)
		}
	}
}
