package rpmmeta

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"sync/atomic"
	"testing"
)

// countingReaderAt counts the bytes read through it, from any goroutine.
type countingReaderAt struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// TestHashFileAtReadsOnce: the two-goroutine pass over a large file reads each byte once (it used to read the file
// twice, once per goroutine: twice the copies out of the page cache and twice the system calls), and computes the
// same digests as the one-goroutine pass, for every combination of header and payload digest.
func TestHashFileAtReadsOnce(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	data := make([]byte, 3*parallelFrom+12345) // past parallelFrom, and not a whole number of chunks
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	const hdrStart, hdrEnd = 1000, 70000
	for _, tc := range []struct{ header, payload string }{
		{"sha256", "sha256"}, {"sha1", "sha256"}, {"", "md5"}, {"sha256", ""}, {"", ""},
	} {
		t.Run(tc.header+"/"+tc.payload, func(t *testing.T) {
			ra := &countingReaderAt{r: bytes.NewReader(data)}
			got, err := hashFileAt(ra, nil, int64(len(data)), hdrStart, hdrEnd, tc.header, tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			if n := ra.n.Load(); n != int64(len(data)) {
				t.Errorf("read %d bytes of a %d-byte file, want each byte once", n, len(data))
			}
			want, err := hashFile(bytes.NewReader(data), hdrStart, hdrEnd, tc.header, tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("digests differ from the one-goroutine pass:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// failingReaderAt fails every read at or past off.
type failingReaderAt struct {
	r   io.ReaderAt
	off int64
}

var errDisk = errors.New("disk on fire")

func (f failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.off {
		return 0, errDisk
	}
	return f.r.ReadAt(p, off)
}

// TestHashFileAtReadError: a read error past the parallel threshold is returned (wrapped), and the hashing
// goroutines end (the race detector and the test's own end would notice a leak only as a hang; this must return).
func TestHashFileAtReadError(t *testing.T) {
	data := make([]byte, 4*parallelFrom)
	_, err := hashFileAt(failingReaderAt{r: bytes.NewReader(data), off: 2 * parallelFrom}, nil, int64(len(data)), 100, 200, "sha256", "sha256")
	if !errors.Is(err, errDisk) {
		t.Fatalf("err = %v, want the read error", err)
	}
}

// BenchmarkHashFileAt hashes a 10 MiB file the way a header-mode upload's read-back does; -benchmem shows that
// the pass does not allocate its chunks anew each time.
func BenchmarkHashFileAt(b *testing.B) {
	data := make([]byte, 10<<20)
	ra := bytes.NewReader(data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hashFileAt(ra, nil, int64(len(data)), 1000, 70000, "sha256", "sha256"); err != nil {
			b.Fatal(err)
		}
	}
}
