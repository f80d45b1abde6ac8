// Command rpm-ingestd-bench measures rpm-ingestd as users run it: the real daemon binary, real nginx with the
// shipped snippet, real createrepo_c and dnf, on fixtures it generates with rpmpack and caches under ./var/bench.
// Every figure is a ratio against a floor or an alternative measured in the same run, with the absolute values
// beside it, because absolute times on a shared machine are noise. It prints one table and writes the same
// table, the targets of issue 14 and the big-repository analysis to BENCHMARKS.md.
//
// It is a measuring tool, run by `make bench` (BENCH_QUICK=1 for a run of under two minutes); nothing asserts
// timings. It needs root (nginx drops its workers, dnf reads an installroot) and nginx, createrepo_c and dnf.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// main only exits: run does the work and returns the status, so deferred cleanups run.
func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// sizes are the counts a run uses; quick mode shrinks them so the whole run stays under two minutes.
type sizes struct {
	quick       bool
	headerN     int // uploads per concurrency level in scenario 1
	nginxSmallN int // 10 KiB uploads through nginx
	nginxBigN   int // 10 MiB uploads through nginx
	bigSize     int // scenario 3's package size
	coalesceN   int // scenario 4's uploads
	coalesceDur time.Duration
	repoSizes   []int // scenario 5
	s3Sizes     []int // scenario 8
}

// fullSizes are the counts: the full run takes about six minutes here, under the 20 allowed.
func fullSizes() sizes {
	return sizes{headerN: 2000, nginxSmallN: 1000, nginxBigN: 64, bigSize: 256 << 20, coalesceN: 200,
		coalesceDur: 10 * time.Second, repoSizes: []int{1000, 10000, 50000}, s3Sizes: []int{1000, 10000}}
}

// quickSizes keep one small repository and fewer, smaller uploads: well under two minutes.
func quickSizes() sizes {
	return sizes{quick: true, headerN: 400, nginxSmallN: 200, nginxBigN: 16, bigSize: 64 << 20, coalesceN: 50,
		coalesceDur: 3 * time.Second, repoSizes: []int{1000}, s3Sizes: []int{1000}}
}

// bench is one run: where things are, what it found, and the table it builds.
type bench struct {
	out   io.Writer
	bin   string // bin/rpm-ingestd
	var_  string // ./var/bench: cached fixtures and the run's scratch trees
	nginx string
	sz    sizes
	rows  []row
	notes []string // evidence paragraphs for BENCHMARKS.md
	big   *bigRepoAnalysis
	scale []scalePoint // scenario 5 per size, for the analysis

	profBuilt bool    // profBin has built the symbol-carrying daemon
	procs     procSet // every daemon and nginx started, for an interrupted run
}

// run parses the flags, runs every scenario (a failed one is reported in the table and the exit status, the
// others still run), prints the table and writes the report.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rpm-ingestd-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin/rpm-ingestd", "the daemon binary to measure")
	varDir := fs.String("var", "var/bench", "fixture cache and scratch directory")
	md := fs.String("out", "BENCHMARKS.md", "where to write the report (empty: don't)")
	quick := fs.Bool("quick", os.Getenv("BENCH_QUICK") == "1", "small counts (also BENCH_QUICK=1)")
	only := fs.String("only", "", "run only these scenarios, e.g. 1,3 (for development)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "rpm-ingestd-bench: run as root: nginx switches its workers to an unprivileged user only when started as root")
		return 2
	}
	b := &bench{out: stdout, sz: fullSizes()}
	if *quick {
		b.sz = quickSizes()
	}
	var err error
	if b.bin, err = filepath.Abs(*bin); err == nil {
		b.var_, err = filepath.Abs(*varDir)
	}
	if err == nil {
		b.nginx, err = lookTool("nginx")
	}
	for _, t := range []string{"createrepo_c", "dnf"} {
		if _, lerr := lookTool(t); err == nil && lerr != nil {
			err = lerr
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "rpm-ingestd-bench:", err)
		return 2
	}
	// Ctrl-C (or a SIGTERM from make) must not leave daemons and nginx running: end them, then exit.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			b.procs.killAll()
			fmt.Fprintln(stderr, "rpm-ingestd-bench: interrupted; stopped every daemon and nginx it started (scratch files stay in", filepath.Join(b.var_, "run")+")")
			os.Exit(130)
		}
	}()
	m := machineInfo(b.var_)
	fmt.Fprintf(stdout, "rpm-ingestd-bench: %s\n", m)
	start := time.Now()
	scenarios := []struct {
		id string
		fn func() error
	}{
		{"1", b.scenarioHeader}, // also scenario 7's footprint
		{"2", b.scenarioNginx},
		{"3", b.scenarioDirect},
		{"4", b.scenarioCoalesce},
		{"5", b.scenarioRepoSize},
		{"6", b.scenarioVisible},
		{"8", b.scenarioS3Publish}, // 7 is the footprint, measured in scenario 1
	}
	failed := 0
	for _, s := range scenarios {
		if *only != "" && !contains(*only, s.id) {
			continue
		}
		fmt.Fprintf(stdout, "== scenario %s (%.0fs so far)\n", s.id, time.Since(start).Seconds())
		if err := s.fn(); err != nil {
			failed++
			fmt.Fprintf(stderr, "rpm-ingestd-bench: scenario %s: %v\n", s.id, err)
			b.add(row{scen: s.id, what: "scenario failed", ratio: "-", abs: "error: " + firstLine(err.Error())})
		}
	}
	elapsed := time.Since(start)
	table := b.table()
	fmt.Fprintf(stdout, "\n%s\n%s\nfinished in %.0fs\n", m, table, elapsed.Seconds())
	if *md != "" {
		if err := os.WriteFile(*md, []byte(b.markdown(m, table, elapsed)), 0o644); err != nil {
			fmt.Fprintln(stderr, "rpm-ingestd-bench:", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %s\n", *md)
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// lookTool finds a program on PATH or in the sbin directories a root-less PATH may lack.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		if p := filepath.Join(d, name); fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: run `make deps` (Debian: apt-get install nginx createrepo-c dnf)", name)
}

// fileExists reports whether p can be stat()ed.
func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// workers is how many goroutines CPU-bound fixture generation uses.
func workers() int { return max(1, runtime.NumCPU()) }

// scratch returns a fresh, empty scratch directory var/bench/run/<name>.
func (b *bench) scratch(name string) (string, error) {
	d := filepath.Join(b.var_, "run", name)
	if err := os.RemoveAll(d); err != nil {
		return "", err
	}
	return d, os.MkdirAll(d, 0o755)
}

// src is the source tree (the working directory: make runs the benchmark from the repository root).
func (b *bench) src() string { d, _ := os.Getwd(); return d }

// cleanup removes a scenario's scratch directory unless BENCH_KEEP=1.
func (b *bench) cleanup(dir string) {
	if os.Getenv("BENCH_KEEP") != "1" {
		os.RemoveAll(dir)
	}
}
