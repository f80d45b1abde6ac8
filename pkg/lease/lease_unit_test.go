package lease

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
)

// memStore is an in-memory Store with S3's conditional-write answers as SeaweedFS gives them (412 on
// If-None-Match over an existing key, 412 on a stale If-Match, 404 on If-Match over a missing key).
type memStore struct {
	mu   sync.Mutex
	objs map[string][]byte
	mod  map[string]time.Time
	now  func() time.Time
	// loseAnswer, when set, makes the next write succeed but return the error, as a request whose answer was
	// lost and whose retry met its own first attempt.
	loseAnswer error
	// failNext, when set, makes the next write fail with it and change nothing.
	failNext error
}

func newMemStore(now func() time.Time) *memStore {
	return &memStore{objs: map[string][]byte{}, mod: map[string]time.Time{}, now: now}
}

func etagOf(b []byte) string { s := md5.Sum(b); return `"` + hex.EncodeToString(s[:]) + `"` }

func (m *memStore) write(key string, body io.ReadSeeker) string {
	data, _ := io.ReadAll(body)
	m.objs[key] = data
	m.mod[key] = m.now()
	return etagOf(data)
}

func (m *memStore) lost() error {
	err := m.loseAnswer
	m.loseAnswer = nil
	return err
}

func (m *memStore) PutIfAbsent(_ context.Context, key string, body io.ReadSeeker, _ map[string]string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.failNext; err != nil {
		m.failNext = nil
		return "", err
	}
	if _, ok := m.objs[key]; ok {
		return "", &objstore.Error{Op: "put-if-absent", Key: key, Status: 412, Kind: objstore.ErrExists}
	}
	etag := m.write(key, body)
	if err := m.lost(); err != nil {
		return "", err
	}
	return etag, nil
}

func (m *memStore) PutIfMatch(_ context.Context, key, etag string, body io.ReadSeeker, _ map[string]string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.objs[key]
	if !ok {
		return "", &objstore.Error{Op: "put-if-match", Key: key, Status: 404, Kind: objstore.ErrNotFound}
	}
	if etagOf(cur) != etag {
		return "", &objstore.Error{Op: "put-if-match", Key: key, Status: 412, Kind: objstore.ErrConflict}
	}
	newETag := m.write(key, body)
	if err := m.lost(); err != nil {
		return "", err
	}
	return newETag, nil
}

func (m *memStore) Get(_ context.Context, key string) (io.ReadCloser, objstore.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.objs[key]
	if !ok {
		return nil, objstore.Info{}, &objstore.Error{Op: "get", Key: key, Status: 404, Kind: objstore.ErrNotFound}
	}
	return io.NopCloser(bytes.NewReader(cur)), objstore.Info{Key: key, ETag: etagOf(cur), Size: int64(len(cur)),
		LastModified: m.mod[key]}, nil
}

func (m *memStore) DeleteIfMatch(_ context.Context, key, etag string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.objs[key]
	if !ok {
		return &objstore.Error{Op: "delete-if-match", Key: key, Status: 412, Kind: objstore.ErrConflict}
	}
	if etagOf(cur) != etag {
		return &objstore.Error{Op: "delete-if-match", Key: key, Status: 412, Kind: objstore.ErrConflict}
	}
	delete(m.objs, key)
	return m.lost()
}

// fakeClock is a settable clock shared by the managers of one test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newManager(t *testing.T, st Store, holder string, ttl time.Duration, clk *fakeClock) *Manager {
	t.Helper()
	m, err := New(st, Options{Holder: holder, TTL: ttl, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestExpiryArithmetic(t *testing.T) {
	const ttl = 30 * time.Second
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		advance time.Duration // after a's acquisition
		bWins   bool
	}{
		{"just acquired", 0, false},
		{"one second before expiry", ttl - time.Second, false},
		{"one nanosecond before expiry", ttl - time.Nanosecond, false},
		{"at the expiry", ttl, true}, // expired means now >= expires
		{"long after", 10 * ttl, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
			st := newMemStore(clk.Now)
			a := newManager(t, st, "a", ttl, clk)
			b := newManager(t, st, "b", ttl, clk)
			la, err := a.Acquire(ctx, "9/x86_64")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := la.Expires(), clk.Now().Add(ttl); !got.Equal(want) {
				t.Fatalf("expires %v, want %v", got, want)
			}
			clk.Advance(tc.advance)
			if got, want := la.Remaining(), ttl-tc.advance; got != want {
				t.Fatalf("remaining %v, want %v", got, want)
			}
			lb, err := b.Acquire(ctx, "9/x86_64")
			if !tc.bWins {
				var held *HeldError
				if !errors.As(err, &held) || !errors.Is(err, ErrHeld) || held.Holder != "a" || !held.Expires.Equal(la.Expires()) {
					t.Fatalf("b.Acquire: %v, want HeldError by a until %v", err, la.Expires())
				}
				if err := la.Renew(ctx); err != nil {
					t.Fatalf("a.Renew: %v", err)
				}
				if got, want := la.Expires(), clk.Now().Add(ttl); !got.Equal(want) {
					t.Fatalf("renewed expires %v, want %v", got, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("b.Acquire after expiry: %v", err)
			}
			if lb.Holder() != "b" || !lb.Expires().Equal(clk.Now().Add(ttl)) {
				t.Fatalf("b's lease: %s until %v", lb.Holder(), lb.Expires())
			}
			if err := la.Renew(ctx); !errors.Is(err, ErrLost) {
				t.Fatalf("a.Renew after takeover: %v, want ErrLost", err)
			}
			if err := la.Release(ctx); !errors.Is(err, ErrLost) {
				t.Fatalf("a.Release after takeover: %v, want ErrLost", err)
			}
			if err := lb.Renew(ctx); err != nil {
				t.Fatalf("b.Renew: %v", err)
			}
		})
	}
}

func TestRenewAfterOwnExpiryWithoutTakeover(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	st := newMemStore(clk.Now)
	a := newManager(t, st, "a", time.Minute, clk)
	la, err := a.Acquire(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if la.Remaining() >= 0 {
		t.Fatalf("remaining %v after expiry", la.Remaining())
	}
	// Nobody wrote the lease since: If-Match still holds, so renewing is safe and succeeds.
	if err := la.Renew(context.Background()); err != nil {
		t.Fatal(err)
	}
	if la.Remaining() != time.Minute {
		t.Fatalf("remaining %v", la.Remaining())
	}
}

func TestSameHolderNameIsNotTheSameLease(t *testing.T) {
	// A daemon restarted under the same holder name must wait for its predecessor's lease like anyone else.
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	st := newMemStore(clk.Now)
	old := newManager(t, st, "host1", time.Minute, clk)
	if _, err := old.Acquire(context.Background(), "r"); err != nil {
		t.Fatal(err)
	}
	restarted := newManager(t, st, "host1", time.Minute, clk)
	if _, err := restarted.Acquire(context.Background(), "r"); !errors.Is(err, ErrHeld) {
		t.Fatalf("restarted Acquire: %v, want ErrHeld", err)
	}
}

func TestLostAnswers(t *testing.T) {
	// Each write lands but its answer is an error, as when a retry meets its own first attempt: the lease code
	// must recognise its own write.
	ctx := context.Background()
	lostPut := &objstore.Error{Op: "put", Status: 412, Kind: objstore.ErrExists}
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	st := newMemStore(clk.Now)
	a := newManager(t, st, "a", time.Minute, clk)

	st.loseAnswer = lostPut
	la, err := a.Acquire(ctx, "r")
	if err != nil {
		t.Fatalf("Acquire with a lost answer: %v", err)
	}
	clk.Advance(time.Second)
	st.loseAnswer = &objstore.Error{Op: "put-if-match", Status: 412, Kind: objstore.ErrConflict}
	if err := la.Renew(ctx); err != nil {
		t.Fatalf("Renew with a lost answer: %v", err)
	}
	// The renewed ETag was adopted: a second renewal works.
	clk.Advance(time.Second)
	if err := la.Renew(ctx); err != nil {
		t.Fatalf("Renew after the recovered one: %v", err)
	}
	st.loseAnswer = &objstore.Error{Op: "delete-if-match", Status: 412, Kind: objstore.ErrConflict}
	if err := la.Release(ctx); err != nil {
		t.Fatalf("Release with a lost answer: %v", err)
	}
	if _, ok := st.objs[Key("r")]; ok {
		t.Fatal("lease object still there")
	}
}

func TestUnreadableLeaseExpiresFromItsLastWrite(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	st := newMemStore(clk.Now)
	if _, err := st.PutIfAbsent(ctx, Key("r"), bytes.NewReader([]byte("not json")), nil); err != nil {
		t.Fatal(err)
	}
	a := newManager(t, st, "a", time.Minute, clk)
	if _, err := a.Acquire(ctx, "r"); !errors.Is(err, ErrHeld) {
		t.Fatalf("Acquire over a fresh unreadable lease: %v, want ErrHeld", err)
	}
	clk.Advance(time.Minute)
	la, err := a.Acquire(ctx, "r")
	if err != nil {
		t.Fatalf("Acquire over an old unreadable lease: %v", err)
	}
	if la.Holder() != "a" {
		t.Fatal(la.Holder())
	}
}

func TestConcurrentAcquireOneWinner(t *testing.T) {
	// The fake store serialises like S3: exactly one of N acquirers wins, the others learn who holds it.
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	st := newMemStore(clk.Now)
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		m := newManager(t, st, fmt.Sprintf("h%d", i), time.Minute, clk)
		wg.Go(func() { _, errs[i] = m.Acquire(context.Background(), "r") })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrHeld):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d winners, want 1", wins)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	st := newMemStore(time.Now)
	for _, o := range []Options{{TTL: time.Second}, {Holder: "a"}, {Holder: "a", TTL: -time.Second}} {
		if _, err := New(st, o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	if _, err := New(nil, Options{Holder: "a", TTL: time.Second}); err == nil {
		t.Error("New(nil store) accepted")
	}
}

func TestAcquireRetriesAfterARacing409(t *testing.T) {
	// AWS answers 409 ConditionalRequestConflict when two conditional writes on a key overlap: look again.
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	st := newMemStore(clk.Now)
	st.failNext = &objstore.Error{Op: "put-if-absent", Status: 409, Kind: objstore.ErrConflict}
	a := newManager(t, st, "a", time.Minute, clk)
	la, err := a.Acquire(context.Background(), "r")
	if err != nil {
		t.Fatalf("Acquire after a 409: %v", err)
	}
	if la.Holder() != "a" {
		t.Fatal(la.Holder())
	}
}

func TestRenewalThatLandedUnseen(t *testing.T) {
	// A renewal fails with ErrUnavailable but takes effect (a PUT that hung through a server restart does). The
	// lease is still ours: the next Renew and the Release must work, not report ErrLost.
	ctx := context.Background()
	unavailable := &objstore.Error{Op: "put-if-match", Kind: objstore.ErrUnavailable}
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	st := newMemStore(clk.Now)
	a := newManager(t, st, "a", time.Minute, clk)
	la, err := a.Acquire(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	st.loseAnswer = unavailable
	if err := la.Renew(ctx); !errors.Is(err, objstore.ErrUnavailable) {
		t.Fatalf("Renew: %v, want the ErrUnavailable", err)
	}
	clk.Advance(time.Second)
	if err := la.Renew(ctx); err != nil {
		t.Fatalf("Renew after a renewal that landed unseen: %v", err)
	}
	if got, want := la.Remaining(), time.Minute; got != want {
		t.Fatalf("remaining %v, want %v", got, want)
	}
	// And once more, with the release: the stored lease is a renewal we never saw.
	st.loseAnswer = unavailable
	if err := la.Renew(ctx); !errors.Is(err, objstore.ErrUnavailable) {
		t.Fatalf("Renew: %v", err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatalf("Release after a renewal that landed unseen: %v", err)
	}
	if _, ok := st.objs[Key("r")]; ok {
		t.Fatal("lease object still there")
	}
	// Someone else's lease is still never touched: b holds it, a's stale lease object must not release it.
	lb, err := newManager(t, st, "b", time.Minute, clk).Acquire(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if err := la.Release(ctx); err == nil || !errors.Is(err, ErrLost) {
		t.Fatalf("a.Release of b's lease: %v, want ErrLost", err)
	}
	if err := la.Renew(ctx); !errors.Is(err, ErrLost) {
		t.Fatalf("a.Renew of b's lease: %v, want ErrLost", err)
	}
	if err := lb.Renew(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAcquireThatLandedUnseen(t *testing.T) {
	// An Acquire fails with ErrUnavailable but its PUT took effect. The next Acquire of the same manager must
	// recognise that lease as its own, not wait a whole TTL for it; another holder must still see it held.
	ctx := context.Background()
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	st := newMemStore(clk.Now)
	a := newManager(t, st, "a", time.Minute, clk)
	st.loseAnswer = &objstore.Error{Op: "put-if-absent", Kind: objstore.ErrUnavailable}
	if _, err := a.Acquire(ctx, "r"); !errors.Is(err, objstore.ErrUnavailable) {
		t.Fatalf("Acquire: %v, want the ErrUnavailable", err)
	}
	if _, err := newManager(t, st, "b", time.Minute, clk).Acquire(ctx, "r"); !errors.Is(err, ErrHeld) {
		t.Fatalf("b.Acquire: %v, want ErrHeld", err)
	}
	clk.Advance(2 * time.Minute) // the unseen lease has expired meanwhile: adopting it must refresh it
	la, err := a.Acquire(ctx, "r")
	if err != nil {
		t.Fatalf("a.Acquire after its own unseen acquisition: %v", err)
	}
	if la.Remaining() != time.Minute {
		t.Fatalf("adopted lease has %v left, want a fresh TTL", la.Remaining())
	}
	if _, err := newManager(t, st, "b", time.Minute, clk).Acquire(ctx, "r"); !errors.Is(err, ErrHeld) {
		t.Fatalf("b.Acquire of the adopted lease: %v, want ErrHeld", err)
	}
	if err := la.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// After a success, the next acquisition gets a new token.
	lb, err := a.Acquire(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if lb.rec.Token == la.rec.Token {
		t.Fatal("token reused after a successful acquisition")
	}
}
