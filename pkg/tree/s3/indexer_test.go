package s3tree_test

import (
	"path/filepath"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/indexer"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
	s3tree "github.com/rpm-ingestd/rpm-ingestd/pkg/tree/s3"
)

// testIndexer: the daemon's own runner and scheduler on the s3 tree, with top_dir only a local name: the
// indexer's Createrepo publishes through TryLock/Begin/Publish with createrepo_c --update --skip-stat (the Work is
// incremental), Recover finds pending repositories through the tree, and Visible reads the published primary.xml
// through OpenMetadata. Nothing of the repository is ever under top.
func testIndexer(t *testing.T, e *env) {
	tr := e.daemon(t, e.prefix(), s3tree.Options{})
	top := t.TempDir()
	const repo = "9/x86_64"
	dir := filepath.Join(top, "9", "x86_64")
	c := indexer.NewCreaterepo(indexer.DefaultCommand())
	c.Tree, c.TopDir, c.Log = tr, top, zaptest.NewLogger(t)
	s := indexer.NewScheduler(c, indexer.Options{TopDir: top, Tree: tr}, zaptest.NewLogger(t))

	want := map[string]string{}
	add := func(name string) string {
		spec := testrpm.Spec{Name: name, Arch: "x86_64"}
		b := testrpm.Build(t, spec)
		if _, err := placeBytes(t, tr, b, spec.FileName(), false, repo); err != nil {
			t.Fatal(err)
		}
		want[spec.FileName()] = sha(b)
		return spec.FileName()
	}
	run := func() {
		t.Helper()
		if err := c.Run(ctx, dir); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := published(t, tr, repo); !mapsEqual(got, want) {
			t.Fatalf("published %v, want %v", got, want)
		}
		if ok, _ := tr.HasPending(ctx, repo); ok {
			t.Fatal("still pending after the run")
		}
	}
	add("alpha")
	bravo := add("bravo")
	if n, err := s.Recover(top); err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want the one pending repository", n, err)
	}
	run()
	charlie := add("charlie")
	run() // only charlie is local: --update --skip-stat takes alpha and bravo from the seeded metadata
	if !s.Visible(dir, "Packages/"+charlie, want[charlie]) {
		t.Error("charlie, published, is not visible")
	}
	if _, err := tr.Remove(ctx, []tree.Ref{{Repo: repo, Name: bravo}}); err != nil {
		t.Fatal(err)
	}
	delete(want, bravo)
	run()
	if s.Visible(dir, "Packages/"+bravo, "0") {
		t.Error("bravo, removed and published, is still visible")
	}
	if n, err := s.Recover(top); err != nil || n != 0 {
		t.Fatalf("Recover after the runs = %d, %v; want nothing pending", n, err)
	}
}
