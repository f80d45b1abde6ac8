package ingest

import (
	"context"
	"errors"
	"fmt"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// TestGroupCommitCoversEveryLink: concurrent uploads into one repository share fsyncs of Packages/, and no upload
// returns (no 201 is sent) before an fsync of Packages/ that started after its link existed has completed. The
// fake fsync lists Packages/ when it starts (what a real fsync of the directory would cover) and is held until
// every upload has linked its file, so all but the first must wait for a second, shared one.
func TestGroupCommitCoversEveryLink(t *testing.T) {
	const n = 12
	e := newEnv(t, nil)
	pkgs := filepath.Join(e.top, "9", "x86_64", "Packages")
	var mu sync.Mutex
	var covered []string // names listed by fsyncs of Packages/ that have completed
	var fsyncs int
	allLinked := make(chan struct{})
	e.tree.SyncDir = func(dir string) error {
		if dir != pkgs {
			return nil
		}
		entries, err := os.ReadDir(dir) // the fsync starts: these links are what it makes durable
		if err != nil {
			return err
		}
		mu.Lock()
		first := fsyncs == 0
		fsyncs++
		mu.Unlock()
		if first {
			<-allLinked // hold the first fsync: the other uploads link and queue meanwhile
		}
		mu.Lock()
		for _, de := range entries {
			covered = append(covered, de.Name())
		}
		mu.Unlock()
		return nil
	}
	// Release the first fsync once every package is linked (polling the directory: links happen before the
	// fsync that covers them is requested).
	go func() {
		defer close(allLinked)
		for {
			if entries, _ := os.ReadDir(pkgs); len(entries) == n {
				return
			}
			runtimeGosched()
		}
	}()

	// Each name in its own lock bucket: an upload waiting for the held fsync keeps its bucket locked, and one
	// waiting for that bucket could not link, so the first fsync would never be released.
	buckets := map[uint32]bool{}
	for i := range n {
		buckets[fstree.LockBucket(fmt.Sprintf("g%02d-1.0-1.el9.x86_64.rpm", i))] = true
	}
	if len(buckets) != n {
		t.Fatalf("the test's package names share lock buckets (%d buckets for %d names): choose other names", len(buckets), n)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			data := testrpm.Build(t, testrpm.Spec{Name: fmt.Sprintf("g%02d", i), Release: "1.el9", Arch: "x86_64"})
			res, err := e.in.Ingest(context.Background(), Request{SpoolPath: e.spoolFile(t, data)})
			if err != nil {
				errs[i] = err
				return
			}
			// The upload is answered now: its link must be in a completed fsync's listing.
			name := filepath.Base(res.Paths[0])
			mu.Lock()
			ok := slices.Contains(covered, name)
			mu.Unlock()
			if !ok {
				errs[i] = fmt.Errorf("%s returned before an fsync of Packages/ covering its link had completed", name)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if fsyncs >= n {
		t.Errorf("%d fsyncs of Packages/ for %d concurrent uploads: none was shared", fsyncs, n)
	}
	t.Logf("%d uploads, %d fsyncs of Packages/", n, fsyncs)
}

func runtimeGosched() { runtime.Gosched() }
