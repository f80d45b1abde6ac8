package indexer

import (
	"errors"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names are fixed project-wide (dashboards and alert rules use them);
// see newMetrics for their meaning.
const (
	metricRuns        = "rpm_ingestd_index_runs_total"
	metricDuration    = "rpm_ingestd_index_duration_seconds"
	metricReposDirty  = "rpm_ingestd_repos_dirty"
	metricLastSuccess = "rpm_ingestd_repo_last_success_timestamp_seconds"
	metricPending     = "rpm_ingestd_repo_pending_changes"
	metricDirtySince  = "rpm_ingestd_repo_dirty_since_timestamp_seconds"
	metricPackages    = "rpm_ingestd_repo_packages"
	metricInFlight    = "rpm_ingestd_index_runs_in_flight"
	metricConflicts   = "rpm_ingestd_publish_conflicts_total"
)

// NewPublishConflicts registers rpm_ingestd_publish_conflicts_total on reg, for Createrepo.Conflicts. On error (a
// collector already registered) it returns the counter anyway, unregistered.
func NewPublishConflicts(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricConflicts,
		Help: "Publishes that lost to another writer (repomd.xml changed since the publish began: an If-Match 412 on s3) " +
			"and were redone from the new generation, or failed after too many redos."}, []string{"repo"})
	return c, reg.Register(c)
}

// durationBuckets span createrepo_c's range: ~0.05 s for a small repository
// to minutes for 20,000+ packages (TECH-NOTES), up to the default timeout.
var durationBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// metrics holds the indexer's collectors. The counter and histogram are
// updated as runs end; every gauge is computed from the Scheduler's state
// at scrape time (Collect), so they can never drift from it and no series
// needs deleting.
type metrics struct {
	s        *Scheduler
	runs     *prometheus.CounterVec
	duration prometheus.Histogram

	reposDirty, lastSuccess, pending, dirtySince, packages, inFlight *prometheus.Desc
}

// newMetrics registers the indexer's metrics on reg. On error (a collector
// already registered) it returns the metrics anyway, unregistered, so the
// Scheduler still works.
func newMetrics(s *Scheduler, reg prometheus.Registerer) (*metrics, error) {
	repo := []string{"repo"}
	m := &metrics{
		s: s,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricRuns,
			Help: "Index runs (createrepo_c, signing and the metadata swap) by repository and result (success, failure)."},
			[]string{"repo", "result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: metricDuration,
			Help: "Duration of index runs, successful or not.", Buckets: durationBuckets}),
		reposDirty: prometheus.NewDesc(metricReposDirty,
			"Repositories with changes not yet published (waiting, queued, being indexed, or failing).", nil, nil),
		lastSuccess: prometheus.NewDesc(metricLastSuccess,
			"Unix time the repository's metadata was last published (from repomd.xml's mtime before this process indexed it).", repo, nil),
		pending: prometheus.NewDesc(metricPending,
			"Changes (uploads, deletions, rescans that found a difference) not yet published.", repo, nil),
		dirtySince: prometheus.NewDesc(metricDirtySince,
			"Unix time of the repository's oldest unpublished change; 0 when everything is published.", repo, nil),
		packages: prometheus.NewDesc(metricPackages,
			"Packages listed by the repository's published metadata.", repo, nil),
		inFlight: prometheus.NewDesc(metricInFlight, "Index runs in progress.", nil, nil),
	}
	return m, errors.Join(reg.Register(m.runs), reg.Register(m.duration), reg.Register(m))
}

// initRepo creates the counter series of a newly known repository at zero,
// so rate() and increase() see the first failure.
func (m *metrics) initRepo(label string) {
	m.runs.WithLabelValues(label, "success")
	m.runs.WithLabelValues(label, "failure")
}

// observeRun records one finished run.
func (m *metrics) observeRun(label string, ok bool, took time.Duration) {
	result := "failure"
	if ok {
		result = "success"
	}
	m.runs.WithLabelValues(label, result).Inc()
	m.duration.Observe(took.Seconds())
}

// Describe implements prometheus.Collector for the gauges.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.reposDirty, m.lastSuccess, m.pending, m.dirtySince, m.packages, m.inFlight} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one pass over the repositories
// under the Scheduler's mutex, which is held only for memory reads.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	s := m.s
	s.mu.Lock()
	defer s.mu.Unlock()
	dirty, running := 0, 0
	for _, st := range s.repos {
		// The oldest change not yet published: a run in flight has claimed
		// some (claimedSince), and more may have come since (dirtySince).
		var since time.Time
		if st.running && !st.claimedSince.IsZero() {
			since = st.claimedSince
		}
		if st.dirty && (since.IsZero() || st.dirtySince.Before(since)) {
			since = st.dirtySince
		}
		sinceVal := 0.0
		if !since.IsZero() {
			dirty++
			sinceVal = unixSeconds(since)
		}
		if st.running {
			running++
		}
		ch <- prometheus.MustNewConstMetric(m.dirtySince, prometheus.GaugeValue, sinceVal, st.label)
		ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(st.pending+st.claimedPending), st.label)
		if !st.lastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(m.lastSuccess, prometheus.GaugeValue, unixSeconds(st.lastSuccess), st.label)
		}
		if st.published != nil {
			ch <- prometheus.MustNewConstMetric(m.packages, prometheus.GaugeValue, float64(len(st.published)), st.label)
		}
	}
	ch <- prometheus.MustNewConstMetric(m.reposDirty, prometheus.GaugeValue, float64(dirty))
	ch <- prometheus.MustNewConstMetric(m.inFlight, prometheus.GaugeValue, float64(running))
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// repoLabel is dir relative to topDir with forward slashes ("9/x86_64"), the
// project-wide repo label; a dir outside topDir (or no topDir) keeps its
// full path, which is still bounded by the number of repositories.
func repoLabel(topDir, dir string) string {
	if topDir == "" {
		return filepath.ToSlash(dir)
	}
	rel, err := filepath.Rel(filepath.Clean(topDir), dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return filepath.ToSlash(dir)
	}
	return filepath.ToSlash(rel)
}
