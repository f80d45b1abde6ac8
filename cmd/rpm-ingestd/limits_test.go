package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
)

// partFiles lists the direct-upload spool files (the ingester's .rpm-ingestd-*.part) in dir.
func partFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, ".rpm-ingestd-*.part"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestSIGTERMCutsOffTricklingUpload: a direct upload still trickling in when SIGTERM arrives is cut off once
// server.shutdown_timeout has passed; the daemon waits for its handler to remove the partial spool file and exits
// 0, since the cut-off upload was never acknowledged. (It used to wait 30 s, exit 1 and leave the .part file.) A
// .part file left by an earlier process is removed at start.
func TestSIGTERMCutsOffTricklingUpload(t *testing.T) {
	tr := newTree(t)
	stale := filepath.Join(tr.spool, ".rpm-ingestd-1234.part")
	if err := os.WriteFile(stale, []byte("half an upload from a killed daemon"), 0o600); err != nil {
		t.Fatal(err)
	}
	// No idle or rate limit that could cut the upload off before the stop does.
	d := tr.startWith(t, "1h", "  shutdown_timeout: 1s\n  upload_idle_timeout: 1h\n  upload_min_rate: 0\n")
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale %s still there after start (stat: %v)", stale, err)
	}

	conn, err := net.Dial("tcp", d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /upload/slow.rpm HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
	stopTrickle := make(chan struct{})
	defer close(stopTrickle)
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopTrickle:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte{0xed}); err != nil {
					return
				}
			}
		}
	}()
	// The upload is in flight once its spool file exists.
	for deadline := time.Now().Add(30 * time.Second); len(partFiles(t, tr.spool)) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no spool file for the trickling upload\n%s", d.killedLog())
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t); code != 0 {
		t.Fatalf("exit code %d after cutting off an unacknowledged upload, want 0\n%s", code, d.log)
	}
	if left := partFiles(t, tr.spool); len(left) != 0 {
		t.Errorf("partial spool files left: %v", left)
	}
	// The client was never told its upload was stored.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil && resp.StatusCode < 300 {
		t.Errorf("cut-off upload answered %s", resp.Status)
	}
	if !strings.Contains(d.log.String(), "server.shutdown_timeout reached") {
		t.Errorf("the log does not say the upload was cut off:\n%s", d.log)
	}
	// Cut off by the stop, and said so: 503 "stopping", not a client error (issue 18 item 13).
	if !strings.Contains(d.log.String(), `"status":503`) || !strings.Contains(d.log.String(), "the daemon is stopping") {
		t.Errorf("the cut-off upload is not logged as stopped (503):\n%s", d.log)
	}
}

// vmHWM reads a process's peak resident set size from /proc.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// peakMemoryBound is generous: the decode budget (rpmmeta.MaxDecodeBytes, 32 MiB) times the default 16 uploads at
// once is 512 MiB in the worst case, and the header bombs below cost far less than their budget once refused. Without
// the budget and the cap, 8 such uploads reached 2.1 GB.
const peakMemoryBound = 600 << 20

// TestPeakMemoryBoundedUnderHeaderBombs sends 16 crafted packages at once to the real daemon with its default
// limits. Each passes the structural checks but would make the rpm library allocate about 267 MiB. Every upload
// must be refused (4xx) or turned away (503), the daemon must stay up, and its peak resident memory must stay
// under peakMemoryBound. Nothing here measures time.
func TestPeakMemoryBoundedUnderHeaderBombs(t *testing.T) {
	bomb, err := testrpm.HeaderBomb()
	if err != nil {
		t.Fatal(err)
	}
	tr := newTree(t)
	d := tr.start(t, "1h")
	const uploads = 16
	statuses := make([]int, uploads)
	var wg sync.WaitGroup
	for i := range uploads {
		wg.Go(func() {
			resp, err := http.Post("http://"+d.addr+"/upload/bomb.rpm", "application/x-rpm", bytes.NewReader(bomb))
			if err != nil {
				t.Errorf("upload %d: %v", i, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, code := range statuses {
		if code != 0 && (code < 400 || code >= 500) && code != http.StatusServiceUnavailable {
			t.Errorf("upload %d: status %d, want a 4xx refusal or 503", i, code)
		}
	}
	d.waitHealthy(t) // still serving: no crash, no OOM kill
	if peak := vmHWM(t, d.cmd.Process.Pid); peak >= peakMemoryBound {
		t.Errorf("peak resident memory %d MiB, want under %d MiB", peak>>20, peakMemoryBound>>20)
	} else {
		t.Logf("peak resident memory %d MiB (bound %d MiB)", peak>>20, peakMemoryBound>>20)
	}
	if left := partFiles(t, tr.spool); len(left) != 0 {
		t.Errorf("partial spool files left: %v", left)
	}
}

// unitValue returns the value of the last "key=" line in the unit file (later lines override earlier ones).
func unitValue(t *testing.T, unit []byte, key string) string {
	t.Helper()
	var v string
	for _, line := range strings.Split(string(unit), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			v = rest
		}
	}
	if v == "" {
		t.Fatalf("the unit sets no %s=", key)
	}
	return v
}

// TestStopBudgetFitsTheUnit: the longest stop that the shipped configurations allow (HTTP drain, cutting off, the
// indexer's flush, createrepo_c's kill delay) fits within the stop budget, and the budget within the unit's
// TimeoutStopSec, so systemd never SIGKILLs a createrepo_c run the daemon is still waiting for. The shipped unit
// also keeps MemoryMax= above the daemon's soft memory_limit.
func TestStopBudgetFitsTheUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join("..", "..", "deploy", "systemd", "rpm-ingestd.service"))
	if err != nil {
		t.Fatal(err)
	}
	stop, err := time.ParseDuration(unitValue(t, unit, "TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v (write it in seconds, like 120s)", err)
	}
	if stop != config.UnitTimeoutStop {
		t.Errorf("unit TimeoutStopSec=%s, but config.UnitTimeoutStop is %s: change both", stop, config.UnitTimeoutStop)
	}
	if config.StopBudget >= stop {
		t.Errorf("stop budget %s leaves no margin below TimeoutStopSec=%s", config.StopBudget, stop)
	}
	memMax, err := config.ParseSize(unitValue(t, unit, "MemoryMax"))
	if err != nil {
		t.Fatalf("MemoryMax: %v", err)
	}

	files := []string{"config.yml", "config.dev.yml", "config.container.yml"}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "..", "deploy", name))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(data) // not Load: the directories it names exist only on a repo host
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.StopTime(); got > config.StopBudget {
				t.Errorf("longest stop %s is over the %s budget", got, config.StopBudget)
			}
			if cfg.Server.MemoryLimit >= memMax {
				t.Errorf("server.memory_limit %s is not below the unit's MemoryMax=%s", cfg.Server.MemoryLimit, memMax)
			}
		})
	}
	if got := config.Default().StopTime(); got > config.StopBudget {
		t.Errorf("built-in defaults: longest stop %s is over the %s budget", got, config.StopBudget)
	}
}
