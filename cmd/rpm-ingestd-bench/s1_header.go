package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// smallPool holds the 10 KiB packages of scenarios 1, 2 and 4 (9 KiB of payload plus rpm's headers).
func (b *bench) smallPool() pool {
	return pool{dir: filepath.Join(b.var_, "fixtures", "small"), prefix: "bsmall", size: 9 << 10}
}

// scenarioHeader is scenario 1 (header mode, daemon alone, against the durable floor) and scenario 7 (footprint).
func (b *bench) scenarioHeader() error {
	p := b.smallPool()
	n := b.sz.headerN
	if err := p.ensure(b.out, n); err != nil {
		return err
	}
	dir, err := b.scratch("s1")
	if err != nil {
		return err
	}
	defer b.cleanup(dir)
	top, spool := filepath.Join(dir, "top"), filepath.Join(dir, "spool")
	// No index run may land inside a measurement: the quiet period outlasts the scenario.
	d, err := startDaemon(&b.procs, b.bin, daemonConf{dir: filepath.Join(dir, "daemon"), top: top, spool: spool, quiet: time.Hour, maxDelay: 2 * time.Hour})
	if err != nil {
		return err
	}
	defer d.stop(syscall.SIGKILL, time.Second) // the tree is scratch: nothing pending needs publishing
	time.Sleep(time.Second)
	idle, err := readMemory(d.pid())
	if err != nil {
		return err
	}

	var peak memory
	var c32 struct {
		daemon, floor loadResult
		cpu           float64
	}
	for _, conc := range []int{1, 8, 32} {
		// Spool files exist before the clock starts, as nginx would have written them.
		names, err := b.spoolCopies(p, n, filepath.Join(spool, "pre-"+strconv.Itoa(conc)))
		if err != nil {
			return err
		}
		cpu0, err := readCPU(d.pid())
		if err != nil {
			return err
		}
		stopSampler := sampleRSS(d.pid(), &peak)
		// The daemon runs with the default max_concurrent_uploads (16): at c=32 the uploads over it wait for a
		// slot (server.queue_timeout). Any other answer than 201 is counted and reported, not in the rate.
		res, err := runLoadCounting(d.client, n, conc, func(i int) (*httpRequest, error) {
			return headerPut("http://rpm-ingestd", names[i], "c"+strconv.Itoa(conc))
		}, true, 201)
		stopSampler()
		if err != nil {
			return err
		}
		cpu1, _ := readCPU(d.pid())
		daemonCPU := (cpu1.self - cpu0.self) / float64(max(res.n, 1)) * 1000
		refusals := fmt.Sprintf("%d of %d answers not 201", res.refused(), n)
		if res.refused() > 0 {
			refusals += fmt.Sprintf(" (by status: %v)", res.others)
		}

		fnames, err := b.spoolCopies(p, n, filepath.Join(spool, "floor-"+strconv.Itoa(conc)))
		if err != nil {
			return err
		}
		floor, floorCPU, err := runFloor(fnames, filepath.Join(top, "floor-"+strconv.Itoa(conc), "Packages"), conc)
		if err != nil {
			return err
		}
		floorCPU = floorCPU / float64(n) * 1000
		r := row{scen: "1", what: fmt.Sprintf("header mode, c=%d: floor/daemon time per upload", conc),
			ratio: x(floor.perSec() / res.perSec()),
			abs: fmt.Sprintf("daemon %.0f/s (p50 %s, p99 %s, %.2f CPU-s/1k, %s); floor %.0f/s (p50 %s, p99 %s, %.2f CPU-s/1k)",
				res.perSec(), ms(res.pct(0.5)), ms(res.pct(0.99)), daemonCPU, refusals, floor.perSec(), ms(floor.pct(0.5)), ms(floor.pct(0.99)), floorCPU)}
		b.add(row{scen: "1", what: fmt.Sprintf("header mode, c=%d: answers other than 201", conc), ratio: "-",
			abs: refusals + "; rates count 201s only", target: "0", met: verdict(res.refused() == 0)})
		if conc == 32 {
			c32.daemon, c32.floor, c32.cpu = res, floor, daemonCPU
			ok := res.perSec() >= 2000 && floor.perSec()/res.perSec() <= 2
			r.target, r.met = "≥ 2,000/s and ≤ 2×", verdict(ok)
			b.add(r)
			b.add(row{scen: "1", what: "CPU per 1,000 uploads, c=32: daemon/floor", ratio: x(daemonCPU / floorCPU),
				abs: fmt.Sprintf("daemon %.2f CPU-s, floor %.2f CPU-s", daemonCPU, floorCPU), target: "≤ 2×", met: verdict(daemonCPU/floorCPU <= 2)})
			continue
		}
		b.add(r)
	}
	hwm, err := readMemory(d.pid())
	if err != nil {
		return err
	}
	b.add(row{scen: "7", what: "RSS idle", ratio: "-", abs: human(idle.rss)})
	b.add(row{scen: "7", what: "RSS during scenario 1 at c=32: peak/idle", ratio: x(float64(max(peak.rss, hwm.hwm)) / float64(idle.rss)),
		abs: fmt.Sprintf("peak VmHWM %s, highest sampled VmRSS %s, idle %s", human(hwm.hwm), human(peak.rss), human(idle.rss))})
	if c32.daemon.n > 0 && (c32.daemon.perSec() < 2000 || c32.floor.perSec()/c32.daemon.perSec() > 2) {
		prof, err := b.perfDaemon(daemonConf{dir: filepath.Join(dir, "perf"), top: filepath.Join(dir, "top-perf"), spool: spool,
			quiet: time.Hour, maxDelay: 2 * time.Hour}, func(d *daemon) error {
			names, err := b.spoolCopies(p, n, filepath.Join(spool, "perf"))
			if err != nil {
				return err
			}
			_, err = runLoad(d.client, n, 32, func(i int) (*httpRequest, error) { return headerPut("http://rpm-ingestd", names[i], "perf") }, 201)
			return err
		})
		if err != nil {
			prof = "perf failed: " + err.Error()
		}
		calls, err := b.straceDaemon(daemonConf{dir: filepath.Join(dir, "strace"), top: filepath.Join(dir, "top-strace"), spool: spool,
			quiet: time.Hour, maxDelay: 2 * time.Hour}, n, func(d *daemon) error {
			names, err := b.spoolCopies(p, n, filepath.Join(spool, "strace"))
			if err != nil {
				return err
			}
			_, err = runLoad(d.client, n, 32, func(i int) (*httpRequest, error) { return headerPut("http://rpm-ingestd", names[i], "strace") }, 201)
			return err
		})
		if err != nil {
			calls = "strace failed: " + err.Error()
		}
		prof += ". strace -c -f of the daemon during another such batch, system calls by share of time (calls per upload): " + calls
		b.note("Scenario 1 at c=32: %.0f uploads/s, the floor %.0f/s (%s); daemon %.2f CPU-s per 1,000 uploads. The load "+
			"generator (this program) shares the 2 cores with the daemon, the floor has no HTTP at all. perf record of the "+
			"daemon (a build with symbols) during %d more uploads at c=32, functions by share of its samples: %s",
			c32.daemon.perSec(), c32.floor.perSec(), x(c32.floor.perSec()/c32.daemon.perSec()), c32.cpu, n, prof)
	}
	return nil
}

// spoolCopies copies the first n packages of p into dir (inside the spool) under sequential names, like
// nginx's temp files, and flushes them to disk so their writeback does not land inside the measurement.
func (b *bench) spoolCopies(p pool, n int, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	names := make([]string, n)
	for i := range n {
		names[i] = filepath.Join(dir, fmt.Sprintf("%010d", i))
		if err := copyFile(p.path(i), names[i]); err != nil {
			return nil, err
		}
	}
	unix.Sync()
	return names, nil
}

// runFloor does the unavoidable work on each file with conc workers: open, read the header bytes, hash the
// whole file, link it into pkgDir, fsync the file and the directory, and remove the spool name. It returns
// the latencies and the CPU seconds this process spent (nothing else runs in it meanwhile).
func runFloor(files []string, pkgDir string, conc int) (loadResult, float64, error) {
	if err := os.MkdirAll(pkgDir, 0o755); err != nil {
		return loadResult{}, 0, err
	}
	dirf, err := os.Open(pkgDir)
	if err != nil {
		return loadResult{}, 0, err
	}
	defer dirf.Close()
	var ru0, ru1 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	lat := make([]time.Duration, len(files))
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(files) {
					return
				}
				t0 := time.Now()
				err := floorOne(files[i], filepath.Join(pkgDir, fmt.Sprintf("p%06d.rpm", i)), dirf, buf)
				lat[i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	r := loadResult{n: len(files), wall: time.Since(start), lat: lat}
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	cpu := tvSec(ru1.Utime) + tvSec(ru1.Stime) - tvSec(ru0.Utime) - tvSec(ru0.Stime)
	sortDurations(r.lat)
	return r, cpu, firstErr
}

// floorOne is the floor's work for one spooled file; buf is the worker's read buffer.
func floorOne(src, dst string, dir *os.File, buf []byte) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	// The header is the first bytes of the file: reading the whole file through the hash covers both.
	if _, err := io.CopyBuffer(h, f, buf); err != nil {
		return err
	}
	_ = h.Sum(nil)
	if err := os.Link(src, dst); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := dir.Sync(); err != nil {
		return err
	}
	return os.Remove(src)
}

// tvSec converts a rusage time to seconds.
func tvSec(tv unix.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

// sampleRSS records the highest VmRSS of pid into peak every 10 ms until the returned function is called.
func sampleRSS(pid int, peak *memory) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := readMemory(pid); err == nil && m.rss > peak.rss {
				peak.rss = m.rss
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(stop); <-done }
}
