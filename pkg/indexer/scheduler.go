// Package indexer owns the regeneration of repository metadata: it decides
// when createrepo_c runs for each repository directory (debounced, one run at
// a time per repository, a bounded number in parallel, retried with backoff)
// and how a run is executed safely (advisory lock, stale lock-dir cleanup,
// durable dirty markers, SIGTERM on timeout).
//
// A "repository directory" is the directory that contains Packages/;
// createrepo_c writes repodata/ next to it.
//
// The Scheduler also knows what each repository has published (the
// "published set": the Packages/ listing taken when its last successful run
// started, or read from repodata/ for a repository this process has not
// indexed yet). That answers Visible and WaitVisible, feeds OnPublish
// events and the metrics, and lets Rescan notice changes made by hand.
package indexer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// Defaults applied by NewScheduler to zero or negative Options fields. They
// match the documented daemon configuration.
const (
	DefaultQuietPeriod     = 30 * time.Second
	DefaultMaxDelay        = 5 * time.Minute
	DefaultTimeout         = 10 * time.Minute
	DefaultShutdownTimeout = 60 * time.Second
	DefaultWorkers         = 2
)

// Retry backoff after a failed run: the first retry waits minBackoff, each
// further consecutive failure doubles it up to maxBackoff. A success resets it.
const (
	minBackoff = time.Second
	maxBackoff = 5 * time.Minute
)

var (
	// errTimeout is the cancellation cause of a run that exceeded
	// Options.Timeout; it is wrapped into the run's error.
	errTimeout = errors.New("run timed out")
	// errShutdown is the cancellation cause of runs still in flight when the
	// shutdown bound expires.
	errShutdown = errors.New("shutdown timeout reached")
)

// Runner indexes one repository directory. Implementations must be safe for
// concurrent use on DIFFERENT directories; the Scheduler never calls Run
// concurrently for the same directory. Run must return soon after ctx is
// done (the Scheduler cancels it on timeout and at the end of the shutdown
// bound).
type Runner interface {
	Run(ctx context.Context, repoDir string) error
}

// listingRunner is a Runner that also returns what a successful run indexed, as listPackages lists it (Createrepo
// does: the listing it hands createrepo_c as --pkglist), so that a run lists Packages/ once instead of twice.
type listingRunner interface {
	RunListing(ctx context.Context, repoDir string) (pkgSet, error)
}

// Options tunes a Scheduler. Zero or negative fields get the Default*
// values; a nil Clock means the real clock.
type Options struct {
	// QuietPeriod: a repository is indexed once it has seen no change for
	// this long...
	QuietPeriod time.Duration
	// MaxDelay: ...but never later than this after its first unindexed change,
	// so a steady stream of uploads still publishes.
	MaxDelay time.Duration
	// Timeout bounds one run; the Runner's ctx is cancelled after it.
	Timeout time.Duration
	// ShutdownTimeout bounds the final flush after Run's ctx is cancelled.
	ShutdownTimeout time.Duration
	// Workers is the number of repositories indexed in parallel.
	Workers int
	// Clock is the time source (tests inject a fake one).
	Clock Clock

	// TopDir is the tree Rescan walks, and the base of the "repo" label of
	// the metrics (a repository's path relative to it, like "9/x86_64").
	// Empty: Rescan is an error and labels are the full directory paths.
	TopDir string
	// Tree is the repository tree TopDir is the top of: Recover, Rescan and the start-up registration list its
	// repositories and pending changes (tree.Repos, tree.HasPending, tree.List), and Visible, WaitVisible and the
	// published sets read its published metadata (tree.OpenMetadata), so they work on every backend. The
	// Scheduler's keys stay repository directories, TopDir joined with the repository's path. Nil: the fs tree
	// on TopDir, made for each Recover and Rescan, and metadata read from <dir>/repodata.
	Tree tree.Tree
	// RefreshPublished, when positive, makes Visible and WaitVisible notice publishes by other processes
	// (several daemons on one shared Tree): a repository's published set and checksums are trusted for this
	// long, then repomd.xml's stamp is read again (one tree.OpenMetadata) and, when it changed, they are read
	// afresh and waiters are woken. Zero (one daemon owns the tree, fs): only this process's own runs change
	// them.
	RefreshPublished time.Duration
	// RescanInterval: every interval, Run calls Rescan, so packages copied
	// into or deleted from a Packages/ directory by hand, and repository
	// directories created by hand, are indexed within it. Zero (the
	// default) or negative turns periodic rescans off; they also need TopDir.
	RescanInterval time.Duration
	// OnPublish, if set, is called after each successful run (metadata
	// swap) with the repository's new published set and what changed
	// against the previous one. It is called from the worker goroutine that
	// ran the index, before that worker takes its next run, so it must not
	// block: hand the event off (a buffered channel with a drop policy, or a
	// goroutine owned by the receiver). The Published value and its slices
	// belong to the callee. In the rare case that neither the listing nor
	// the new metadata can be read after a successful run, the event is
	// skipped (with a warning) rather than sent with a wrong set.
	OnPublish func(Published)
	// Registerer receives the indexer's metrics (see metrics.go); nil
	// means no metrics.
	Registerer prometheus.Registerer
}

// Published describes one successful publish of a repository's metadata.
type Published struct {
	// Dir is the repository directory, as passed to Trigger (cleaned).
	Dir string
	// At is when the run ended (the swap just happened).
	At time.Time
	// Took is the run's duration.
	Took time.Duration
	// Packages lists the hrefs ("Packages/x.rpm", relative to Dir) the new
	// metadata lists, sorted: the *.rpm files in Dir/Packages when the run
	// started (createrepo_c scans after that).
	Packages []string
	// Added and Removed are Packages' differences against the previous
	// published set (read from the old repodata/ if this process had not
	// published Dir before), sorted. A file replaced under the same name is
	// in neither.
	Added, Removed []string
}

func (o Options) withDefaults() Options {
	if o.QuietPeriod <= 0 {
		o.QuietPeriod = DefaultQuietPeriod
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	return o
}

// phase is the Scheduler's lifecycle stage; it only moves forward.
type phase int

const (
	phaseIdle     phase = iota // Run not called yet: timers work, the queue waits for workers
	phaseRunning               // normal operation
	phaseFlushing              // Run's ctx is done: every dirty repository is queued at once
	phaseStopped               // shutdown bound hit or Run returned: nothing new starts
)

// repoState is the per-repository state, guarded by Scheduler.mu. It follows
// client-go's workqueue: "dirty" means unindexed changes exist, "running"
// means a run is in flight; a change while running only sets dirty, and the
// run's completion schedules the single follow-up run.
type repoState struct {
	dir string
	log *zap.Logger

	dirty      bool      // unindexed changes that no run has claimed yet
	dirtySince time.Time // first of those changes (for MaxDelay)
	lastChange time.Time // latest of those changes (for QuietPeriod)
	running    bool
	queued     bool      // waiting in Scheduler.queue for a worker
	nextRun    time.Time // when the pending timer fires or fired; zero if none
	timer      Timer
	timerGen   uint64    // bumped on every (re)arm or cancel, so stale timer callbacks are ignored
	retryAt    time.Time // backoff: no run before this after a failure

	// Reported through Status.
	lastStart, lastEnd time.Time
	lastDuration       time.Duration
	lastResult         string
	lastError          string
	failures           int
	packages           int
	runs               int

	// urgent: PublishNow asked for the pending changes to skip the quiet
	// period and MaxDelay (not a failure backoff).
	urgent bool
	// pending counts the Trigger/PublishNow calls not yet claimed by a run;
	// claimedPending and claimedSince are what the run in flight claimed,
	// so the metrics still count them as unpublished until it succeeds.
	pending        int
	claimedPending int
	claimedSince   time.Time
	// lastSuccess is when metadata was last published: the end of our last
	// successful run, or the mtime of repomd.xml when it was read from disk.
	lastSuccess time.Time

	// published is the set the current metadata lists; nil until loaded
	// (lazily, from repodata/, by ensurePublished) or set by a run.
	// Replaced whole, never modified, so a copy of the map may be read
	// without the mutex.
	published pkgSet
	// loading is non-nil while one goroutine reads published from disk;
	// others wait for it to be closed instead of parsing the same file.
	loading chan struct{}
	// pubCh is closed (and replaced) at every publish, to wake WaitVisible.
	pubCh chan struct{}
	// gen counts publishes; sums belongs to generation gen.
	gen uint64
	// sums are the published SHA-256 checksums; nil until read (lazily,
	// by ensureSums, once per generation that someone asks about).
	sums pkgSums
	// sumsLoading is non-nil while one goroutine reads sums.
	sumsLoading chan struct{}
	// With Options.RefreshPublished: when repomd.xml's stamp was last read, the stamp then (zero: not known
	// for the current published set, as after this process's own publish), and, while one goroutine reads
	// it, a channel closed when that read is done (the others wait for it).
	checkedAt  time.Time
	mdStamp    tree.Stamp
	refreshing chan struct{}
	// label is the metrics' repo label.
	label string
}

// Scheduler debounces and serializes index runs per repository directory.
// Its methods are safe for concurrent use. Run owns every goroutine the
// Scheduler starts (timer callbacks only take the mutex and never block).
type Scheduler struct {
	runner Runner
	opts   Options
	clock  Clock
	log    *zap.Logger

	mu    sync.Mutex
	cond  *sync.Cond // signalled when queue grows or the phase changes; uses mu
	phase phase
	repos map[string]*repoState
	// queue holds repositories due for a run, FIFO; each appears at most once
	// (repoState.queued), so its length is bounded by the number of repositories.
	queue []*repoState

	metrics *metrics // nil without Options.Registerer

	// Test seams (STYLE rule 2: struct fields, not globals). runDone is
	// called after a run's outcome is recorded; flushStarted after the
	// shutdown flush has queued everything and armed its timer;
	// rescanArmed when the periodic rescan's timer is armed, rescanDone
	// after each periodic rescan.
	runDone      func(dir string)
	flushStarted func()
	rescanArmed  func()
	rescanDone   func(n int, err error)
}

// NewScheduler returns a Scheduler that indexes repositories with r. Nothing
// runs until Run is called, but Trigger and Recover may be called before
// that: their runs are queued for Run's workers. log must not be nil. If
// Options.Registerer refuses the metrics (a second Scheduler on the same
// registry, a programming error), that is logged and the Scheduler works
// without them.
func NewScheduler(r Runner, opts Options, log *zap.Logger) *Scheduler {
	opts = opts.withDefaults()
	s := &Scheduler{
		runner: r,
		opts:   opts,
		clock:  opts.Clock,
		log:    log,
		repos:  make(map[string]*repoState),
	}
	s.cond = sync.NewCond(&s.mu)
	if opts.Registerer != nil {
		m, err := newMetrics(s, opts.Registerer)
		if err != nil {
			log.Error("indexer metrics not registered", zap.Error(err))
		}
		s.metrics = m
	}
	return s
}

// Trigger records a change to repoDir and never blocks (it takes one mutex
// for a few map and timer operations, and never waits on a run).
//
// Coalescing contract: createrepo_c runs for repoDir once it has been quiet
// for QuietPeriod (no Trigger) or once its oldest unindexed change is
// MaxDelay old, whichever comes first, so a burst of uploads gives one run
// and a steady stream still publishes at least every MaxDelay. It never runs
// concurrently for one repoDir: Triggers during a run mark the repository
// dirty again and cause exactly one more run after it (still subject to the
// debounce). After a failed run the retry waits for the backoff (1s doubling
// to 5m); a change during the backoff neither shortens it nor skips the
// quiet period.
//
// Once Run's ctx is cancelled, a Trigger is queued to the shutdown flush if
// the flush is still going, and otherwise only recorded (the on-disk dirty
// marker written by MarkDirty makes Recover pick it up at the next start).
func (s *Scheduler) Trigger(repoDir string) { s.change(repoDir, false) }

// PublishNow is Trigger without the debounce: repoDir's changes are queued
// for a run at once instead of after QuietPeriod. Everything else in
// Trigger's contract holds: it never blocks, never causes two runs at once
// for one repository (if a run is in flight, exactly one more follows right
// after it, for all the changes made meanwhile), coalesces with any number
// of other Trigger and PublishNow calls, and does not shorten a failure
// backoff. It is meant for the last upload of a CI job.
func (s *Scheduler) PublishNow(repoDir string) { s.change(repoDir, true) }

// change records a change to repoDir; urgent ones skip the debounce.
func (s *Scheduler) change(repoDir string, urgent bool) {
	dir := filepath.Clean(repoDir)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stateLocked(dir)
	now := s.clock.Now()
	if !st.dirty {
		st.dirty = true
		st.dirtySince = now
	}
	st.lastChange = now
	st.pending++
	if urgent {
		st.urgent = true
	}
	s.scheduleLocked(st, now)
}

func (s *Scheduler) stateLocked(dir string) *repoState {
	st, ok := s.repos[dir]
	if !ok {
		st = &repoState{dir: dir, log: s.log.With(zap.String("repo", dir)),
			pubCh: make(chan struct{}), label: repoLabel(s.opts.TopDir, dir)}
		s.repos[dir] = st
		if s.metrics != nil {
			s.metrics.initRepo(st.label)
		}
	}
	return st
}

// dueLocked is when st's pending changes should be indexed: the earlier of
// quiet-period-after-last-change and max-delay-after-first-change, but not
// before a failure backoff expires.
func (s *Scheduler) dueLocked(st *repoState) time.Time {
	due := st.lastChange.Add(s.opts.QuietPeriod)
	if deadline := st.dirtySince.Add(s.opts.MaxDelay); deadline.Before(due) {
		due = deadline
	}
	if st.urgent {
		due = st.dirtySince // already past: PublishNow skips the debounce
	}
	if due.Before(st.retryAt) {
		due = st.retryAt
	}
	return due
}

// scheduleLocked (re)arms st's timer or queues it, according to the phase.
// A running or already queued repository is left alone: the end of its run
// reschedules it, and a queued one runs as soon as a worker is free anyway.
func (s *Scheduler) scheduleLocked(st *repoState, now time.Time) {
	if !st.dirty || st.running || st.queued {
		return
	}
	switch s.phase {
	case phaseStopped:
		// Nobody would stop a new timer or run the queue.
		return
	case phaseFlushing:
		// Shutdown: no debounce and no backoff, run now.
		s.stopTimerLocked(st)
		st.nextRun = now
		s.enqueueLocked(st)
		return
	}
	due := s.dueLocked(st)
	if !due.After(now) {
		s.stopTimerLocked(st)
		st.nextRun = due
		s.enqueueLocked(st)
		return
	}
	if st.timer != nil && due.Equal(st.nextRun) {
		return // already armed for that instant (MaxDelay caps a burst)
	}
	s.stopTimerLocked(st)
	st.timerGen++
	gen := st.timerGen
	st.nextRun = due
	st.timer = s.clock.AfterFunc(due.Sub(now), func() { s.fire(st, gen) })
}

// fire is a timer callback: it queues st unless the timer was superseded.
func (s *Scheduler) fire(st *repoState, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != st.timerGen || st.timer == nil {
		return // stopped or re-armed after this callback was already on its way
	}
	st.timer = nil
	if s.phase == phaseStopped || !st.dirty || st.running || st.queued {
		return
	}
	s.enqueueLocked(st)
}

func (s *Scheduler) stopTimerLocked(st *repoState) {
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	st.timerGen++
}

func (s *Scheduler) enqueueLocked(st *repoState) {
	st.queued = true
	s.queue = append(s.queue, st)
	s.cond.Signal()
}

// Run starts Options.Workers workers that execute queued runs, and blocks
// until ctx is cancelled. Then it stops all debounce and backoff timers,
// queues every dirty repository at once and keeps running them (still at most
// Workers at a time, failures are not retried) until none is left or
// ShutdownTimeout expires; at that bound the in-flight runs are cancelled
// (Createrepo sends SIGTERM). Run returns only after all its goroutines have
// exited: nil if the flush completed, an error naming the repositories left
// dirty if the bound cut it short. Run may be called only once.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.phase != phaseIdle {
		s.mu.Unlock()
		return errors.New("indexer: Scheduler.Run called twice")
	}
	s.phase = phaseRunning
	s.mu.Unlock()

	// Runs must survive ctx's cancellation, because the flush still needs
	// them; they are only cancelled by the shutdown bound.
	runCtx, cancelRuns := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelRuns(nil)

	var wg sync.WaitGroup
	for range s.opts.Workers {
		wg.Go(func() { s.worker(runCtx) })
	}
	if s.opts.RescanInterval > 0 && s.opts.TopDir != "" {
		// Stops with ctx: the shutdown flush publishes what is pending, and
		// rescans resume with the next start.
		wg.Go(func() { s.rescanLoop(ctx) })
	}

	<-ctx.Done()
	stopTimer := s.startFlush(cancelRuns)
	wg.Wait()
	stopTimer.Stop()

	s.mu.Lock()
	timedOut := s.phase == phaseStopped
	s.phase = phaseStopped
	var left []string
	for _, st := range s.repos {
		if st.dirty {
			left = append(left, st.dir)
		}
	}
	s.mu.Unlock()
	if timedOut && len(left) > 0 {
		sort.Strings(left)
		return fmt.Errorf("indexer: shutdown timeout %s reached, repositories left dirty (indexed at next start): %s",
			s.opts.ShutdownTimeout, strings.Join(left, ", "))
	}
	return nil
}

// startFlush switches to the flushing phase and arms the shutdown bound. It
// returns that timer so Run can stop it.
func (s *Scheduler) startFlush(cancelRuns context.CancelCauseFunc) Timer {
	s.mu.Lock()
	s.phase = phaseFlushing
	now := s.clock.Now()
	pending := 0
	for _, st := range s.repos {
		s.stopTimerLocked(st)
		if st.dirty && !st.running && !st.queued {
			st.nextRun = now
			s.enqueueLocked(st)
		}
		if st.dirty {
			pending++
		}
	}
	t := s.clock.AfterFunc(s.opts.ShutdownTimeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.phase = phaseStopped
		cancelRuns(errShutdown)
		s.cond.Broadcast()
	})
	// Idle workers must wake up to either take the flush work or exit.
	s.cond.Broadcast()
	s.mu.Unlock()
	s.log.Info("indexer flushing pending repositories", zap.Int("pending", pending),
		zap.Duration("bound", s.opts.ShutdownTimeout))
	if s.flushStarted != nil {
		s.flushStarted()
	}
	return t
}

// worker takes queued repositories and runs them until the flush has nothing
// left or the shutdown bound is hit.
func (s *Scheduler) worker(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for len(s.queue) == 0 && s.phase == phaseRunning {
			s.cond.Wait()
		}
		if s.phase == phaseStopped || len(s.queue) == 0 {
			// Stopped, or flushing with nothing left: a repository that is
			// re-dirtied while another worker runs it is requeued and then
			// taken by that worker, so exiting here loses nothing.
			return
		}
		st := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.mu.Unlock()
		s.runOne(ctx, st)
		s.mu.Lock()
	}
}

// runOne executes one run for st and records its outcome.
func (s *Scheduler) runOne(ctx context.Context, st *repoState) {
	s.mu.Lock()
	st.queued = false
	st.running = true
	st.nextRun = time.Time{}
	// The run claims every change recorded so far; Triggers from now on
	// dirty the repository again and earn one more run.
	claimedSince := st.dirtySince
	claimedUrgent := st.urgent
	st.claimedSince, st.claimedPending = claimedSince, st.pending
	st.dirty, st.urgent, st.pending = false, false, 0
	st.dirtySince, st.lastChange = time.Time{}, time.Time{}
	start := s.clock.Now()
	st.lastStart = start
	s.mu.Unlock()

	// The previous published set must be known before the swap replaces
	// the metadata it is read from (for Published.Added/Removed).
	prev := s.ensurePublished(st)
	// What the run will publish: createrepo_c scans Packages/ after this,
	// so every file listed here is in the new metadata. A file added
	// meanwhile came with its own Trigger, which earns the next run.
	// A listingRunner lists Packages/ itself, once the run has claimed the marker, and that listing is exactly
	// what it indexes.
	lister, ownListing := s.runner.(listingRunner)
	var listing pkgSet
	var listErr error
	if !ownListing {
		listing, listErr = listPackages(st.dir)
	}

	st.log.Debug("index run started")
	rctx, cancel := context.WithCancelCause(ctx)
	timeout := s.clock.AfterFunc(s.opts.Timeout, func() { cancel(errTimeout) })
	var err error
	if ownListing {
		listing, err = lister.RunListing(rctx, st.dir)
	} else {
		err = s.runner.Run(rctx, st.dir)
	}
	timeout.Stop()
	if cause := context.Cause(rctx); err != nil && cause != nil && !errors.Is(err, cause) {
		// Make the reason visible whatever the Runner returned (a fake may
		// return ctx.Err(), createrepo_c a "terminated" exit status).
		if errors.Is(cause, errTimeout) {
			err = fmt.Errorf("%w after %s: %w", errTimeout, s.opts.Timeout, err)
		} else {
			err = fmt.Errorf("%w: %w", cause, err)
		}
	}
	cancel(nil)
	pkgs := -1
	if err == nil {
		// Counted here, once per successful run, rather than in Status:
		// Status is polled by HTTP handlers and must stay a cheap, in-memory
		// read, and the count right after a run is the count the published
		// index reflects.
		if ownListing {
			pkgs = len(listing) // what the run indexed: no second look at the directory
		} else {
			pkgs = countPackages(st.dir)
		}
	}
	end := s.clock.Now()

	var next pkgSet
	if err == nil {
		next = listing
		if listErr != nil {
			// The metadata is published but the listing failed: ask the
			// metadata itself, at the cost of parsing it.
			var rerr error
			if next, _, _, rerr = readPublishedFrom(s.metadata(st.dir)); rerr != nil {
				st.log.Warn("published package set unknown", zap.Error(errors.Join(listErr, rerr)))
				next = nil
			}
		}
	}

	s.mu.Lock()
	st.running = false
	st.runs++
	st.lastEnd = end
	st.lastDuration = end.Sub(start)
	var backoff time.Duration
	if err != nil {
		st.lastResult, st.lastError = "error", err.Error()
		st.failures++
		backoff = backoffFor(st.failures)
		st.retryAt = end.Add(backoff)
		// The claimed changes are still unindexed: give them back, keeping
		// the oldest change time so MaxDelay stays honest.
		if !st.dirty {
			st.dirty = true
			st.dirtySince, st.lastChange = claimedSince, claimedSince
		} else if claimedSince.Before(st.dirtySince) {
			st.dirtySince = claimedSince
		}
		st.pending += st.claimedPending
		st.urgent = st.urgent || claimedUrgent
	} else {
		st.lastResult, st.lastError = "ok", ""
		st.failures = 0
		st.retryAt = time.Time{}
		st.packages = pkgs
		st.lastSuccess = end
		// nil (unknown) makes the next reader load it from the new
		// repodata/.
		st.published = next
		st.gen++
		st.sums = nil   // the new metadata's checksums are read when asked for
		close(st.pubCh) // wake WaitVisible
		st.pubCh = make(chan struct{})
		// Which repomd.xml this run published is not known (another daemon may publish right after): the next
		// refresh reads the metadata again.
		st.mdStamp, st.checkedAt = tree.Stamp{}, time.Time{}
	}
	st.claimedSince, st.claimedPending = time.Time{}, 0
	failures := st.failures
	if err == nil || s.phase == phaseRunning || s.phase == phaseIdle {
		// During the flush a failed run is not retried: the flush must end,
		// and the on-disk marker keeps the work for the next start.
		s.scheduleLocked(st, end)
	}
	retryAt := st.nextRun
	s.mu.Unlock()

	if s.metrics != nil {
		s.metrics.observeRun(st.label, err == nil, end.Sub(start))
	}
	switch {
	case err == nil:
		st.log.Info("index run succeeded", zap.Duration("took", end.Sub(start)), zap.Int("packages", pkgs))
		if s.opts.OnPublish != nil && next != nil {
			added, removed := diff(prev, next)
			s.opts.OnPublish(Published{Dir: st.dir, At: end, Took: end.Sub(start),
				Packages: next.hrefs(), Added: added, Removed: removed})
		}
	case errors.Is(err, ErrLocked):
		// Another process (an operator's createrepo_c wrapper, a second
		// daemon) holds the lock: transient, retried.
		st.log.Warn("index run skipped: repository locked", zap.Error(err),
			zap.Int("failures", failures), zap.Duration("retry_in", backoff), zap.Time("next_retry", retryAt))
	default:
		st.log.Error("index run failed", zap.Error(err), zap.Duration("took", end.Sub(start)),
			zap.Int("failures", failures), zap.Duration("retry_in", backoff), zap.Time("next_retry", retryAt))
	}
	if s.runDone != nil {
		s.runDone(st.dir)
	}
}

// backoffFor returns the wait before retrying after n consecutive failures:
// 1s, 2s, 4s, ... capped at 5m.
func backoffFor(n int) time.Duration {
	d := minBackoff
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// countPackages counts *.rpm entries directly in repoDir/Packages (hidden
// ones too: createrepo_c indexes them). Errors count as zero; the number is
// informational.
func countPackages(repoDir string) int {
	entries, err := os.ReadDir(filepath.Join(repoDir, "Packages"))
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".rpm") {
			n++
		}
	}
	return n
}

// RepoStatus is one repository's indexing state, as served by the daemon's
// status endpoint. Times are nil when they don't apply.
type RepoStatus struct {
	// Dir is the repository directory.
	Dir string `json:"path"`
	// DirtySince is the first change not yet claimed by a run.
	DirtySince *time.Time `json:"dirty_since,omitempty"`
	// NextRun is when the next run is due (a past time means it is queued
	// for a free worker); nil when nothing is scheduled or it is running.
	NextRun *time.Time `json:"next_run,omitempty"`
	// Running is true while a run is in flight.
	Running bool `json:"running"`
	// LastStart and LastEnd bound the last completed run (LastStart is also
	// set for the one in flight).
	LastStart *time.Time `json:"last_start,omitempty"`
	LastEnd   *time.Time `json:"last_end,omitempty"`
	// LastDuration is LastEnd-LastStart, e.g. "1.2s".
	LastDuration string `json:"last_duration,omitempty"`
	// LastResult is "ok", "error", or "" if it never ran.
	LastResult string `json:"last_result"`
	// LastError is the last failure's message, with the command's output
	// tail; empty after a success.
	LastError string `json:"last_error,omitempty"`
	// Failures counts consecutive failed runs (0 after a success).
	Failures int `json:"failures"`
	// Packages is the number of *.rpm files in Packages/, counted right
	// after the last successful run.
	Packages int `json:"packages"`
	// Runs counts completed runs, successful or not.
	Runs int `json:"runs"`
	// LastPublished is when the metadata was last published: the end of
	// this process's last successful run, or repomd.xml's mtime for a
	// repository found already indexed at start; nil if never.
	LastPublished *time.Time `json:"last_published,omitempty"`
}

// Status returns a snapshot of every known repository, sorted by Dir. It only
// reads memory under the mutex, so it is cheap enough for every request.
func (s *Scheduler) Status() []RepoStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RepoStatus, 0, len(s.repos))
	for _, st := range s.repos {
		rs := RepoStatus{
			Dir:        st.dir,
			Running:    st.running,
			LastResult: st.lastResult,
			LastError:  st.lastError,
			Failures:   st.failures,
			Packages:   st.packages,
			Runs:       st.runs,
		}
		if st.dirty {
			rs.DirtySince = timePtr(st.dirtySince)
		}
		if !st.running && !st.nextRun.IsZero() {
			rs.NextRun = timePtr(st.nextRun)
		}
		if !st.lastStart.IsZero() {
			rs.LastStart = timePtr(st.lastStart)
		}
		if !st.lastSuccess.IsZero() {
			rs.LastPublished = timePtr(st.lastSuccess)
		}
		if !st.lastEnd.IsZero() {
			rs.LastEnd = timePtr(st.lastEnd)
			rs.LastDuration = st.lastDuration.Round(time.Millisecond).String()
		}
		out = append(out, rs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dir < out[j].Dir })
	return out
}

func timePtr(t time.Time) *time.Time { return &t }

// ExpectedAt returns when repoDir's pending changes are expected to be
// published: the next scheduled run, or now if a run is in flight or queued,
// or if nothing is pending. For a change made during a run it estimates the
// debounce deadline (the run's own end is unknown). Upload responses use it.
func (s *Scheduler) ExpectedAt(repoDir string) time.Time {
	dir := filepath.Clean(repoDir)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	st, ok := s.repos[dir]
	switch {
	case !ok || st.queued:
		return now
	case st.running && st.dirty:
		return later(s.dueLocked(st), now)
	case st.running || st.nextRun.IsZero():
		return now
	default:
		return later(st.nextRun, now)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
