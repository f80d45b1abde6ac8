package rpmmeta

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testsign"
)

// decodeFixtures are packages of every shape rpmmeta reads: rpmbuild's (binary, source, noarch, module release,
// EL7), rpm < 4.14 with only SIZE, SHA-1 and MD5 (signed with the legacy tags), rpmpack's with an epoch, and
// rpm 6's shape signed with a header and a header+payload signature.
func decodeFixtures(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, glob := range []string{fixtureDir + "/*.rpm", legacyDir + "/*.rpm"} {
		names, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Base(name)] = b
		}
	}
	if len(out) < 10 {
		t.Fatalf("found %d fixture packages under %s, want the dozen that are there", len(out), fixtureDir)
	}
	epoch := uint32(3)
	out["rpmpack with epoch"] = testrpm.Build(t, testrpm.Spec{Name: "withepoch", Epoch: &epoch, Arch: "x86_64"})
	key := testsign.NewKey(t, testsign.RSA2048)
	out["rpm6 signed"] = testrpm.SignBoth(t, testrpm.BuildRPM6(t, testrpm.Spec{Name: "rpm6"}),
		func(b []byte) []byte { return key.SignBytes(t, b) })
	return out
}

// TestDecodedTagsSuffice: the library given only the entries of sigTagsRead and hdrTagsRead (decodeReader) yields
// the same metadata and the same expectations as the library given the whole headers, for every kind of package.
// A tag read by metadata, sourceAgrees or expectations but missing from the lists shows up here as a difference.
func TestDecodedTagsSuffice(t *testing.T) {
	for name, data := range decodeFixtures(t) {
		t.Run(name, func(t *testing.T) {
			full, cut := layoutOf(t, data), layoutOf(t, data)
			fullPkg, err := parse(full.reader())
			if err != nil {
				t.Fatal(err)
			}
			cutPkg, err := parse(cut.decodeReader())
			if err != nil {
				t.Fatal(err)
			}
			fullMeta, fullErr := metadata(fullPkg)
			cutMeta, cutErr := metadata(cutPkg)
			if !reflect.DeepEqual(fullMeta, cutMeta) || !reflect.DeepEqual(fullErr, cutErr) {
				t.Errorf("metadata from the cut headers = %+v, %v; from the whole headers %+v, %v", cutMeta, cutErr, fullMeta, fullErr)
			}
			fullWant, fullErr := expectations(fullPkg)
			cutWant, cutErr := expectations(cutPkg)
			if fullWant != cutWant || !reflect.DeepEqual(fullErr, cutErr) {
				t.Errorf("expectations from the cut headers = %+v, %v; from the whole headers %+v, %v", cutWant, cutErr, fullWant, fullErr)
			}
			// The library's range of the cut headers is what Inspect compares it with.
			start, end := cutPkg.HeaderRange()
			if ws, we := cut.decodedRange(); int64(start) != ws || int64(end) != we {
				t.Errorf("library range of the cut headers [%d,%d), decodedRange [%d,%d)", start, end, ws, we)
			}
		})
	}
}

// TestLibraryDecodesOnlyTagsRead: what Inspect and Identify have the library decode holds the tags they read and
// no others (for a small package, 8 of the main header's 40 entries): the rest cost allocations and nothing else.
func TestLibraryDecodesOnlyTagsRead(t *testing.T) {
	for name, data := range decodeFixtures(t) {
		t.Run(name, func(t *testing.T) {
			_, lay, pkg, err := readHeaders(writeOpen(t, t.TempDir(), data), nil, false)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range []struct {
				what string
				tags map[int]bool
				read []uint32
				il   uint32
			}{
				{"signature", tagIDs(pkg.Signature.Tags), sigTagsRead, lay.sig.il},
				{"main", tagIDs(pkg.Header.Tags), hdrTagsRead, lay.hdr.il},
			} {
				for id := range h.tags {
					if !slices.Contains(h.read, uint32(id)) {
						t.Errorf("%s header: the library decoded tag %d, which nothing reads (%d entries in the header)", h.what, id, h.il)
					}
				}
			}
			if pkg.Header.GetTag(tagName) == nil || pkg.Header.GetTag(tagVersion) == nil {
				t.Error("the library did not decode the name and version")
			}
		})
	}
}

func tagIDs[T any](m map[int]T) map[int]bool {
	ids := map[int]bool{}
	for id := range m {
		ids[id] = true
	}
	return ids
}

// smallPackage builds a package like make bench's scenario 1 uploads: 9 KiB of payload that does not compress,
// about 10 KiB in all.
func smallPackage(t testing.TB) []byte {
	body := make([]byte, 9<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range body {
		body[i] = byte(rng.Uint32())
	}
	return testrpm.Build(t, testrpm.Spec{Name: "small", Arch: "x86_64", Release: "1.el9",
		Files: map[string]string{"/usr/share/small/data": string(body)}})
}

// BenchmarkInspectSmall: Inspect of a package like make bench's scenario 1 uploads (9 KiB of payload), for
// allocations per inspection (-benchmem).
func BenchmarkInspectSmall(b *testing.B) {
	data := smallPackage(b)
	f := writeOpen(b, b.TempDir(), data)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Inspect(f); err != nil {
			b.Fatal(err)
		}
	}
}

// readCalls returns this process's count of read system calls (read, pread64, readv...) from /proc/self/io.
func readCalls(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no syscr in /proc/self/io:\n%s", b)
	return 0
}

// TestInspectSmallReadsOnce: a package that fits the guard's read-ahead (scenario 1's 10 KiB uploads) is read from
// the file once: the hashing pass hashes the bytes the guard read instead of reading the file again. The digests
// are still checked: a flipped payload byte is refused.
func TestInspectSmallReadsOnce(t *testing.T) {
	data := smallPackage(t)
	if len(data) < 9<<10 || len(data) > 16<<10 {
		t.Fatalf("the package is %d bytes, want about 10 KiB", len(data))
	}
	f := writeOpen(t, t.TempDir(), data)
	const n = 20
	before := readCalls(t) + 1 // this call's own read of /proc/self/io
	for range n {
		p, err := Inspect(f)
		if err != nil {
			t.Fatal(err)
		}
		if p.Size != int64(len(data)) || p.SHA256 != sha256Hex(data) || p.PayloadChecked != "sha256" {
			t.Fatalf("Inspect = size %d sha256 %s payload %q", p.Size, p.SHA256, p.PayloadChecked)
		}
	}
	// /proc/self/io is read by the calls themselves: one read each, and the one that ends at EOF.
	if got := readCalls(t) - before - 1; got > n {
		t.Errorf("%d read system calls for %d inspections of a %d-byte package, want at most one each", got, n, len(data))
	}
	bad := bytes.Clone(data)
	bad[len(bad)-3] ^= 1
	if _, err := Inspect(writeOpen(t, t.TempDir(), bad)); !errors.Is(err, ErrInvalidPackage) || !strings.Contains(err.Error(), "payload sha256 digest mismatch") {
		t.Errorf("Inspect of a flipped payload byte: %v, want a payload digest mismatch", err)
	}
}
