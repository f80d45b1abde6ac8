package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// These tests run the real daemon (as lifecycle_test.go does), send it real uploads and read GET /metrics with
// the Prometheus text parser: the counters must equal what was sent, every metric the dashboard and the alert
// rules name must exist, and /readyz must follow a real read-only remount of top_dir.

// scrapeMetrics fetches and parses the daemon's /metrics.
func scrapeMetrics(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample returns the value of the series of family name whose labels include want (a counter's or gauge's value,
// a histogram's count), and whether there is one.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	for _, m := range fams[name].GetMetric() {
		match := true
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; ok && v != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// mustSample is sample that fails the test when the series is missing.
func mustSample(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	v, ok := sample(fams, name, want)
	if !ok {
		t.Fatalf("no series %s%v in /metrics", name, want)
	}
	return v
}

// waitIndexed scrapes until repo is published with n packages and nothing is dirty or running, and returns
// that scrape. The deadline only bounds a broken daemon.
func waitIndexed(t *testing.T, d *child, base, repo string, n float64) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		fams := scrapeMetrics(t, base)
		pkgs, _ := sample(fams, "rpm_ingestd_repo_packages", map[string]string{"repo": repo})
		dirty, _ := sample(fams, "rpm_ingestd_repos_dirty", nil)
		running, _ := sample(fams, "rpm_ingestd_index_runs_in_flight", nil)
		if pkgs == n && dirty == 0 && running == 0 {
			return fams
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not published with %v packages (packages %v, dirty %v, running %v)", repo, n, pkgs, dirty, running)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMetricsCountUploads: a scripted set of uploads reaching every outcome a client can cause (created, exists,
// conflict, invalid, bad request, rejected, too large, unauthorized, rate limited, forbidden, busy, timeout),
// then the index run; the parsed /metrics equals the counts: uploads by result, bytes received, the duration
// histogram per status class, and the indexer's view of the repository. no_space is in TestReadyzAndNoSpace;
// signature, stopping and error are classified by pkg/server's tests.
func TestMetricsCountUploads(t *testing.T) {
	tr := newTree(t)
	htpasswd := filepath.Join(tr.dir, "htpasswd")
	if out, err := exec.Command("htpasswd", "-cbB", htpasswd, "ci", "pw").CombinedOutput(); err != nil {
		t.Fatalf("htpasswd (install apache2-utils): %v\n%s", err, out)
	}
	// One upload slot and a short queue_timeout, so that a held one makes the next wait and then 503; an idle
	// bound, so a stalled body ends in 408.
	// Only 127.0.0.1 is a trusted proxy, so 127.0.0.2 may not name a spooled file.
	d := tr.startWith(t, "500ms", "  htpasswd: htpasswd\n  trusted_proxies: [127.0.0.1/32]\n  max_upload_size: 64KiB\n  max_concurrent_uploads: 1\n  queue_timeout: 100ms\n  upload_idle_timeout: 2s\n  upload_min_rate: 0\n")
	base := "http://" + d.addr
	hc := tcpFrom("127.0.0.1")

	before := scrapeMetrics(t, base)
	for _, r := range []string{"created", "exists", "conflict", "unauthorized", "forbidden", "rate_limited", "busy", "stopping", "client_gone",
		"timeout", "too_large", "invalid", "bad_request", "signature", "rejected", "not_found", "no_space", "error"} {
		if v := mustSample(t, before, "rpm_ingestd_uploads_total", map[string]string{"result": r}); v != 0 {
			t.Errorf("uploads_total{result=%q} starts at %v", r, v)
		}
	}

	hello := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"})
	other := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64", Salt: "other"})
	noDist := testrpm.Build(t, testrpm.Spec{Name: "nodist", Release: "1", Arch: "x86_64"})
	badArch := testrpm.Build(t, testrpm.Spec{Name: "mainframe", Release: "1.el9", Arch: "s390x"})
	spooled := testrpm.Build(t, testrpm.Spec{Name: "proxied", Release: "1.el9", Arch: "x86_64"})
	url := base + "/upload/"
	steps := []struct {
		name   string
		hc     *http.Client
		body   []byte
		hdr    map[string]string
		user   string
		status int
		read   int // bytes the daemon reads or finds spooled
	}{
		{"created", hc, hello, nil, "ci", 201, len(hello)},
		{"exists", hc, hello, nil, "ci", 200, len(hello)},
		{"conflict", hc, other, nil, "ci", 409, len(other)},
		{"invalid", hc, []byte("not an rpm at all"), nil, "ci", 400, 17},
		{"bad request", hc, noDist, map[string]string{"X-Checksum-Sha256": strings.Repeat("0", 64)}, "ci", 400, len(noDist)},
		{"no dist tag", hc, noDist, nil, "ci", 422, len(noDist)},
		{"bad arch", hc, badArch, nil, "ci", 422, len(badArch)},
		// Refused on Content-Length, nothing read. From a client that keeps its connection: Go's client with
		// "Connection: close" (tcpFrom) can fail on its write ("broken pipe", CI at 8d0aa53) instead of reading
		// the 413 the daemon sent, since net/http closes such a connection at once on the unread body
		// (golang/go#51109; pkg/server TestRefusalReachesAClosingClient: a client that reads gets the 413).
		{"too large", keepAliveFrom("127.0.0.1"), make([]byte, 65<<10), nil, "ci", 413, 0},
		{"no credentials", hc, hello, nil, "", 401, 0},
		{"proxy names a file", hc, nil, map[string]string{"X-Package-Name": tr.spoolFile(t, "0000000001", spooled)}, "", 201, len(spooled)},
		{"proxy names a file outside the spool", hc, nil, map[string]string{"X-Package-Name": htpasswd}, "", 403, 0},
		{"untrusted peer names a file", tcpFrom("127.0.0.2"), nil, map[string]string{"X-Package-Name": filepath.Join(tr.spool, "x")}, "", 403, 0},
	}
	var wantBytes int
	for _, s := range steps {
		code, _, body := put(t, s.hc, url, s.body, s.hdr, s.user, "pw")
		if code != s.status {
			t.Fatalf("%s: %d %q, want %d", s.name, code, body, s.status)
		}
		wantBytes += s.read
	}

	// Wrong passwords from one address until the limiter answers 429; the other addresses are not affected.
	from3 := tcpFrom("127.0.0.3")
	wrong := 0
	for code := 401; code == 401; {
		code, _, _ = put(t, from3, url, hello, nil, "ci", "wrong")
		switch {
		case code == 401:
			wrong++
		case code != 429:
			t.Fatalf("wrong password: %d, want 401 until 429", code)
		}
		if wrong > 100 {
			t.Fatal("no 429 after 100 wrong passwords")
		}
	}

	// A direct upload that keeps sending holds the only slot: the next upload waits queue_timeout, then is 503. Once it stops
	// sending, upload_idle_timeout cuts it off with 408.
	conn, err := net.Dial("tcp", d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /upload/slow.rpm HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Y2k6cHc=\r\nContent-Length: 60000\r\n\r\n") // ci:pw
	// The trickle goes on in the background while the second upload is sent, so the slot stays held however
	// slowly that one is answered.
	var trickled atomic.Int64
	stopTrickle, trickleDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(trickleDone)
		for {
			select {
			case <-stopTrickle:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := conn.Write(make([]byte, 10)); err != nil {
				return
			}
			trickled.Add(10)
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); len(partFiles(t, tr.spool)) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no spool file for the trickling upload")
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, _, body := put(t, hc, url, hello, nil, "ci", "pw")
	close(stopTrickle)
	<-trickleDone
	if code != 503 {
		t.Fatalf("upload while the slot is held: %d %q, want 503", code, body)
	}
	wantBytes += int(trickled.Load())
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled upload: %v %v, want 408", resp, err)
	}
	resp.Body.Close()

	fams := waitIndexed(t, d, base, "9/x86_64", 2) // hello and proxied
	want := map[string]float64{"created": 2, "exists": 1, "conflict": 1, "invalid": 1, "bad_request": 1, "rejected": 2,
		"too_large": 1, "unauthorized": float64(1 + wrong), "rate_limited": 1, "forbidden": 2, "busy": 1, "timeout": 1}
	for _, m := range fams["rpm_ingestd_uploads_total"].GetMetric() {
		result := m.GetLabel()[0].GetValue()
		if got := m.GetCounter().GetValue(); got != want[result] {
			t.Errorf("uploads_total{result=%q} = %v, want %v", result, got, want[result])
		}
	}
	for _, name := range []string{"rpm_ingestd_upload_queue_waits_total", "rpm_ingestd_upload_queue_timeouts_total"} {
		if got := mustSample(t, fams, name, nil); got != 1 {
			t.Errorf("%s = %v, want 1 (the upload while the slot was held)", name, got)
		}
	}
	if got := mustSample(t, fams, "rpm_ingestd_upload_received_bytes_total", nil); got != float64(wantBytes) {
		t.Errorf("received bytes %v, want %d", got, wantBytes)
	}
	// The handler ran for everything but the authentication refusals (401, 429, the untrusted peer's 403).
	for class, n := range map[string]float64{"2xx": 3, "4xx": 8, "5xx": 1} {
		if got := mustSample(t, fams, "rpm_ingestd_upload_duration_seconds", map[string]string{"result_class": class}); got != n {
			t.Errorf("upload_duration_seconds{result_class=%q} count %v, want %v", class, got, n)
		}
	}
	repo := map[string]string{"repo": "9/x86_64"}
	if got := mustSample(t, fams, "rpm_ingestd_index_runs_total", map[string]string{"repo": "9/x86_64", "result": "success"}); got < 1 {
		t.Errorf("index_runs_total{success} = %v, want at least 1", got)
	}
	if got := mustSample(t, fams, "rpm_ingestd_index_runs_total", map[string]string{"repo": "9/x86_64", "result": "failure"}); got != 0 {
		t.Errorf("index_runs_total{failure} = %v, want 0", got)
	}
	if got := mustSample(t, fams, "rpm_ingestd_repo_pending_changes", repo); got != 0 {
		t.Errorf("pending changes %v after the run", got)
	}
	if got := mustSample(t, fams, "rpm_ingestd_repo_dirty_since_timestamp_seconds", repo); got != 0 {
		t.Errorf("dirty_since %v after the run, want 0", got)
	}
	if got := mustSample(t, fams, "rpm_ingestd_repo_last_success_timestamp_seconds", repo); got < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("last success %v is not a recent Unix time", got)
	}
	if got := mustSample(t, fams, "rpm_ingestd_build_info", map[string]string{"version": "dev"}); got != 1 {
		t.Errorf("build_info = %v", got)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("%s missing: the Go and process collectors are not registered", name)
		}
	}
}

// metricName matches a metric name of ours in a dashboard or a rule file.
var metricName = regexp.MustCompile(`rpm_ingestd_[a-zA-Z0-9_]+`)

// TestDashboardAndRulesNameRealMetrics: every rpm_ingestd_* name in the Grafana dashboard and the alert rules
// (and their unit tests) exists in a running daemon's /metrics after an upload and an index run. A renamed or
// misspelled metric fails here instead of in a silent panel or an alert that can never fire.
func TestDashboardAndRulesNameRealMetrics(t *testing.T) {
	files := []string{"../../deploy/grafana/rpm-ingestd.json", "../../deploy/prometheus/alerts.yml", "../../deploy/prometheus/alerts_test.yml"}
	used := map[string][]string{} // name → files naming it
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".json") {
			var v map[string]any
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatalf("%s is not JSON: %v", f, err)
			}
		}
		for _, name := range metricName.FindAllString(string(data), -1) {
			// A histogram is one family; queries name its _bucket, _sum and _count series.
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				name = strings.TrimSuffix(name, suffix)
			}
			if !slices.Contains(used[name], f) {
				used[name] = append(used[name], f)
			}
		}
	}
	if len(used) < 10 {
		t.Fatalf("only %d metric names found in %v: is the extraction broken?", len(used), files)
	}

	tr := newTree(t)
	d := tr.start(t, "500ms")
	d.upload(t, testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"}))
	fams := waitIndexed(t, d, "http://"+d.addr, "9/x86_64", 1)
	for name, in := range used {
		if _, ok := fams[name]; !ok {
			t.Errorf("%s is named in %v but not exported by the daemon", name, in)
		}
	}
}

// TestReadyzAndNoSpace: with top_dir on a real tmpfs, /readyz is 200, turns 503 naming top_dir when the mount
// is remounted read-only, and 200 again once it is writable; when the tmpfs is full an upload is 507 and counted
// as no_space with its bytes. (The test runs as root, which ignores permission bits: only a read-only mount
// proves that the check writes.) /readyz during a stop is pkg/server's TestReadyz: here http.Server.Shutdown
// closes the listener and the idle connections at once, so no request could reach it.
func TestReadyzAndNoSpace(t *testing.T) {
	tr := newTree(t)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", tr.top).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on top_dir (the test needs root and mount(8)): %v\n%s", err, out)
	}
	// Lazy: the daemon, killed by an earlier cleanup, may still hold the mount for a moment.
	t.Cleanup(func() { exec.Command("umount", "-l", tr.top).Run() })
	remount := func(mode string) {
		t.Helper()
		if out, err := exec.Command("mount", "-o", "remount,"+mode, tr.top).CombinedOutput(); err != nil {
			t.Fatalf("mount -o remount,%s: %v\n%s", mode, err, out)
		}
	}
	d := tr.start(t, "1h")
	base := "http://" + d.addr
	readyz := func() (int, string) {
		t.Helper()
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		bufio.NewReader(resp.Body).WriteTo(&b)
		return resp.StatusCode, b.String()
	}

	if code, body := readyz(); code != 200 || body != "ready\n" {
		t.Fatalf("fresh daemon: %d %q", code, body)
	}
	remount("ro")
	if code, body := readyz(); code != 503 || body != "repo.top_dir "+tr.top+" is not writable: read-only file system\n" {
		t.Errorf("read-only top_dir: %d %q", code, body)
	}
	remount("rw")
	if code, body := readyz(); code != 200 {
		t.Errorf("writable again: %d %q", code, body)
	}

	// Fill the tmpfs; the spool is on another filesystem, so the body is read whole and placing it fails.
	fill, err := os.Create(filepath.Join(tr.top, ".fill"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for err == nil {
		_, err = fill.Write(chunk)
	}
	fill.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the tmpfs: %v", err)
	}
	pkg := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"})
	if code, _, body := put(t, http.DefaultClient, base+"/upload/", pkg, nil, "", ""); code != http.StatusInsufficientStorage {
		t.Fatalf("upload to a full top_dir: %d %q, want 507", code, body)
	}
	fams := scrapeMetrics(t, base)
	if got := mustSample(t, fams, "rpm_ingestd_uploads_total", map[string]string{"result": "no_space"}); got != 1 {
		t.Errorf("uploads_total{result=no_space} = %v, want 1", got)
	}
	if got := mustSample(t, fams, "rpm_ingestd_upload_received_bytes_total", nil); got != float64(len(pkg)) {
		t.Errorf("received bytes %v, want %d", got, len(pkg))
	}
	if got := mustSample(t, fams, "rpm_ingestd_upload_duration_seconds", map[string]string{"result_class": "5xx"}); got != 1 {
		t.Errorf("upload_duration_seconds{result_class=5xx} count %v, want 1", got)
	}
	if err := os.Remove(fill.Name()); err != nil {
		t.Fatal(err)
	}
	if code, _, body := put(t, http.DefaultClient, base+"/upload/", pkg, nil, "", ""); code != http.StatusCreated {
		t.Errorf("upload once there is room again: %d %q, want 201", code, body)
	}
}

// TestPasswordChecksMetric: with the default server.htpasswd_cache a right password is hashed once and then answered
// from the cache, a wrong one is hashed every time; with htpasswd_cache: 0 every login is hashed. Read from
// rpm_ingestd_password_checks_total{how}, which also shows that main passes the setting to the user file.
func TestPasswordChecksMetric(t *testing.T) {
	hello := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"})
	for _, tc := range []struct {
		name           string
		extra          string
		hashed, cached float64
	}{
		{"default cache", "", 2, 2},
		{"cache off", "  htpasswd_cache: 0s\n", 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTree(t)
			htpasswd := filepath.Join(tr.dir, "htpasswd")
			if out, err := exec.Command("htpasswd", "-cbB", htpasswd, "ci", "pw").CombinedOutput(); err != nil {
				t.Fatalf("htpasswd (install apache2-utils): %v\n%s", err, out)
			}
			d := tr.startWith(t, "1h", "  htpasswd: htpasswd\n  trusted_proxies: [127.0.0.1/32]\n"+tc.extra)
			base := "http://" + d.addr
			hc := tcpFrom("127.0.0.1")
			// Three right logins (201, then 200 twice: the same package again) and one wrong one (401).
			for i, want := range []int{201, 200, 200} {
				if code, _, body := put(t, hc, base+"/upload/", hello, nil, "ci", "pw"); code != want {
					t.Fatalf("upload %d: %d %q, want %d", i, code, body, want)
				}
			}
			if code, _, body := put(t, hc, base+"/upload/", hello, nil, "ci", "wrong"); code != 401 {
				t.Fatalf("wrong password: %d %q, want 401", code, body)
			}
			m := scrapeMetrics(t, base)
			hashed := mustSample(t, m, "rpm_ingestd_password_checks_total", map[string]string{"how": "hashed"})
			cached := mustSample(t, m, "rpm_ingestd_password_checks_total", map[string]string{"how": "cached"})
			if hashed != tc.hashed || cached != tc.cached {
				t.Errorf("password checks: hashed %v, cached %v; want %v and %v", hashed, cached, tc.hashed, tc.cached)
			}
		})
	}
}
