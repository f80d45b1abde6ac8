package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat. It is 100 on every Linux architecture
// Go supports; reading it would need cgo's sysconf.
const clockTicks = 100

// cpuTimes is a process's CPU time in seconds: its own, and that of its waited-for children (createrepo_c for
// the daemon), from /proc/<pid>/stat fields 14-17.
type cpuTimes struct{ self, children float64 }

// readCPU reads the CPU times of pid.
func readCPU(pid int) (cpuTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return cpuTimes{}, err
	}
	// The command name (field 2) may hold spaces and parentheses: the numeric fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return cpuTimes{}, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 15 {
		return cpuTimes{}, errors.New("short /proc stat")
	}
	num := func(n int) float64 { v, _ := strconv.ParseFloat(f[n-3], 64); return v / clockTicks }
	return cpuTimes{self: num(14) + num(15), children: num(16) + num(17)}, nil
}

// systemCPU is the machine's CPU time in seconds since boot, all processes and the kernel's own threads together:
// busy is user, nice, system, irq and softirq (idle, iowait and steal left out; guest time is inside user), summed
// over the cpus online, from the first line of /proc/stat.
type systemCPU struct {
	busy float64
	cpus int
}

// readSystemCPU reads /proc/stat.
func readSystemCPU() (systemCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return systemCPU{}, err
	}
	return parseSystemCPU(b)
}

// readCPUs reads the machine's CPU time and pid's.
func readCPUs(pid int) (systemCPU, cpuTimes, error) {
	s, err := readSystemCPU()
	if err != nil {
		return systemCPU{}, cpuTimes{}, err
	}
	p, err := readCPU(pid)
	return s, p, err
}

// parseSystemCPU parses /proc/stat's text b.
func parseSystemCPU(b []byte) (systemCPU, error) {
	var s systemCPU
	seen := false
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		switch {
		case len(f) > 7 && f[0] == "cpu":
			var ticks int64
			for _, i := range []int{1, 2, 3, 6, 7} { // user, nice, system; irq, softirq (4-5: idle, iowait; 8: steal)
				v, err := strconv.ParseInt(f[i], 10, 64)
				if err != nil {
					return systemCPU{}, fmt.Errorf("/proc/stat: %q: %w", line, err)
				}
				ticks += v
			}
			s.busy = float64(ticks) / clockTicks
			seen = true
		case len(f) > 0 && strings.HasPrefix(f[0], "cpu"):
			s.cpus++
		}
	}
	if !seen || s.cpus == 0 {
		return systemCPU{}, errors.New("/proc/stat has no cpu lines")
	}
	return s, nil
}

// memory is a process's resident set now (VmRSS) and its peak since start (VmHWM), in bytes.
type memory struct{ rss, hwm int64 }

// readMemory reads /proc/<pid>/status.
func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			m.rss = kb << 10
		case "VmHWM":
			m.hwm = kb << 10
		}
	}
	return m, nil
}

// proc is a started child process in its own process group, so a forced stop reaches its children too.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// procSet remembers every process group the benchmark started, so an interrupted run can end them all.
type procSet struct {
	mu    sync.Mutex
	procs []*proc
}

// startProc starts cmd in its own process group and remembers it in ps.
func startProc(ps *procSet, name string, cmd *exec.Cmd) (*proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	ps.mu.Lock()
	ps.procs = append(ps.procs, p)
	ps.mu.Unlock()
	return p, nil
}

// killAll kills the process group of every started process still running (each was started by us, in its own
// group, so this ends exactly our daemons, nginx instances and their children).
func (ps *procSet) killAll() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.procs {
		if !p.exited() {
			_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		}
	}
}

// pid returns the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig and waits up to timeout, then kills the whole group.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// timedRun runs argv to completion and returns its wall time and CPU seconds (user + system, from rusage).
func timedRun(dir string, argv ...string) (wall time.Duration, cpu float64, err error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	wall = time.Since(start)
	if cmd.ProcessState != nil {
		cpu = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	if err != nil {
		return wall, cpu, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, tail(out.String(), 2000))
	}
	return wall, cpu, nil
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// seconds converts a CPU time in seconds to a Duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
