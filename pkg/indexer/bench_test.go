package indexer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// Benchmarks of the real createrepo_c, reported only as ratios of two variants measured in the same run: the
// absolute times on a shared 2-core machine are noise, the ratios are what chose the defaults.

// newBenchRepo returns a repository directory holding n small packages.
func newBenchRepo(b *testing.B, n int) string {
	b.Helper()
	repo := filepath.Join(b.TempDir(), "9", "x86_64")
	pkgs := filepath.Join(repo, "Packages")
	if err := os.MkdirAll(pkgs, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		testrpm.WriteFile(b, pkgs, testrpm.Spec{Name: fmt.Sprintf("bench%04d", i), Release: "1.el9", Arch: "x86_64"})
	}
	return repo
}

func timeRun(b *testing.B, argv []string, repo string) time.Duration {
	b.Helper()
	start := time.Now()
	if err := testCreaterepo(b, argv).Run(context.Background(), repo); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkCreaterepoFlags compares, on 500 packages, a full run with and without the sqlite databases, and an
// --update run after one new package against a full run.
func BenchmarkCreaterepoFlags(b *testing.B) {
	requireTools(b)
	repo := newBenchRepo(b, 500)
	base := []string{"createrepo_c", "-q", "--error-exit-val"}
	var withDB, noDB, update, full time.Duration
	for i := 0; b.Loop(); i++ {
		os.RemoveAll(filepath.Join(repo, "repodata"))
		withDB += timeRun(b, base, repo)
		os.RemoveAll(filepath.Join(repo, "repodata"))
		noDB += timeRun(b, append(base, "--no-database"), repo)

		testrpm.WriteFile(b, filepath.Join(repo, "Packages"), testrpm.Spec{Name: fmt.Sprintf("new%04d", i), Release: "1.el9", Arch: "x86_64"})
		update += timeRun(b, append(base, "--no-database", "--update"), repo)
		os.RemoveAll(filepath.Join(repo, "repodata"))
		full += timeRun(b, append(base, "--no-database"), repo)
	}
	b.ReportMetric(float64(noDB)/float64(withDB), "nodb/db")
	b.ReportMetric(float64(update)/float64(full), "update/full")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkCoalescing compares what a burst of 40 uploads to one repository costs in createrepo time when the
// runs are coalesced (one run after the burst, what the Scheduler does) against one run per upload (what a
// naive per-upload hook, or the old prototype's queue, did).
func BenchmarkCoalescing(b *testing.B) {
	requireTools(b)
	const burst = 40
	argv := DefaultCommand()
	var coalesced, perUpload time.Duration
	for i := 0; b.Loop(); i++ {
		one, each := newBenchRepo(b, 200), newBenchRepo(b, 200)
		timeRun(b, argv, one) // both start indexed
		timeRun(b, argv, each)
		for j := range burst {
			spec := testrpm.Spec{Name: fmt.Sprintf("burst%02d", j), Release: "1.el9", Arch: "x86_64"}
			testrpm.WriteFile(b, filepath.Join(one, "Packages"), spec)
			testrpm.WriteFile(b, filepath.Join(each, "Packages"), spec)
			perUpload += timeRun(b, argv, each)
		}
		coalesced += timeRun(b, argv, one)
	}
	b.ReportMetric(float64(perUpload)/float64(coalesced), "per-upload/coalesced")
	b.ReportMetric(0, "ns/op")
}
