package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// hugePool holds scenario 3's one big package (256 MiB, 64 MiB in quick mode).
func (b *bench) hugePool() pool {
	return pool{dir: filepath.Join(b.var_, "fixtures", "huge-"+strconv.Itoa(b.sz.bigSize>>20)+"m"), prefix: "bhuge", size: b.sz.bigSize}
}

// scenarioDirect is scenario 3: direct-mode streaming of one big package against cp, and the daemon's peak RSS
// with 16 big uploads in flight against 16 small ones.
func (b *bench) scenarioDirect() error {
	huge, mid := b.hugePool(), b.bigPool()
	if err := huge.ensure(b.out, 1); err != nil {
		return err
	}
	if err := mid.ensure(b.out, 16); err != nil {
		return err
	}
	dir, err := b.scratch("s3")
	if err != nil {
		return err
	}
	defer b.cleanup(dir)
	conf := daemonConf{dir: filepath.Join(dir, "daemon"), top: filepath.Join(dir, "top"), spool: filepath.Join(dir, "spool"),
		direct: true, quiet: time.Hour, maxDelay: 2 * time.Hour}
	d, err := startDaemon(&b.procs, b.bin, conf)
	if err != nil {
		return err
	}
	const reps = 3
	cpus := 0
	var ours, cps, cpSyncs, bares, hashes, hash2s []time.Duration
	var cpuAll, cpuDaemon []time.Duration // the CPU each upload used: all processes, and the daemon's
	bare, err := newBareReceiver(filepath.Join(dir, "bare"))
	if err != nil {
		return err
	}
	defer bare.close()
	// Each side writes the 256 MiB into the page cache. The file the side before wrote is removed first, so that
	// every side writes into pages just freed, and none into memory this VM has handed back to its host, which
	// costs up to ten times as much to write (docs/benchmarks-notes.md, "The VM's memory"): without that, the
	// sides that came later in a repetition, after the page cache had grown, got it more often. A copy made and
	// removed before the first repetition gives the first side freed pages too.
	last := filepath.Join(conf.top, "warm")
	if _, _, err := cpOnce(huge.path(0), last); err != nil {
		d.stop(syscall.SIGKILL, time.Second)
		return err
	}
	next := func(path string) {
		os.RemoveAll(last)
		unix.Sync() // and the writeback of what came before must not land in this measurement
		last = path
	}
	rep := func(i int) error {
		next(filepath.Join(conf.top, "d"+strconv.Itoa(i))) // the upload's repository
		sys0, d0, err := readCPUs(d.pid())
		if err != nil {
			return err
		}
		t0 := time.Now()
		status, body, err := sendfilePut(d.socket, "/upload/?os_release=d"+strconv.Itoa(i), huge.path(0))
		if err == nil && status != http.StatusCreated {
			err = fmt.Errorf("direct upload of %s: %d %s", huge.path(0), status, body)
		}
		if err != nil {
			return err
		}
		ours = append(ours, time.Since(t0))
		sys1, d1, err := readCPUs(d.pid())
		if err != nil {
			return err
		}
		cpuAll = append(cpuAll, seconds(sys1.busy-sys0.busy))
		cpuDaemon = append(cpuDaemon, seconds(d1.self-d0.self))
		cpus = sys1.cpus
		next(filepath.Join(conf.top, "cp"))
		plain, synced, err := cpOnce(huge.path(0), filepath.Join(conf.top, "cp", strconv.Itoa(i)))
		if err != nil {
			return err
		}
		cps, cpSyncs = append(cps, plain), append(cpSyncs, synced)
		next(bare.body())
		bt, err := bareUpload(bare, huge.path(0))
		if err != nil {
			return err
		}
		ht, err := hashOnce(huge.path(0))
		if err != nil {
			return err
		}
		h2, err := hashTwoCores(huge.path(0))
		if err != nil {
			return err
		}
		bares, hashes, hash2s = append(bares, bt), append(hashes, ht), append(hash2s, h2)
		return nil
	}
	for i := range reps {
		if err := rep(i); err != nil {
			d.stop(syscall.SIGKILL, time.Second)
			return err
		}
	}
	os.RemoveAll(last)
	d.stop(syscall.SIGKILL, time.Second)
	o, c, cs := median(ours), median(cps), median(cpSyncs)
	r := float64(cs) / float64(o) // throughput ours ÷ throughput of cp+fsync
	mbps := func(t time.Duration) string { return fmt.Sprintf("%.0f MiB/s", float64(huge.size)/(1<<20)/t.Seconds()) }
	b.add(row{scen: "3", what: fmt.Sprintf("direct upload of %s: throughput ours/cp+fsync", human(int64(huge.size))), ratio: x(r),
		abs:    fmt.Sprintf("ours %s (%s); cp+fsync %s (%s); plain cp %s (%s); median of %d", ms(o), mbps(o), ms(cs), mbps(cs), ms(c), mbps(c), reps),
		target: "≥ 0.9×", met: verdict(r >= 0.9)})
	bm, hm := median(bares), median(hashes)
	b.add(row{scen: "3", what: "direct upload without the hashing (no target): throughput receive+write+fsync/cp+fsync", ratio: x(float64(cs) / float64(bm)),
		abs: fmt.Sprintf("receive over the socket, write and fsync, no hashing: %s; median of %d, same repetitions", ms(bm), reps)})
	b.add(row{scen: "3", what: "the two digests alone (no target): throughput hashing/cp+fsync", ratio: x(float64(cs) / float64(hm)),
		abs: fmt.Sprintf("the whole-file SHA-256 and the payload digest as the daemon computes them (on one core), read from the page cache: %s; "+
			"two SHA-256 passes each on a goroutine of its own (two cores, nothing else running): %s; medians of %d, same repetitions", ms(hm), ms(median(hash2s)), reps)})

	// The time the target allows an upload is cs/0.9, in which the machine's cores give cpus × cs/0.9 of CPU. An
	// upload that takes more CPU than that, counting everything the machine did meanwhile (the daemon, this
	// program sending the body, the kernel's writeback), cannot meet the target however its work is spread; one
	// that takes a little less meets it only if no core is ever idle, while the daemon's two digests are computed
	// on one goroutine (docs/benchmarks-notes.md, "Issue 20: scenario 3's CPU").
	allowed := time.Duration(float64(cpus) * float64(cs) / 0.9)
	ca, cd := median(cpuAll), median(cpuDaemon)
	b.add(row{scen: "3", what: fmt.Sprintf("the upload's CPU, all processes (no target): CPU used/what %d cores give in the time the target allows", cpus),
		ratio: x(float64(ca) / float64(allowed)),
		abs: fmt.Sprintf("%s of CPU per upload, the daemon's %s of it (the rest: this program sending the body, the kernel's writeback); "+
			"%d × cp+fsync ÷ 0.9 = %s; at 1× the target needs every core busy all along, above it no spreading of the work meets it; from /proc/stat, 10 ms ticks; medians of %d, same repetitions",
			ms(ca), ms(cd), cpus, ms(allowed), reps)})

	if r < 0.9 {
		pconf := conf
		pconf.dir, pconf.top = filepath.Join(dir, "perf"), filepath.Join(dir, "top-perf")
		prof, err := b.perfDaemon(pconf, func(d *daemon) error {
			for i := range reps {
				err := do(d.client, func(int) (*httpRequest, error) {
					return bodyPut("http://rpm-ingestd/upload/?os_release=perf"+strconv.Itoa(i), huge.path(0))
				}, 0, []int{201})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			prof = "perf failed: " + err.Error()
		}
		b.note("Scenario 3: one direct upload of %s took %s against %s for cp+fsync (cp copies inside the kernel with "+
			"copy_file_range; the upload crosses a socket from this program, sent with sendfile, and is written by the daemon, which hashes it as it "+
			"arrives: the whole-file SHA-256 and the payload digest, interleaved on one goroutine where the CPU has the SHA extensions). perf record of the daemon (a build with symbols) during %d more "+
			"uploads, functions by share of its samples: %s", human(int64(huge.size)), ms(o), ms(cs), reps, prof)
	}

	// Peak RSS: a fresh daemon per size, so VmHWM is this burst's peak.
	hwm := map[string]memory{}
	for _, burst := range []struct {
		label string
		path  func(i int) string
	}{{"10 MiB", mid.path}, {human(int64(huge.size)), func(int) string { return huge.path(0) }}} {
		conf.dir = filepath.Join(dir, "daemon-"+burst.label)
		conf.top = filepath.Join(dir, "top-"+burst.label)
		d, err := startDaemon(&b.procs, b.bin, conf)
		if err != nil {
			return err
		}
		var peak memory
		stop := sampleRSS(d.pid(), &peak)
		res, err := runLoad(d.client, 16, 16, func(i int) (*httpRequest, error) {
			return bodyPut("http://rpm-ingestd/upload/?os_release=p"+strconv.Itoa(i), burst.path(i))
		}, 201)
		stop()
		m, merr := readMemory(d.pid())
		d.stop(syscall.SIGKILL, time.Second)
		if err != nil {
			return err
		}
		if merr != nil {
			return merr
		}
		m.rss = peak.rss
		hwm[burst.label] = m
		fmt.Fprintf(b.out, "  16 × %s direct in %s: VmHWM %s\n", burst.label, ms(res.wall), human(m.hwm))
	}
	small, large := hwm["10 MiB"], hwm[human(int64(huge.size))]
	b.add(row{scen: "3", what: fmt.Sprintf("peak RSS, 16 × %s in flight / 16 × 10 MiB", human(int64(huge.size))),
		ratio:  x(float64(large.hwm) / float64(small.hwm)),
		abs:    fmt.Sprintf("VmHWM %s with 16 × %s, %s with 16 × 10 MiB", human(large.hwm), human(int64(huge.size)), human(small.hwm)),
		target: "≤ 64 MiB", met: verdict(large.hwm <= 64<<20)})
	return nil
}

// cpOnce copies src to dst with cp, then fsyncs dst: the plain cp time and the time including the fsync.
func cpOnce(src, dst string) (plain, synced time.Duration, err error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if _, _, err := timedRun("", "cp", src, dst); err != nil {
		return 0, 0, err
	}
	plain = time.Since(t0)
	f, err := os.Open(dst)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return 0, 0, err
	}
	return plain, time.Since(t0), nil
}

// median returns the middle value (the upper one of an even count) without reordering d.
func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
