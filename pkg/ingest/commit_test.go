package ingest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// commits records what Request.Commit saw, and fails it when fail is set.
type commits struct {
	seen []Status
	// onDisk says, per call, whether every path of the result existed when Commit ran.
	onDisk []bool
	fail   error
	top    string
}

func (c *commits) commit(res *Result) error {
	c.seen = append(c.seen, res.Status)
	all := true
	for _, p := range res.Paths {
		if _, err := os.Stat(filepath.Join(c.top, p)); err != nil {
			all = false
		}
	}
	c.onDisk = append(c.onDisk, all)
	return c.fail
}

// TestCommitRecordsEachDecision: Commit runs once per accepted upload, with the package already in place, and
// never for a refused one.
func TestCommitRecordsEachDecision(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Overwrite = false })
	c := &commits{top: e.top}
	hello := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "noarch"})
	other := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "noarch", Salt: "other"})
	for _, data := range [][]byte{hello, hello, other, []byte("not an rpm")} {
		e.in.Ingest(context.Background(), Request{SpoolPath: e.spoolFile(t, data), Commit: c.commit})
	}
	if want := []Status{Created, Present}; !slices.Equal(c.seen, want) {
		t.Errorf("Commit saw %v, want %v (not for the conflict or the bad file)", c.seen, want)
	}
	if !slices.Equal(c.onDisk, []bool{true, true}) {
		t.Errorf("package on disk when Commit ran: %v", c.onDisk)
	}
}

// TestCommitFailureKeepsNothing: a Commit that fails (the audit trail cannot be written) undoes the placement, in
// every repository of a noarch package, and Ingest fails with ErrNotRecorded.
func TestCommitFailureKeepsNothing(t *testing.T) {
	e := newEnv(t, nil)
	c := &commits{top: e.top, fail: errors.New("write audit: no space left on device")}
	data := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "noarch"})
	res, err := e.in.Ingest(context.Background(), Request{Body: bytes.NewReader(data), Commit: c.commit})
	if !errors.Is(err, ErrNotRecorded) {
		t.Fatalf("err %v, want ErrNotRecorded", err)
	}
	if !slices.Equal(c.onDisk, []bool{true}) {
		t.Errorf("Commit ran %d times, package on disk %v: want once, in place", len(c.seen), c.onDisk)
	}
	if got := e.treeFiles(t); len(got) != 0 {
		t.Errorf("tree keeps %v after a failed record", got)
	}
	if res == nil || len(res.Dirty) != 2 {
		t.Errorf("Dirty %v: both repositories were marked and must be triggered", res)
	}
	e.assertSpoolEmpty(t)

	// The same upload once recording works again is a new package, not "present".
	c.fail = nil
	res, err = e.in.Ingest(context.Background(), Request{Body: bytes.NewReader(data), Commit: c.commit})
	if err != nil || res.Status != Created {
		t.Fatalf("retry: %v, %v", res, err)
	}
}

// TestCommitFailureKeepsReplacedFile: with overwrite, a failed record leaves the old file as it was.
func TestCommitFailureKeepsReplacedFile(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Overwrite = true })
	old := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"})
	newer := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64", Salt: "rebuilt"})
	if _, err := e.upload(t, old, true, ""); err != nil {
		t.Fatal(err)
	}
	c := &commits{top: e.top, fail: errors.New("audit down")}
	if _, err := e.in.Ingest(context.Background(), Request{Body: bytes.NewReader(newer), Commit: c.commit}); !errors.Is(err, ErrNotRecorded) {
		t.Fatalf("err %v, want ErrNotRecorded", err)
	}
	if !slices.Equal(c.seen, []Status{Replaced}) {
		t.Errorf("Commit saw %v, want [replaced]", c.seen)
	}
	got, _ := os.ReadFile(filepath.Join(e.top, "9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"))
	if !bytes.Equal(got, old) {
		t.Error("the stored package changed although the replacement was not recorded")
	}
	e.assertSpoolEmpty(t)
}
