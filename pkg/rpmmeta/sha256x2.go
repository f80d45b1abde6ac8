package rpmmeta

import "encoding/binary"

// SHA-256 of two streams at once, on one core. A package's whole-file digest and its payload digest are two
// SHA-256 passes over nearly the same bytes. The SHA extensions' round instruction has a latency of several
// cycles, and one message's rounds depend on each other, so a single hash leaves the unit idle between rounds;
// sha256Block2 interleaves the rounds of the two messages, which on the 2-core build machine hashes both in about
// 0.8 of the time of two passes one after the other, and leaves the second core to the reader and the disk (see
// docs/benchmarks-notes.md, "Direct mode and large files: third pass"). Used only where pairHashing is true; the
// result is checked against crypto/sha256 in sha256x2_test.go.

// sha256State is one SHA-256 computation fed through sha256Block1/sha256Block2.
type sha256State struct {
	h   [8]uint32
	x   [64]byte // a partial block
	nx  int
	len uint64
}

func newSHA256State() *sha256State {
	return &sha256State{h: [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}}
}

// fill moves bytes from p into the partial block; it returns what is left of p and whether the block is full.
func (s *sha256State) fill(p []byte) ([]byte, bool) {
	if s.nx == 0 {
		return p, false
	}
	k := copy(s.x[s.nx:], p)
	s.nx += k
	return p[k:], s.nx == 64
}

// keep stores p (less than a block) as the partial block.
func (s *sha256State) keep(p []byte) { s.nx = copy(s.x[:], p) }

// writePair hashes pa into a and pb into b (either may be empty), interleaving the two where both have whole
// blocks. a and b must be different states.
func writePair(a, b *sha256State, pa, pb []byte) {
	a.len += uint64(len(pa))
	b.len += uint64(len(pb))
	var fullA, fullB bool
	pa, fullA = a.fill(pa)
	pb, fullB = b.fill(pb)
	switch {
	case fullA && fullB:
		sha256Block2(&a.h, &b.h, &a.x[0], &b.x[0], 1)
		a.nx, b.nx = 0, 0
	case fullA:
		sha256Block1(&a.h, &a.x[0], 1)
		a.nx = 0
	case fullB:
		sha256Block1(&b.h, &b.x[0], 1)
		b.nx = 0
	}
	// A state whose partial block is still not full took all of its p.
	if a.nx == 0 && b.nx == 0 {
		if n := min(len(pa), len(pb)) / 64; n > 0 {
			sha256Block2(&a.h, &b.h, &pa[0], &pb[0], n)
			pa, pb = pa[n*64:], pb[n*64:]
		}
	}
	for _, w := range []struct {
		s *sha256State
		p []byte
	}{{a, pa}, {b, pb}} {
		if w.s.nx > 0 {
			continue // p was used up filling the partial block
		}
		if n := len(w.p) / 64; n > 0 {
			sha256Block1(&w.s.h, &w.p[0], n)
			w.p = w.p[n*64:]
		}
		w.s.keep(w.p)
	}
}

// sum returns the digest of everything written; s cannot be used afterwards.
func (s *sha256State) sum() []byte {
	// The partial block, 0x80, zeros up to 56 bytes modulo 64, and the length in bits: one or two blocks.
	buf := make([]byte, 0, 128)
	buf = append(buf, s.x[:s.nx]...)
	buf = append(buf, 0x80)
	for len(buf)%64 != 56 {
		buf = append(buf, 0)
	}
	buf = binary.BigEndian.AppendUint64(buf, s.len*8)
	sha256Block1(&s.h, &buf[0], len(buf)/64)
	out := make([]byte, 32)
	for i, v := range s.h {
		binary.BigEndian.PutUint32(out[4*i:], v)
	}
	return out
}
