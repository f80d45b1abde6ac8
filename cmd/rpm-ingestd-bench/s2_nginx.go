package main

import (
	"golang.org/x/sys/unix"

	"fmt"
	"path/filepath"
	"syscall"
	"time"
)

// bigPool holds scenario 2's 10 MiB packages.
func (b *bench) bigPool() pool {
	return pool{dir: filepath.Join(b.var_, "fixtures", "10m"), prefix: "b10m", size: 10 << 20}
}

// scenarioNginx is scenario 2: uploads through real nginx and the daemon, against nginx storing the same
// bodies alone, at concurrency 8.
func (b *bench) scenarioNginx() error {
	small, big := b.smallPool(), b.bigPool()
	if err := small.ensure(b.out, b.sz.nginxSmallN); err != nil {
		return err
	}
	if err := big.ensure(b.out, b.sz.nginxBigN); err != nil {
		return err
	}
	dir, err := b.scratch("s2")
	if err != nil {
		return err
	}
	defer b.cleanup(dir)
	conf, err := daemonConf{dir: filepath.Join(dir, "daemon"), top: filepath.Join(dir, "top"),
		spool: filepath.Join(dir, "spool"), quiet: time.Hour, maxDelay: 2 * time.Hour}.withHtpasswd()
	if err != nil {
		return err
	}
	d, err := startDaemon(&b.procs, b.bin, conf)
	if err != nil {
		return err
	}
	defer d.stop(syscall.SIGKILL, time.Second)
	ng, err := startNginx(&b.procs, b.nginx, b.src(), filepath.Join(dir, "nginx"), d)
	if err != nil {
		return err
	}
	defer ng.close()
	const conc = 8
	for _, c := range []struct {
		label string
		p     pool
		n     int
	}{{"10 KiB", small, b.sz.nginxSmallN}, {"10 MiB", big, b.sz.nginxBigN}} {
		// nginx alone first, then through the daemon, both from the page cache. Each starts with nothing left to
		// write back (as scenarios 1 and 3 do): nginx alone never fsyncs, so without the sync its bodies' writeback
		// would still be under way while the daemon's uploads, which fsync, are measured.
		unix.Sync()
		alone, err := runLoad(ng.web, c.n, conc, func(i int) (*httpRequest, error) { return ng.put("/sink/body", c.p.path(i)) }, 201, 204)
		if err != nil {
			return fmt.Errorf("nginx alone: %w", err)
		}
		unix.Sync()
		ours, err := runLoad(ng.web, c.n, conc, func(i int) (*httpRequest, error) {
			return ng.put("/upload/?os_release=n"+filepath.Base(c.p.prefix), c.p.path(i))
		}, 201)
		if err != nil {
			return fmt.Errorf("through the daemon: %w", err)
		}
		r50 := float64(ours.pct(0.5)) / float64(alone.pct(0.5))
		b.add(row{scen: "2", what: fmt.Sprintf("through nginx, %s, c=8: p50 latency ours/nginx alone", c.label), ratio: x(r50),
			abs: fmt.Sprintf("ours p50 %s p99 %s %.0f/s (%s/s); nginx alone p50 %s p99 %s %.0f/s", ms(ours.pct(0.5)), ms(ours.pct(0.99)),
				ours.perSec(), human(int64(ours.perSec()*float64(c.p.size))), ms(alone.pct(0.5)), ms(alone.pct(0.99)), alone.perSec()),
			target: "≤ 1.2×", met: verdict(r50 <= 1.2)})
		b.add(row{scen: "2", what: fmt.Sprintf("through nginx, %s, c=8: p99 latency ours/nginx alone", c.label),
			ratio: x(float64(ours.pct(0.99)) / float64(alone.pct(0.99))), abs: "see above"})
		if r50 > 1.2 {
			// The same packages once more into other repositories, with the daemon's system calls counted.
			calls, err := straceAttach(d, c.n, func() error {
				_, err := runLoad(ng.web, c.n, conc, func(i int) (*httpRequest, error) {
					return ng.put("/upload/?os_release=s"+filepath.Base(c.p.prefix), c.p.path(i))
				}, 201)
				return err
			})
			if err != nil {
				calls = "strace failed: " + err.Error()
			}
			b.note("Scenario 2, %s: p50 %s through the daemon against %s for nginx alone. What the daemon adds per "+
				"upload is durability and checking: nginx's DAV store neither fsyncs nor reads the body back, the daemon reads "+
				"the spooled file once (SHA-256 of the file and of the payload in one pass) and fsyncs it and the directory. "+
				"strace -c -f of the daemon during one more batch, system calls by share of time (calls per upload): %s",
				c.label, ms(ours.pct(0.5)), ms(alone.pct(0.5)), calls)
		}
	}
	return nil
}
