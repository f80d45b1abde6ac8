package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// profBin builds the daemon once per run without -s -w, so perf can name its functions: the shipped binary is
// stripped, and perf, unlike the pprof of server.debug_listen, also shows the kernel's share. The code is the same
// as bin/rpm-ingestd's.
func (b *bench) profBin() (string, error) {
	p := filepath.Join(b.var_, "rpm-ingestd.symbols")
	if b.profBuilt {
		return p, nil
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", p, "./cmd/rpm-ingestd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build (for symbols): %w: %s", err, out)
	}
	b.profBuilt = true
	return p, nil
}

// perfDaemon starts the symbol-carrying daemon with conf, records it with perf while load runs, and returns
// the functions with the largest share of its CPU samples.
func (b *bench) perfDaemon(conf daemonConf, load func(d *daemon) error) (string, error) {
	return b.perfDaemonWarm(conf, nil, load)
}

// perfDaemonWarm is perfDaemon with a setup step (nil: none) that runs before perf attaches.
func (b *bench) perfDaemonWarm(conf daemonConf, setup, load func(d *daemon) error) (string, error) {
	bin, err := b.profBin()
	if err != nil {
		return "", err
	}
	d, err := startDaemon(&b.procs, bin, conf)
	if err != nil {
		return "", err
	}
	defer d.stop(syscall.SIGKILL, time.Second)
	if setup != nil {
		if err := setup(d); err != nil {
			return "", err
		}
	}
	data := filepath.Join(conf.dir, "perf.data")
	rec := exec.Command("perf", "record", "-q", "-F", "1999", "-o", data, "-p", strconv.Itoa(d.pid()))
	if err := rec.Start(); err != nil {
		return "", fmt.Errorf("perf record: %w", err)
	}
	time.Sleep(300 * time.Millisecond)
	lerr := load(d)
	_ = rec.Process.Signal(syscall.SIGINT)
	_ = rec.Wait()
	if lerr != nil {
		return "", lerr
	}
	report := func(sort string, limit int, extra ...string) (string, error) {
		args := append([]string{"report", "-i", data, "--stdio", "--no-children", "--sort", sort, "--percent-limit", "2"}, extra...)
		out, err := exec.Command("perf", args...).Output()
		if err != nil {
			return "", fmt.Errorf("perf report: %w", err)
		}
		lines := strings.Split(keepLines(string(out), func(l string) bool { return strings.Contains(l, "%") && !strings.HasPrefix(l, "#") }), "\n")
		for i, l := range lines {
			lines[i] = strings.Join(strings.Fields(l), " ")
		}
		return strings.Join(lines[:min(len(lines), limit)], "; "), nil
	}
	dso, err := report("dso", 7)
	if err != nil {
		return "", err
	}
	sym, err := report("sym", 12)
	if err != nil {
		return "", err
	}
	// Within the daemon's own code (Go runtime included), percentages of that binary's samples.
	own, err := report("sym", 12, "--dsos", filepath.Base(bin), "--percentage", "relative")
	return "by binary: " + dso + "; by function: " + sym + "; within " + filepath.Base(bin) + " only: " + own, err
}

// straceDaemon starts the daemon with conf, counts its system calls (strace -c -f) while load runs, and returns
// the calls with the most time, per operation of the load (ops).
func (b *bench) straceDaemon(conf daemonConf, ops int, load func(d *daemon) error) (string, error) {
	d, err := startDaemon(&b.procs, b.bin, conf)
	if err != nil {
		return "", err
	}
	defer d.stop(syscall.SIGKILL, time.Second)
	return straceAttach(d, ops, func() error { return load(d) })
}

// straceAttach counts the system calls of the running daemon d (strace -c -f) while load runs, and returns the
// calls with the most time, per operation of the load (ops).
func straceAttach(d *daemon, ops int, load func() error) (string, error) {
	out := filepath.Join(d.conf.dir, fmt.Sprintf("strace-c-%d.txt", time.Now().UnixNano()))
	st := exec.Command("strace", "-c", "-f", "-o", out, "-p", strconv.Itoa(d.pid()))
	if err := st.Start(); err != nil {
		return "", fmt.Errorf("strace: %w", err)
	}
	time.Sleep(500 * time.Millisecond)
	lerr := load()
	_ = st.Process.Signal(syscall.SIGINT)
	_ = st.Wait()
	if lerr != nil {
		return "", lerr
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		return "", err
	}
	// Lines: % time, seconds, usecs/call, calls, [errors], syscall.
	var parts []string
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || strings.HasPrefix(l, "%") || strings.HasPrefix(l, "-") || f[len(f)-1] == "total" {
			continue
		}
		calls, err := strconv.Atoi(f[3])
		if err != nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s%% (%.1f/op)", f[len(f)-1], f[0], float64(calls)/float64(ops)))
		if len(parts) == 10 {
			break
		}
	}
	return strings.Join(parts, ", "), nil
}
