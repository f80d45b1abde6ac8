package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	lat := make([]time.Duration, 100)
	for i := range lat {
		lat[i] = time.Duration(i+1) * time.Millisecond
	}
	r := loadResult{n: 100, wall: time.Second, lat: lat}
	tests := []struct {
		name string
		q    float64
		want time.Duration
	}{
		{"p50", 0.5, 51 * time.Millisecond},
		{"p99", 0.99, 100 * time.Millisecond},
		{"max", 1, 100 * time.Millisecond},
		{"min", 0, time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.pct(tc.q); got != tc.want {
				t.Errorf("pct(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
	if got := (loadResult{}).pct(0.5); got != 0 {
		t.Errorf("pct of no latencies = %v, want 0", got)
	}
}

// TestMerge: scenario 2's rounds are merged into one result per side; its p50 must be that of all the
// latencies together, its rate over the rounds' summed wall time, and refusals added.
func TestMerge(t *testing.T) {
	ms := time.Millisecond
	a := loadResult{n: 3, wall: time.Second, lat: []time.Duration{1 * ms, 5 * ms, 9 * ms}, others: map[int]int{503: 1}}
	b := loadResult{n: 2, wall: time.Second, lat: []time.Duration{2 * ms, 3 * ms}, others: map[int]int{503: 2, 500: 1}}
	var m loadResult
	m = m.merge(a).merge(b)
	if m.n != 5 || m.wall != 2*time.Second || m.perSec() != 2.5 {
		t.Errorf("merged n %d, wall %v, rate %v; want 5, 2s, 2.5/s", m.n, m.wall, m.perSec())
	}
	if got := m.pct(0.5); got != 3*ms {
		t.Errorf("merged p50 = %v, want 3ms (the median of 1, 2, 3, 5, 9 ms)", got)
	}
	if m.refused() != 4 || m.others[503] != 3 {
		t.Errorf("merged refusals %v, want 503: 3, 500: 1", m.others)
	}
	if a.pct(0.5) != 5*ms || len(b.lat) != 2 {
		t.Error("merge changed its inputs")
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		name, text string
		repl       map[string]string
		want       string
		wantErr    string
	}{
		{name: "replaces every occurrence", text: "a /srv/x b /srv/x", repl: map[string]string{"/srv/x": "/tmp/y"}, want: "a /tmp/y b /tmp/y"},
		{name: "a vanished production path is an error", text: "nothing", repl: map[string]string{"/srv/x": "/tmp/y"}, wantErr: `no longer contains "/srv/x"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := render(tc.text, tc.repl)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("render: err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("render = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestRenderShippedNginx renders the shipped files as the benchmark does: a renamed production path in them
// must fail here, not in the middle of a benchmark run.
func TestRenderShippedNginx(t *testing.T) {
	for _, tc := range []struct {
		file string
		keys []string
	}{
		{"rpm-ingestd.conf", []string{prodTopDir, prodSpoolDir, prodSocket, prodHtpasswd}},
		{"rpm-ingestd.example.conf", []string{"listen 80;", "listen [::]:80;", prodSnippet, prodAccess, prodErrorLog}},
	} {
		b, err := os.ReadFile(filepath.Join("..", "..", "nginx", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		repl := map[string]string{}
		for _, k := range tc.keys {
			repl[k] = "/bench"
		}
		if _, err := render(string(b), repl); err != nil {
			t.Errorf("nginx/%s: %v", tc.file, err)
		}
	}
}

func TestSummarizeTrace(t *testing.T) {
	start := time.Unix(1000, 0)
	log := strings.Join([]string{
		"10 999.500000 newfstatat(AT_FDCWD, \"early\", {}, 0) = 0 <0.000010>", // before the run: ignored
		"10 1000.100000 newfstatat(AT_FDCWD, \"a\", {}, 0) = 0 <0.000200>",
		"10 1000.100100 getdents64(3, /* 2 entries */, 32768) = 48 <0.000100>",
		"11 1000.200000 execve(\"/usr/bin/createrepo_c\", [\"createrepo_c\"], 0x0 /* 3 vars */) = 0 <0.000300>",
		"11 1000.300000 newfstatat(AT_FDCWD, \"pkg\", {}, 0) = 0 <0.000010>", // createrepo_c's own: not counted
		"11 1000.700000 +++ exited with 0 +++",
		"10 1000.800000 renameat2(AT_FDCWD, \"x\", AT_FDCWD, \"y\", RENAME_EXCHANGE) = 0 <0.000050>",
		"10 1000.800100 fsync(5) = 0 <0.001000>",
	}, "\n")
	p := filepath.Join(t.TempDir(), "strace.txt")
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := summarizeTrace(p, start, start.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"index run 1000.0 ms",
		"before createrepo_c 200.0 ms [1 getdents64 (0.1 ms), 1 newfstatat (0.2 ms)]",
		"createrepo_c 500.0 ms",
		"after it exits 300.0 ms [1 fsync (1.0 ms), 1 renameat2 (0.1 ms)]",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if _, err := summarizeTrace(p, start.Add(time.Hour), start.Add(2*time.Hour)); err == nil {
		t.Error("a trace without a createrepo_c run in the window: no error")
	}
}

func TestReadProc(t *testing.T) {
	pid := os.Getpid()
	if _, err := readCPU(pid); err != nil {
		t.Fatalf("readCPU(self): %v", err)
	}
	m, err := readMemory(pid)
	if err != nil {
		t.Fatalf("readMemory(self): %v", err)
	}
	if m.rss <= 0 || m.hwm < m.rss {
		t.Errorf("readMemory(self) = %+v: want 0 < rss <= hwm", m)
	}
	if _, err := readCPU(-1); err == nil {
		t.Error("readCPU(-1): no error")
	}
}

func TestFixtureIsCanonicalAndDeterministic(t *testing.T) {
	dir := t.TempDir()
	p := pool{dir: dir, prefix: "t", size: 4096}
	if err := p.ensure(&strings.Builder{}, 2); err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile(p.path(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p.path(1)); err != nil {
		t.Fatal(err)
	}
	if err := p.ensure(&strings.Builder{}, 2); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p.path(1))
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Error("the same spec built twice gave different bytes: cached fixtures would not match fresh ones")
	}
	if filepath.Base(p.path(1)) != "t-00001-1.0-1.el9.x86_64.rpm" || len(a) < 4096 {
		t.Errorf("fixture %s is %d bytes", p.path(1), len(a))
	}
}

// TestRunLoadCountsRefusals: runLoadCounting counts answers other than the wanted ones by status, leaves them out
// of the rate and the latencies, and runLoad still fails on them.
func TestRunLoadCountsRefusals(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/3") || strings.HasSuffix(r.URL.Path, "/7") {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	mk := func(i int) (*http.Request, error) { return http.NewRequest("PUT", srv.URL+"/"+strconv.Itoa(i), nil) }
	r, err := runLoadCounting(srv.Client(), 10, 4, mk, true, 201)
	if err != nil {
		t.Fatal(err)
	}
	if r.n != 8 || len(r.lat) != 8 || r.refused() != 2 || r.others[503] != 2 {
		t.Errorf("n %d, latencies %d, refused %d (%v); want 8, 8, 2 (503: 2)", r.n, len(r.lat), r.refused(), r.others)
	}
	if _, err := runLoad(srv.Client(), 10, 4, mk, 201); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("runLoad with 503 answers: %v, want an error naming the 503", err)
	}
}

// TestBareReceiver: scenario 3's receiver without hashing stores the body it is sent, byte for byte, and the
// hashing part reads a whole file.
func TestBareReceiver(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	data := make([]byte, 5<<20+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := newBareReceiver(filepath.Join(dir, "bare"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	for i := 1; i <= 2; i++ {
		if _, err := bareUpload(r, src); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(r.body())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("upload %d: stored %d bytes, not the %d sent", i, len(got), len(data))
		}
	}
	if _, err := hashOnce(src); err != nil {
		t.Fatal(err)
	}
	if _, err := hashTwoCores(src); err != nil {
		t.Fatal(err)
	}
}

// TestParseSystemCPU: busy time is user, nice, system, irq and softirq of the summary line, idle, iowait and steal
// are left out, the cpus are counted from the per-cpu lines, and text without them is an error.
func TestParseSystemCPU(t *testing.T) {
	const stat = "cpu  100 20 30 4000 500 6 7 800 0 0\ncpu0 50 10 15 2000 250 3 4 400 0 0\ncpu1 50 10 15 2000 250 3 3 400 0 0\nintr 1 2 3\nctxt 99\n"
	s, err := parseSystemCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := (100 + 20 + 30 + 6 + 7) / 100.0; s.busy != want || s.cpus != 2 {
		t.Fatalf("busy %v s on %d cpus, want %v s on 2", s.busy, s.cpus, want)
	}
	for _, bad := range []string{"", "intr 1 2 3\n", "cpu  1 2 3 4 5 6 7 8\n", "cpu  1 x 3 4 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n"} {
		if _, err := parseSystemCPU([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if s, err := readSystemCPU(); err != nil || s.cpus < 1 || s.busy <= 0 {
		t.Fatalf("this machine: %+v, %v", s, err)
	}
}
