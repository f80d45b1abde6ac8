package rpmmeta

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// digestOf writes data to a Digester in pieces of the sizes step returns, as a body arrives.
func digestOf(data []byte, step func() int) *Digests {
	d := NewDigester()
	for len(data) > 0 {
		k := min(max(step(), 1), len(data))
		d.Write(data[:k])
		data = data[k:]
	}
	return d.Sum()
}

// bigPackage is a package whose payload is larger than parallelFrom (incompressible), so the Digester's parallel
// path runs.
func bigPackage(t testing.TB) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 3<<20)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return testrpm.Build(t, testrpm.Spec{Name: "big", Version: "1", Release: "1.el9", Arch: "x86_64",
		Files: map[string]string{"/usr/share/big/blob": string(b)}})
}

// TestInspectDigestedMatchesInspect: for small, big (parallel hashing) and legacy MD5 packages, written to the
// Digester in pieces of every size from 1 byte to larger than a chunk, InspectDigested returns exactly what Inspect
// returns, and the Digester's layout is the guard's (so the streamed digests are the ones used, not a re-read).
func TestInspectDigestedMatchesInspect(t *testing.T) {
	// Both hashing paths: the interleaved pair (where the CPU has the SHA extensions) and crypto/sha256 on two
	// goroutines.
	modes := []bool{false}
	if pairHashing {
		modes = append(modes, true)
	}
	for _, pair := range modes {
		t.Run(map[bool]string{true: "pair", false: "crypto"}[pair], func(t *testing.T) {
			defer func(was bool) { pairHashing = was }(pairHashing)
			pairHashing = pair
			if d := NewDigester(); (d.pair != nil) != pair {
				t.Fatalf("pairHashing %v, but the Digester's pair is %v", pair, d.pair)
			}
			testInspectDigestedMatchesInspect(t)
		})
	}
}

func testInspectDigestedMatchesInspect(t *testing.T) {
	small, err := os.ReadFile(filepath.Join(fixtureDir, "hello-1.0-1.el9.x86_64.rpm"))
	if err != nil {
		t.Fatal(err)
	}
	inputs := map[string][]byte{"small": small, "big": bigPackage(t), "legacy md5": readLegacy(t, "epel-release-7-5.noarch.rpm")}
	steps := map[string]func() int{
		"1 byte":    func() int { return 1 },
		"7 bytes":   func() int { return 7 },
		"intro cut": func() int { return leadSize + 3 },
		"random":    func() int { return rand.IntN(300 << 10) },
		"whole":     func() int { return 1 << 30 },
	}
	for name, data := range inputs {
		f := writeOpen(t, t.TempDir(), data)
		want, err := Inspect(f)
		if err != nil {
			t.Fatalf("%s: Inspect: %v", name, err)
		}
		lay := layoutOf(t, data)
		for sname, step := range steps {
			if name == "big" && (sname == "1 byte" || sname == "7 bytes") {
				continue // 3 MiB a byte at a time adds nothing the small package does not cover
			}
			d := digestOf(data, step)
			if d.hdrStart != lay.hdr.start || d.hdrEnd != lay.hdr.end() || d.Size() != int64(len(data)) || sha256Hex(data) != hexOf(d.SHA256()) {
				t.Errorf("%s, %s: digester saw [%d,%d) size %d; guard [%d,%d) size %d", name, sname, d.hdrStart, d.hdrEnd,
					d.Size(), lay.hdr.start, lay.hdr.end(), len(data))
			}
			got, err := InspectDigested(f, d)
			if err != nil {
				t.Fatalf("%s, %s: InspectDigested: %v", name, sname, err)
			}
			assertPackage(t, got, want)
			if got.PayloadChecked != want.PayloadChecked || string(got.HeaderBytes) != string(want.HeaderBytes) {
				t.Errorf("%s, %s: PayloadChecked %q, header bytes differ: %v", name, sname, got.PayloadChecked,
					string(got.HeaderBytes) != string(want.HeaderBytes))
			}
		}
	}
}

// TestInspectDigestedUsesStreamedDigests: the digests come from the stream, not the file. Digests of a package with
// one flipped payload byte make InspectDigested refuse the intact file on disk (the payload digest the stream saw
// does not match); digests of a flipped header byte are caught by comparing with the guard's read of the file.
// What the caller wrote is what is checked: a body damaged before it reached the disk cannot pass.
func TestInspectDigestedUsesStreamedDigests(t *testing.T) {
	for name, data := range map[string][]byte{"small": testrpm.Build(t, testrpm.Spec{Name: "p", Release: "1.el9", Arch: "x86_64"}), "big": bigPackage(t)} {
		f := writeOpen(t, t.TempDir(), data)
		lay := layoutOf(t, data)

		payload := append([]byte(nil), data...)
		payload[len(payload)-10] ^= 1
		if _, err := InspectDigested(f, digestOf(payload, func() int { return 64 << 10 })); err == nil || !strings.Contains(err.Error(), "payload sha256 digest mismatch") {
			t.Errorf("%s: digests of a flipped payload byte: %v, want a payload digest mismatch", name, err)
		}
		header := append([]byte(nil), data...)
		header[lay.hdr.end()-1] ^= 1
		if _, err := InspectDigested(f, digestOf(header, func() int { return 64 << 10 })); err == nil || !strings.Contains(err.Error(), "changed while it was inspected") {
			t.Errorf("%s: digests of a flipped header byte: %v, want the file reported as changed", name, err)
		}
	}
}

// TestInspectDigestedFallsBack: digests of a different length (a truncated stream) or of a stream whose intros
// differ from the file's are not used; the file is hashed and inspected on its own.
func TestInspectDigestedFallsBack(t *testing.T) {
	data := testrpm.Build(t, testrpm.Spec{Name: "p", Release: "1.el9", Arch: "x86_64"})
	f := writeOpen(t, t.TempDir(), data)
	want, err := Inspect(f)
	if err != nil {
		t.Fatal(err)
	}
	other := append([]byte(nil), data...)
	other[leadSize+11] ^= 1 // the signature header's entry count: another layout
	for name, d := range map[string]*Digests{
		"truncated":      digestOf(data[:len(data)-1], func() int { return 4096 }),
		"another layout": digestOf(other, func() int { return 4096 }),
		"nil":            nil,
	} {
		got, err := InspectDigested(f, d)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		assertPackage(t, got, want)
	}
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// TestHeadComparedWithGuard: the hashing pass over a file compares its lead and headers with the bytes the guard
// read; a byte that differs there, or a file that ends inside them, is reported as a file that changed while it
// was inspected, never accepted.
func TestHeadComparedWithGuard(t *testing.T) {
	data := testrpm.Build(t, testrpm.Spec{Name: "p", Release: "1.el9", Arch: "x86_64"})
	lay := layoutOf(t, data)
	for name, tc := range map[string]struct {
		file   []byte
		differ bool
	}{
		"same":             {data, false},
		"lead byte":        {flip(data, 5), true},
		"signature byte":   {flip(data, int(lay.sig.start)+20), true},
		"main header byte": {flip(data, int(lay.hdr.end())-1), true},
		"payload byte":     {flip(data, len(data)-1), false}, // the payload digest's business, not this check's
		"ends in a header": {data[:lay.hdr.end()-1], true},
	} {
		sum, err := hashFileCmp(bytes.NewReader(tc.file), &lay, lay.hdr.start, lay.hdr.end(), "sha256", "sha256")
		if err != nil {
			t.Fatal(err)
		}
		if !sum.headCompared || sum.headDiffers != tc.differ {
			t.Errorf("%s: compared %t, differs %t; want differs %t", name, sum.headCompared, sum.headDiffers, tc.differ)
		}
		if err := unchanged("f", &lay, sum); (err != nil) != tc.differ {
			t.Errorf("%s: unchanged = %v", name, err)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 1
	return c
}

// TestDigesterHashesOnOneGoroutine: where the CPU has the SHA extensions, a large stream's two SHA-256 passes run
// interleaved on one goroutine (two before), and it ends with Sum; the digests are those of crypto/sha256.
func TestDigesterHashesOnOneGoroutine(t *testing.T) {
	if !pairHashing {
		t.Skip("no SHA extensions on this CPU: two goroutines with crypto/sha256")
	}
	data := bigPackage(t)
	waitNoHashing(t, "before the stream") // an earlier test's Digester may still be ending its goroutine
	d := NewDigester()
	d.Write(data[:2<<20]) // past parallelFrom: the hashing goroutines run
	during := hashingGoroutines()
	d.Write(data[2<<20:])
	sums := d.Sum()
	if during != 1 {
		t.Errorf("%d goroutines hashing, want 1", during)
	}
	waitNoHashing(t, "after Sum")
	if hexOf(sums.SHA256()) != sha256Hex(data) {
		t.Errorf("SHA-256 %x, want %s", sums.SHA256(), sha256Hex(data))
	}
	lay := layoutOf(t, data)
	if want := sha256.Sum256(data[lay.hdr.end():]); !bytes.Equal(sums.payload, want[:]) {
		t.Errorf("payload SHA-256 %x, want %x", sums.payload, want)
	}
}

// hashingGoroutines counts the goroutines running a fanout's hashing loop, by their stacks. (The difference of
// two runtime.NumGoroutine counts also saw goroutines of earlier tests end in between, such as a Digester's
// goroutine after its wg.Done: "0 goroutines hashing" in 2 of 15 runs of the package.)
func hashingGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], []byte("rpmmeta.(*fanout).start.func1("))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitNoHashing waits until no fanout goroutine runs; the limit only keeps a leak from hanging the test.
func waitNoHashing(t *testing.T, when string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); hashingGoroutines() > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d hashing goroutines still running", when, hashingGoroutines())
		}
	}
}
