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

// TestContractShared: two fs trees on one top, as two daemons sharing a tree.
func TestContractShared(t *testing.T) {
	treetest.RunShared(t, func(t *testing.T) (tree.Tree, tree.Tree) {
		top := t.TempDir()
		var trs [2]tree.Tree
		for i := range trs {
			tr, err := fstree.New(fstree.Options{TopDir: top})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tr.Close() })
			trs[i] = tr
		}
		return trs[0], trs[1]
	})
}
