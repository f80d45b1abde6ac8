package rpmmeta

import (
	"crypto/sha1" // only to verify the legacy header digest of pre-4.14 packages
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"io"
	"math"
	"sync"
	"sync/atomic"
)

// Digester computes the digests Inspect checks while a package's bytes arrive, so that a streamed upload is hashed
// in the same pass that writes it to disk instead of being read back afterwards. Write the file's bytes to it in
// order from offset 0 (it is an io.Writer), call Sum once at the end and give the result to InspectDigested.
//
// It follows the lead and header intros as they pass to learn where the main header and the payload start, and
// hashes, at once: the whole file (SHA-256), the lead and headers (SHA-256, compared with what the guard later
// reads from the file), the main header (SHA-256 and SHA-1) and the payload (SHA-256). It checks nothing itself:
// InspectDigested runs the guard over the file and uses these sums only when the guard's layout and the file size
// agree with what the Digester saw; otherwise (and for legacy packages whose digest covers header and payload with
// MD5) it hashes the file as Inspect does.
//
// Past parallelFrom bytes the hashing runs on goroutines of its own (see fanout), so memory stays bounded (about a
// MiB per upload) whatever the file size: one goroutine for everything where the CPU has the SHA extensions (the
// whole-file and payload SHA-256 interleaved on one core, see pairSplit), else the whole-file hash and the rest on
// two. A caller that fills the Digester's own buffers (Buffer,
// then Commit) hands the bytes over without a copy; Write copies. A Digester is not safe for concurrent use.
type Digester struct {
	whole hash.Hash
	split *streamSplit
	pair  *pairSplit // where pairHashing: the whole-file and payload SHA-256 on one goroutine, whole is nil
	f     fanout
}

// NewDigester returns a Digester for a package file's bytes from offset 0.
func NewDigester() *Digester {
	d := &Digester{split: newStreamSplit()}
	if pairHashing {
		d.pair = newPairSplit(d.split)
		d.f.init(d.pair, nil)
		return d
	}
	d.whole = sha256.New()
	d.f.init(d.whole, d.split)
	return d
}

// pairSplit feeds a stream to a streamSplit for the lead and headers' digests, and hashes the whole stream and
// its payload (from the streamSplit's hdrEnd on) with writePair: the two SHA-256 passes over the payload share one
// core's SHA unit (sha256x2.go), so one goroutine does what otherwise takes two, in less CPU time.
type pairSplit struct {
	off            int64
	split          *streamSplit // its payload hash is nil: the payload is hashed here
	whole, payload *sha256State
}

func newPairSplit(split *streamSplit) *pairSplit {
	split.payload = nil
	return &pairSplit{split: split, whole: newSHA256State(), payload: newSHA256State()}
}

// Write hashes p, the stream's next bytes. The streamSplit learns where the payload starts from the main header's
// intro, which lies before it: once it has seen p, it knows whether any of p is payload.
func (ps *pairSplit) Write(p []byte) (int, error) {
	ps.split.Write(p)
	var payload []byte
	if from := ps.split.hdrEnd - ps.off; from < int64(len(p)) {
		payload = p[max(from, 0):]
	}
	writePair(ps.whole, ps.payload, p, payload)
	ps.off += int64(len(p))
	return len(p), nil
}

// Buffer returns a buffer of chunkSize bytes to fill with the file's next bytes; Commit hands them over. Until
// Commit, Buffer returns the same buffer. It may wait for the hashing goroutines to free one.
func (d *Digester) Buffer() []byte { return d.f.Buffer() }

// Commit hashes the first n bytes of the buffer Buffer returned, the file's next bytes. With n 0 the buffer stays
// the caller's.
func (d *Digester) Commit(n int) { d.f.Commit(n) }

// Write hashes p, the file's next bytes (a copy of them, through Buffer and Commit). It never fails.
func (d *Digester) Write(p []byte) (int, error) { return d.f.Write(p) }

const (
	parallelFrom = 1 << 20          // below this, goroutines cost more than they save
	chunkSize    = 256 << 10        // bytes per hand-off
	queueDepth   = 2                // chunks waiting per goroutine
	maxChunks    = 2*queueDepth + 2 // at most 2*queueDepth+1 are ever in use: queued or written behind the slower goroutine, and one being filled
)

// fanout writes one stream to one or two writers (hashes) at once. Up to parallelFrom bytes it writes them in the
// caller's goroutine; past that, each writer has a goroutine of its own, and both read the same chunks of at most
// chunkSize bytes: the stream is read (or received) once, into the fanout's own buffers, and never copied again.
// At most queueDepth chunks wait per goroutine and a fanout owns at most maxChunks, so memory stays bounded
// whatever the stream's length. Not safe for concurrent use; wait ends its goroutines.
type fanout struct {
	w   [2]io.Writer
	n   int // writers: 2, or 1 when w[1] is nil
	off int64

	cur       *chunk      // the buffer Buffer handed out, until Commit
	free      chan *chunk // chunks both goroutines are done with
	allocated int

	// Parallel mode, started once off passes parallelFrom.
	started bool
	queues  [2]chan *chunk
	wg      sync.WaitGroup
	done    bool
}

// chunk is a buffer of written bytes shared by the two goroutines; the last to finish frees it.
type chunk struct {
	b    []byte
	n    int
	refs atomic.Int32
}

// init makes f write to a and b. Their Write must not fail (hashes never do) and is only ever called from one
// goroutine at a time.
func (f *fanout) init(a, b io.Writer) {
	f.w, f.n = [2]io.Writer{a, b}, 2
	if b == nil {
		f.n = 1
	}
	f.free = make(chan *chunk, maxChunks)
}

// Buffer returns a buffer of chunkSize bytes to fill with the stream's next bytes; Commit hands them over. Until
// Commit, Buffer returns the same buffer. It may wait for the goroutines to free one.
func (f *fanout) Buffer() []byte {
	if f.cur == nil {
		select {
		case f.cur = <-f.free:
		default:
			if f.allocated < maxChunks {
				f.allocated++
				f.cur = chunkPool.Get().(*chunk)
			} else {
				f.cur = <-f.free
			}
		}
	}
	return f.cur.b
}

// Commit writes the first n bytes of the buffer Buffer returned to both writers. With n 0 the buffer stays the
// caller's.
func (f *fanout) Commit(n int) {
	if n == 0 {
		return
	}
	c := f.cur
	c.n = n
	if !f.started && f.off+int64(n) <= parallelFrom {
		for _, w := range f.w[:f.n] {
			w.Write(c.b[:n])
		}
		f.off += int64(n)
		return // the buffer stays f.cur, for the next bytes
	}
	f.start()
	f.cur = nil
	c.refs.Store(int32(f.n))
	for _, q := range f.queues[:f.n] {
		q <- c
	}
	f.off += int64(n)
}

// Write writes p, the stream's next bytes, to both writers (a copy of them, through Buffer and Commit). It never
// fails.
func (f *fanout) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := copy(f.Buffer(), p)
		f.Commit(k)
		p = p[k:]
	}
	return n, nil
}

// start launches the two goroutines, once.
func (f *fanout) start() {
	if f.started {
		return
	}
	f.started = true
	for i, w := range f.w[:f.n] {
		f.queues[i] = make(chan *chunk, queueDepth)
		f.wg.Add(1)
		go func(q chan *chunk) {
			defer f.wg.Done()
			for c := range q {
				w.Write(c.b[:c.n])
				if c.refs.Add(-1) == 0 {
					f.free <- c // never blocks: the channel holds every chunk the fanout owns
				}
			}
		}(f.queues[i])
	}
}

// wait returns once both writers have everything committed; it ends the goroutines. Call it once the stream
// ends, also when it is abandoned; later calls return at once.
func (f *fanout) wait() {
	if !f.done && f.started {
		for _, q := range f.queues[:f.n] {
			close(q)
		}
		f.wg.Wait()
	}
	if !f.done {
		// Every chunk is free now (or is f.cur, which the caller no longer uses): back to the pool.
		if f.cur != nil {
			f.free <- f.cur
			f.cur = nil
		}
		for range len(f.free) {
			chunkPool.Put(<-f.free)
		}
	}
	f.done = true
}

// chunkPool keeps chunks between uploads, so that each does not allocate (and the collector free) its own.
var chunkPool = sync.Pool{New: func() any { return &chunk{b: make([]byte, chunkSize)} }}

// Sum waits for the hashing to finish and returns the digests of everything written. Call it once, after the
// last Write; also call it (and drop the result) when abandoning a Digester, so that its goroutines end.
func (d *Digester) Sum() *Digests {
	d.f.wait()
	s := d.split
	var whole, payload []byte
	if d.pair != nil {
		whole, payload = d.pair.whole.sum(), d.pair.payload.sum()
	} else {
		whole, payload = d.whole.Sum(nil), s.payload.Sum(nil)
	}
	return &Digests{
		sums:     fileSums{size: d.f.off, whole: whole, head: s.head.Sum(nil)},
		hdrStart: s.hdrStart, hdrEnd: s.hdrEnd,
		header256: s.header256.Sum(nil), header1: s.header1.Sum(nil), payload: payload,
	}
}

// Digests are what a Digester computed, for InspectDigested.
type Digests struct {
	sums             fileSums // size, whole, head; header and payload are filled per package by forInspect
	hdrStart, hdrEnd int64    // the main header's range as the Digester saw it (MaxInt64 when never seen)
	header256        []byte
	header1          []byte
	payload          []byte // SHA-256 of the bytes from hdrEnd on
}

// SHA256 returns the SHA-256 of the whole stream.
func (s *Digests) SHA256() []byte { return s.sums.whole }

// Size returns the number of bytes written.
func (s *Digests) Size() int64 { return s.sums.size }

// forInspect returns the sums Inspect's checks need for a file of size bytes whose guard found the main header at
// [hdrStart, hdrEnd), with the header and payload digests wanted; ok is false when these digests cannot serve (a
// different layout or size, or the legacy MD5 payload digest), and the file must be hashed instead.
func (s *Digests) forInspect(size, hdrStart, hdrEnd int64, headerHash, payloadHash string) (fileSums, bool) {
	if s == nil || s.sums.size != size || s.hdrStart != hdrStart || s.hdrEnd != hdrEnd {
		return fileSums{}, false
	}
	sum := s.sums
	switch headerHash {
	case "sha256":
		sum.header = s.header256
	case "sha1":
		sum.header = s.header1
	}
	switch payloadHash {
	case "sha256":
		sum.payload = s.payload
	case "":
	default: // md5 of header and payload: not computed while streaming
		return fileSums{}, false
	}
	return sum, true
}

// streamSplit hashes the ranges of a package file that depend on its layout, learning the layout from the intros
// as they pass: the signature header's intro at [leadSize, leadSize+introSize) gives where the main header starts,
// and the main header's intro gives where it ends. Each boundary is known before the stream reaches it, so no byte
// needs to be held back.
type streamSplit struct {
	off              int64
	hdrStart, hdrEnd int64 // MaxInt64 until known
	intro            [introSize]byte
	head             hash.Hash // [0, hdrEnd)
	header256        hash.Hash // [hdrStart, hdrEnd)
	header1          hash.Hash
	payload          hash.Hash // [hdrEnd, ∞); nil when a pairSplit hashes it
}

func newStreamSplit() *streamSplit {
	return &streamSplit{hdrStart: math.MaxInt64, hdrEnd: math.MaxInt64, head: sha256.New(), header256: sha256.New(),
		header1: sha1.New(), payload: sha256.New()}
}

// next returns the offset at which the layout learns something new: the end of the intro it is reading.
func (s *streamSplit) next() int64 {
	switch {
	case s.hdrStart == math.MaxInt64:
		return leadSize + introSize
	case s.hdrEnd == math.MaxInt64:
		return s.hdrStart + introSize
	}
	return math.MaxInt64
}

// Write hashes p, cut at the offsets where the layout changes so each piece is hashed with the ranges known then.
func (s *streamSplit) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := len(p)
		if next := s.next(); next != math.MaxInt64 && next-s.off < int64(k) {
			k = int(next - s.off)
		}
		s.piece(p[:k])
		p = p[k:]
	}
	return n, nil
}

// piece hashes p, which lies entirely before the next layout event, then learns from any intro it completes.
func (s *streamSplit) piece(p []byte) {
	off := s.off
	writeRange(s.head, p, off, 0, s.hdrEnd)
	writeRange(s.header256, p, off, s.hdrStart, s.hdrEnd)
	writeRange(s.header1, p, off, s.hdrStart, s.hdrEnd)
	if s.payload != nil { // nil when a pairSplit hashes the payload
		writeRange(s.payload, p, off, s.hdrEnd, math.MaxInt64)
	}
	// Copy the bytes of the intro being read.
	var introAt int64 = leadSize
	if s.hdrStart != math.MaxInt64 {
		introAt = s.hdrStart
	}
	if s.hdrEnd == math.MaxInt64 {
		lo, hi := max(introAt, off), min(introAt+introSize, off+int64(len(p)))
		if lo < hi {
			copy(s.intro[lo-introAt:], p[lo-off:hi-off])
		}
	}
	s.off += int64(len(p))
	if s.off != s.next() {
		return
	}
	il := int64(binary.BigEndian.Uint32(s.intro[8:12]))
	dl := int64(binary.BigEndian.Uint32(s.intro[12:16]))
	end := s.off + il*entrySize + dl // intro end + index + store: at most ~68 GB past it, no overflow
	if s.hdrStart == math.MaxInt64 {
		s.hdrStart = end + (8-dl%8)%8 // the signature header is padded to a multiple of 8
	} else {
		s.hdrEnd = end
	}
}
