package indexer

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkPublishedSet measures the two halves of a rescan on a real createrepo_c repository of 2,000 small
// packages: listing Packages/ (every rescan) and reading primary.xml.gz (once per repository per process, and after each
// publish that someone waits on), with the byte scanner (primary) and with encoding/xml (primary-encoding-xml). It
// reports the cost per package, which is what the 50,000-file estimate in docs/lifecycle.md is made from.
//
//	go test -run '^$' -bench BenchmarkPublishedSet -benchtime 20x ./pkg/indexer/
func BenchmarkPublishedSet(b *testing.B) {
	requireTools(b)
	const n = 2000
	repo := newBenchRepo(b, n)
	if err := testCreaterepo(b, DefaultCommand()).Run(b.Context(), repo); err != nil {
		b.Fatal(err)
	}
	b.Run("list", func(b *testing.B) {
		for b.Loop() {
			set, err := listPackages(repo)
			if err != nil || len(set) != n {
				b.Fatalf("listPackages: %d, %v", len(set), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/pkg")
	})
	// primary-encoding-xml is the reference parser alone on the same file: the before of the byte scanner that
	// readPublished uses (primary); compare the two ns/pkg of one run.
	primary, err := filepath.Glob(filepath.Join(repo, "repodata", "*-primary.xml.gz"))
	if err != nil || len(primary) != 1 {
		b.Fatalf("primary: %v, %v", primary, err)
	}
	b.Run("primary-encoding-xml", func(b *testing.B) {
		for b.Loop() {
			f, err := os.Open(primary[0])
			if err != nil {
				b.Fatal(err)
			}
			set, _, err := readPrimary(f, primary[0], parsePrimary)
			f.Close()
			if err != nil || len(set) != n {
				b.Fatalf("parsePrimary: %d, %v", len(set), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/pkg")
	})
	b.Run("primary", func(b *testing.B) {
		for b.Loop() {
			set, _, err := readPublished(repo)
			if err != nil || len(set) != n {
				b.Fatalf("readPublished: %d, %v", len(set), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/pkg")
	})
}
