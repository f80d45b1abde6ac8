package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
)

// blockingIngester holds every Ingest call until release gets a value (or is closed), and reports each entry on
// entered. It reads a direct upload's body first, as the real one does.
type blockingIngester struct {
	entered chan struct{}
	release chan struct{}
	// ctxErr records the request context's error seen when released; nil when it was still live.
	mu     sync.Mutex
	ctxErr []error
}

func newBlockingIngester() *blockingIngester {
	return &blockingIngester{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *blockingIngester) Ingest(ctx context.Context, req ingest.Request) (*ingest.Result, error) {
	if req.Body != nil {
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return nil, err
		}
	}
	b.entered <- struct{}{}
	<-b.release
	b.mu.Lock()
	b.ctxErr = append(b.ctxErr, ctx.Err())
	b.mu.Unlock()
	return &ingest.Result{
		Package:   &rpmmeta.Package{Name: "p", Version: "1", Release: "1.el9", Arch: "x86_64"},
		OSRelease: "9", Repos: []string{"/top/9/x86_64"}, Paths: []string{"9/x86_64/Packages/p-1-1.el9.x86_64.rpm"},
		Status: ingest.Created,
	}, nil
}

// waitEntered waits for n Ingest calls to have started; the deadline only keeps a broken server from hanging
// the test.
func (b *blockingIngester) waitEntered(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-b.entered:
		case <-time.After(30 * time.Second):
			t.Fatal("Ingest was not called")
		}
	}
}

func newLimitedServer(t *testing.T, ing Ingester, mod func(*Options)) *Server {
	t.Helper()
	opts := Options{UploadPath: "/upload", UploadHeader: "X-Package-Name", DirectUpload: true, MaxUploadSize: 1 << 20,
		RepoURL: "/repo", TopDir: "/top", MaxConcurrentUploads: 2, Auth: allowAll{}}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts, ing, &recordingIndexer{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readTracker is a request body that records whether anything read it.
type readTracker struct {
	r    io.Reader
	read chan struct{} // closed at the first Read
	once sync.Once
}

func newReadTracker(body string) *readTracker {
	return &readTracker{r: strings.NewReader(body), read: make(chan struct{})}
}

func (b *readTracker) Read(p []byte) (int, error) {
	b.once.Do(func() { close(b.read) })
	return b.r.Read(p)
}

func (b *readTracker) wasRead() bool {
	select {
	case <-b.read:
		return true
	default:
		return false
	}
}

// TestUploadOverCapWaitsForSlot: with max_concurrent_uploads uploads in progress, one more neither reaches the
// ingester nor has its body read: it waits, and is placed (201) as soon as a slot is free. Both upload modes share
// the cap. The waits are counted in /metrics.
func TestUploadOverCapWaitsForSlot(t *testing.T) {
	for _, mode := range []struct {
		name string
		hdr  map[string]string
	}{
		{"direct", nil},
		{"header", map[string]string{"X-Package-Name": "/spool/0000000001"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ing := newBlockingIngester()
			reg := prometheus.NewRegistry()
			h := newLimitedServer(t, ing, func(o *Options) { o.QueueTimeout = time.Hour; o.Registerer, o.Gatherer = reg, reg }).Routes()
			do := func(body io.Reader) *httptest.ResponseRecorder {
				req := httptest.NewRequest("PUT", "/upload", body)
				for k, v := range mode.hdr {
					req.Header.Set(k, v)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				return rec
			}
			results := make(chan *httptest.ResponseRecorder, 3)
			for range 2 {
				go func() { results <- do(strings.NewReader("body")) }()
			}
			ing.waitEntered(t, 2)

			third := newReadTracker("body")
			go func() { results <- do(third) }()
			// The third upload is queued: it must show up as a wait, with its body unread and the ingester not
			// called. Poll the counter (the only sign that the handler reached the queue).
			for waitsCounted(t, reg) < 1 {
				time.Sleep(time.Millisecond)
			}
			select {
			case rec := <-results:
				t.Fatalf("an upload was answered while both slots were held: %d %q", rec.Code, rec.Body)
			default:
			}
			if third.wasRead() {
				t.Fatal("the queued upload's body was read before it had a slot")
			}
			if n := len(ing.entered); n != 0 {
				t.Fatal("the queued upload reached the ingester before it had a slot")
			}

			ing.release <- struct{}{} // one of the two finishes and frees its slot: the queued one takes it
			if rec := <-results; rec.Code != http.StatusCreated {
				t.Fatalf("released upload: %d %s", rec.Code, rec.Body)
			}
			ing.waitEntered(t, 1)
			close(ing.release)
			for range 2 {
				if rec := <-results; rec.Code != http.StatusCreated {
					t.Errorf("upload after release: %d %s", rec.Code, rec.Body)
				}
			}
			if got := counterValue(t, reg, "rpm_ingestd_upload_queue_timeouts_total"); got != 0 {
				t.Errorf("queue time-outs = %v, want 0", got)
			}
		})
	}
}

// TestQueueTimeoutAnswers503: an upload that waits server.queue_timeout without a slot is answered 503 with
// Retry-After and one line naming both keys, without its body read or the ingester called; 0 refuses at once.
// Both the wait and the time-out are counted.
func TestQueueTimeoutAnswers503(t *testing.T) {
	for _, timeout := range []time.Duration{0, 20 * time.Millisecond} {
		t.Run(timeout.String(), func(t *testing.T) {
			ing := newBlockingIngester()
			reg := prometheus.NewRegistry()
			h := newLimitedServer(t, ing, func(o *Options) { o.QueueTimeout = timeout; o.Registerer, o.Gatherer = reg, reg }).Routes()
			results := make(chan int, 2)
			for range 2 {
				go func() {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, httptest.NewRequest("PUT", "/upload", strings.NewReader("body")))
					results <- rec.Code
				}()
			}
			ing.waitEntered(t, 2)

			body := newReadTracker("body")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("PUT", "/upload", body))
			msg := rec.Body.String()
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != retryAfter ||
				!strings.Contains(msg, "server.max_concurrent_uploads") || !strings.Contains(msg, "server.queue_timeout") ||
				strings.Count(msg, "\n") != 1 {
				t.Fatalf("upload over the cap: %d Retry-After=%q %q; want 503, Retry-After %s, one line naming both keys",
					rec.Code, rec.Header().Get("Retry-After"), msg, retryAfter)
			}
			if body.wasRead() || len(ing.entered) != 0 {
				t.Fatal("the refused upload was read or reached the ingester")
			}
			wantWaits := 1.0
			if timeout == 0 {
				wantWaits = 0 // no wait at all: refused at once, counted only as busy
			}
			if got := waitsCounted(t, reg); got != wantWaits {
				t.Errorf("queue waits = %v, want %v", got, wantWaits)
			}
			if got := counterValue(t, reg, "rpm_ingestd_upload_queue_timeouts_total"); got != wantWaits {
				t.Errorf("queue time-outs = %v, want %v", got, wantWaits)
			}
			close(ing.release)
			for range 2 {
				if code := <-results; code != http.StatusCreated {
					t.Errorf("held upload: %d", code)
				}
			}
		})
	}
}

// TestQueuedUploadClientGone: a client that goes away while its upload waits leaves the queue at once (its slot
// is never taken), so a burst of abandoned uploads cannot hold slots.
func TestQueuedUploadClientGone(t *testing.T) {
	ing := newBlockingIngester()
	reg := prometheus.NewRegistry()
	s := newLimitedServer(t, ing, func(o *Options) { o.QueueTimeout = time.Hour; o.Registerer, o.Gatherer = reg, reg })
	h := s.Routes()
	for range 2 {
		go func() {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("PUT", "/upload", strings.NewReader("body")))
		}()
	}
	ing.waitEntered(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("PUT", "/upload", strings.NewReader("body")).WithContext(ctx))
		done <- rec.Code
	}()
	for waitsCounted(t, reg) < 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	// The client went away while queued: 499 client_gone, not a busy 503 (issue 18 item 13).
	if code := <-done; code != statusClientClosed {
		t.Errorf("abandoned queued upload: %d, want %d", code, statusClientClosed)
	}
	close(ing.release)
	if err := s.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(s.slots.c) != 0 {
		t.Errorf("%d slots still taken after every upload ended", len(s.slots.c))
	}
}

func waitsCounted(t *testing.T, g prometheus.Gatherer) float64 {
	t.Helper()
	return counterValue(t, g, "rpm_ingestd_upload_queue_waits_total")
}

// counterValue reads one unlabelled counter from g.
func counterValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not exported", name)
	return 0
}

// TestNoCapWhenZero: MaxConcurrentUploads 0 means no cap (the config refuses 0; library users may want none).
func TestNoCapWhenZero(t *testing.T) {
	ing := newBlockingIngester()
	h := newLimitedServer(t, ing, func(o *Options) { o.MaxConcurrentUploads = 0 }).Routes()
	results := make(chan int, 5)
	for range 5 {
		go func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("PUT", "/upload", strings.NewReader("body")))
			results <- rec.Code
		}()
	}
	ing.waitEntered(t, 5)
	close(ing.release)
	for range 5 {
		if code := <-results; code != http.StatusCreated {
			t.Errorf("status %d", code)
		}
	}
}

// trickle opens a raw connection, sends a direct upload's headers announcing size bytes, then one body byte per
// every interval until the server answers or closes. It returns the status line received (or "" when the
// connection closed without one) and whether the connection was closed after it. It gives up after giveUp, which
// only bounds a broken server.
func trickle(t *testing.T, addr string, size int, every, giveUp time.Duration) (status string, closed bool) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return "", false
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /upload/slow.rpm HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte{0xed}); err != nil {
					return
				}
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(giveUp))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", false
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// After the answer the server must close the connection: the next read ends with EOF, or a reset when the
	// server closed with our trickled bytes unread, not with our own deadline.
	_, err = br.ReadByte()
	return resp.Status + " " + string(b), errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// TestSlowDirectUploadsAreCutOff: 50 clients that trickle a byte now and then (as in the review: a byte every
// 4 s kept 50 connections open for 80 s) are each answered 408 and disconnected, and leave no spool file. The
// configured bounds are short so the test is quick; nothing asserts how long anything took, and the trickle
// would go on for hours if the server let it.
func TestSlowDirectUploadsAreCutOff(t *testing.T) {
	for _, tc := range []struct {
		name  string
		every time.Duration
		want  string
	}{
		// Faster than the idle timeout, far slower than the minimum rate.
		{"below the minimum rate", 100 * time.Millisecond, "408 Request Timeout reading the upload body: upload too slow: nothing received for 500ms (server.upload_idle_timeout)"},
		// Longer pauses than the idle timeout; the minimum rate is off.
		{"idle", time.Hour, "408 Request Timeout reading the upload body: upload too slow: nothing received for 500ms (server.upload_idle_timeout)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) {
				o.MaxConcurrentUploads = 100
				o.UploadIdleTimeout = 500 * time.Millisecond
				o.UploadMinRate = 1000
				if tc.every == time.Hour {
					o.UploadMinRate = 0
				}
			})
			srv := httptest.NewServer(f.h)
			defer srv.Close()
			var wg sync.WaitGroup
			for range 50 {
				wg.Go(func() {
					status, closed := trickle(t, srv.Listener.Addr().String(), 100_000, tc.every, 60*time.Second)
					if !strings.HasPrefix(status, tc.want) || !strings.Contains(status, "server.upload_idle_timeout") || !closed {
						t.Errorf("got %q, closed=%v; want %q… and the connection closed", status, closed, tc.want)
					}
				})
			}
			wg.Wait()
			if entries, _ := os.ReadDir(f.spool); len(entries) != 0 {
				t.Errorf("spool not empty: %v", entries)
			}
		})
	}
}

// TestRateBodyLetsNormalUploadsThrough: a body sent at full speed is stored, and the deadline set while receiving
// is lifted once the body is in, so a slow check afterwards is not cut off (net/http's background read would
// cancel the request's context when the deadline fired).
func TestRateBodyLetsNormalUploadsThrough(t *testing.T) {
	t.Run("real ingester", func(t *testing.T) {
		f := newFixture(t, func(o *Options) {
			o.UploadIdleTimeout = 200 * time.Millisecond
			o.UploadMinRate = 1000
		})
		srv := httptest.NewServer(f.h)
		defer srv.Close()
		resp, err := http.Post(srv.URL+"/upload", "application/x-rpm", bytes.NewReader(hello(t, "")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
	t.Run("slow check after the body", func(t *testing.T) {
		ing := newBlockingIngester()
		s := newLimitedServer(t, ing, func(o *Options) {
			o.UploadIdleTimeout = 200 * time.Millisecond
			o.UploadMinRate = 1000
		})
		srv := httptest.NewServer(s.Routes())
		defer srv.Close()
		done := make(chan int, 1)
		go func() {
			resp, err := http.Post(srv.URL+"/upload", "application/x-rpm", strings.NewReader("body"))
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		ing.waitEntered(t, 1)
		time.Sleep(1 * time.Second) // well past both deadlines that applied while receiving
		close(ing.release)
		if code := <-done; code != http.StatusCreated {
			t.Errorf("status %d", code)
		}
		if fmt.Sprint(ing.ctxErr) != "[<nil>]" {
			t.Errorf("request context ended during the check: %v", ing.ctxErr)
		}
	})
}

// TestWaitForHandlers: Wait returns only once every running handler has returned, or when its context ends.
func TestWaitForHandlers(t *testing.T) {
	ing := newBlockingIngester()
	s := newLimitedServer(t, ing, nil)
	h := s.Routes()
	if err := s.Wait(context.Background()); err != nil {
		t.Fatalf("Wait with nothing running: %v", err)
	}
	rec := httptest.NewRecorder()
	go h.ServeHTTP(rec, httptest.NewRequest("PUT", "/upload", strings.NewReader("body")))
	ing.waitEntered(t, 1)
	if n := s.InFlight(); n != 1 {
		t.Errorf("InFlight = %d, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with a handler blocked = %v, want a deadline error", err)
	}
	close(ing.release)
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Wait(ctx); err != nil {
		t.Errorf("Wait after release: %v", err)
	}
	// Wait's return is ordered after the handler's last write (through the in-flight count's lock), so reading
	// the recorder here is race-free, and it must hold the whole answer.
	if rec.Code != http.StatusCreated || !strings.HasPrefix(rec.Body.String(), "OK") {
		t.Errorf("Wait returned before the handler had answered: %d %q", rec.Code, rec.Body)
	}
	if n := s.InFlight(); n != 0 {
		t.Errorf("InFlight = %d, want 0", n)
	}
}

// TestLimitErrorMapping: the errors of this file map to their statuses, with Retry-After on 503.
func TestLimitErrorMapping(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		retryAfter string
		body       string
	}{
		{"busy", busyError(16, 30*time.Second), 503, retryAfter, "busy: 16 uploads are already being received or checked (server.max_concurrent_uploads) and none finished within 30s (server.queue_timeout)"},
		{"stopping", fmt.Errorf("%w: place: %w", ErrStopping, context.Canceled), 503, retryAfter, "the daemon is stopping; retry in a few seconds"},
		{"slow", fmt.Errorf("receive upload: %w", fmt.Errorf("%w: nothing received", errSlowUpload)), 408, "", "receive upload: upload too slow"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newLimitedServer(t, failingIngester{tc.err}, nil)
			rec := httptest.NewRecorder()
			s.Routes().ServeHTTP(rec, httptest.NewRequest("PUT", "/upload", strings.NewReader("x")))
			if rec.Code != tc.status || rec.Header().Get("Retry-After") != tc.retryAfter || !strings.HasPrefix(rec.Body.String(), tc.body) {
				t.Errorf("got %d Retry-After=%q %q; want %d %q %q", rec.Code, rec.Header().Get("Retry-After"), rec.Body, tc.status, tc.retryAfter, tc.body)
			}
		})
	}
}
