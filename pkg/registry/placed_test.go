package registry

import (
	"context"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// lockProbeTree is a tree whose Stat reports whether the index it serves could be read meanwhile, and describes
// every file as 42 bytes from a fixed time.
type lockProbeTree struct {
	tree.Tree // only Stat is called
	ix        *Index
	readable  []bool
}

func (p *lockProbeTree) Stat(context.Context, tree.Ref) (tree.Stamp, error) {
	ok := p.ix.mu.TryRLock()
	if ok {
		p.ix.mu.RUnlock()
	}
	p.readable = append(p.readable, ok)
	return tree.Stamp{Size: 42, ModTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, nil
}

// TestPlacedStatsOutsideLock: Placed describes a new file by a stat of the tree (system calls on fs, a request on
// s3) without holding the index's lock, so the other uploads' records and every reader are not held up by it;
// the entry still carries what the stat found.
func TestPlacedStatsOutsideLock(t *testing.T) {
	ix := NewIndex(t.TempDir(), fakeLocate)
	probe := &lockProbeTree{ix: ix}
	ix.UseTree(probe)
	const p = "9/x86_64/Packages/a-1-1.el9.x86_64.rpm"
	ix.Placed(Record{Action: ActionUpload, Status: 201, Result: ResultCreated, SHA256: "aaa", Size: 42, Paths: []string{p}})
	if len(probe.readable) != 1 || !probe.readable[0] {
		t.Errorf("Stat calls and whether the index was readable during each: %v, want [true]", probe.readable)
	}
	e, ok := ix.Get(p)
	if !ok || e.Size != 42 || !e.ModTime.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("entry %+v (found %v), want the stat's size and mtime", e, ok)
	}
	// Already in the index: no second stat.
	ix.Placed(Record{Action: ActionUpload, Status: 200, Result: ResultExists, SHA256: "aaa", Size: 42, Paths: []string{p}})
	if len(probe.readable) != 1 {
		t.Errorf("%d Stat calls after placing a path the index holds, want still 1", len(probe.readable))
	}
}

// TestPlacedTakesStampsFromRecord (issue 20): a path the placement created comes with its stamp (Record.Stamps,
// from the tree's own identity of the linked file), and is described from it without a stat; a path without
// one (zero Stamp: found present, or a backend that did not say) is stat'ed as before. The stamps are neither
// kept in Recent nor written anywhere.
func TestPlacedTakesStampsFromRecord(t *testing.T) {
	ix := NewIndex(t.TempDir(), fakeLocate)
	probe := &lockProbeTree{ix: ix}
	ix.UseTree(probe)
	const p1, p2 = "9/x86_64/Packages/a-1-1.el9.noarch.rpm", "9/aarch64/Packages/a-1-1.el9.noarch.rpm"
	mt := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
	rec := Record{Action: ActionUpload, Status: 201, Result: ResultCreated, SHA256: "aaa", Size: 42, Paths: []string{p1, p2},
		Stamps: []tree.Stamp{{Size: 42, ModTime: mt}, {}}}
	ix.Noted(rec)
	ix.Placed(rec)
	if len(probe.readable) != 1 {
		t.Errorf("%d Stat calls, want 1 (only the path without a stamp)", len(probe.readable))
	}
	if e, ok := ix.Get(p1); !ok || e.Size != 42 || !e.ModTime.Equal(mt) {
		t.Errorf("entry %+v (found %v), want the stamp's size and mtime %v", e, ok, mt)
	}
	if e, ok := ix.Get(p2); !ok || !e.ModTime.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("entry %+v (found %v), want the stat's mtime", e, ok)
	}
	if r := ix.Recent(1); len(r) != 1 || r[0].Stamps != nil {
		t.Errorf("Recent: %+v, want the record without its stamps", r)
	}
}
