package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/seaweed"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// TestS3LeaseTakeover: daemon A is killed with SIGKILL while it holds a repository's publish lease, in the
// middle of createrepo_c (a wrapper makes the run slow). Daemon B, on the same bucket, is refused the lease until
// it expires (2 minutes), then takes it over and publishes: the package A acknowledged and B's own are both in
// the metadata. The test takes about three to five minutes: the lease's length and the scheduler's backoff.
func TestS3LeaseTakeover(t *testing.T) {
	srv := seaweed.Start(t, seaweed.Options{})
	bucket := srv.NewBucket()
	slow := filepath.Join(workRoot, "slow-createrepo-"+filepath.Base(t.TempDir()))
	if err := os.MkdirAll(slow, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(slow) })
	real := requireTools(t)["createrepo_c"]
	// Named createrepo_c: the s3 tree needs createrepo_c's --update --skip-stat, and the indexer checks the name.
	writeFile(t, filepath.Join(slow, "createrepo_c"), "#!/bin/sh\nsleep 15\nexec "+real+" \"$@\"\n")
	os.Chmod(filepath.Join(slow, "createrepo_c"), 0o755)
	a := newS3Daemon(t, srv, bucket, "take", s3Extra{indexer: "  command: [" + filepath.Join(slow, "createrepo_c") + ", --update, --no-database]"})
	b := newS3Daemon(t, srv, bucket, "take", s3Extra{})

	first := testrpm.Spec{Name: "first", Release: "1.el9", Arch: "x86_64"}
	if r := a.upload(t, first.FileName(), testrpm.Build(t, first), ""); r.code != http.StatusCreated {
		t.Fatalf("upload to A: %d %s", r.code, r.body)
	}
	deadline := time.Now().Add(time.Minute)
	for len(a.logLines(`"s3tree: work begun"`, `"repo":"9/x86_64"`)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("daemon A never began publishing 9/x86_64")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// SIGKILL to the daemon and its slow createrepo_c (its process group), as a crash of the host would.
	_ = syscall.Kill(-a.proc.cmd.Process.Pid, syscall.SIGKILL)
	<-a.proc.done
	a.proc = nil

	second := testrpm.Spec{Name: "second", Release: "1.el9", Arch: "x86_64"}
	if r := b.upload(t, second.FileName(), testrpm.Build(t, second), ""); r.code != http.StatusCreated {
		t.Fatalf("upload to B: %d %s", r.code, r.body)
	}
	deadline = time.Now().Add(6 * time.Minute)
	want := []string{"first-1.0-1.el9.x86_64", "second-1.0-1.el9.x86_64"}
	for {
		out, err := b.tryDnf(t.Context(), filepath.Join(b.dnfDir, "q"), []string{"/repo/9/x86_64/"}, "repoquery", "--qf", "%{name}-%{evr}.%{arch}")
		if err == nil && strings.Join(lines(out), " ") == strings.Join(want, " ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B did not publish both packages within 6 minutes of A's death: %q %v", out, err)
		}
		time.Sleep(2 * time.Second)
	}
	if len(b.logLines("index run skipped: repository locked")) == 0 {
		t.Error("B never found the repository locked: A died without holding the lease, and the test proved nothing")
	}
	t.Logf("B was refused the lease %d times before taking it over", len(b.logLines("index run skipped: repository locked")))
}
