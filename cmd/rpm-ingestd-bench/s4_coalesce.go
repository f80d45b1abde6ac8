package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// scenarioCoalesce is scenario 4: a burst of uploads into one repository with a 2 s quiet period, against
// createrepo_c after every upload.
func (b *bench) scenarioCoalesce() error {
	p := b.smallPool()
	n, span := b.sz.coalesceN, b.sz.coalesceDur
	if err := p.ensure(b.out, n); err != nil {
		return err
	}
	dir, err := b.scratch("s4")
	if err != nil {
		return err
	}
	defer b.cleanup(dir)
	const quiet = 2 * time.Second
	top, spool := filepath.Join(dir, "top"), filepath.Join(dir, "spool")
	names, err := b.spoolCopies(p, n, filepath.Join(spool, "pre"))
	if err != nil {
		return err
	}
	d, err := startDaemon(&b.procs, b.bin, daemonConf{dir: filepath.Join(dir, "daemon"), top: top, spool: spool, quiet: quiet, maxDelay: time.Minute})
	if err != nil {
		return err
	}
	defer d.close()
	repo := filepath.Join(top, "co", "x86_64")
	cpu0, err := readCPU(d.pid())
	if err != nil {
		return err
	}
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(span * time.Duration(i) / time.Duration(n))))
		if err := do(d.client, func(i int) (*httpRequest, error) { return headerPut("http://rpm-ingestd", names[i], "co") }, i, []int{201}); err != nil {
			return err
		}
	}
	last := time.Now()
	st, err := d.waitSettled(repo, 1, 5*time.Minute)
	if err != nil {
		return err
	}
	published := time.Since(last)
	lastName := p.spec(n - 1).name
	var visible time.Duration
	for {
		ok, err := dnfLists(filepath.Join(dir, "dnf"), repo, lastName)
		if err != nil {
			return err
		}
		if ok {
			visible = time.Since(last)
			break
		}
		if time.Since(last) > 2*time.Minute {
			return fmt.Errorf("dnf does not list %s 2 minutes after the last upload", lastName)
		}
	}
	cpu1, err := readCPU(d.pid())
	if err != nil {
		return err
	}
	ours := cpu1.children - cpu0.children

	// The naive design: the same uploads, createrepo_c after each.
	naiveDir := filepath.Join(dir, "naive")
	if err := os.MkdirAll(filepath.Join(naiveDir, "Packages"), 0o755); err != nil {
		return err
	}
	prog := newProgress(b.out, fmt.Sprintf("naive: createrepo_c after each of %d uploads", n), n)
	var naiveCPU float64
	var naiveWall time.Duration
	for i := range n {
		if err := copyFile(p.path(i), filepath.Join(naiveDir, "Packages", p.spec(i).fileName())); err != nil {
			prog.done()
			return err
		}
		w, c, err := timedRun("", "createrepo_c", "--update", "--no-database", naiveDir)
		if err != nil {
			prog.done()
			return err
		}
		naiveCPU += c
		naiveWall += w
		prog.add(1)
	}
	prog.done()
	r := naiveCPU / max(ours, 0.01)
	b.add(row{scen: "4", what: fmt.Sprintf("%d uploads over %s: index runs", n, span), ratio: "-",
		abs: fmt.Sprintf("%d run(s), naive %d", st.Runs, n), target: "1 per burst", met: verdict(st.Runs == 1)})
	b.add(row{scen: "4", what: "indexer CPU: naive/ours", ratio: x(r),
		abs:    fmt.Sprintf("ours %.2f CPU-s; naive %.2f CPU-s (%s of createrepo_c wall time)", ours, naiveCPU, ms(naiveWall)),
		target: "≥ 50×", met: verdict(r >= 50)})
	b.add(row{scen: "4", what: "last upload → published / → dnf lists it", ratio: "-",
		abs: fmt.Sprintf("published after %s (quiet period %s), dnf repoquery lists it after %s", ms(published), quiet, ms(visible))})
	if ours < 0.01 {
		b.note("Scenario 4: the indexer's CPU was below the 10 ms resolution of /proc/<pid>/stat; the ratio uses 0.01 s.")
	}
	return nil
}
