package auth

import (
	"container/list"
	"sync"
	"time"
)

// LimiterCapacity is how many client addresses a Limiter tracks at most. When a new address fails while the
// table is full, the address whose last failure is oldest is forgotten. At 10 failures per address this is a
// few megabytes at most. An attacker who controls that many addresses can flush the table, but could as well
// spread the guessing over them: the limiter slows down one address, it does not stop a botnet.
const LimiterCapacity = 10000

// Limiter counts failed logins per client address in a sliding window: once an address has failed max times
// within window, Allow refuses it until the oldest of those failures is window old. Refused attempts are not
// counted (they never reach a password check), so a client that waits is let in again on time.
//
// A Limiter is safe for concurrent use; its methods never block on anything but its own mutex. It starts no
// goroutine: expired records are dropped when their address is next seen or evicted.
type Limiter struct {
	max      int
	window   time.Duration
	now      func() time.Time
	capacity int // LimiterCapacity; a field so tests can use a small table

	mu     sync.Mutex
	byAddr map[string]*list.Element // of *failures
	order  *list.List               // least recently failed at the front
}

// failures is one address's record: the times of its last failures (at most max), oldest first.
type failures struct {
	addr  string
	times []time.Time
}

// NewLimiter returns a Limiter allowing max failures per address within window. now is the clock (nil for
// time.Now). max < 1 or window <= 0 disables limiting: Allow always allows.
func NewLimiter(max int, window time.Duration, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{max: max, window: window, now: now, capacity: LimiterCapacity,
		byAddr: map[string]*list.Element{}, order: list.New()}
}

// Allow reports whether addr may attempt a login now and, if not, how long until it may.
func (l *Limiter) Allow(addr string) (ok bool, retryAfter time.Duration) {
	if l.disabled() {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.byAddr[addr]
	if e == nil {
		return true, 0
	}
	now := l.now()
	f := e.Value.(*failures)
	l.expire(f, now)
	if len(f.times) == 0 {
		l.remove(e)
		return true, 0
	}
	if len(f.times) < l.max {
		return true, 0
	}
	return false, f.times[0].Add(l.window).Sub(now)
}

// Fail records a failed attempt by addr.
func (l *Limiter) Fail(addr string) {
	if l.disabled() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	e := l.byAddr[addr]
	if e == nil {
		if l.order.Len() >= l.capacity {
			l.remove(l.order.Front())
		}
		e = l.order.PushBack(&failures{addr: addr})
		l.byAddr[addr] = e
	}
	f := e.Value.(*failures)
	l.expire(f, now)
	f.times = append(f.times, now)
	if len(f.times) > l.max {
		// Only the last max failures matter for the window; keep the slice from growing.
		f.times = append(f.times[:0], f.times[len(f.times)-l.max:]...)
	}
	l.order.MoveToBack(e)
}

// expire drops the failures that have left the window.
func (l *Limiter) expire(f *failures, now time.Time) {
	i := 0
	for i < len(f.times) && !f.times[i].Add(l.window).After(now) {
		i++
	}
	f.times = f.times[i:]
}

func (l *Limiter) remove(e *list.Element) {
	delete(l.byAddr, e.Value.(*failures).addr)
	l.order.Remove(e)
}

// Tracked returns how many addresses have a record, for tests and metrics.
func (l *Limiter) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order.Len()
}

func (l *Limiter) disabled() bool { return l.max < 1 || l.window <= 0 }
