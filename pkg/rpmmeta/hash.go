package rpmmeta

import (
	"bytes"
	"crypto/md5"  // only to verify the legacy header+payload digest of pre-4.14 packages
	"crypto/sha1" // only to verify the legacy header digest of pre-4.14 packages
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"math"
	"sync"
)

// fileSums is the result of the single hashing pass over a package file.
type fileSums struct {
	size  int64  // bytes read
	whole []byte // SHA-256 of the whole file
	head  []byte // SHA-256 of the lead and both headers, file range [0, hdrEnd), to compare with the guard's read
	// headCompared says head is nil because the pass compared the file's [0, hdrEnd) with the guard's bytes
	// directly (cheaper than hashing both); headDiffers is then the result.
	headCompared, headDiffers bool
	header                    []byte // digest of the main header bytes, nil when not requested
	// payload is the payload digest, nil when not requested: SHA-256 of the bytes after the main header, or, for
	// the legacy MD5 tag, MD5 of the main header and everything after it.
	payload []byte
}

// splitHasher is an io.Writer that feeds a file stream, in order, to up to four hashes at once: every byte to the
// whole-file hash, bytes in [0, hdrEnd) to the head hash, bytes in [hdrStart, hdrEnd) to the header hash, and bytes
// from payloadStart on to the payload hash. It lets Inspect read the file exactly once after the guard, however large the payload.
type splitHasher struct {
	off              int64 // file offset of the next byte written
	hdrStart, hdrEnd int64
	payloadStart     int64     // hdrEnd for SHA-256, hdrStart for the legacy MD5 that covers header and payload
	whole, head      hash.Hash // whole is nil when another goroutine hashes the whole file; head nil with cmp
	header, payload  hash.Hash // nil when not needed
	cmp              *headCmp  // compares [0, hdrEnd) with the guard's bytes instead of hashing it
}

// headCmp compares the file's first bytes with the bytes the guard read (lead, signature header, padding, main
// header: parts, in file order), as the file streams past.
type headCmp struct {
	parts  [][]byte
	part   int   // index of the part being compared
	at     int   // offset in it
	seen   int64 // bytes compared so far
	total  int64 // bytes in all parts
	differ bool
}

func (c *headCmp) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && c.part < len(c.parts) {
		want := c.parts[c.part][c.at:]
		k := min(len(p), len(want))
		if !bytes.Equal(p[:k], want[:k]) {
			c.differ = true
		}
		p, c.at, c.seen = p[k:], c.at+k, c.seen+int64(k)
		if c.at == len(c.parts[c.part]) {
			c.part, c.at = c.part+1, 0
		}
	}
	return n, nil
}

// Write implements io.Writer; hash.Hash writes never fail.
func (s *splitHasher) Write(p []byte) (int, error) {
	if s.whole != nil {
		s.whole.Write(p)
	}
	if s.cmp != nil {
		writeRange(s.cmp, p, s.off, 0, s.hdrEnd)
	} else {
		writeRange(s.head, p, s.off, 0, s.hdrEnd)
	}
	if s.header != nil {
		writeRange(s.header, p, s.off, s.hdrStart, s.hdrEnd)
	}
	if s.payload != nil {
		writeRange(s.payload, p, s.off, s.payloadStart, s.off+int64(len(p)))
	}
	s.off += int64(len(p))
	return len(p), nil
}

// writeRange writes to w the part of p (which starts at file offset pOff) that lies in the file range [from, to).
func writeRange(w io.Writer, p []byte, pOff, from, to int64) {
	lo := max(from, pOff)
	hi := min(to, pOff+int64(len(p)))
	if lo < hi {
		w.Write(p[lo-pOff : hi-pOff])
	}
}

// hashFile reads r (positioned at offset 0) to the end in one pass. headerHash is "sha256", "sha1" or "" (no
// header digest needed); payloadHash is "sha256" (the payload alone, tag 5092), "md5" (header and payload, the
// legacy signature tag 1004) or "" (none). Read errors are I/O problems, not bad packages.
func hashFile(r io.Reader, hdrStart, hdrEnd int64, headerHash, payloadHash string) (fileSums, error) {
	return hashFileCmp(r, nil, hdrStart, hdrEnd, headerHash, payloadHash)
}

// hashFileCmp is hashFile that, given the guard's layout, compares the file's lead and headers with the bytes the
// guard read instead of hashing them (see unchanged).
func hashFileCmp(r io.Reader, lay *layout, hdrStart, hdrEnd int64, headerHash, payloadHash string) (fileSums, error) {
	s := newSplitHasher(hdrStart, hdrEnd, headerHash, payloadHash)
	s.compareWith(lay)
	s.whole = sha256.New()
	buf := getBuf()
	defer putBuf(buf)
	n, err := io.CopyBuffer(s, onlyReader{r}, *buf) // a fixed buffer: memory does not grow with the payload
	if err != nil {
		return fileSums{}, fmt.Errorf("rpmmeta: read package: %w", err)
	}
	sum := fileSums{size: n, whole: s.whole.Sum(nil)}
	s.sums(&sum)
	return sum, nil
}

// hashFileAt is hashFile over the file ra of size bytes (as stat found it). A large file is read once, into a
// fanout's buffers, and hashed on two goroutines: one computes the whole-file SHA-256, the other the head, header
// and payload digests, so the two SHA-256 passes over the payload take the time of one on two cores, and the file
// is copied out of the page cache once, not once per pass.
func hashFileAt(ra io.ReaderAt, lay *layout, size, hdrStart, hdrEnd int64, headerHash, payloadHash string) (fileSums, error) {
	if size < parallelFrom {
		return hashFileCmp(io.NewSectionReader(ra, 0, math.MaxInt64), lay, hdrStart, hdrEnd, headerHash, payloadHash)
	}
	s := newSplitHasher(hdrStart, hdrEnd, headerHash, payloadHash)
	s.compareWith(lay)
	var fo fanout
	var whole hash.Hash
	var pair *pairHasher
	if pairHashing && payloadHash != "md5" {
		// One goroutine hashes the whole file and the payload together, interleaved (sha256x2.go): less CPU
		// than two passes on two goroutines, which counts when uploads arrive together.
		pair = newPairHasher(s)
		fo.init(pair, nil)
	} else {
		whole = sha256.New()
		fo.init(whole, s)
	}
	defer fo.wait() // also on a read error: the goroutines must end
	r := io.NewSectionReader(ra, 0, math.MaxInt64)
	var n int64
	for {
		k, err := io.ReadFull(r, fo.Buffer())
		fo.Commit(k)
		n += int64(k)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fileSums{}, fmt.Errorf("rpmmeta: read package: %w", err)
		}
	}
	fo.wait()
	sum := fileSums{size: n}
	if pair != nil {
		sum.whole = pair.whole.sum()
		s.sums(&sum)
		if pair.payload != nil {
			sum.payload = pair.payload.sum()
		}
		return sum, nil
	}
	sum.whole = whole.Sum(nil)
	s.sums(&sum)
	return sum, nil
}

// hashMem is hashFileAt for a package the guard's read-ahead holds whole (lay.tail, see readHeaders): its parts
// are hashed where they lie, with no copy into a read buffer; the whole-file and SHA-256 payload digests are
// computed together (writePair) where the CPU has the SHA extensions; and the lead and headers are not compared
// with themselves, the guard's bytes being the very ones hashed (unchanged has nothing to find). Issue 20: most
// uploads are this small.
func hashMem(lay *layout, headerHash, payloadHash string) fileSums {
	s := newSplitHasher(lay.hdr.start, lay.hdr.end(), headerHash, payloadHash)
	s.cmp, s.head = &headCmp{}, nil // no parts: nothing to compare, nothing differs
	var w io.Writer = s
	var pair *pairHasher
	if pairHashing && payloadHash != "md5" {
		pair = newPairHasher(s)
		w = pair
	} else {
		s.whole = sha256.New()
	}
	var n int64
	for _, b := range [...][]byte{lay.lead, lay.sig.raw, lay.pad, lay.hdr.raw, lay.tail} {
		w.Write(b)
		n += int64(len(b))
	}
	sum := fileSums{size: n}
	if pair == nil {
		sum.whole = s.whole.Sum(nil)
		s.sums(&sum)
		return sum
	}
	sum.whole = pair.whole.sum()
	s.sums(&sum)
	if pair.payload != nil {
		sum.payload = pair.payload.sum()
	}
	return sum
}

// newSplitHasher returns a splitHasher without the whole-file hash (the caller sets it when it wants it).
func newSplitHasher(hdrStart, hdrEnd int64, headerHash, payloadHash string) *splitHasher {
	s := &splitHasher{hdrStart: hdrStart, hdrEnd: hdrEnd, head: sha256.New()}
	switch headerHash {
	case "sha256":
		s.header = sha256.New()
	case "sha1":
		s.header = sha1.New()
	}
	switch payloadHash {
	case "sha256":
		s.payload, s.payloadStart = sha256.New(), hdrEnd
	case "md5":
		s.payload, s.payloadStart = md5.New(), hdrStart
	}
	return s
}

// compareWith makes s compare [0, hdrEnd) with the bytes the guard read (lay's), instead of hashing them; nil
// lay keeps the hash.
func (s *splitHasher) compareWith(lay *layout) {
	if lay == nil {
		return
	}
	parts := [][]byte{lay.lead, lay.sig.raw, lay.pad, lay.hdr.raw}
	var total int64
	for _, b := range parts {
		total += int64(len(b))
	}
	s.cmp, s.head = &headCmp{parts: parts, total: total}, nil
}

// sums fills the head, header and payload digests (or the head comparison) into sum.
func (s *splitHasher) sums(sum *fileSums) {
	if s.cmp != nil {
		// A file shorter than the headers differs too.
		sum.headCompared, sum.headDiffers = true, s.cmp.differ || s.cmp.seen != s.cmp.total
	} else {
		sum.head = s.head.Sum(nil)
	}
	if s.header != nil {
		sum.header = s.header.Sum(nil)
	}
	if s.payload != nil {
		sum.payload = s.payload.Sum(nil)
	}
}

// readBufSize is the read size of the hashing passes: large enough that a big file costs few system calls.
const readBufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }

// onlyReader hides a reader's WriteTo (*os.File has one), so that io.CopyBuffer uses the buffer it is given
// instead of allocating its own.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// pairHasher is a splitHasher whose whole-file and SHA-256 payload digests are computed together by writePair (the
// splitHasher keeps the head comparison and the header digest).
type pairHasher struct {
	s              *splitHasher // its payload hash is nil: the payload is hashed here
	whole, payload *sha256State // payload nil when no payload digest is wanted
	spare          sha256State  // the second state writePair needs when payload is nil; never read
	payloadStart   int64
}

func newPairHasher(s *splitHasher) *pairHasher {
	p := &pairHasher{s: s, whole: newSHA256State(), payloadStart: s.payloadStart}
	if s.payload != nil {
		p.payload, s.payload = newSHA256State(), nil
	}
	return p
}

func (p *pairHasher) Write(b []byte) (int, error) {
	off := p.s.off
	p.s.Write(b)
	var payload []byte
	if p.payload != nil {
		if from := p.payloadStart - off; from < int64(len(b)) {
			payload = b[max(from, 0):]
		}
		writePair(p.whole, p.payload, b, payload)
	} else {
		writePair(p.whole, &p.spare, b, nil)
	}
	return len(b), nil
}
