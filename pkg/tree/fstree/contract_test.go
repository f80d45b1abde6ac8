package fstree_test

import (
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/treetest"
)

// TestContract runs the backend-agnostic contract of pkg/tree against the fs backend.
func TestContract(t *testing.T) {
	treetest.Run(t, func(t *testing.T) tree.Tree {
		tr, err := fstree.New(fstree.Options{TopDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	})
}
