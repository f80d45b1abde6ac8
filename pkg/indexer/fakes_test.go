package indexer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// waitLimit is a safety net so a broken scheduler fails a test instead of
// hanging it; it is never used to assert how long anything takes.
const waitLimit = 20 * time.Second

// fakeClock is a manual Clock: time moves only in Advance, which runs due
// timer callbacks synchronously, in deadline order, on the caller's goroutine.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers []*fakeTimer
}

type fakeTimer struct {
	c   *fakeClock
	at  time.Time
	seq int
	f   func()
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{c: c, at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// Advance moves time forward by d, firing every timer that falls due, each
// at its own deadline (so a callback that arms a new timer sees the right
// Now, and that timer fires too if it falls within d).
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		sort.Slice(c.timers, func(i, j int) bool {
			if !c.timers[i].at.Equal(c.timers[j].at) {
				return c.timers[i].at.Before(c.timers[j].at)
			}
			return c.timers[i].seq < c.timers[j].seq
		})
		if len(c.timers) == 0 || c.timers[0].at.After(target) {
			c.now = target
			c.mu.Unlock()
			return
		}
		t := c.timers[0]
		c.timers = c.timers[1:]
		if t.at.After(c.now) {
			c.now = t.at
		}
		c.mu.Unlock()
		t.f()
	}
}

// Pending is the number of armed timers.
func (c *fakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// call is one Runner.Run in flight, held until the test releases it.
type call struct {
	dir     string
	ctx     context.Context
	release chan error
}

// finish makes the run return err (or ctx's error if it was cancelled first).
func (c *call) finish(err error) { c.release <- err }

// fakeRunner records runs. Each Run hands a *call to the test over calls
// (unbuffered: the test decides when each run starts being observed) and then
// blocks until the test finishes it or its ctx is done. It detects overlapping
// runs of one directory and tracks peak parallelism.
type fakeRunner struct {
	calls chan *call
	auto  atomic.Bool // cleanup mode: return nil at once

	mu       sync.Mutex
	inflight map[string]bool
	overlaps []string
	cur, max int
}

func newFakeRunner() *fakeRunner {
	return &fakeRunner{calls: make(chan *call), inflight: map[string]bool{}}
}

func (r *fakeRunner) Run(ctx context.Context, dir string) error {
	r.mu.Lock()
	if r.inflight[dir] {
		r.overlaps = append(r.overlaps, dir)
	}
	r.inflight[dir] = true
	r.cur++
	r.max = max(r.max, r.cur)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.inflight, dir)
		r.cur--
		r.mu.Unlock()
	}()
	if r.auto.Load() {
		return nil
	}
	c := &call{dir: dir, ctx: ctx, release: make(chan error, 1)}
	r.calls <- c
	select {
	case err := <-c.release:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *fakeRunner) peak() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.max
}

// harness runs a Scheduler over a fakeClock and a fakeRunner.
type harness struct {
	t      *testing.T
	clock  *fakeClock
	runner *fakeRunner
	s      *Scheduler
	done   chan string // runDone notifications
	flush  chan struct{}
	cancel context.CancelFunc
	result chan error // Run's return value
}

// testOptions are the defaults for scheduler tests: a run timeout far beyond
// any Advance so that only the timeout test trips it.
func testOptions() Options {
	return Options{QuietPeriod: 30 * time.Second, MaxDelay: 5 * time.Minute, Timeout: 24 * time.Hour,
		ShutdownTimeout: time.Minute, Workers: 2}
}

// newHarness builds the Scheduler; start runs it.
func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	h := &harness{
		t:      t,
		clock:  newFakeClock(),
		runner: newFakeRunner(),
		// Buffered beyond any test's number of runs so the hook never
		// blocks a worker; a test reads exactly the notifications it needs.
		done:   make(chan string, 1000),
		flush:  make(chan struct{}, 1),
		result: make(chan error, 1),
	}
	opts.Clock = h.clock
	h.s = NewScheduler(h.runner, opts, zaptest.NewLogger(t))
	h.s.runDone = func(dir string) { h.done <- dir }
	h.s.flushStarted = func() { h.flush <- struct{}{} }
	t.Cleanup(h.cleanup)
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.result <- h.s.Run(ctx) }()
}

// cleanup stops the scheduler whatever state the test left it in, and
// checks the invariant every test shares: no overlapping runs per repo.
func (h *harness) cleanup() {
	h.runner.auto.Store(true)
	stop := make(chan struct{})
	go func() { // release anything still handed over
		for {
			select {
			case c := <-h.runner.calls:
				c.finish(nil)
			case <-stop:
				return
			}
		}
	}()
	if h.cancel != nil {
		h.cancel()
		select {
		case <-h.result:
		case <-time.After(waitLimit):
			h.t.Error("Run did not return at cleanup")
		}
	}
	close(stop)
	h.runner.mu.Lock()
	defer h.runner.mu.Unlock()
	if len(h.runner.overlaps) > 0 {
		h.t.Errorf("overlapping runs for %v", h.runner.overlaps)
	}
}

// expectCall waits for the next Runner.Run and checks its directory.
func (h *harness) expectCall(dir string) *call {
	h.t.Helper()
	select {
	case c := <-h.runner.calls:
		if c.dir != dir {
			h.t.Fatalf("run of %q, want %q", c.dir, dir)
		}
		return c
	case <-time.After(waitLimit):
		h.t.Fatalf("no run of %q started", dir)
		return nil
	}
}

// nextCall waits for the next Runner.Run, whatever its directory.
func (h *harness) nextCall() *call {
	h.t.Helper()
	select {
	case c := <-h.runner.calls:
		return c
	case <-time.After(waitLimit):
		h.t.Fatal("no run started")
		return nil
	}
}

// complete finishes c with err and waits until the scheduler has recorded it.
func (h *harness) complete(c *call, err error) {
	h.t.Helper()
	c.finish(err)
	h.waitDone(c.dir)
}

func (h *harness) waitDone(dir string) {
	h.t.Helper()
	select {
	case d := <-h.done:
		if d != dir {
			h.t.Fatalf("run of %q completed, want %q", d, dir)
		}
	case <-time.After(waitLimit):
		h.t.Fatalf("run of %q did not complete", dir)
	}
}

// waitResult waits for Run to return (after the test cancelled it and served
// the flush's runs) and returns its error.
func (h *harness) waitResult() error {
	h.t.Helper()
	select {
	case err := <-h.result:
		h.cancel = nil // already returned; cleanup must not wait again
		return err
	case <-time.After(waitLimit):
		h.t.Fatal("Run did not return")
		return nil
	}
}

func (h *harness) waitFlush() {
	h.t.Helper()
	select {
	case <-h.flush:
	case <-time.After(waitLimit):
		h.t.Fatal("flush did not start")
	}
}

// status returns dir's RepoStatus.
func (h *harness) status(dir string) RepoStatus {
	h.t.Helper()
	for _, st := range h.s.Status() {
		if st.Dir == dir {
			return st
		}
	}
	h.t.Fatalf("no status for %q", dir)
	return RepoStatus{}
}

// idle asserts nothing is pending or running for dir.
func (h *harness) idle(dir string) RepoStatus {
	h.t.Helper()
	st := h.status(dir)
	if st.Running || st.NextRun != nil || st.DirtySince != nil {
		h.t.Fatalf("%s not idle: running=%v next_run=%v dirty_since=%v", dir, st.Running, st.NextRun, st.DirtySince)
	}
	return st
}

var errBoom = errors.New("boom")

// repomd is the part of repodata/repomd.xml the tests read.
type repomd struct {
	Data []struct {
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
	} `xml:"data"`
}

// hasMarker reports whether repoDir has a dirty or indexing marker.
func hasMarker(repoDir string) bool {
	for _, m := range []string{DirtyMarker, IndexingMarker} {
		if _, err := os.Lstat(filepath.Join(repoDir, m)); err == nil {
			return true
		}
	}
	return false
}

// testCreaterepo is NewCreaterepo(argv) whose own fs trees (made when Tree is nil, one per top directory, each
// holding its lock files open) are closed when the test ends: the daemon sets Tree and never makes them, but
// without this every test leaked ~70 descriptors per tree, and a repeated run (-count) hit EMFILE.
func testCreaterepo(tb testing.TB, argv []string) *Createrepo {
	c := NewCreaterepo(argv)
	tb.Cleanup(func() {
		c.ownMu.Lock()
		defer c.ownMu.Unlock()
		for _, t := range c.ownTrees {
			t.Close()
		}
		c.ownTrees = nil
	})
	return c
}
