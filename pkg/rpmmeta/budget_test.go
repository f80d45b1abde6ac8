package rpmmeta

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/cavaliergopher/rpm"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// allocDuring returns the bytes allocated (runtime.MemStats.TotalAlloc) while f runs. TotalAlloc only grows and
// counts every allocation whether or not it has been collected, so it bounds the peak f can cause; it is a byte
// count, not a timing, and the bounds below leave room for the runtime's own small allocations.
func allocDuring(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestInspectHeaderBombMemory: a crafted 15.6 MB package that every structural check accepts made Inspect
// allocate 267 MiB (16 bytes of Go string header per 1-byte empty string, in both headers) before refusing it for
// its missing name. The decode budget refuses it from the signature header's index, before the guard even reads
// that header's store.
func TestInspectHeaderBombMemory(t *testing.T) {
	bomb, err := testrpm.HeaderBomb()
	if err != nil {
		t.Fatal(err)
	}
	f := writeOpen(t, t.TempDir(), bomb)
	var ierr error
	got := allocDuring(func() { _, ierr = Inspect(f) })
	t.Logf("Inspect(HeaderBomb) allocated %d KiB: %v", got>>10, ierr)
	if !errors.Is(ierr, ErrInvalidPackage) || !strings.Contains(ierr.Error(), "decode budget") ||
		!strings.Contains(ierr.Error(), "signature header") {
		t.Errorf("Inspect error = %v, want ErrInvalidPackage naming the decode budget and the signature header", ierr)
	}
	if got >= 64<<20 {
		t.Errorf("Inspect allocated %d MiB for a %d MB input, want < 64 MiB", got>>20, len(bomb)/1e6)
	}
}

// TestDecodeBudget: headers over the budget are refused whichever way the cost arises, alone or together, and
// headers just under it pass the guard.
func TestDecodeBudget(t *testing.T) {
	const mib = 1 << 20
	bin := func(tag uint32, n int) []byte {
		return rawHeader([]rawEntry{{tag, typeBin, 0, uint32(n)}}, make([]byte, n))
	}
	tests := []struct {
		name    string
		data    []byte
		wantMsg string // "" means the guard accepts it
	}{
		// BIN costs its store twice (the library's copy of the store and the decoded slice).
		{"two headers each under, together over", rawPackage(bin(999, 12*mib), bin(1000, 6*mib)),
			"by the main header"},
		{"one header over", rawPackage(minimalSig, bin(1000, 17*mib)), "by the main header"},
		{"both together just under", rawPackage(bin(999, 8*mib-4096), bin(1000, 8*mib-4096)), ""},
		// 2 Mi empty strings: 2 MiB of store, 48 MiB of string headers.
		{"empty strings", rawPackage(minimalSig, rawHeader([]rawEntry{{1000, typeStringArray, 0, 2 * mib}},
			make([]byte, 2*mib))), "decode budget"},
		// One 20 MiB string: under the budget by counts (24 bytes), over once its bytes are known.
		{"one long string", rawPackage(minimalSig, rawHeader([]rawEntry{{1000, typeString, 0, 1}},
			append(bytes.Repeat([]byte{'a'}, 20*mib), 0))), "decode budget"},
		{"INT16 expands 4x", rawPackage(minimalSig, rawHeader([]rawEntry{{1000, typeInt16, 0, 4 * mib}},
			make([]byte, 8*mib))), "decode budget"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := guard(bytes.NewReader(tc.data), int64(len(tc.data)))
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("guard: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPackage) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("guard error = %v, want ErrInvalidPackage containing %q", err, tc.wantMsg)
			}
		})
	}
}

// TestDecodeBudgetBeforeAllocating: the budget is checked from the intro and from the index, before the guard
// reads (and allocates) the store. The reader holds only the bytes up to the stage under test, so a guard that
// read further would report truncation instead of the budget.
func TestDecodeBudgetBeforeAllocating(t *testing.T) {
	const size = 1 << 40 // the size the caller claims: large enough that no bounds check fires first
	intro := func(il, dl uint32) []byte { return rawHeader(make([]rawEntry, il), nil)[:introSize] }
	withIndex := func(e rawEntry, dl uint32) []byte {
		h := rawHeader([]rawEntry{e}, nil)
		put32(h, introDL, dl)
		return h
	}
	tests := []struct {
		name  string
		r     []byte
		spent uint64
	}{
		{"intro: store over what the signature left", func() []byte {
			h := intro(1, 0)
			put32(h, introDL, 20<<20)
			return h
		}(), 13 << 20},
		{"intro: many entries and a large store", func() []byte {
			h := intro(1, 0)
			put32(h, introIL, maxIndexEntries)
			put32(h, introDL, 30<<20)
			return h
		}(), 0},
		{"index: empty strings by count", withIndex(rawEntry{1000, typeStringArray, 0, 2 << 20}, 2<<20), 0},
		{"index: INT64 by count", withIndex(rawEntry{1000, typeInt64, 0, 3 << 20}, 24<<20), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkHeader(bytes.NewReader(tc.r), leadSize, "main", size, tc.spent)
			if !errors.Is(err, ErrInvalidPackage) || !strings.Contains(err.Error(), "decode budget") {
				t.Fatalf("checkHeader error = %v, want the decode budget refusal", err)
			}
		})
	}
}

// TestDecodeCostEstimate: the guard's estimate must not undercount what the library really allocates, or the
// budget would not bound memory. TotalAlloc is only exact to a span (8 KiB) per size class, so the inputs are large
// enough (1 MiB and more of decoding) that the 64 KiB of slack is small against them: rpmpack packages with many
// files, and crafted headers of strings of every length from 1 to 600 bytes (each size class of the allocator).
func TestDecodeCostEstimate(t *testing.T) {
	inputs := map[string][]byte{}
	for _, n := range []int{5000, 20000} {
		files := map[string]string{}
		for i := range n {
			files[fmt.Sprintf("/usr/share/est/dir%d/file-%d.txt", i%50, i)] = "x"
		}
		inputs[fmt.Sprintf("rpmpack %d files", n)] = testrpm.Build(t, testrpm.Spec{Name: "est", Release: "1.el9",
			Arch: "x86_64", Files: files})
	}
	for _, maxLen := range []int{40, 600} {
		var store []byte
		count := 0
		for len(store) < 2<<20 {
			store = append(append(store, bytes.Repeat([]byte{'s'}, count%maxLen+1)...), 0)
			count++
		}
		entries := []rawEntry{{1000, typeString, 0, 1}, {1001, typeStringArray, 2, uint32(count - 1)}}
		inputs[fmt.Sprintf("strings of 1 to %d bytes", maxLen)] = rawPackage(minimalSig, rawHeader(entries, store))
	}
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			lay := layoutOf(t, data)
			estimate := lay.sig.cost + lay.hdr.cost
			var rerr error
			got := allocDuring(func() { _, rerr = rpm.Read(bytes.NewReader(data)) })
			if rerr != nil {
				t.Fatal(rerr)
			}
			t.Logf("%d-byte headers: library allocated %d bytes, estimate %d (%.2fx)",
				lay.hdr.end()-leadSize, got, estimate, float64(estimate)/float64(got))
			if got > estimate+64<<10 {
				t.Errorf("library allocated %d bytes, more than the estimate %d", got, estimate)
			}
		})
	}
}
