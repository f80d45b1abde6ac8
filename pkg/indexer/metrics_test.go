package indexer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"
)

// metricsText renders the expected exposition of the indexer's gauges and
// counter for one repository, for testutil.GatherAndCompare.
func metricsText(repo string, success, failure int, reposDirty, inFlight int, dirtySince float64, pending int,
	lastSuccess *float64, packages *int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# HELP rpm_ingestd_index_runs_total Index runs (createrepo_c, signing and the metadata swap) by repository and result (success, failure).
# TYPE rpm_ingestd_index_runs_total counter
rpm_ingestd_index_runs_total{repo=%[1]q,result="failure"} %[2]d
rpm_ingestd_index_runs_total{repo=%[1]q,result="success"} %[3]d
# HELP rpm_ingestd_repos_dirty Repositories with changes not yet published (waiting, queued, being indexed, or failing).
# TYPE rpm_ingestd_repos_dirty gauge
rpm_ingestd_repos_dirty %[4]d
# HELP rpm_ingestd_index_runs_in_flight Index runs in progress.
# TYPE rpm_ingestd_index_runs_in_flight gauge
rpm_ingestd_index_runs_in_flight %[5]d
# HELP rpm_ingestd_repo_dirty_since_timestamp_seconds Unix time of the repository's oldest unpublished change; 0 when everything is published.
# TYPE rpm_ingestd_repo_dirty_since_timestamp_seconds gauge
rpm_ingestd_repo_dirty_since_timestamp_seconds{repo=%[1]q} %[6]g
# HELP rpm_ingestd_repo_pending_changes Changes (uploads, deletions, rescans that found a difference) not yet published.
# TYPE rpm_ingestd_repo_pending_changes gauge
rpm_ingestd_repo_pending_changes{repo=%[1]q} %[7]d
`, repo, failure, success, reposDirty, inFlight, dirtySince, pending)
	if lastSuccess != nil {
		fmt.Fprintf(&b, `# HELP rpm_ingestd_repo_last_success_timestamp_seconds Unix time the repository's metadata was last published (from repomd.xml's mtime before this process indexed it).
# TYPE rpm_ingestd_repo_last_success_timestamp_seconds gauge
rpm_ingestd_repo_last_success_timestamp_seconds{repo=%q} %g
`, repo, *lastSuccess)
	}
	if packages != nil {
		fmt.Fprintf(&b, `# HELP rpm_ingestd_repo_packages Packages listed by the repository's published metadata.
# TYPE rpm_ingestd_repo_packages gauge
rpm_ingestd_repo_packages{repo=%q} %d
`, repo, *packages)
	}
	return b.String()
}

var gaugeNames = []string{metricRuns, metricReposDirty, metricInFlight, metricDirtySince, metricPending, metricLastSuccess, metricPackages}

func TestMetricsFollowRuns(t *testing.T) {
	top := t.TempDir()
	repo := filepath.Join(top, "9", "x86_64")
	writePkg(t, repo, "a-1-1.x86_64.rpm", 10, t0)
	writePkg(t, repo, "b-1-1.x86_64.rpm", 10, t0)

	reg := prometheus.NewPedanticRegistry() // also checks Describe against Collect
	opts := testOptions()
	opts.Registerer, opts.TopDir = reg, top
	h := newHarness(t, opts)
	h.start()
	check := func(step, want string) {
		t.Helper()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), gaugeNames...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	unix := func(tm time.Time) float64 { return float64(tm.Unix()) }
	ptr := func(v float64) *float64 { return &v }
	zero, two := 0, 2

	first := h.clock.Now()
	h.s.Trigger(repo)
	h.clock.Advance(time.Second)
	h.s.Trigger(repo)
	check("two uploads waiting", metricsText("9/x86_64", 0, 0, 1, 0, unix(first), 2, nil, nil))

	h.clock.Advance(opts.QuietPeriod)
	c := h.expectCall(repo)
	// Claimed by the run, still unpublished: dirty since the first change.
	// The run read what was published before it: nothing (no repodata/).
	check("running", metricsText("9/x86_64", 0, 0, 1, 1, unix(first), 2, nil, &zero))
	during := h.clock.Now()
	h.s.Trigger(repo)
	h.complete(c, nil)
	done := h.clock.Now()
	check("one change left after a success",
		metricsText("9/x86_64", 1, 0, 1, 0, unix(during), 1, ptr(unix(done)), &two))

	h.clock.Advance(opts.QuietPeriod)
	h.complete(h.expectCall(repo), errBoom)
	check("failure keeps it dirty",
		metricsText("9/x86_64", 1, 1, 1, 0, unix(during), 1, ptr(unix(done)), &two))

	h.clock.Advance(minBackoff)
	h.complete(h.expectCall(repo), nil)
	check("clean", metricsText("9/x86_64", 2, 1, 0, 0, 0, 0, ptr(unix(h.clock.Now())), &two))

	// Every run is timed, successful or not.
	if n := histogramCount(t, reg, metricDuration); n != 3 {
		t.Fatalf("%s sample count = %d, want 3", metricDuration, n)
	}
	problems, err := testutil.CollectAndLint(h.s.metrics)
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %+v", err, problems)
	}
}

func histogramCount(t *testing.T, reg prometheus.Gatherer, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("%s not gathered", name)
	return 0
}

func TestMetricsFromExistingMetadata(t *testing.T) {
	top := t.TempDir()
	repo := filepath.Join(top, "stable", "9", "x86_64")
	a := writePkg(t, repo, "a-1-1.x86_64.rpm", 10, t0)
	writeRepodata(t, repo, "", gz(t, primaryXML(pkgSet{"Packages/a-1-1.x86_64.rpm": a})))
	published := t0.Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(repo, "repodata", "repomd.xml"), published, published); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	opts := testOptions()
	opts.Registerer, opts.TopDir = reg, top
	h := newHarness(t, opts)
	if n, err := h.s.Rescan(); err != nil || n != 0 {
		t.Fatalf("Rescan = %d, %v; want 0 (metadata matches)", n, err)
	}
	one := 1
	last := float64(published.Unix())
	want := metricsText("stable/9/x86_64", 0, 0, 0, 0, 0, 0, &last, &one)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), gaugeNames...); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsRegisteredTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := testOptions()
	opts.Registerer = reg
	h := newHarness(t, opts)
	// A second Scheduler on the same registry is a wiring mistake: logged,
	// and the Scheduler still works.
	s2 := NewScheduler(newFakeRunner(), opts, zaptest.NewLogger(t))
	s2.Trigger("/r/x")
	h.start()
	h.s.PublishNow("/r/a")
	h.complete(h.expectCall("/r/a"), nil)
	if got := testutil.ToFloat64(h.s.metrics.runs.WithLabelValues("/r/a", "success")); got != 1 {
		t.Fatalf("runs = %v, want 1", got)
	}
}

func TestNoRegistererNoMetrics(t *testing.T) {
	h := newHarness(t, testOptions())
	if h.s.metrics != nil {
		t.Fatal("metrics without a Registerer")
	}
	h.start()
	h.s.PublishNow("/r/a")
	h.complete(h.expectCall("/r/a"), nil)
}

// Issue 18 item 16: a restarted daemon knows every repository that has metadata at once (Status, metrics),
// without indexing it and without waiting for a rescan.
func TestRecoverRegistersIndexedRepos(t *testing.T) {
	top := t.TempDir()
	repo := filepath.Join(top, "stable", "9", "x86_64")
	a := writePkg(t, repo, "a-1-1.x86_64.rpm", 10, t0)
	writeRepodata(t, repo, "", gz(t, primaryXML(pkgSet{"Packages/a-1-1.x86_64.rpm": a})))
	published := t0.Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(repo, "repodata", "repomd.xml"), published, published); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	opts := testOptions()
	opts.Registerer, opts.TopDir = reg, top
	h := newHarness(t, opts)
	if n, err := h.s.Recover(top); err != nil || n != 0 {
		t.Fatalf("Recover = %d, %v; want 0 (indexed, nothing pending)", n, err)
	}
	st := h.s.Status()
	if len(st) != 1 || st[0].Dir != repo {
		t.Fatalf("Status after Recover = %+v, want the indexed repository", st)
	}
	if st[0].Packages != 1 || st[0].Runs != 0 || st[0].LastPublished == nil || !st[0].LastPublished.Equal(published) {
		t.Errorf("status %+v, want 1 package, no run, last published %v", st[0], published)
	}
	last := float64(published.Unix())
	want := metricsText("stable/9/x86_64", 0, 0, 0, 0, 0, 0, &last, nil)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), gaugeNames[:len(gaugeNames)-1]...); err != nil {
		t.Fatal(err)
	}
	h.start()
	if p := h.clock.Pending(); p != 0 {
		t.Errorf("%d timers pending: an indexed repository was scheduled for a run", p)
	}
}
