package auth

import (
	"fmt"
	"testing"
	"time"
)

// fakeClock is a settable clock for the limiter.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// TestLimiter drives one limiter (3 failures per minute) through a script of steps on a fake clock.
func TestLimiter(t *testing.T) {
	type step struct {
		advance time.Duration
		op      string // "fail" or "allow"
		addr    string
		ok      bool          // for allow
		retry   time.Duration // for allow
	}
	a, b := "192.0.2.1", "192.0.2.2"
	tests := []struct {
		name  string
		steps []step
	}{
		{"under the limit", []step{
			{0, "fail", a, false, 0}, {0, "fail", a, false, 0},
			{0, "allow", a, true, 0},
		}},
		{"at the limit, refused until the oldest failure leaves the window", []step{
			{0, "fail", a, false, 0}, {10 * time.Second, "fail", a, false, 0}, {10 * time.Second, "fail", a, false, 0},
			{0, "allow", a, false, 40 * time.Second},
			{0, "allow", b, true, 0}, // per address
			{39 * time.Second, "allow", a, false, time.Second},
			{time.Second, "allow", a, true, 0}, // first failure is now exactly a window old
		}},
		{"sliding: failures spread over the window", []step{
			{0, "fail", a, false, 0}, {50 * time.Second, "fail", a, false, 0},
			{20 * time.Second, "fail", a, false, 0}, // the first has expired: two in the window
			{0, "allow", a, true, 0},
			{0, "fail", a, false, 0},
			{0, "allow", a, false, 40 * time.Second}, // until the failure at 50s is a window old
		}},
		{"refusals do not extend the block", []step{
			{0, "fail", a, false, 0}, {0, "fail", a, false, 0}, {0, "fail", a, false, 0},
			{30 * time.Second, "allow", a, false, 30 * time.Second},
			{29 * time.Second, "allow", a, false, time.Second},
			{time.Second, "allow", a, true, 0},
		}},
		{"more failures than max keep only the last max", []step{
			{0, "fail", a, false, 0}, {0, "fail", a, false, 0}, {0, "fail", a, false, 0},
			{30 * time.Second, "fail", a, false, 0}, {0, "fail", a, false, 0}, {0, "fail", a, false, 0},
			{30 * time.Second, "allow", a, false, 30 * time.Second},
			{30 * time.Second, "allow", a, true, 0},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
			l := NewLimiter(3, time.Minute, clk.now)
			for i, s := range tc.steps {
				clk.advance(s.advance)
				if s.op == "fail" {
					l.Fail(s.addr)
					continue
				}
				ok, retry := l.Allow(s.addr)
				if ok != s.ok || retry != s.retry {
					t.Fatalf("step %d: Allow(%s) = %v, %v; want %v, %v", i, s.addr, ok, retry, s.ok, s.retry)
				}
			}
		})
	}
}

// TestLimiterBounded checks the cap on tracked addresses: the least recently failing address is forgotten
// first, and expired records are dropped when seen.
func TestLimiterBounded(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := NewLimiter(1, time.Minute, clk.now)
	l.capacity = 3
	for i := range 3 {
		l.Fail(fmt.Sprint("10.0.0.", i))
	}
	l.Fail("10.0.0.0") // refreshes .0: .1 is now the oldest
	l.Fail("10.0.0.9") // evicts .1
	if l.Tracked() != 3 {
		t.Fatalf("Tracked() = %d, want 3", l.Tracked())
	}
	for addr, want := range map[string]bool{"10.0.0.0": false, "10.0.0.1": true, "10.0.0.2": false, "10.0.0.9": false} {
		if ok, _ := l.Allow(addr); ok != want {
			t.Errorf("Allow(%s) = %v, want %v", addr, ok, want)
		}
	}
	clk.advance(time.Minute)
	if ok, _ := l.Allow("10.0.0.2"); !ok || l.Tracked() != 2 {
		t.Errorf("after the window: Allow = %v, Tracked = %d; want true, 2", ok, l.Tracked())
	}
}

func TestLimiterDisabled(t *testing.T) {
	for _, l := range []*Limiter{NewLimiter(0, time.Minute, nil), NewLimiter(3, 0, nil)} {
		for range 10 {
			l.Fail("a")
		}
		if ok, _ := l.Allow("a"); !ok || l.Tracked() != 0 {
			t.Errorf("disabled limiter (max %d, window %v) refused or tracked", l.max, l.window)
		}
	}
}

func TestRetryAfterHeader(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "1"}, {time.Millisecond, "1"}, {time.Second, "1"}, {1001 * time.Millisecond, "2"}, {59 * time.Second, "59"},
	}
	for _, tc := range tests {
		if got := (&LimitError{RetryAfter: tc.d}).RetryAfterHeader(); got != tc.want {
			t.Errorf("RetryAfterHeader(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
