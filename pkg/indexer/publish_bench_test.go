package indexer

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// BenchmarkPublishRun is one run of the daemon's own publish (DefaultCommand, the fs tree) on a repository of
// 2,000 packages after one new package: lock, claim, listing, seed, createrepo_c --update, retention, exchange,
// second listing. Compare it across versions of the run on the same machine; absolute times are noise.
func BenchmarkPublishRun(b *testing.B) {
	requireTools(b)
	repo := newBenchRepo(b, 2000)
	c := testCreaterepo(b, DefaultCommand())
	if err := c.Run(b.Context(), repo); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		testrpm.WriteFile(b, filepath.Join(repo, "Packages"), testrpm.Spec{Name: fmt.Sprintf("new%04d", i), Release: "1.el9", Arch: "x86_64"})
		b.StartTimer()
		if err := c.Run(b.Context(), repo); err != nil {
			b.Fatal(err)
		}
	}
}
