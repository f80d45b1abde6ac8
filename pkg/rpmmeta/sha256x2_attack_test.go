package rpmmeta

import (
	"bytes"
	"crypto/sha256"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// TestSHA256PairEveryShortLength: every pair of lengths 0..300 (every padding case, one to six blocks, partial
// blocks on both sides), each stream cut into pieces of random sizes (empty ones included) and the second stream
// starting some writes after the first (its first pieces empty, as the payload stream is before the header ends)
// or the first ending before the second, against crypto/sha256.
func TestSHA256PairEveryShortLength(t *testing.T) {
	if !pairHashing {
		t.Fatal("this CPU has no SHA extensions: the pair hashing is not exercised here")
	}
	rng := rand.New(rand.NewPCG(7, 11))
	data := make([]byte, 4096)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	pieces := func(n int) []int { // n cut into random pieces, some empty, led by a random number of empty ones
		var ps []int
		for range rng.IntN(4) {
			ps = append(ps, 0)
		}
		for n > 0 {
			k := min(n, []int{0, 1, 7, 63, 64, 65, 128, 200, rng.IntN(n + 1)}[rng.IntN(9)])
			ps = append(ps, k)
			n -= k
		}
		return ps
	}
	for la := 0; la <= 300; la++ {
		for lb := 0; lb <= 300; lb++ {
			a := data[rng.IntN(64):][:la]
			b := data[1000+rng.IntN(64):][:lb]
			pa, pb := pieces(la), pieces(lb)
			sa, sb := newSHA256State(), newSHA256State()
			oa, ob := 0, 0
			for i := 0; i < max(len(pa), len(pb)); i++ {
				var ka, kb int
				if i < len(pa) {
					ka = pa[i]
				}
				if i < len(pb) {
					kb = pb[i]
				}
				writePair(sa, sb, a[oa:oa+ka], b[ob:ob+kb])
				oa, ob = oa+ka, ob+kb
			}
			wa, wb := sha256.Sum256(a), sha256.Sum256(b)
			if got := sa.sum(); !bytes.Equal(got, wa[:]) {
				t.Fatalf("lengths %d/%d pieces %v/%v: first %x, want %x", la, lb, pa, pb, got, wa)
			}
			if got := sb.sum(); !bytes.Equal(got, wb[:]) {
				t.Fatalf("lengths %d/%d pieces %v/%v: second %x, want %x", la, lb, pa, pb, got, wb)
			}
		}
	}
}

// TestDigesterPairMatchesCrypto: the Digester's sums are the same with the pair hashing and without it
// (crypto/sha256, the !pairHashing path), and are the sums of the bytes they claim, for a package cut short
// anywhere (inside the lead, the signature header, the main header's intro or data: the payload offset is then
// beyond the file, or never learnt, and the payload digest is that of nothing), and for one large enough for the
// parallel path, each fed in pieces of random sizes.
func TestDigesterPairMatchesCrypto(t *testing.T) {
	if !pairHashing {
		t.Fatal("this CPU has no SHA extensions: the pair hashing is not exercised here")
	}
	small := testrpm.Build(t, testrpm.Spec{Name: "cut", Version: "1", Release: "1.el9", Arch: "x86_64"})
	lay := layoutOf(t, small)
	end := int(lay.hdr.end())
	cuts := []int{0, 1, 95, 96, 97, int(lay.hdr.start) - 1, int(lay.hdr.start), int(lay.hdr.start) + 8,
		int(lay.hdr.start) + 16, end - 1, end, end + 1, len(small)}
	rng := rand.New(rand.NewPCG(3, 5))
	for range 20 {
		cuts = append(cuts, rng.IntN(len(small)+1))
	}
	type input struct {
		data []byte
		name string
	}
	var inputs []input
	for _, c := range cuts {
		inputs = append(inputs, input{small[:c], "small cut"})
	}
	inputs = append(inputs, input{bigPackage(t), "large"})
	defer func() { pairHashing = true }()
	for _, in := range inputs {
		got := map[bool]*Digests{}
		for _, pair := range []bool{false, true} {
			pairHashing = pair
			d := NewDigester()
			for off := 0; off < len(in.data); {
				k := min(len(in.data)-off, rng.IntN(3)*rng.IntN(300000)+rng.IntN(130))
				d.Write(in.data[off : off+k])
				off += k
			}
			got[pair] = d.Sum()
		}
		a, b := got[false], got[true]
		if a.sums.size != b.sums.size || !bytes.Equal(a.sums.whole, b.sums.whole) || !bytes.Equal(a.sums.head, b.sums.head) ||
			a.hdrStart != b.hdrStart || a.hdrEnd != b.hdrEnd || !bytes.Equal(a.header256, b.header256) ||
			!bytes.Equal(a.header1, b.header1) || !bytes.Equal(a.payload, b.payload) {
			t.Fatalf("%s %d bytes: crypto %+v, pair %+v", in.name, len(in.data), a, b)
		}
		whole := sha256.Sum256(in.data)
		var payload [32]byte
		if b.hdrEnd != math.MaxInt64 && b.hdrEnd <= int64(len(in.data)) {
			payload = sha256.Sum256(in.data[b.hdrEnd:])
		} else {
			payload = sha256.Sum256(nil)
		}
		if !bytes.Equal(b.sums.whole, whole[:]) || !bytes.Equal(b.payload, payload[:]) || b.sums.size != int64(len(in.data)) {
			t.Fatalf("%s %d bytes (header end %d): whole %x payload %x, want %x %x", in.name, len(in.data), b.hdrEnd,
				b.sums.whole, b.payload, whole, payload)
		}
	}
}
