package durable

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRingEachGetsItsOwnResult: hundreds of concurrent fsyncs of files, directories, a pipe (EINVAL) and a
// descriptor not open (EBADF), through the ring (direct 0) and mixed (direct 1): each caller gets the result of
// its own descriptor, never another request's, and none hangs.
func TestRingEachGetsItsOwnResult(t *testing.T) {
	for _, direct := range []int64{0, 1} {
		t.Run("direct"+strconv.FormatInt(direct, 10), func(t *testing.T) {
			r, err := NewRing()
			if err != nil {
				t.Fatalf("NewRing: %v", err)
			}
			defer r.Close()
			r.direct = direct
			dir := t.TempDir()
			f, err := os.Create(filepath.Join(dir, "f"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(dfd)
			_, pw := pipe(t)
			const n = 600
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					switch i % 4 {
					case 0:
						errs[i] = r.Fsync(f)
					case 1:
						errs[i] = r.FsyncFD(dfd)
					case 2:
						errs[i] = r.Fsync(pw)
					case 3:
						errs[i] = r.FsyncFD(1 << 20)
					}
				})
			}
			wg.Wait()
			for i, err := range errs {
				var want error
				switch i % 4 {
				case 2:
					want = unix.EINVAL
				case 3:
					want = unix.EBADF
				}
				if (want == nil && err != nil) || (want != nil && !errors.Is(err, want)) {
					t.Errorf("fsync %d (kind %d): %v, want %v", i, i%4, err, want)
				}
			}
		})
	}
}

// TestRingSubmitterThreadExits: an fsync submitted from an OS thread that then exits (a goroutine that ends
// locked to its thread) still ends with the fsync's own result, not ECANCELED from the io-wq of the dead thread.
func TestRingSubmitterThreadExits(t *testing.T) {
	r := newTestRing(t)
	defer r.Close()
	dir := t.TempDir()
	const n = 256
	files := make([]*os.File, n)
	for i := range files {
		f, err := os.Create(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.Write(make([]byte, 1<<20))
		files[i] = f
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = r.Fsync(files[i]) })
		// A goroutine that ends locked to its thread: the thread exits, maybe one that submitted fsyncs for
		// others still queued in its io-wq.
		wg.Go(func() { runtime.LockOSThread() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("fsync %d: %v", i, err)
		}
	}
}

// TestRingCloseTwice: a second Close does not close a descriptor number or unmap memory it no longer owns.
func TestRingCloseTwice(t *testing.T) {
	r := newTestRing(t)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	f := tempFile(t) // may reuse the ring's number
	r.Close()
	if err := r.Fsync(f); err != nil {
		t.Errorf("Fsync of a file after a second Close: %v", err)
	}
}

// TestRingSubmitRefused: io_uring_enter failing (here the ring's descriptor swapped for one that is not open) takes
// the SQE back and fsyncs directly with the right result; the ring then still works, with no stale SQE submitted
// in place of the next one.
func TestRingSubmitRefused(t *testing.T) {
	r := newTestRing(t)
	defer r.Close()
	f := tempFile(t)
	_, pw := pipe(t)
	ringFD := r.fd
	r.fd = 1 << 20 // io_uring_enter: EBADF
	errFile, errPipe := r.Fsync(f), r.Fsync(pw)
	r.fd = ringFD
	if errFile != nil || !errors.Is(errPipe, unix.EINVAL) {
		t.Errorf("refused submission: file %v, pipe %v; want nil, EINVAL", errFile, errPipe)
	}
	if r.Submitted() != 0 {
		t.Errorf("Submitted %d after refused submissions, want 0", r.Submitted())
	}
	for i := range 3 * ringEntries {
		var err error
		if i%2 == 0 {
			err = r.Fsync(pw)
		} else {
			err = r.Fsync(f)
		}
		if (i%2 == 0) != errors.Is(err, unix.EINVAL) || (i%2 == 1 && err != nil) {
			t.Fatalf("fsync %d after refused submissions: %v", i, err)
		}
	}
	if n := r.Submitted(); n != 3*ringEntries {
		t.Errorf("Submitted %d, want %d", n, 3*ringEntries)
	}
}
