package indexer

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
)

// scriptedTree is the fs tree with publish failures injected: Publish fails with conflicts[i] on the i-th call
// (nil: the real publish), Renew with renewErr, and Incremental reports incremental.
type scriptedTree struct {
	*fstree.Tree
	conflicts   []error
	renewErr    error
	incremental bool
	begins      atomic.Int32
	publishes   atomic.Int32
}

type scriptedLock struct {
	tree.Lock
	t *scriptedTree
}

func (l scriptedLock) Renew(ctx context.Context) error {
	if l.t.renewErr != nil {
		return l.t.renewErr
	}
	return l.Lock.Renew(ctx)
}

type scriptedWork struct {
	tree.Work
	t *scriptedTree
}

func (w scriptedWork) Incremental() bool { return w.t.incremental }

func (w scriptedWork) Publish(ctx context.Context) error {
	i := int(w.t.publishes.Add(1)) - 1
	if i < len(w.t.conflicts) && w.t.conflicts[i] != nil {
		return w.t.conflicts[i]
	}
	return w.Work.Publish(ctx)
}

func (s *scriptedTree) TryLock(ctx context.Context, repo string) (tree.Lock, error) {
	l, err := s.Tree.TryLock(ctx, repo)
	if err != nil {
		return nil, err
	}
	return scriptedLock{Lock: l, t: s}, nil
}

// Begin hides fstree's BeginRetaining: the indexer then runs createrepo_c with its own retention flag.
func (s *scriptedTree) Begin(ctx context.Context, l tree.Lock) (tree.Work, error) {
	s.begins.Add(1)
	w, err := s.Tree.Begin(ctx, l.(scriptedLock).Lock)
	if err != nil {
		return nil, err
	}
	return scriptedWork{Work: w, t: s}, nil
}

func newScriptedTree(t *testing.T, top string) *scriptedTree {
	t.Helper()
	tr, err := fstree.New(fstree.Options{TopDir: top})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return &scriptedTree{Tree: tr}
}

// TestCreaterepoThroughTree: a run publishes through the configured tree, redoing the publish from Begin after
// tree.ErrConflict (bounded), and stopping with the changes still pending on tree.ErrLockLost, on too many
// conflicts, and for an incremental Work with a command that is not createrepo_c.
func TestCreaterepoThroughTree(t *testing.T) {
	conflict := fmt.Errorf("publish: %w", tree.ErrConflict)
	tests := []struct {
		name        string
		conflicts   []error
		renewErr    error
		incremental bool
		wantErr     error // nil: success
		wantBegins  int32
		wantRuns    int
	}{
		{"published", nil, nil, false, nil, 1, 1},
		{"conflict redone", []error{conflict, conflict}, nil, false, nil, 3, 3},
		{"conflicts bounded", []error{conflict, conflict, conflict, conflict, conflict}, nil, false, tree.ErrConflict, maxConflicts + 1, maxConflicts + 1},
		{"lock lost", nil, fmt.Errorf("renew: %w", tree.ErrLockLost), false, tree.ErrLockLost, 1, 1},
		{"incremental needs createrepo_c", nil, nil, true, errIncremental, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			top := t.TempDir()
			repo := mkRepo(t, top, "9/x86_64", DirtyMarker)
			st := newScriptedTree(t, top)
			st.conflicts, st.renewErr, st.incremental = tc.conflicts, tc.renewErr, tc.incremental
			c, log := fakeCreaterepo(t)
			c.Tree, c.TopDir = st, top
			reg := prometheus.NewPedanticRegistry()
			var rerr error
			if c.Conflicts, rerr = NewPublishConflicts(reg); rerr != nil {
				t.Fatal(rerr)
			}
			err := c.Run(t.Context(), repo)
			// Every conflict Publish answered is counted, redone or not.
			want := min(len(tc.conflicts), int(tc.wantBegins)) // each Publish that answered ErrConflict
			if got := testutil.ToFloat64(c.Conflicts.WithLabelValues("9/x86_64")); got != float64(want) {
				t.Errorf("%s = %v, want %d", metricConflicts, got, want)
			}
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Run: %v", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("Run = %v, want %v", err, tc.wantErr)
			}
			if got := st.begins.Load(); got != tc.wantBegins {
				t.Errorf("%d Begins, want %d", got, tc.wantBegins)
			}
			if got := len(runs(t, log)); got != tc.wantRuns {
				t.Errorf("%d createrepo runs, want %d", got, tc.wantRuns)
			}
			if pending := hasMarker(repo); pending != (tc.wantErr != nil) {
				t.Errorf("pending after the run = %t, want %t", pending, tc.wantErr != nil)
			}
			if published := exists(t, filepath.Join(repo, "repodata", "repomd.xml")); published != (tc.wantErr == nil) {
				t.Errorf("repomd.xml published = %t", published)
			}
			if exists(t, filepath.Join(repo, outputDir)) {
				t.Error("the Work's output was left behind")
			}
		})
	}
}

// TestCreaterepoOutsideTree: a repository directory outside the configured tree is refused, nothing runs.
func TestCreaterepoOutsideTree(t *testing.T) {
	top := t.TempDir()
	st := newScriptedTree(t, top)
	c, log := fakeCreaterepo(t)
	c.Tree, c.TopDir = st, top
	for _, dir := range []string{t.TempDir(), filepath.Join(top, "..", "elsewhere")} {
		if err := c.Run(t.Context(), dir); !errors.Is(err, tree.ErrInvalid) {
			t.Errorf("Run(%s) = %v, want ErrInvalid", dir, err)
		}
	}
	if r := runs(t, log); len(r) != 0 {
		t.Fatalf("command ran: %q", r)
	}
}

// TestCreaterepoLockedThroughTree: another holder of the tree's publish lock makes the run ErrLocked and claims
// nothing.
func TestCreaterepoLockedThroughTree(t *testing.T) {
	top := t.TempDir()
	repo := mkRepo(t, top, "r", DirtyMarker)
	st := newScriptedTree(t, top)
	held, err := st.TryLock(t.Context(), "r")
	if err != nil {
		t.Fatal(err)
	}
	c, log := fakeCreaterepo(t)
	c.Tree, c.TopDir = st, top
	if err := c.Run(t.Context(), repo); !errors.Is(err, ErrLocked) {
		t.Fatalf("Run = %v, want ErrLocked", err)
	}
	if !exists(t, filepath.Join(repo, DirtyMarker)) || len(runs(t, log)) != 0 {
		t.Fatal("claimed or ran without the lock")
	}
	held.Release()
	if err := c.Run(t.Context(), repo); err != nil {
		t.Fatal(err)
	}
}

func TestIncrementalArgv(t *testing.T) {
	got, err := incrementalArgv([]string{"/usr/bin/createrepo_c", "--update", "--no-database"})
	if err != nil || !slices.Equal(got, []string{"/usr/bin/createrepo_c", "--update", "--no-database", "--skip-stat"}) {
		t.Errorf("incrementalArgv = %q, %v", got, err)
	}
	got, err = incrementalArgv([]string{"createrepo_c", "-q"})
	if err != nil || !slices.Equal(got, []string{"createrepo_c", "-q", "--update", "--skip-stat"}) {
		t.Errorf("incrementalArgv = %q, %v", got, err)
	}
	if _, err := incrementalArgv([]string{"createrepo", "--update"}); !errors.Is(err, errIncremental) {
		t.Errorf("createrepo accepted for an incremental Work: %v", err)
	}
}
