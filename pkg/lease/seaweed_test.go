package lease_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/seaweed"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/lease"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
)

// clock is a settable clock shared by the daemons of one test; the server's own time plays no part in expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestLeaseOnSeaweedFS: the lease's guarantees against a real S3 server, several daemons (managers with their own
// clients) on one bucket.
func TestLeaseOnSeaweedFS(t *testing.T) {
	t.Parallel()
	srv := seaweed.Start(t, seaweed.Options{})
	bucket := srv.NewBucket()
	const ttl = time.Minute
	clk := &clock{t: time.Now()}
	daemon := func(t *testing.T, holder string) *lease.Manager {
		st, err := objstore.New(objstore.Options{Endpoint: srv.Endpoint(), Bucket: bucket, Prefix: "el",
			Region: seaweed.Region, PathStyle: true, Getenv: func(string) string { return "" }})
		if err != nil {
			t.Fatal(err)
		}
		m, err := lease.New(st, lease.Options{Holder: holder, TTL: ttl, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ctx := context.Background()

	t.Run("ConcurrentAcquireOneHolder", func(t *testing.T) {
		const n, rounds = 8, 10
		ms := make([]*lease.Manager, n)
		for i := range ms {
			ms[i] = daemon(t, fmt.Sprintf("daemon%d", i))
		}
		for round := range rounds {
			repo := fmt.Sprintf("concurrent/%d", round)
			start := make(chan struct{})
			leases := make([]*lease.Lease, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i, m := range ms {
				wg.Go(func() { <-start; leases[i], errs[i] = m.Acquire(ctx, repo) })
			}
			close(start)
			wg.Wait()
			holder := -1
			for i, err := range errs {
				switch {
				case err == nil && holder >= 0:
					t.Fatalf("round %d: daemons %d and %d both hold the lease", round, holder, i)
				case err == nil:
					holder = i
				case !errors.Is(err, lease.ErrHeld):
					t.Fatalf("round %d: daemon %d: %v", round, i, err)
				}
			}
			if holder < 0 {
				t.Fatalf("round %d: nobody holds the lease", round)
			}
			for i, err := range errs {
				var held *lease.HeldError
				if i != holder && (!errors.As(err, &held) || held.Holder != fmt.Sprintf("daemon%d", holder)) {
					t.Fatalf("round %d: daemon %d was told %v, want held by daemon%d", round, i, err, holder)
				}
			}
			// Every round also proves release: the lease is free again for the next acquirer.
			if err := leases[holder].Release(ctx); err != nil {
				t.Fatal(err)
			}
			if l, err := ms[(holder+1)%n].Acquire(ctx, repo); err != nil {
				t.Fatalf("round %d: acquire after release: %v", round, err)
			} else if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("NonHolderCannotRenewOrRelease", func(t *testing.T) {
		a, b := daemon(t, "a"), daemon(t, "b")
		la, err := a.Acquire(ctx, "renew/1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Acquire(ctx, "renew/1"); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("b.Acquire: %v", err)
		}
		// b takes over after the expiry; a's renewal and release now fail and leave b's lease alone.
		clk.Advance(ttl + time.Second)
		lb, err := b.Acquire(ctx, "renew/1")
		if err != nil {
			t.Fatalf("b.Acquire after expiry: %v", err)
		}
		if err := la.Renew(ctx); !errors.Is(err, lease.ErrLost) {
			t.Fatalf("a.Renew after takeover: %v, want ErrLost", err)
		}
		if err := la.Release(ctx); !errors.Is(err, lease.ErrLost) {
			t.Fatalf("a.Release after takeover: %v, want ErrLost", err)
		}
		if err := lb.Renew(ctx); err != nil {
			t.Fatalf("b.Renew: the non-holder's attempts disturbed b's lease: %v", err)
		}
		if err := lb.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("TakeoverOnlyAfterExpiry", func(t *testing.T) {
		a, b := daemon(t, "a"), daemon(t, "b")
		la, err := a.Acquire(ctx, "takeover/1")
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(ttl - time.Second)
		if _, err := b.Acquire(ctx, "takeover/1"); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("b.Acquire a second before expiry: %v, want ErrHeld", err)
		}
		// a renews in time: the expiry moves, and b must wait for the new one.
		if err := la.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		clk.Advance(2 * time.Second) // past the first expiry, well before the renewed one
		if _, err := b.Acquire(ctx, "takeover/1"); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("b.Acquire after a's renewal: %v, want ErrHeld", err)
		}
		clk.Advance(ttl)
		lb, err := b.Acquire(ctx, "takeover/1")
		if err != nil {
			t.Fatalf("b.Acquire after the renewed expiry: %v", err)
		}
		// The holder that lost its lease learns it on its next Renew.
		if err := la.Renew(ctx); !errors.Is(err, lease.ErrLost) {
			t.Fatalf("a.Renew after losing the lease: %v, want ErrLost", err)
		}
		if err := lb.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ConcurrentTakeoverOneWinner", func(t *testing.T) {
		// An expired lease, and 8 daemons that all see it expired: the If-Match lets exactly one take it over.
		const n, rounds = 8, 10
		heirs := make([]*lease.Manager, n)
		for i := range heirs {
			heirs[i] = daemon(t, fmt.Sprintf("heir%d", i))
		}
		dead := daemon(t, "dead")
		for round := range rounds {
			repo := fmt.Sprintf("takeover/race%d", round)
			if _, err := dead.Acquire(ctx, repo); err != nil {
				t.Fatal(err)
			}
			clk.Advance(ttl + time.Second)
			errs := make([]error, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i, m := range heirs {
				wg.Go(func() { <-start; _, errs[i] = m.Acquire(ctx, repo) })
			}
			close(start)
			wg.Wait()
			wins := 0
			for i, err := range errs {
				if err == nil {
					wins++
				} else if !errors.Is(err, lease.ErrHeld) {
					t.Fatalf("round %d: heir%d: %v", round, i, err)
				}
			}
			if wins != 1 {
				t.Fatalf("round %d: %d daemons took over the expired lease, want 1", round, wins)
			}
		}
	})
}

// dropFirstAnswers is a proxy in front of the S3 server that forwards every request but, for the first request
// of each listed method, throws the answer away and cuts the connection: the request took effect, the client
// never learns it, and the SDK retries it.
type dropFirstAnswers struct {
	upstream *url.URL
	mu       sync.Mutex
	pending  map[string]bool // method → still to drop
	dropped  []string
}

func (d *dropFirstAnswers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, d.upstream.String()+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host // the signature covers the Host header
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	defer resp.Body.Close()
	d.mu.Lock()
	drop := d.pending[r.Method] && strings.HasSuffix(r.URL.Path, "lease.json")
	if drop {
		d.pending[r.Method] = false
		d.dropped = append(d.dropped, fmt.Sprintf("%s → %d", r.Method, resp.StatusCode))
	}
	d.mu.Unlock()
	if drop {
		panic(http.ErrAbortHandler) // closes the connection without an answer
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// TestLeaseSurvivesLostAnswers: when the answer to the lease's own PUT or DELETE is lost and the SDK's retry
// meets the result of the first attempt (412), the lease recognises its own write instead of reporting the
// lease as held by someone else, or lost.
func TestLeaseSurvivesLostAnswers(t *testing.T) {
	t.Parallel()
	srv := seaweed.Start(t, seaweed.Options{})
	bucket := srv.NewBucket()
	up, err := url.Parse(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	proxy := &dropFirstAnswers{upstream: up, pending: map[string]bool{http.MethodPut: true}}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	st, err := objstore.New(objstore.Options{Endpoint: front.URL, Bucket: bucket, Region: seaweed.Region,
		PathStyle: true, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	m, err := lease.New(st, lease.Options{Holder: "a", TTL: time.Minute, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	l, err := m.Acquire(ctx, "lost")
	if err != nil {
		t.Fatalf("Acquire whose first answer was lost: %v", err)
	}
	proxy.mu.Lock()
	proxy.pending[http.MethodPut] = true
	proxy.mu.Unlock()
	clk.Advance(time.Second)
	if err := l.Renew(ctx); err != nil {
		t.Fatalf("Renew whose first answer was lost: %v", err)
	}
	clk.Advance(time.Second)
	if err := l.Renew(ctx); err != nil {
		t.Fatalf("Renew after the recovered one: %v", err)
	}
	proxy.mu.Lock()
	proxy.pending[http.MethodDelete] = true
	proxy.mu.Unlock()
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release whose first answer was lost: %v", err)
	}
	if _, err := st.Head(ctx, lease.Key("lost")); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("lease object after Release: %v", err)
	}
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	if len(proxy.dropped) != 3 {
		t.Fatalf("dropped answers: %v, want one PUT, one renewing PUT and one DELETE", proxy.dropped)
	}
	t.Logf("dropped answers (the request took effect): %v", proxy.dropped)
}
