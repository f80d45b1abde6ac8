package ingest

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// remoteObjects is a tree whose Open gives objects that are not local files (as an s3 tree's are).
type remoteObjects struct{ tree.Tree }

type remoteObject struct {
	io.Reader
	io.ReaderAt
	io.Closer
	st tree.Stamp
}

func (o remoteObject) Stamp() tree.Stamp { return o.st }

func (r remoteObjects) Open(ctx context.Context, ref tree.Ref) (tree.Object, error) {
	o, err := r.Tree.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	return remoteObject{Reader: o, ReaderAt: o, Closer: o, st: o.Stamp()}, nil
}

// TestRetentionReadsThroughTree: retention reads packages through the tree: a symbolic link in Packages/ (which
// tree.List follows, as createrepo_c does) is never read, judged or removed, and a tree whose objects are not
// local files (s3) gives the same plan, its headers read from a temporary copy.
func TestRetentionReadsThroughTree(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	e := retainEnv(t, Retention{KeepVersions: 1}, now)
	v1, v2 := evr{"", "1", "1.el9"}, evr{"", "2", "1.el9"}
	old := e.putBuild(t, "9/x86_64", "hello", "x86_64", v1, now.Add(-2*time.Hour))
	e.putBuild(t, "9/x86_64", "hello", "x86_64", v2, now.Add(-time.Hour))
	link := filepath.Join(e.top, "9/x86_64/Packages/hello-0-1.el9.x86_64.rpm")
	if err := os.Symlink(filepath.Base(old), link); err != nil {
		t.Fatal(err)
	}
	plan := func() []string {
		t.Helper()
		plans, err := e.in.PlanRetention(context.Background(), RetentionFilter{})
		if err != nil || len(plans) != 1 || len(plans[0].Skipped) != 0 {
			t.Fatalf("PlanRetention = %+v, %v", plans, err)
		}
		var out []string
		for _, c := range plans[0].Prune {
			out = append(out, c.Path)
		}
		return out
	}
	want := []string{"9/x86_64/Packages/hello-1-1.el9.x86_64.rpm"}
	if got := plan(); !slices.Equal(got, want) {
		t.Errorf("fs objects: prune %v, want %v (the symlink never)", got, want)
	}
	e.in.tree = remoteObjects{e.in.tree}
	if got := plan(); !slices.Equal(got, want) {
		t.Errorf("remote objects: prune %v, want %v", got, want)
	}
}
