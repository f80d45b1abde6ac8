package rpmmeta

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// TestSHA256Pair checks the interleaved SHA-256 against crypto/sha256: two streams of random lengths, the second
// a suffix of the first (as the payload is of the file) or unrelated, written in pieces of random sizes
// (including empty ones and pieces that end inside a block), for every padding case (lengths around 55, 56, 63,
// 64 bytes modulo 64).
func TestSHA256Pair(t *testing.T) {
	if !pairHashing {
		t.Skip("no SHA extensions on this CPU: the pair hashing is not used here") // the fallback is crypto/sha256
	}
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	lengths := []int{0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4096 + 55, 65536 + 63, 1 << 20}
	for range 200 {
		lengths = append(lengths, rng.IntN(1<<20))
	}
	for _, n := range lengths {
		a := data[:n]
		var b []byte
		switch rng.IntN(3) {
		case 0:
			b = a[rng.IntN(n+1):] // a suffix: the payload of the file
		case 1:
			at := rng.IntN(len(data) - n/2)
			b = data[at : at+n/2] // another stream
		}
		sa, sb := newSHA256State(), newSHA256State()
		offA, offB := 0, 0
		for offA < len(a) || offB < len(b) {
			ka := min(len(a)-offA, rng.IntN(3)*rng.IntN(70000)+rng.IntN(130))
			kb := min(len(b)-offB, rng.IntN(3)*rng.IntN(70000)+rng.IntN(130))
			writePair(sa, sb, a[offA:offA+ka], b[offB:offB+kb])
			offA, offB = offA+ka, offB+kb
		}
		wa, wb := sha256.Sum256(a), sha256.Sum256(b)
		if got := sa.sum(); !bytes.Equal(got, wa[:]) {
			t.Fatalf("length %d: first stream %x, crypto/sha256 %x", n, got, wa)
		}
		if got := sb.sum(); !bytes.Equal(got, wb[:]) {
			t.Fatalf("length %d: second stream (%d bytes) %x, crypto/sha256 %x", n, len(b), got, wb)
		}
	}
}

func BenchmarkSHA256Pair(b *testing.B) {
	if !pairHashing {
		b.Skip("no SHA extensions")
	}
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(buf)))
	b.Run("pair", func(b *testing.B) {
		x, y := newSHA256State(), newSHA256State()
		for b.Loop() {
			writePair(x, y, buf, buf[100:])
		}
	})
	b.Run("crypto-twice", func(b *testing.B) {
		x, y := sha256.New(), sha256.New()
		for b.Loop() {
			x.Write(buf)
			y.Write(buf[100:])
		}
	})
}

// TestHashFileAtPairMatchesCrypto: the large-file pass gives the same sums with the interleaved pair as with
// crypto/sha256 on two goroutines, for every header digest (none, SHA-1, SHA-256) and payload digest (none,
// SHA-256, and the legacy MD5, which the pair leaves to the old path), with and without the head comparison.
func TestHashFileAtPairMatchesCrypto(t *testing.T) {
	if !pairHashing {
		t.Skip("no SHA extensions on this CPU: the pair hashing is not used here")
	}
	data := bigPackage(t)
	lay := layoutOf(t, data)
	size, start, end := int64(len(data)), lay.hdr.start, lay.hdr.end()
	for _, hh := range []string{"", "sha1", "sha256"} {
		for _, ph := range []string{"", "sha256", "md5"} {
			for _, cmp := range []*layout{nil, &lay} {
				sums := map[bool]fileSums{}
				for _, pair := range []bool{false, true} {
					pairHashing = pair
					s, err := hashFileAt(bytes.NewReader(data), cmp, size, start, end, hh, ph)
					pairHashing = true
					if err != nil {
						t.Fatal(err)
					}
					sums[pair] = s
				}
				a, b := sums[false], sums[true]
				if a.size != b.size || !bytes.Equal(a.whole, b.whole) || !bytes.Equal(a.head, b.head) || a.headCompared != b.headCompared ||
					a.headDiffers != b.headDiffers || !bytes.Equal(a.header, b.header) || !bytes.Equal(a.payload, b.payload) {
					t.Errorf("header %q payload %q compare %v: crypto %+v, pair %+v", hh, ph, cmp != nil, a, b)
				}
				if want := sha256.Sum256(data); !bytes.Equal(b.whole, want[:]) {
					t.Errorf("header %q payload %q: whole %x, want %x", hh, ph, b.whole, want)
				}
			}
		}
	}
}

// TestHashMemMatchesHashFile (issue 20): a package the read-ahead holds whole is hashed from the guard's parts
// (hashMem) to the same sums as a pass over the file, for every header digest and payload digest, with the pair
// hashing on and off; the head, being the guard's own bytes, is reported as compared and equal.
func TestHashMemMatchesHashFile(t *testing.T) {
	for _, data := range [][]byte{
		testrpm.Build(t, testrpm.Spec{Name: "small", Version: "1", Release: "1.el9", Arch: "x86_64"}),
		testrpm.Build(t, testrpm.Spec{Name: "small", Version: "1", Release: "1.el9", Arch: "x86_64",
			Files: map[string]string{"/usr/share/small/a": strings.Repeat("0123456789abcdef", 500)}}),
	} {
		lay := layoutOf(t, data)
		lay.tail = data[lay.hdr.end():]
		start, end := lay.hdr.start, lay.hdr.end()
		for _, hh := range []string{"", "sha1", "sha256"} {
			for _, ph := range []string{"", "sha256", "md5"} {
				want, err := hashFile(bytes.NewReader(data), start, end, hh, ph)
				if err != nil {
					t.Fatal(err)
				}
				for _, pair := range []bool{false, pairHashing} {
					was := pairHashing
					pairHashing = pair
					got := hashMem(&lay, hh, ph)
					pairHashing = was
					if got.size != want.size || !bytes.Equal(got.whole, want.whole) || !bytes.Equal(got.header, want.header) ||
						!bytes.Equal(got.payload, want.payload) || !got.headCompared || got.headDiffers {
						t.Errorf("%d bytes, header %q payload %q pair %v: got %+v, want %+v", len(data), hh, ph, pair, got, want)
					}
				}
			}
		}
	}
}
