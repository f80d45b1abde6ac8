package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/signature"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// TestUploadResult: every error the handlers can meet goes through errorStatus and then uploadResult, and lands
// on a documented label value; the label follows the status, so the two cannot disagree.
func TestUploadResult(t *testing.T) {
	rejected := func(cause error) error {
		return fmt.Errorf("ingest: %w", errors.Join(ingest.ErrRejected, fmt.Errorf("hello: %w", cause)))
	}
	tests := []struct {
		name   string
		err    error
		status int
		result string
	}{
		{"unauthorized", fmt.Errorf("%w: send credentials", auth.ErrUnauthorized), 401, resultUnauthorized},
		{"auth forbidden", fmt.Errorf("%w: not local", auth.ErrForbidden), 403, resultForbidden},
		{"spool forbidden", &ingest.Error{Kind: ingest.ErrForbidden, Msg: "outside"}, 403, resultForbidden},
		{"rate limited", &auth.LimitError{}, 429, resultRateLimited},
		{"busy", busyError(4, time.Second), 503, resultBusy},
		{"stopping", fmt.Errorf("%w: place: %w", ErrStopping, context.Canceled), 503, resultStopping},
		{"storage unavailable", &ingest.Error{Kind: ingest.ErrUnavailable, Msg: "s3 down"}, 503, resultUnavailable},
		{"tree unavailable", fmt.Errorf("remove: %w", tree.ErrUnavailable), 503, resultUnavailable},
		{"client gone", fmt.Errorf("%w: place: %w", errClientGone, context.Canceled), 499, resultClientGone},
		{"cancelled by us", fmt.Errorf("place: %w", context.Canceled), 500, resultError},
		{"slow", fmt.Errorf("receive: %w", errSlowUpload), 408, resultTimeout},
		{"too large by cap", &http.MaxBytesError{Limit: 1}, 413, resultTooLarge},
		{"too large by size", &ingest.Error{Kind: ingest.ErrTooLarge, Msg: "big"}, 413, resultTooLarge},
		{"invalid rpm", fmt.Errorf("x: %w", rpmmeta.ErrInvalidPackage), 400, resultInvalid},
		{"bad upload", &ingest.Error{Kind: ingest.ErrBadUpload, Msg: "checksum mismatch"}, 400, resultBadRequest},
		{"missing header", fmt.Errorf("%w: X-Package-Name", errMissingHeader), 400, resultBadRequest},
		{"conflict", &ingest.Error{Kind: ingest.ErrExists, Msg: "exists"}, 409, resultConflict},
		{"arch", &ingest.Error{Kind: ingest.ErrRejected, Msg: "arch"}, 422, resultRejected},
		{"unsigned", rejected(signature.ErrUnsigned), 422, resultSignature},
		{"unknown key", rejected(signature.ErrUnknownKey), 422, resultSignature},
		{"bad signature", rejected(signature.ErrBadSignature), 422, resultSignature},
		{"unparsable signature", rejected(signature.ErrUnparsable), 422, resultSignature},
		{"unknown channel", &ingest.Error{Kind: ingest.ErrUnknownChannel, Msg: "channel"}, 404, resultNotFound},
		{"no space", &ingest.Error{Kind: ingest.ErrNoSpace, Msg: "full"}, 507, resultNoSpace},
		{"ours", errors.New("open /x: permission denied"), 500, resultError},
	}
	seen := map[string]bool{resultCreated: true, resultExists: true} // the two successes are not errors
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status := errorStatus(tc.err)
			if got := uploadResult(status, tc.err); status != tc.status || got != tc.result {
				t.Errorf("status %d result %q, want %d %q", status, got, tc.status, tc.result)
			}
			seen[tc.result] = true
		})
	}
	for _, tc := range []struct {
		status int
		want   string
	}{{201, resultCreated}, {200, resultExists}, {418, resultError}} {
		if got := uploadResult(tc.status, nil); got != tc.want {
			t.Errorf("uploadResult(%d) = %q, want %q", tc.status, got, tc.want)
		}
	}
	// Every documented value is reachable by some error, and nothing undocumented is produced.
	for _, r := range uploadResults {
		if !seen[r] {
			t.Errorf("result %q is documented but no case above produces it", r)
		}
	}
	for r := range seen {
		if !slices.Contains(uploadResults, r) {
			t.Errorf("result %q is produced but not in uploadResults", r)
		}
	}
}

// metricsFixture is the real server (real ingester) with a fresh registry behind /metrics.
func metricsFixture(t *testing.T, a Authorizer) (*fixture, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	f := newFixture(t, func(o *Options) {
		o.Registerer, o.Gatherer = reg, reg
		o.SpoolDir = filepath.Join(filepath.Dir(o.TopDir), "incoming") // newFixture's spool, as main passes it
		if a != nil {
			o.Auth = a
		}
	})
	return f, reg
}

// scrape fetches GET /metrics through the routes and parses the text exposition.
func scrape(t *testing.T, f *fixture) map[string]*dto.MetricFamily {
	t.Helper()
	rec := f.do(t, "GET", "/metrics", nil, nil)
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, rec.Body)
	}
	return fams
}

// value returns the counter or the histogram's count of the series of fam whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, fam string, want map[string]string) float64 {
	t.Helper()
	mf, ok := fams[fam]
	if !ok {
		t.Fatalf("no family %s in the scrape", fam)
	}
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("no series %s%v in the scrape", fam, want)
	return 0
}

// TestUploadMetrics: after a scripted set of uploads, the counters in a parsed scrape equal what was sent: each
// result once, the bytes read or spooled, and the duration histogram's count per status class.
func TestUploadMetrics(t *testing.T) {
	f, _ := metricsFixture(t, nil)

	// Every result is exported at 0 before any upload.
	before := scrape(t, f)
	for _, r := range uploadResults {
		if v := value(t, before, "rpm_ingestd_uploads_total", map[string]string{"result": r}); v != 0 {
			t.Errorf("result %q starts at %v", r, v)
		}
	}
	for _, c := range resultClasses {
		if v := value(t, before, "rpm_ingestd_upload_duration_seconds", map[string]string{"result_class": c}); v != 0 {
			t.Errorf("class %q starts at %v", c, v)
		}
	}

	pkg := hello(t, "")
	spooledPkg := testrpm.Build(t, testrpm.Spec{Name: "spooled", Release: "1.el9", Arch: "x86_64"})
	uploads := []struct {
		body   []byte
		hdr    map[string]string
		status int
		read   int // body bytes the handler reads, or the spooled file's size
	}{
		{pkg, nil, 201, len(pkg)},
		{pkg, nil, 200, len(pkg)},
		{hello(t, "other"), nil, 409, len(hello(t, "other"))},
		{[]byte("junk"), nil, 400, 4},
		{testrpm.Build(t, testrpm.Spec{Name: "n", Release: "1", Arch: "x86_64"}), nil, 422, len(testrpm.Build(t, testrpm.Spec{Name: "n", Release: "1", Arch: "x86_64"}))},
		{testrpm.Build(t, testrpm.Spec{Name: "s", Release: "1.el9", Arch: "s390x"}), nil, 422, len(testrpm.Build(t, testrpm.Spec{Name: "s", Release: "1.el9", Arch: "s390x"}))},
		{bytes.Repeat([]byte("x"), 1<<20+1), nil, 413, 0}, // refused by Content-Length: nothing read
		{nil, map[string]string{"X-Package-Name": f.spoolFile(t, spooledPkg)}, 201, len(spooledPkg)},
		{nil, map[string]string{"X-Package-Name": "/etc/passwd"}, 403, 0}, // outside the spool: not counted
	}
	var wantBytes int
	for i, u := range uploads {
		rec := f.do(t, "PUT", "/upload", u.body, u.hdr)
		if rec.Code != u.status {
			t.Fatalf("upload %d: %d %s, want %d", i, rec.Code, rec.Body, u.status)
		}
		wantBytes += u.read
	}

	fams := scrape(t, f)
	want := map[string]float64{resultCreated: 2, resultExists: 1, resultConflict: 1, resultInvalid: 1, resultRejected: 2, resultTooLarge: 1, resultForbidden: 1}
	for _, r := range uploadResults {
		if got := value(t, fams, "rpm_ingestd_uploads_total", map[string]string{"result": r}); got != want[r] {
			t.Errorf("uploads_total{result=%q} = %v, want %v", r, got, want[r])
		}
	}
	if got := value(t, fams, "rpm_ingestd_upload_received_bytes_total", nil); got != float64(wantBytes) {
		t.Errorf("received bytes %v, want %d", got, wantBytes)
	}
	for class, n := range map[string]float64{"2xx": 3, "4xx": 6, "5xx": 0} {
		if got := value(t, fams, "rpm_ingestd_upload_duration_seconds", map[string]string{"result_class": class}); got != n {
			t.Errorf("duration{result_class=%q} count %v, want %v", class, got, n)
		}
	}
	// The handler's own instrumentation is there too: the scrapes above were counted.
	if got := value(t, fams, "promhttp_metric_handler_requests_total", map[string]string{"code": "200"}); got < 1 {
		t.Errorf("promhttp_metric_handler_requests_total{code=200} = %v", got)
	}
}

// TestRefusedUploadsCounted: uploads turned away by authentication count under their result and read no bytes;
// they are not in the duration histogram (the handler never ran).
func TestRefusedUploadsCounted(t *testing.T) {
	tests := []struct {
		err    error
		result string
	}{
		{fmt.Errorf("%w: send credentials", auth.ErrUnauthorized), resultUnauthorized},
		{fmt.Errorf("%w: not local", auth.ErrForbidden), resultForbidden},
		{&auth.LimitError{}, resultRateLimited},
	}
	for _, tc := range tests {
		t.Run(tc.result, func(t *testing.T) {
			f, reg := metricsFixture(t, denyWith{tc.err})
			f.do(t, "PUT", "/upload/x.rpm", hello(t, ""), nil)
			f.do(t, "POST", "/upload", hello(t, ""), nil)
			fams := scrape(t, f)
			if got := value(t, fams, "rpm_ingestd_uploads_total", map[string]string{"result": tc.result}); got != 2 {
				t.Errorf("uploads_total{result=%q} = %v, want 2", tc.result, got)
			}
			if got := value(t, fams, "rpm_ingestd_upload_received_bytes_total", nil); got != 0 {
				t.Errorf("received bytes %v for refused uploads, want 0", got)
			}
			if n := testutil.CollectAndCount(reg, "rpm_ingestd_upload_duration_seconds"); n != len(resultClasses) {
				t.Errorf("%d duration series, want %d", n, len(resultClasses))
			}
			if got := value(t, fams, "rpm_ingestd_upload_duration_seconds", map[string]string{"result_class": "4xx"}); got != 0 {
				t.Errorf("refusals observed in the duration histogram: count %v", got)
			}
		})
	}
}

// TestRefusedOtherRoutesNotCounted: the mutating middleware will also guard routes that are not uploads
// (delete, promote); their refusals are not uploads.
func TestRefusedOtherRoutesNotCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/api/v1/packages/x", "/uploads", "/uploadx/y"} {
		m.refused(httptest.NewRequest("DELETE", target, nil), "/upload", 401, auth.ErrUnauthorized)
	}
	m.refused(httptest.NewRequest("PUT", "/upload/a.rpm", nil), "/upload", 401, auth.ErrUnauthorized)
	if got := testutil.ToFloat64(m.uploads.WithLabelValues(resultUnauthorized)); got != 1 {
		t.Errorf("unauthorized = %v, want 1 (only the upload)", got)
	}
}

// TestSpooledBytes: only a regular file inside the spool directory is counted, with the size the ingester found
// when it opened the file (also when the package is then refused); nothing is counted for a name the ingester
// refuses, never followed through a symlink that leaves the spool.
func TestSpooledBytes(t *testing.T) {
	tests := []struct {
		name string
		path func(spool, dir string) string // the name sent in the upload header
		want float64
	}{
		{"regular file", func(spool, _ string) string { return filepath.Join(spool, "0000000001") }, 100},
		{"outside", func(_, dir string) string { return filepath.Join(dir, "outside") }, 0},
		{"dot-dot", func(spool, _ string) string { return spool + "/../outside" }, 0},
		{"relative", func(string, string) string { return "incoming/0000000001" }, 0},
		{"symlink", func(spool, _ string) string { return filepath.Join(spool, "link") }, 0},
		{"directory", func(spool, _ string) string { return filepath.Join(spool, "sub") }, 0},
		{"the spool itself", func(spool, _ string) string { return spool }, 0},
		{"missing", func(spool, _ string) string { return filepath.Join(spool, "none") }, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := metricsFixture(t, nil)
			dir := filepath.Dir(f.spool)
			os.WriteFile(filepath.Join(f.spool, "0000000001"), make([]byte, 100), 0o600) // not an rpm: a 400, counted
			os.WriteFile(filepath.Join(dir, "outside"), make([]byte, 1000), 0o600)
			os.Symlink(filepath.Join(dir, "outside"), filepath.Join(f.spool, "link"))
			os.Mkdir(filepath.Join(f.spool, "sub"), 0o755)
			if rec := f.do(t, "PUT", "/upload", nil, map[string]string{"X-Package-Name": tc.path(f.spool, dir)}); rec.Code < 400 {
				t.Fatalf("upload: %d %s, want a refusal", rec.Code, rec.Body)
			}
			if got := value(t, scrape(t, f), "rpm_ingestd_upload_received_bytes_total", nil); got != tc.want {
				t.Errorf("counted %v, want %v", got, tc.want)
			}
		})
	}
}

// TestNoRegistry: without a Registerer nothing is recorded and nothing breaks; without a Gatherer /metrics is 404.
func TestNoRegistry(t *testing.T) {
	f := newFixture(t, nil)
	if rec := f.do(t, "PUT", "/upload", hello(t, ""), nil); rec.Code != 201 {
		t.Fatalf("upload without metrics: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(t, "GET", "/metrics", nil, nil); rec.Code != 404 {
		t.Errorf("GET /metrics without a gatherer: %d", rec.Code)
	}
}

// TestDuplicateRegistration: a registry that already holds the server's families is a construction error, not a
// panic.
func TestDuplicateRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := newMetrics(reg); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{UploadPath: "/upload", Auth: allowAll{}, Registerer: reg}, nil, &recordingIndexer{}, nil)
	if err == nil || !strings.Contains(err.Error(), "server metrics") {
		t.Fatalf("New with a registry already holding the families: %v", err)
	}
}
