package indexer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// leaseLock is an expiring lock with a real clock: Renew sets the expiry to now+ttl unless renew says otherwise.
type leaseLock struct {
	mu      sync.Mutex
	ttl     time.Duration
	expires time.Time
	renews  int
	renew   func(n int) error // the n-th renewal's answer (nil: success)
}

func newLeaseLock(ttl time.Duration, renew func(int) error) *leaseLock {
	return &leaseLock{ttl: ttl, expires: time.Now().Add(ttl), renew: renew}
}

func (l *leaseLock) Repo() string   { return "9/x86_64" }
func (l *leaseLock) Holder() string { return "test:1" }
func (l *leaseLock) Release() error { return nil }
func (l *leaseLock) Remaining() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Until(l.expires)
}
func (l *leaseLock) Renew(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.renews++
	if l.renew != nil {
		if err := l.renew(l.renews); err != nil {
			return err
		}
	}
	l.expires = time.Now().Add(l.ttl)
	return nil
}

// TestUnderLease: a run longer than the lease TTL keeps the lease by renewing it; a lost lease cancels the run
// with tree.ErrLockLost; renewals that keep failing cancel it before the lease runs out; a lock that does not
// expire (fs) is never renewed by it. Start and end are logged with the holder.
func TestUnderLease(t *testing.T) {
	const ttl = 500 * time.Millisecond
	run := func(l tree.Lock, d time.Duration) (*observer.ObservedLogs, error) {
		core, logs := observer.New(zap.InfoLevel)
		c := &Createrepo{Log: zap.New(core)}
		err := c.underLease(context.Background(), l, time.Now(), func(ctx context.Context) error {
			select {
			case <-time.After(d):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		return logs, err
	}

	t.Run("kept over several TTLs", func(t *testing.T) {
		l := newLeaseLock(ttl, nil)
		logs, err := run(l, 3*ttl)
		if err != nil {
			t.Fatal(err)
		}
		if l.renews < 3 || l.Remaining() <= 0 {
			t.Errorf("%d renewals in three TTLs, %v left: the lease was not kept", l.renews, l.Remaining())
		}
		if n := logs.FilterMessage("createrepo_c run started").FilterField(zap.String("holder", "test:1")).Len(); n != 1 {
			t.Errorf("%d start lines with the holder", n)
		}
		if n := logs.FilterMessage("createrepo_c run ended").Len(); n != 1 {
			t.Errorf("%d end lines", n)
		}
	})
	t.Run("lost", func(t *testing.T) {
		l := newLeaseLock(ttl, func(n int) error {
			if n >= 2 {
				return tree.ErrLockLost
			}
			return nil
		})
		_, err := run(l, time.Minute)
		if !errors.Is(err, tree.ErrLockLost) {
			t.Fatalf("err = %v, want ErrLockLost (and the run cancelled, not a minute)", err)
		}
	})
	t.Run("store down until the lease nearly ran out", func(t *testing.T) {
		l := newLeaseLock(ttl, func(n int) error {
			if n > 1 {
				return tree.ErrUnavailable
			}
			return nil
		})
		start := time.Now()
		_, err := run(l, time.Minute)
		if !errors.Is(err, tree.ErrLockLost) {
			t.Fatalf("err = %v, want ErrLockLost", err)
		}
		if l.renews < 2 {
			t.Errorf("gave up after %d renewal attempts", l.renews)
		}
		if time.Since(start) > time.Minute/2 {
			t.Errorf("the run was not cancelled")
		}
	})
	t.Run("lease run out during Begin", func(t *testing.T) {
		// Begin's downloads took the whole lease: the first renewal finds it lost, and createrepo_c never runs.
		l := newLeaseLock(ttl, func(int) error { return tree.ErrLockLost })
		l.expires = time.Now().Add(-time.Second)
		ran := false
		c := &Createrepo{}
		err := c.underLease(context.Background(), l, time.Now(), func(context.Context) error { ran = true; return nil })
		if !errors.Is(err, tree.ErrLockLost) || ran {
			t.Fatalf("err = %v, ran = %v; want ErrLockLost before the run", err, ran)
		}
	})
	t.Run("lease nearly run out during Begin, then kept", func(t *testing.T) {
		// A lease with little left when the run starts is renewed to a full TTL, then every third of it: a
		// handful of renewals, not one every few milliseconds.
		l := newLeaseLock(ttl, nil)
		l.expires = time.Now().Add(5 * time.Millisecond)
		if _, err := run(l, 2*ttl); err != nil {
			t.Fatal(err)
		}
		if l.renews > 20 {
			t.Errorf("%d renewals in two TTLs: the keep-alive hammers the store", l.renews)
		}
	})
	t.Run("fs lock", func(t *testing.T) {
		l := &fixedLock{}
		if _, err := run(l, ttl); err != nil {
			t.Fatal(err)
		}
		if l.renewed {
			t.Error("a lock that does not expire was renewed")
		}
	})
}

// fixedLock is a lock that never expires (like fs's), recording whether it was renewed.
type fixedLock struct{ renewed bool }

func (*fixedLock) Repo() string                  { return "r" }
func (l *fixedLock) Renew(context.Context) error { l.renewed = true; return nil }
func (*fixedLock) Release() error                { return nil }
