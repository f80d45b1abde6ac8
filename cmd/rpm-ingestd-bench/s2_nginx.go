package main

import (
	"golang.org/x/sys/unix"

	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// bigPool holds scenario 2's 10 MiB packages.
func (b *bench) bigPool() pool {
	return pool{dir: filepath.Join(b.var_, "fixtures", "10m"), prefix: "b10m", size: 10 << 20}
}

// s2Rounds is how many alternating rounds scenario 2 splits each size's uploads into.
const s2Rounds = 4

// s2Case is one size of scenario 2.
type s2Case struct {
	label string
	p     pool
	n     int
}

// scenarioNginx is scenario 2: uploads through real nginx and the daemon, against nginx storing the same
// bodies alone, at concurrency 8. The target rows run the daemon with its defaults; the 10 KiB size is run once
// more with server.htpasswd_cache: 0, so that the daemon hashes every login as nginx alone's auth_basic does, to
// show what the rest of the daemon costs beside nginx.
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
	if err := b.nginxStack(filepath.Join(dir, "default"), "", []s2Case{
		{"10 KiB", small, b.sz.nginxSmallN}, {"10 MiB", big, b.sz.nginxBigN}}); err != nil {
		return err
	}
	return b.nginxStack(filepath.Join(dir, "nocache"), "server.htpasswd_cache: 0", []s2Case{{"10 KiB", small, b.sz.nginxSmallN}})
}

// nginxStack starts a daemon (with variant, a server key and value as "server.key: value", set; "" for the
// defaults) and nginx in front of it under dir, and measures each case against nginx alone. The rows of a
// variant name it and have no target.
func (b *bench) nginxStack(dir, variant string, cases []s2Case) error {
	conf, err := daemonConf{dir: filepath.Join(dir, "daemon"), top: filepath.Join(dir, "top"),
		spool: filepath.Join(dir, "spool"), quiet: time.Hour, maxDelay: 2 * time.Hour}.withHtpasswd()
	if err != nil {
		return err
	}
	if variant != "" {
		conf.server = "  " + strings.TrimPrefix(variant, "server.") + "\n"
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
	for _, c := range cases {
		// nginx alone and through the daemon in alternating rounds (AB, BA, AB, BA), both from the page cache, so
		// that the two see the same machine: on this VM a page-cache write costs several times more when it lands
		// in memory the host has reclaimed, which changes over seconds (docs/benchmarks-notes.md, "The VM's
		// memory"), and one batch of each, one after the other, compared two different machines. Each batch
		// starts with nothing left to write back (as scenarios 1 and 3 do): nginx alone never fsyncs, so without
		// the sync its bodies' writeback would still be under way while the daemon's uploads, which fsync, are
		// measured.
		var alone, ours loadResult
		per := c.n / s2Rounds
		for r := range s2Rounds {
			base := r * per
			runAlone := func() error {
				unix.Sync()
				res, err := runLoad(ng.web, per, conc, func(i int) (*httpRequest, error) { return ng.put("/sink/body", c.p.path(base+i)) }, 201, 204)
				if err != nil {
					return fmt.Errorf("nginx alone: %w", err)
				}
				alone = alone.merge(res)
				return nil
			}
			runOurs := func() error {
				unix.Sync()
				res, err := runLoad(ng.web, per, conc, func(i int) (*httpRequest, error) {
					return ng.put("/upload/?os_release=n"+filepath.Base(c.p.prefix), c.p.path(base+i))
				}, 201)
				if err != nil {
					return fmt.Errorf("through the daemon: %w", err)
				}
				ours = ours.merge(res)
				return nil
			}
			order := []func() error{runAlone, runOurs}
			if r%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
			for _, run := range order {
				if err := run(); err != nil {
					return err
				}
			}
		}
		r50 := float64(ours.pct(0.5)) / float64(alone.pct(0.5))
		what, target, met := fmt.Sprintf("through nginx, %s, c=8", c.label), "≤ 1.2×", verdict(r50 <= 1.2)
		if variant != "" {
			what, target, met = fmt.Sprintf("through nginx, %s, c=8 (%s)", c.label, variant), "", ""
		}
		b.add(row{scen: "2", what: what + ": p50 latency ours/nginx alone", ratio: x(r50),
			abs: fmt.Sprintf("ours p50 %s p99 %s %.0f/s (%s/s); nginx alone p50 %s p99 %s %.0f/s", ms(ours.pct(0.5)), ms(ours.pct(0.99)),
				ours.perSec(), human(int64(ours.perSec()*float64(c.p.size))), ms(alone.pct(0.5)), ms(alone.pct(0.99)), alone.perSec()),
			target: target, met: met})
		b.add(row{scen: "2", what: what + ": p99 latency ours/nginx alone",
			ratio: x(float64(ours.pct(0.99)) / float64(alone.pct(0.99))), abs: "see above"})
		if r50 > 1.2 && variant == "" {
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
