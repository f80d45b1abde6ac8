package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
)

// TestTwoDaemonsLockDirMovedByHand: two daemons share one tree and spool, and an operator moved the placement lock
// directory away (mv .rpm-ingestd-locks elsewhere) while the first was running and before the second started: the
// first keeps its lock files open (they are the moved ones now), the second creates new ones at the path. Two
// different builds of one noarch package uploaded at once, one to each daemon (overwrite off), must still be
// placed all or nothing under the shared name lock: exactly one is created (201) in both arches, the other is a
// 409, and both arches hold the winner's bytes. The overlap of two placements is too short to be hit reliably
// from outside, so the test also looks at what each daemon holds open (/proc/PID/fd): after the uploads, the lock
// file of every bucket used must be the one at the path in both daemons, never the moved one.
func TestTwoDaemonsLockDirMovedByHand(t *testing.T) {
	s := newStack(t)
	locks := filepath.Join(s.top, ".rpm-ingestd-locks")
	if err := os.Rename(locks, locks+".old"); err != nil {
		t.Fatal(err)
	}
	s2 := *s // the same tree, spool and settings; its own socket, log and process
	s2.socket = filepath.Join(s.dir, "sock2", "ingestd.sock")
	s2.daemonLg = filepath.Join(s.dir, "daemon2.log")
	s2.daemon = nil
	if err := os.MkdirAll(filepath.Dir(s2.socket), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Dir(s2.socket), int(s.acct.uid), int(s.acct.gid)); err != nil {
		t.Fatal(err)
	}
	s2.direct = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", s2.socket)
		},
	}}
	s2.startDaemon(t, defaultTiming)
	t.Cleanup(func() {
		if s2.daemon != nil {
			s2.stopDaemon(t, false)
		}
		if t.Failed() {
			t.Logf("second daemon's log:\n%s", tail(readFile(s2.daemonLg), 40))
		}
	})

	// What nginx does: the body in a spool file of the daemon's user, its path in X-Package-Name.
	spoolFile := func(name string, data []byte) string {
		p := filepath.Join(s.spool, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, int(s.acct.uid), int(s.acct.gid)); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Rounds of several names at once, each uploaded to both daemons at the same moment, so that placements of
	// one name by the two daemons overlap.
	const rounds, perRound = 8, 8
	type upload struct {
		file   string
		builds [2][]byte
		paths  [2]string
		codes  [2]int
		bodies [2]string
	}
	for i := range rounds {
		ups := make([]*upload, perRound)
		for j := range ups {
			name := fmt.Sprintf("race%d-%d", i, j)
			u := &upload{file: name + "-1.0-1.el9.noarch.rpm"}
			for k, salt := range []string{"one", "two"} {
				u.builds[k] = testrpm.Build(t, testrpm.Spec{Name: name, Release: "1.el9", Arch: "noarch", Salt: salt})
				u.paths[k] = spoolFile(fmt.Sprintf("%s-%d", name, k), u.builds[k])
			}
			ups[j] = u
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, u := range ups {
			for k, st := range []*stack{s, &s2} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					r, err := st.tryDo(st.direct, "http://rpm-ingestd", http.MethodPost, "/upload", nil,
						map[string]string{"X-Package-Name": u.paths[k], "X-Remote-User": uploadUser}, false)
					if err != nil {
						u.bodies[k] = err.Error()
						return
					}
					u.codes[k], u.bodies[k] = r.code, r.body
				}()
			}
		}
		close(start)
		wg.Wait()
		for _, u := range ups {
			x86, errX := os.ReadFile(filepath.Join(s.top, "9", "x86_64", "Packages", u.file))
			arm, errA := os.ReadFile(filepath.Join(s.top, "9", "aarch64", "Packages", u.file))
			created := -1
			for k, c := range u.codes {
				if c == http.StatusCreated {
					created = k
				}
			}
			ok := (u.codes == [2]int{201, 409} || u.codes == [2]int{409, 201}) && errX == nil && errA == nil &&
				bytes.Equal(x86, arm) && created >= 0 && bytes.Equal(x86, u.builds[created])
			if !ok {
				t.Errorf("round %d, %s: answers %v (%q), x86_64 %d bytes (%v), aarch64 %d bytes (%v), equal %v: not one build placed whole and the other refused",
					i, u.file, u.codes, u.bodies, len(x86), errX, len(arm), errA, bytes.Equal(x86, arm))
			}
		}
		if t.Failed() {
			return
		}
	}
	// Both daemons must be on the lock files at the path now, for every bucket these names locked: the first
	// daemon's open lock files, as /proc shows them, are the ones in .rpm-ingestd-locks, not the moved ones.
	for _, st := range []*stack{s, &s2} {
		pid := st.daemon.cmd.Process.Pid
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatal(err)
		}
		open := map[string]bool{}
		for _, fd := range fds {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil {
				open[l] = true
			}
		}
		for i := range rounds {
			for j := range perRound {
				b := fstree.LockBucket(fmt.Sprintf("race%d-%d-1.0-1.el9.noarch.rpm", i, j))
				lf := fmt.Sprintf("place-%02d.lock", b)
				if !open[filepath.Join(locks, lf)] || open[filepath.Join(locks+".old", lf)] {
					t.Fatalf("daemon %d: lock file %s open at the path %v, the moved one %v: it does not meet the other daemon there",
						pid, lf, open[filepath.Join(locks, lf)], open[filepath.Join(locks+".old", lf)])
				}
			}
		}
	}
}
