package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// traceDaemonRun adds the tree's package through a daemon traced by strace (file-system and process calls
// only, with their durations) and splits the index run into: before createrepo_c starts, createrepo_c itself,
// and after it exits. This is the evidence for scenario 5's overhead: the measured binary is stripped, so perf
// cannot name its functions, and a CPU profile (server.debug_listen) shows work, not waiting; the system calls show
// what it waits for.
func (b *bench) traceDaemonRun(t *tree) (string, error) {
	if err := t.resetCold(); err != nil {
		return "", err
	}
	dir := filepath.Join(b.var_, "run", "s5-trace")
	os.RemoveAll(dir)
	spool := filepath.Join(dir, "spool")
	d, err := startDaemon(&b.procs, b.bin, daemonConf{dir: filepath.Join(dir, "daemon"), top: t.top, spool: spool, quiet: time.Second, maxDelay: time.Minute})
	if err != nil {
		return "", err
	}
	defer d.close()
	if _, err := b.warmUp(d, t, spool); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "strace.txt")
	st := exec.Command("strace", "-f", "-ttt", "-T", "-o", out, "-p", strconv.Itoa(d.pid()),
		"-e", "trace=execve,fsync,fdatasync,renameat2,rename,renameat,linkat,link,unlinkat,mkdirat,utimensat,openat,getdents64,newfstatat,statx,lstat,stat")
	if err := st.Start(); err != nil {
		return "", fmt.Errorf("strace: %w", err)
	}
	time.Sleep(500 * time.Millisecond) // attached to every thread
	name := filepath.Join(spool, "pre", "0000000001")
	err = os.MkdirAll(filepath.Dir(name), 0o700)
	if err == nil {
		err = copyFile(t.addP, name)
	}
	if err == nil {
		err = do(d.client, func(int) (*httpRequest, error) { return headerPut("http://rpm-ingestd", name, "9") }, 0, []int{201})
	}
	var rs repoStatus
	if err == nil {
		rs, err = d.waitSettled(t.repo, 2, 10*time.Minute)
	}
	_ = st.Process.Signal(syscall.SIGINT)
	_ = st.Wait()
	if err != nil {
		return "", err
	}
	if rs.LastStart == nil || rs.LastEnd == nil {
		return "", fmt.Errorf("no last_start/last_end")
	}
	return summarizeTrace(out, *rs.LastStart, *rs.LastEnd)
}

// summarizeTrace reads an strace -f -ttt -T log and reports the phases of the run between start and end.
func summarizeTrace(path string, start, end time.Time) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s0, s1 := float64(start.UnixNano())/1e9, float64(end.UnixNano())/1e9
	var crPid string
	var exec0, exit1 float64
	type agg struct {
		n   int
		sum float64
	}
	phase := func(ts float64) int {
		switch {
		case exec0 == 0 || ts < exec0:
			return 0
		case exit1 == 0 || ts <= exit1:
			return 1
		}
		return 2
	}
	calls := [3]map[string]*agg{{}, {}, {}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		pid := fields[0]
		ts, err := strconv.ParseFloat(fields[1], 64)
		if err != nil || ts < s0-0.001 || ts > s1+0.001 {
			continue
		}
		rest := strings.Join(fields[2:], " ")
		if strings.HasPrefix(rest, "execve(") && strings.Contains(rest, "createrepo") && exec0 == 0 {
			crPid, exec0 = pid, ts
			continue
		}
		if pid == crPid && strings.HasPrefix(rest, "+++ exited") {
			exit1 = ts
			continue
		}
		if pid == crPid {
			continue // createrepo_c's own calls: only its span counts
		}
		call, _, ok := strings.Cut(rest, "(")
		if !ok || strings.HasPrefix(call, "<") || strings.HasPrefix(call, "+++") {
			continue
		}
		var dur float64
		if i := strings.LastIndexByte(rest, '<'); i >= 0 && strings.HasSuffix(rest, ">") {
			dur, _ = strconv.ParseFloat(rest[i+1:len(rest)-1], 64)
		}
		p := phase(ts)
		a := calls[p][call]
		if a == nil {
			a = &agg{}
			calls[p][call] = a
		}
		a.n++
		a.sum += dur
	}
	if exec0 == 0 || exit1 == 0 {
		return "", fmt.Errorf("no createrepo_c run between last_start and last_end in %s", path)
	}
	list := func(m map[string]*agg) string {
		var parts []string
		for _, c := range []string{"getdents64", "newfstatat", "statx", "lstat", "stat", "fsync", "fdatasync", "openat", "linkat", "renameat2", "renameat", "rename", "unlinkat", "mkdirat", "utimensat"} {
			if a := m[c]; a != nil {
				parts = append(parts, fmt.Sprintf("%d %s (%.1f ms)", a.n, c, a.sum*1000))
			}
		}
		if len(parts) == 0 {
			return "no file-system calls"
		}
		return strings.Join(parts, ", ")
	}
	ms3 := func(a, b float64) string { return fmt.Sprintf("%.1f ms", (b-a)*1000) }
	return fmt.Sprintf("index run %s (under strace): before createrepo_c %s [%s]; createrepo_c %s; after it exits %s [%s]; "+
		"other threads (createrepo_c's workers among them) while createrepo_c ran: [%s]",
		ms3(s0, s1), ms3(s0, exec0), list(calls[0]), ms3(exec0, exit1), ms3(exit1, s1), list(calls[2]), list(calls[1])), nil
}
