package ingest

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// dirtyPages returns how many of f's pages in the page cache are dirty (written, their writeback not started),
// with cachestat(2).
func dirtyPages(t *testing.T, f *os.File) uint64 {
	t.Helper()
	var cs unix.Cachestat_t
	if err := unix.Cachestat(uint(f.Fd()), &unix.CachestatRange{}, &cs, 0); err != nil {
		t.Fatalf("cachestat: %v (Linux >= 6.5 needed)", err)
	}
	return cs.Dirty
}

// TestOpenStartsWriteback: by the time the checks read an upload's file, its writeback has been started, for a
// file nginx spooled (never fsynced) and for the tail of a direct upload, so that the fsync before placement
// does not write all of it. Nothing is made durable here; the fsync stays (the durability tests cover it).
func TestOpenStartsWriteback(t *testing.T) {
	const size = 3 << 20 // below writebackEvery: only the start of writeback at open/EOF covers it
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name string
		req  func(t *testing.T, e *env) Request
	}{
		{"spooled by the proxy", func(t *testing.T, e *env) Request {
			p := filepath.Join(e.spool, "0000000001")
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if d := dirtyPages(t, f); d < size/4096/2 {
				t.Fatalf("only %d dirty pages right after writing %d bytes: this filesystem cannot show the difference", d, size)
			}
			return Request{SpoolPath: p}
		}},
		{"direct upload", func(t *testing.T, e *env) Request { return Request{Body: bytes.NewReader(data)} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.MaxSize = 64 << 20 })
			f, remove, sp, err := e.in.open(tc.req(t, e))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { f.Close(); remove() }()
			if sp.size != size {
				t.Fatalf("size %d, want %d", sp.size, size)
			}
			// Writeback started means no page is left merely dirty (they are under writeback or written).
			if d := dirtyPages(t, f); d > size/4096/10 {
				t.Errorf("%d of %d pages still dirty after open: writeback was not started", d, size/4096)
			}
		})
	}
}

// TestOversizedSpoolNotWrittenBack: a spooled file over max_upload_size is refused without being read, so its
// writeback is not started either (the file is removed, its dirty pages are dropped unwritten).
func TestOversizedSpoolNotWrittenBack(t *testing.T) {
	const size = 3 << 20
	e := newEnv(t, func(o *Options) { o.MaxSize = 2 << 20 })
	p := filepath.Join(e.spool, "0000000002")
	if err := os.WriteFile(p, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	f, remove, _, err := e.in.open(Request{SpoolPath: p})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { f.Close(); remove() }()
	if d := dirtyPages(t, f); d < size/4096/2 {
		t.Errorf("only %d of %d pages dirty: writeback of a file over the cap was started", d, size/4096)
	}
}

// dirtyWatcher is a body that, before each read, counts the dirty pages of the direct upload's spool file (the
// only .part file in the spool) and keeps the largest count.
type dirtyWatcher struct {
	t     *testing.T
	r     *bytes.Reader
	spool string
	max   uint64
}

func (w *dirtyWatcher) Read(p []byte) (int, error) {
	names, _ := filepath.Glob(filepath.Join(w.spool, spoolPattern))
	if len(names) == 1 {
		if f, err := os.Open(names[0]); err == nil {
			w.max = max(w.max, dirtyPages(w.t, f))
			f.Close()
		}
	}
	return w.r.Read(p[:min(len(p), 64<<10)])
}

// TestDirectUploadWrittenBackAsReceived: while a large direct upload is received, writeback is started every
// writebackEvery bytes, so that no more than that (and the piece being written) is ever merely dirty: the fsync
// before placement then waits for the last 2 MiB at most, not for up to 8 MiB as before.
func TestDirectUploadWrittenBackAsReceived(t *testing.T) {
	data := make([]byte, 24<<20)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	e := newEnv(t, func(o *Options) { o.MaxSize = 64 << 20 })
	w := &dirtyWatcher{t: t, r: bytes.NewReader(data), spool: e.spool}
	f, remove, sp, err := e.in.open(Request{Body: w})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { f.Close(); remove() }()
	if sp.size != int64(len(data)) {
		t.Fatalf("size %d, want %d", sp.size, len(data))
	}
	const limit = (2<<20 + 256<<10) / 4096 // 2 MiB, and the chunk being written
	if w.max == 0 || w.max > limit {
		t.Errorf("up to %d pages (%d KiB) of the spool file were dirty during the upload, want between 1 and %d", w.max, w.max*4, limit)
	}
}
