package server

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/signature"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// The upload results counted in rpm_ingestd_uploads_total{result}. The set is closed: uploadResult never returns
// anything else, and every value is exported from the start (at 0), so that dashboards and alerts see a series
// before the first such upload. Keep the list in docs/operations.md in step with this one.
const (
	resultCreated      = "created"      // 201: stored, or replaced with repo.overwrite
	resultExists       = "exists"       // 200: identical bytes were already stored, a safe retry
	resultConflict     = "conflict"     // 409: a different package with the same file name is stored
	resultUnauthorized = "unauthorized" // 401: missing or wrong Basic credentials
	resultForbidden    = "forbidden"    // 403: a peer or user that may not upload (server.permissions), or a spooled file outside spool_dir
	resultRateLimited  = "rate_limited" // 429: too many failed logins from the client's address
	resultBusy         = "busy"         // 503: every upload slot (server.max_concurrent_uploads) was taken
	resultStopping     = "stopping"     // 503: the daemon was stopping
	resultUnavailable  = "unavailable"  // 503: the storage (S3) did not answer; nothing was stored
	resultClientGone   = "client_gone"  // 499: the client closed the connection before the answer
	resultTimeout      = "timeout"      // 408: a direct upload sent too slowly
	resultTooLarge     = "too_large"    // 413: larger than server.max_upload_size
	resultInvalid      = "invalid"      // 400: not a (well-formed, intact) RPM
	resultBadRequest   = "bad_request"  // 400: anything else the client got wrong: checksum, no body, no header
	resultSignature    = "signature"    // 422: repo.require_signature refused the package's signature
	resultRejected     = "rejected"     // 422: a valid RPM we will not store (arch, dist tag, fields)
	resultNotFound     = "not_found"    // 404: the upload path names a channel that is not configured
	resultNoSpace      = "no_space"     // 507: the disk or its inodes are full
	resultError        = "error"        // 500 and anything unforeseen: our fault, see the log
)

// uploadResults lists every value of the result label, in the order docs/operations.md documents them.
var uploadResults = []string{
	resultCreated, resultExists, resultConflict, resultUnauthorized, resultForbidden, resultRateLimited,
	resultBusy, resultStopping, resultUnavailable, resultClientGone, resultTimeout, resultTooLarge, resultInvalid, resultBadRequest, resultSignature,
	resultRejected, resultNotFound, resultNoSpace, resultError,
}

// resultClasses are the values of the duration histogram's result_class label.
var resultClasses = []string{"2xx", "4xx", "5xx"}

// uploadResult names an upload's outcome for the result label. It starts from the status errorStatus chose, so
// the metrics and the answers cannot disagree (a new sentinel added there lands in the matching bucket here), and
// it splits a status only where an operator would act differently: a broken package is not a broken client, a
// refused signature is not a wrong arch, a full daemon is not a stopping one.
func uploadResult(status int, err error) string {
	switch status {
	case http.StatusCreated:
		return resultCreated
	case http.StatusOK:
		return resultExists
	case http.StatusConflict:
		return resultConflict
	case http.StatusUnauthorized:
		return resultUnauthorized
	case http.StatusForbidden:
		return resultForbidden
	case http.StatusTooManyRequests:
		return resultRateLimited
	case http.StatusServiceUnavailable:
		switch {
		case errors.Is(err, errBusy):
			return resultBusy
		case errors.Is(err, ingest.ErrUnavailable), errors.Is(err, tree.ErrUnavailable):
			return resultUnavailable
		}
		return resultStopping
	case statusClientClosed:
		return resultClientGone
	case http.StatusRequestTimeout:
		return resultTimeout
	case http.StatusRequestEntityTooLarge:
		return resultTooLarge
	case http.StatusBadRequest:
		if errors.Is(err, rpmmeta.ErrInvalidPackage) {
			return resultInvalid
		}
		return resultBadRequest
	case http.StatusUnprocessableEntity:
		if isSignatureError(err) {
			return resultSignature
		}
		return resultRejected
	case http.StatusNotFound:
		return resultNotFound
	case http.StatusInsufficientStorage:
		return resultNoSpace
	}
	return resultError
}

// isSignatureError reports whether the signature policy refused the package (ingest wraps its verdict).
func isSignatureError(err error) bool {
	for _, e := range []error{signature.ErrUnsigned, signature.ErrUnknownKey, signature.ErrBadSignature, signature.ErrUnparsable} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// resultClass is "2xx", "4xx" or "5xx" for the duration histogram: three series, whatever the result.
func resultClass(status int) string {
	return strconv.Itoa(status/100) + "xx"
}

// uploadBuckets (seconds) span a small package checked from the page cache to a large one sent over a slow link;
// beyond two minutes the idle and rate limits have usually cut a direct upload off.
var uploadBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// metrics are the HTTP layer's collectors and the /metrics handler. A nil *metrics (no Registerer) records
// nothing, so the handlers call it unconditionally. Its methods are safe for concurrent use.
type metrics struct {
	uploads  *prometheus.CounterVec
	dropped  prometheus.Counter
	received prometheus.Counter
	duration *prometheus.HistogramVec
	// queueWaits and queueTimeouts count uploads that found every slot taken and waited (server.queue_timeout),
	// and those of them whose wait ran out (answered 503, also counted as busy in uploads).
	queueWaits    prometheus.Counter
	queueTimeouts prometheus.Counter
}

// newMetrics registers the server's collectors with reg; nil reg means no metrics (and a nil *metrics).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rpm_ingestd_uploads_total",
			Help: "Uploads answered, by result: " + strings.Join(uploadResults, ", ") + ". Refusals by authentication and server.permissions (unauthorized, forbidden, rate_limited) are counted here too.",
		}, []string{"result"}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rpm_ingestd_upload_received_bytes_total",
			Help: "Upload bytes received: body bytes read (direct uploads, also of uploads cut off or refused later) or the size of the file the proxy spooled (header mode).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rpm_ingestd_refusals_dropped_total",
			Help: "Refused requests to routes that change the tree from a client over the refusal limit: answered 429 and not written to the audit trail.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rpm_ingestd_upload_duration_seconds",
			Help:    "Time from the upload handler's start to its answer, by status class, for uploads that passed authentication (refusals by authentication are only in rpm_ingestd_uploads_total).",
			Buckets: uploadBuckets,
		}, []string{"result_class"}),
		queueWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rpm_ingestd_upload_queue_waits_total",
			Help: "Uploads that found every slot (server.max_concurrent_uploads) taken and waited for one.",
		}),
		queueTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rpm_ingestd_upload_queue_timeouts_total",
			Help: "Uploads whose wait for a slot ran out (server.queue_timeout) and were answered 503.",
		}),
	}
	for _, c := range []prometheus.Collector{m.uploads, m.dropped, m.received, m.duration, m.queueWaits, m.queueTimeouts} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Every series exists from the start at 0: rate() and increase() over a series that appears with its first
	// event miss that event, and an alert on rejections would not see the first burst.
	for _, r := range uploadResults {
		m.uploads.WithLabelValues(r)
	}
	for _, c := range resultClasses {
		m.duration.WithLabelValues(c)
	}
	return m, nil
}

// observe records one answered upload.
func (m *metrics) observe(status int, err error, took time.Duration) {
	if m == nil {
		return
	}
	m.uploads.WithLabelValues(uploadResult(status, err)).Inc()
	m.duration.WithLabelValues(resultClass(status)).Observe(took.Seconds())
}

// queueWait records an upload that found every slot taken and starts to wait for one.
func (m *metrics) queueWait() {
	if m == nil {
		return
	}
	m.queueWaits.Inc()
}

// queueTimeout records a wait for a slot that ran out.
func (m *metrics) queueTimeout() {
	if m == nil {
		return
	}
	m.queueTimeouts.Inc()
}

// refused records an upload turned away before its handler ran (authentication). Other mutating routes share
// that middleware, so only requests to the upload path count.
func (m *metrics) refused(r *http.Request, uploadPath string, status int, err error) {
	if m == nil {
		return
	}
	if p := r.URL.Path; p != uploadPath && !strings.HasPrefix(p, uploadPath+"/") {
		return
	}
	m.uploads.WithLabelValues(uploadResult(status, err)).Inc()
}

// droppedRefusal counts a refusal that was answered 429 and not recorded (see Server.dropRefusal).
func (m *metrics) droppedRefusal() {
	if m == nil {
		return
	}
	m.dropped.Inc()
}

// countBody returns body wrapped so that every byte read adds to the received counter as it arrives: an upload
// cut off half-way still shows what it cost.
func (m *metrics) countBody(body io.Reader) io.Reader {
	if m == nil {
		return body
	}
	return countedBody{r: body, c: m.received}
}

// spooled adds the size of the file the proxy spooled (ingest.Request.Spooled): the ingester calls it once the
// file is open and known to be a regular file inside spool_dir, so a forged name is never counted, and the
// count costs no stat of its own.
func (m *metrics) spooled(size int64) {
	if m == nil {
		return
	}
	m.received.Add(float64(size))
}

// countedBody counts bytes read into a counter.
type countedBody struct {
	r io.Reader
	c prometheus.Counter
}

func (b countedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.c.Add(float64(n))
	}
	return n, err
}

// metricsHandler serves GET /metrics from g, or 404 when there is no gatherer. reg, when set, also gets the
// handler's own counters (scrapes, errors). A failing collector leaves the rest of the scrape intact: a partial
// answer is more useful to an operator than none, and the failure is logged.
func metricsHandler(g prometheus.Gatherer, reg prometheus.Registerer, log *zap.Logger) http.Handler {
	if g == nil {
		return http.NotFoundHandler()
	}
	h := promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      zap.NewStdLog(log),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
	})
	if reg == nil {
		return h
	}
	return promhttp.InstrumentMetricHandler(reg, h)
}
