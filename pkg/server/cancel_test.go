package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/registry"
)

// TestCancelledUploadCause: issue 18 item 13. A request whose context is cancelled is told apart by the cause: the
// daemon's stop (ErrStopping, what cmd cancels with) is 503 "stopping"; anything else is a client that went away,
// 499 and result "client_gone", in the answer, the audit trail and uploads_total, and never counted as a stop.
func TestCancelledUploadCause(t *testing.T) {
	tests := []struct {
		name   string
		cancel func() context.Context
		status int
		result string
		body   string
	}{
		{"client went away", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background()) // what net/http does when the connection closes
			cancel()
			return ctx
		}, 499, resultClientGone, "the client closed the request"},
		{"daemon stopping", func() context.Context {
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(ErrStopping)
			return ctx
		}, 503, resultStopping, "the daemon is stopping; retry in a few seconds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			auditPath := filepath.Join(t.TempDir(), "audit.log")
			rf := &regFixture{audit: auditPath}
			rf.fixture = newFixture(t, func(o *Options) {
				o.Registerer, o.Gatherer = reg, reg
				rf.index = registry.NewIndex(o.TopDir, locate)
				a, err := registry.Open(auditPath, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { a.Close() })
				o.Registry = registry.New(a, rf.index)
			})
			req := httptest.NewRequest("PUT", "/upload/hello.rpm", bytes.NewReader(hello(t, ""))).WithContext(tc.cancel())
			rec := httptest.NewRecorder()
			rf.h.ServeHTTP(rec, req)
			if rec.Code != tc.status || !strings.HasPrefix(rec.Body.String(), tc.body) {
				t.Fatalf("answer %d %q, want %d %q", rec.Code, rec.Body, tc.status, tc.body)
			}
			lines := rf.lines(t)
			if len(lines) != 1 || lines[0].Status != tc.status || lines[0].Result != tc.result {
				t.Fatalf("audit %+v, want one line with status %d result %s", lines, tc.status, tc.result)
			}
			fams := scrape(t, rf.fixture)
			for _, r := range []string{resultClientGone, resultStopping} {
				want := 0.0
				if r == tc.result {
					want = 1
				}
				if got := value(t, fams, "rpm_ingestd_uploads_total", map[string]string{"result": r}); got != want {
					t.Errorf("uploads_total{result=%q} = %v, want %v", r, got, want)
				}
			}
			if files, _ := filepath.Glob(filepath.Join(rf.top, "*", "*", "Packages", "*")); len(files) != 0 {
				t.Errorf("a cancelled upload left %v", files)
			}
			if ents, _ := os.ReadDir(rf.spool); len(ents) != 0 {
				t.Errorf("a cancelled upload left %d spool files", len(ents))
			}
		})
	}
}

// TestWithCause: the wrapping is idempotent, leaves other errors alone, and does not blame the client or the stop
// for a cancellation the request's context did not see.
func TestWithCause(t *testing.T) {
	live := httptest.NewRequest("GET", "/", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	gone := live.WithContext(ctx)
	other := errors.New("disk on fire")
	if got := withCause(gone, other); got != other {
		t.Errorf("withCause(other) = %v", got)
	}
	if got := withCause(live, context.Canceled); errorStatus(got) != 500 {
		t.Errorf("cancelled while the request is live: status %d, want 500", errorStatus(got))
	}
	body := fmt.Errorf("receive upload: %w", &ingest.Error{Kind: ingest.ErrBadUpload, Msg: "reading the upload body: use of closed network connection"})
	body = errors.Join(body, net.ErrClosed) // what the ingest.Error's cause unwraps to
	checksum := &ingest.Error{Kind: ingest.ErrBadUpload, Msg: "checksum mismatch"}
	if got := withCause(gone, checksum); got != error(checksum) {
		t.Errorf("checksum mismatch, client gone: %v, want the 400 unchanged", got)
	}
	sctx, scancel := context.WithCancelCause(context.Background())
	scancel(ErrStopping)
	if got := withCause(live.WithContext(sctx), body); errorStatus(got) != 503 || uploadResult(503, got) != resultStopping {
		t.Errorf("body cut by the stop: %v (status %d), want 503 stopping", got, errorStatus(got))
	}
	if got := withCause(gone, body); errorStatus(got) != statusClientClosed {
		t.Errorf("body broken, client gone: %v (status %d), want 499", got, errorStatus(got))
	}
	if got := withCause(live, body); got != error(body) {
		t.Errorf("body broken, request live: %v, want the 400 unchanged", got)
	}
	once := withCause(gone, fmt.Errorf("place: %w", context.Canceled))
	if twice := withCause(gone, once); twice != once || errorStatus(once) != statusClientClosed {
		t.Errorf("withCause twice = %v (status %d)", twice, errorStatus(once))
	}
}
