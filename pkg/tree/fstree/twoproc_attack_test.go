package fstree

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// twoProcRounds is how many placements each process makes; twoProcNames how many names they share.
const twoProcRounds, twoProcNames = 150, 3

// placeRounds places, twoProcRounds times, a noarch package of bytes unique to who and the round into two
// repositories with overwrite on, cycling over twoProcNames names; after each it takes the name's placement lock
// itself and checks that both repositories hold the same bytes (a placement is all or nothing under that lock,
// for every process sharing the tree). It returns the first split seen.
func placeRounds(tr *Tree, spool, who string) error {
	ctx := context.Background()
	for i := range twoProcRounds {
		name := fmt.Sprintf("n%d-1-1.el9.noarch.rpm", i%twoProcNames)
		content := fmt.Sprintf("%s round %d", who, i)
		p := filepath.Join(spool, fmt.Sprintf("%s-%d", who, i))
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		s, err := tr.Stage(ctx, f)
		if err != nil {
			f.Close()
			return err
		}
		h := sha256.Sum256([]byte(content))
		_, err = tr.Place(ctx, []tree.Unit{{Staged: s, SHA256: hex.EncodeToString(h[:]), Name: name,
			Repos: []string{"9/x86_64", "9/aarch64"}}}, tree.PlaceOptions{Overwrite: true})
		s.Close()
		f.Close()
		os.Remove(p)
		if err != nil {
			return err
		}
		unlock, err := tr.locks.lockAll([]string{name})
		if err != nil {
			return err
		}
		a, errA := os.ReadFile(filepath.Join(tr.top, "9/x86_64/Packages", name))
		b, errB := os.ReadFile(filepath.Join(tr.top, "9/aarch64/Packages", name))
		unlock()
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			return fmt.Errorf("%s round %d: split placement of %s under its lock: x86_64 %q (%v), aarch64 %q (%v)", who, i, name, a, errA, b, errB)
		}
	}
	return nil
}

// TestTwoProcessesHelper is the second process of TestTwoProcessesShareLocks (it does nothing otherwise).
func TestTwoProcessesHelper(t *testing.T) {
	top := os.Getenv("FSTREE_TWOPROC_TOP")
	if top == "" {
		return
	}
	tr, err := New(Options{TopDir: top})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := os.WriteFile(os.Getenv("FSTREE_TWOPROC_READY"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := placeRounds(tr, os.Getenv("FSTREE_TWOPROC_SPOOL"), "child-"+strconv.Itoa(os.Getpid())); err != nil {
		t.Fatal(err)
	}
}

// TestTwoProcessesShareLocks: two processes place the same noarch names into two repositories at once (overwrite
// on), after an operator moved the lock directory away (mv .locks .locks.old) while the first was running and
// before the second started: the first's kept-open lock files are then the moved ones, the second's the new ones
// at the path. Every placement must still exclude the other process's: checked under the name's lock after each
// placement in both processes (both arches hold the same bytes), and at the end.
func TestTwoProcessesShareLocks(t *testing.T) {
	dir := t.TempDir()
	top, spool := filepath.Join(dir, "top"), filepath.Join(dir, "spool")
	for _, d := range []string{top, spool} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := New(Options{TopDir: top})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	locks := filepath.Join(top, LocksName)
	if err := os.Rename(locks, locks+".old"); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(dir, "ready")
	cmd := exec.Command(os.Args[0], "-test.run=^TestTwoProcessesHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FSTREE_TWOPROC_TOP="+top, "FSTREE_TWOPROC_SPOOL="+spool, "FSTREE_TWOPROC_READY="+ready)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var childErr error
	waited := false
wait: // the child has its tree (and its lock files) before the rounds start; no timing is asserted
	for {
		select {
		case childErr = <-done:
			waited = true
			break wait
		default:
		}
		if _, err := os.Stat(ready); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	parentErr := placeRounds(tr, spool, "parent")
	if !waited {
		childErr = <-done
	}
	if parentErr != nil {
		t.Error(parentErr)
	}
	if childErr != nil {
		t.Errorf("second process: %v\n%s", childErr, out.String())
	}
	for n := range twoProcNames {
		name := fmt.Sprintf("n%d-1-1.el9.noarch.rpm", n)
		a, _ := os.ReadFile(filepath.Join(top, "9/x86_64/Packages", name))
		b, _ := os.ReadFile(filepath.Join(top, "9/aarch64/Packages", name))
		if !bytes.Equal(a, b) {
			t.Errorf("%s split at the end: %q, %q", name, a, b)
		}
	}
}
