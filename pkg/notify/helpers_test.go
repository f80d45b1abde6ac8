package notify

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// request is what a test receiver saw.
type request struct {
	Path   string
	Header http.Header
	Body   []byte
}

// receiver is a local webhook endpoint. Each request is answered by answer(n) (n counts from 1) after it has been
// recorded on got.
type receiver struct {
	*httptest.Server
	got chan request
	mu  sync.Mutex
	n   int
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{got: make(chan request, 1000)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.n++
		n := rc.n
		rc.mu.Unlock()
		rc.got <- request{Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body}
		answer(n, w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// status answers every request with code.
func status(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// hang never answers: it returns only when the client gives up or the test ends.
func hang(release <-chan struct{}) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.n
}

// next returns the next recorded request, failing the test if none comes (a deadlock guard, not a timing check).
func (rc *receiver) next(t *testing.T) request {
	t.Helper()
	select {
	case r := <-rc.got:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("the receiver got no request")
		return request{}
	}
}

// outcome is one message leaving a worker.
type outcome struct {
	index     int
	delivered bool
}

// harness is a Notifier under test with its registry, logs and outcome stream.
type harness struct {
	*Notifier
	reg    *prometheus.Registry
	logs   *observer.ObservedLogs
	out    chan outcome
	sleeps chan time.Duration // every backoff the notifier asked for
	cancel context.CancelFunc
	ran    chan error // Run's result
}

// newHarness builds a Notifier whose Sleep records and returns at once, so retry tests take no wall time.
func newHarness(t *testing.T, hooks []Webhook, opts Options) *harness {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	h := &harness{reg: prometheus.NewRegistry(), logs: logs, out: make(chan outcome, 1000),
		sleeps: make(chan time.Duration, 1000), ran: make(chan error, 1)}
	opts.Registerer = h.reg
	if opts.Sleep == nil {
		opts.Sleep = func(ctx context.Context, d time.Duration) error {
			h.sleeps <- d
			return ctx.Err()
		}
	}
	n, err := New(hooks, opts, zap.New(core))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	n.done = func(i int, ok bool) { h.out <- outcome{i, ok} }
	h.Notifier = n
	return h
}

// start runs the notifier until the test ends.
func (h *harness) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.ran <- h.Run(ctx) }()
	t.Cleanup(func() { h.stop(t) })
}

// stop cancels Run and waits for it to return.
func (h *harness) stop(t *testing.T) {
	t.Helper()
	h.cancel()
	select {
	case err := <-h.ran:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		h.ran <- nil // a second stop (from Cleanup) returns at once
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

// wait returns the next outcome.
func (h *harness) wait(t *testing.T) outcome {
	t.Helper()
	select {
	case o := <-h.out:
		return o
	case <-time.After(60 * time.Second):
		t.Fatal("no message left a worker")
		return outcome{}
	}
}

// value reads a counter from the registry; a missing series fails the test, so a renamed metric or label does too.
func (h *harness) value(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if len(got) != len(labels) {
				continue
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func (h *harness) delivered(t *testing.T, webhook, format, result string) float64 {
	t.Helper()
	return h.value(t, "rpm_ingestd_notify_deliveries_total", map[string]string{"webhook": webhook, "format": format, "result": result})
}

func (h *harness) dropped(t *testing.T, webhook, format string) float64 {
	t.Helper()
	return h.value(t, "rpm_ingestd_notify_dropped_total", map[string]string{"webhook": webhook, "format": format})
}

// batch is a two-package batch for repo.
func batch(repo string) Batch {
	base := "https://repo.example.com/repo/" + repo
	return Batch{
		Repo: repo, RepoURL: base + "/", At: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC),
		Packages: []Package{
			{NEVRA: "hello-2.12-1.el9.x86_64", URL: base + "/Packages/hello-2.12-1.el9.x86_64.rpm"},
			{NEVRA: "lib_foo-1:0.3-2.el9.x86_64", URL: base + "/Packages/lib_foo-0.3-2.el9.x86_64.rpm"},
		},
	}
}

func zapNop() *zap.Logger { return zap.NewNop() }

func zapString(k, v string) zap.Field { return zap.String(k, v) }
