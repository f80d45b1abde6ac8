package durable

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// newTestRing is a Ring that submits every fsync to the ring (direct 0), not only those with another in flight.
func newTestRing(t *testing.T) *Ring {
	t.Helper()
	r, err := NewRing()
	if err != nil {
		t.Fatalf("NewRing: %v (io_uring is needed here: the daemon falls back to fsync(2) without it, this test does not)", err)
	}
	r.direct = 0
	return r
}

// TestRingFsync: a Ring's fsync is the kernel's fsync of that descriptor, with its result: nil for a file, EINVAL
// for a pipe (which has no fsync: the answer of vfs_fsync, so the operation reached it), EBADF for a descriptor that
// is not open. Each counts as one fsync through the ring.
func TestRingFsync(t *testing.T) {
	r := newTestRing(t)
	defer r.Close()
	f := tempFile(t)
	if _, err := f.WriteString("data"); err != nil {
		t.Fatal(err)
	}
	if err := r.Fsync(f); err != nil {
		t.Fatalf("Fsync of a file: %v", err)
	}
	if n := r.Submitted(); n != 1 {
		t.Errorf("Submitted = %d after one, want 1", n)
	}
	_, pw := pipe(t)
	if err := r.Fsync(pw); !errors.Is(err, unix.EINVAL) {
		t.Errorf("Fsync of a pipe: %v, want EINVAL as fsync(2) answers", err)
	}
	if err := r.FsyncFD(1 << 20); err != unix.EBADF {
		t.Errorf("FsyncFD of a descriptor not open: %v, want EBADF", err)
	}
	if n, all := r.Submitted(), r.Fsyncs(); n != 3 || all != 3 {
		t.Errorf("Submitted, Fsyncs = %d, %d after three, want 3, 3", n, all)
	}
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := r.FsyncFD(fd); err != nil {
		t.Errorf("FsyncFD of a directory: %v", err)
	}
}

// TestRingConcurrentAndClose: more fsyncs at once than the ring has entries all complete with their own results,
// while Close waits for those in flight; after Close, Fsync still fsyncs (directly).
func TestRingConcurrentAndClose(t *testing.T) {
	r := newTestRing(t)
	dir := t.TempDir()
	const n = 3 * ringEntries
	files := make([]*os.File, n)
	for i := range files {
		f, err := os.Create(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files[i] = f
	}
	_, pw := pipe(t)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			if i%7 == 3 {
				errs[i] = r.Fsync(pw)
				return
			}
			files[i].WriteString("x")
			errs[i] = r.Fsync(files[i])
		})
	}
	wg.Go(func() { r.Close() })
	wg.Wait()
	for i, err := range errs {
		if i%7 == 3 {
			if !errors.Is(err, unix.EINVAL) {
				t.Errorf("fsync %d of a pipe: %v, want EINVAL", i, err)
			}
		} else if err != nil {
			t.Errorf("fsync %d: %v", i, err)
		}
	}
	before := r.Submitted()
	if err := r.Fsync(files[0]); err != nil {
		t.Errorf("Fsync after Close: %v", err)
	}
	if r.Submitted() != before {
		t.Error("Fsync after Close went through the closed ring")
	}
}

// TestRingAloneIsDirect: with the default direct 1, an fsync with no other in flight is made directly (the ring's
// round trip costs more than an idle daemon's blocking call), one with another in flight through the ring.
func TestRingAloneIsDirect(t *testing.T) {
	r, err := NewRing()
	if err != nil {
		t.Fatalf("NewRing: %v", err)
	}
	defer r.Close()
	f := tempFile(t)
	if err := r.Fsync(f); err != nil {
		t.Fatal(err)
	}
	if r.Fsyncs() != 1 || r.Submitted() != 0 {
		t.Errorf("alone: Fsyncs %d, Submitted %d; want 1, 0", r.Fsyncs(), r.Submitted())
	}
	r.inflight.Add(1) // another fsync in flight
	err = r.Fsync(f)
	r.inflight.Add(-1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Fsyncs() != 2 || r.Submitted() != 1 {
		t.Errorf("with another in flight: Fsyncs %d, Submitted %d; want 2, 1", r.Fsyncs(), r.Submitted())
	}
}

// tempFile creates a file in a test directory, closed when the test ends.
func tempFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// pipe makes a pipe (whose fsync fails with EINVAL), closed when the test ends.
func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}
