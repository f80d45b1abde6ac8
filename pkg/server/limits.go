package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// The limits that keep many or slow uploads from exhausting the daemon: a cap on uploads in progress, a body rate
// for direct uploads, and a count of running handlers so that a stop can wait for cut-off uploads to clean up.

// retryAfter is the Retry-After (seconds) sent with a 503. An upload takes about a second to check and place, so a
// few seconds frees a slot without making well-behaved clients wait long.
const retryAfter = "5"

// errBusy is answered 503 with Retry-After: every upload slot is taken.
var errBusy = errors.New("busy")

// errSlowUpload is answered 408: a direct upload sent nothing for too long, or fell below the minimum rate.
var errSlowUpload = errors.New("upload too slow")

// slots is a counting semaphore over uploads in progress. An upload over the cap waits for a slot, for at most
// server.queue_timeout: a burst (a CI fan-out of 32 jobs against a cap of 16) is served in turn instead of refused,
// while at most the cap are received, parsed and placed at once, which is what bounds memory and descriptors.
type slots struct {
	c chan struct{} // one element per upload in progress; nil means no cap
}

func newSlots(n int) slots {
	if n <= 0 {
		return slots{}
	}
	// The buffer is the cap itself: a full channel is exactly "no slot free".
	return slots{c: make(chan struct{}, n)}
}

// tryAcquire takes a slot if one is free and reports whether it did; it never blocks.
func (s slots) tryAcquire() bool {
	if s.c == nil {
		return true
	}
	select {
	case s.c <- struct{}{}:
		return true
	default:
		return false
	}
}

// acquire takes a slot, waiting for one for at most timeout (0: not at all) or until ctx ends (the client went
// away, or the daemon is stopping). It reports whether it waited, and fails with errQueueTimeout when the time ran
// out or with ctx's error.
// onWait, when not nil, is called once when the wait starts.
func (s slots) acquire(ctx context.Context, timeout time.Duration, onWait func()) (waited bool, err error) {
	if s.tryAcquire() {
		return false, nil
	}
	if timeout <= 0 {
		return false, errQueueTimeout
	}
	if onWait != nil {
		onWait()
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case s.c <- struct{}{}:
		return true, nil
	case <-t.C:
		return true, errQueueTimeout
	case <-ctx.Done():
		return true, ctx.Err()
	}
}

// errQueueTimeout: no upload slot came free within server.queue_timeout.
var errQueueTimeout = errors.New("no upload slot came free in time")

// release returns a slot taken by tryAcquire or acquire.
func (s slots) release() {
	if s.c != nil {
		<-s.c
	}
}

// busyError builds the 503 error naming the key an operator would raise.
func busyError(limit int, waited time.Duration) error {
	return fmt.Errorf("%w: %d uploads are already being received or checked (server.max_concurrent_uploads) and none finished within %s (server.queue_timeout); retry in a few seconds", errBusy, limit, waited)
}

// rateBody wraps a direct upload's body and keeps the connection's read deadline at the earlier of
//   - idle after the last byte received: a client may not pause longer than that, and
//   - start + idle + received/rate: after a grace period of idle, the client must keep an average of rate bytes
//     per second (when rate > 0).
//
// The deadline is set on the connection (http.ResponseController), so a stalled Read returns even though no byte
// arrives to wake it: a client trickling a byte every few seconds is cut off instead of holding a slot, a spool file
// and two descriptors for as long as it likes. A Read past the deadline fails with an error matching errSlowUpload.
type rateBody struct {
	r     io.Reader
	rc    *http.ResponseController
	idle  time.Duration
	rate  int64
	start time.Time
	n     int64 // bytes received so far
	now   func() time.Time
	// unsupported is set when the ResponseWriter cannot set deadlines (httptest.ResponseRecorder); the body is
	// then read without them, as before.
	unsupported bool
}

// newRateBody sets the first deadline and returns the wrapping reader.
func newRateBody(w http.ResponseWriter, body io.Reader, idle time.Duration, rate int64, now func() time.Time) *rateBody {
	b := &rateBody{r: body, rc: http.NewResponseController(w), idle: idle, rate: rate, start: now(), now: now}
	b.extend()
	return b
}

func (b *rateBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if n > 0 {
		b.extend()
	}
	if err == io.EOF {
		// The whole body is here. net/http now starts its background read, which would cancel the request's
		// context when our deadline fires in the middle of checking and placing the package: lift it.
		b.clear()
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// The network error names our addresses and says only "i/o timeout"; the client needs the rule it broke.
		err = b.slowError()
	}
	return n, err
}

// slowError says which bound a cut-off upload broke, naming the keys.
func (b *rateBody) slowError() error {
	rate := ""
	if b.rate > 0 {
		rate = fmt.Sprintf(", or sent less than %d bytes/s on average after the first %s (server.upload_min_rate)", b.rate, b.idle)
	}
	return fmt.Errorf("%w: nothing received for %s (server.upload_idle_timeout)%s; cut off after %d bytes", errSlowUpload, b.idle, rate, b.n)
}

// extend moves the read deadline to what the bytes received so far have earned.
func (b *rateBody) extend() {
	if b.unsupported || b.idle <= 0 {
		return
	}
	deadline := b.now().Add(b.idle)
	if b.rate > 0 {
		// n/rate seconds, split so that n*time.Second cannot overflow for large uploads.
		earned := time.Duration(b.n/b.rate)*time.Second + time.Duration(b.n%b.rate)*time.Second/time.Duration(b.rate)
		if byRate := b.start.Add(b.idle + earned); byRate.Before(deadline) {
			deadline = byRate
		}
	}
	if err := b.rc.SetReadDeadline(deadline); errors.Is(err, http.ErrNotSupported) {
		b.unsupported = true
	}
}

// clear removes the read deadline once the whole body has been read, so that it cannot cut the connection while
// the upload is being checked and answered. (The next request on the connection gets net/http's own deadlines.)
// It is not called after a failed read: a cleared deadline would let net/http wait, before answering, for the
// rest of a body that a trickling client may never send.
func (b *rateBody) clear() {
	if !b.unsupported && b.idle > 0 {
		_ = b.rc.SetReadDeadline(time.Time{}) // the connection may be gone; then nothing reads from it again
	}
}

// inflight counts running request handlers, so that a stop that cut connections off can wait until their handlers
// have returned (and removed their partial spool files). A WaitGroup would not do: Add may race with Wait when a
// request starts while the server is being closed.
type inflight struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to zero; replaced when it rises from zero
}

func (f *inflight) add() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		f.zero = make(chan struct{})
	}
	f.n++
}

func (f *inflight) done() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 {
		close(f.zero)
	}
}

// track is the middleware that counts every request while its handler runs.
func (s *Server) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.add()
		defer s.inflight.done()
		next.ServeHTTP(w, r)
	})
}

// InFlight returns the number of request handlers running now.
func (s *Server) InFlight() int {
	s.inflight.mu.Lock()
	defer s.inflight.mu.Unlock()
	return s.inflight.n
}

// Wait blocks until no request handler is running, or ctx ends (then it returns ctx's error). Call it after
// http.Server.Close (or a Shutdown that timed out), when no new request can start: a handler returns only after
// its upload has either been placed and answered or been abandoned with its partial spool file removed.
func (s *Server) Wait(ctx context.Context) error {
	s.inflight.mu.Lock()
	if s.inflight.n == 0 {
		s.inflight.mu.Unlock()
		return nil
	}
	zero := s.inflight.zero
	s.inflight.mu.Unlock()
	select {
	case <-zero:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d request handlers still running: %w", s.InFlight(), ctx.Err())
	}
}

// Shared lookups: GET /api/v1/uploads/{sha256} is open to anyone (nginx serves it without a login). On a shared
// bucket a sha256 this daemon does not know costs a listing request, and each known copy a HEAD (published sums
// are public in primary.xml). Such requests are bounded per daemon, so that a client cannot turn every request
// into bucket requests (each one billed by a cloud S3). CI jobs polling their own uploads stay far below it.
const (
	sharedLookupRate  = 50  // per second, on average
	sharedLookupBurst = 100 // at once
)

// rateBudget is a token bucket: at most burst takes at once, refilled at perSecond. Safe for concurrent use.
type rateBudget struct {
	perSecond, burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// take spends one token at now, reporting whether there was one.
func (b *rateBudget) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.tokens = b.burst
	} else if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.perSecond)
	}
	if now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
