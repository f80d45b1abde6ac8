package notify

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the rpm_ingestd_notify_* collectors. The webhook label is the webhook's index in notify.webhooks,
// never its URL (which holds tokens), so cardinality is the number of configured webhooks.
type metrics struct {
	deliveries *prometheus.CounterVec // {webhook, format, result="delivered"|"failed"}: messages by final outcome
	drops      *prometheus.CounterVec // {webhook, format}: messages never delivered, whatever the reason
}

// newMetrics registers the collectors with reg (nil: unregistered, still counting) and creates every series at
// zero, so dashboards and alerts see the families before the first message.
func newMetrics(reg prometheus.Registerer, hooks []*hook) (*metrics, error) {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rpm_ingestd_notify_deliveries_total",
			Help: "Notification messages by final outcome: delivered (a 2xx answer) or failed (given up after retries, or refused with a 4xx).",
		}, []string{"webhook", "format", "result"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rpm_ingestd_notify_dropped_total",
			Help: "Notification messages never delivered: queue full, failed after retries, or still queued at shutdown.",
		}, []string{"webhook", "format"}),
	}
	for _, h := range hooks {
		m.deliveries.WithLabelValues(h.label, string(h.Format), "delivered")
		m.deliveries.WithLabelValues(h.label, string(h.Format), "failed")
		m.drops.WithLabelValues(h.label, string(h.Format))
	}
	if reg != nil {
		var errs []error
		for _, c := range []prometheus.Collector{m.deliveries, m.drops} {
			if err := reg.Register(c); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) delivered(h *hook) {
	m.deliveries.WithLabelValues(h.label, string(h.Format), "delivered").Inc()
}

// failed counts a message given up after its attempts; it is dropped too.
func (m *metrics) failed(h *hook) {
	m.deliveries.WithLabelValues(h.label, string(h.Format), "failed").Inc()
	m.dropped(h)
}

func (m *metrics) dropped(h *hook) {
	m.drops.WithLabelValues(h.label, string(h.Format)).Inc()
}
