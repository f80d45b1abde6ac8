package rpmmeta

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cavaliergopher/rpm"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// FuzzInspect checks that no input panics, exhausts memory, or is reported with anything but ErrInvalidPackage, and
// that an accepted package is self-consistent. Run it with: go test ./pkg/rpmmeta -run '^$' -fuzz FuzzInspect
// -fuzztime 30s. Most mutations of a valid package fail a digest; the structural mutations the fuzzer finds still
// exercise the guard, which is the code that matters for safety. Besides the seeds below, go test replays the
// corpus in testdata/fuzz/FuzzInspect (legacy packages, lead versions, retyped tags; see its README.md).
func FuzzInspect(f *testing.F) {
	f.Add(testrpm.Build(f, testrpm.Spec{Name: "fuzz", Version: "1", Release: "1.el9", Arch: "x86_64"}))
	f.Add(testrpm.Build(f, testrpm.Spec{Name: "fz", Version: "2", Release: "1", Arch: "noarch", Epoch: u32(1),
		Files: map[string]string{"/usr/bin/a": "a", "/etc/b": "b"}}))
	for _, name := range []string{"hello-1.0-1.el9.x86_64.rpm", "hello-1.0-1.el9.src.rpm"} {
		b, err := os.ReadFile(filepath.Join(fixtureDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// Small crafted inputs reach the guard's corners faster than mutations of a 6 KB package.
	f.Add(rawPackage(minimalSig, minimalSig))
	f.Add(rawPackage(rawHeader([]rawEntry{{1000, typeStringArray, 1, 2}}, []byte("\x00ab")), minimalSig))
	f.Add([]byte{})

	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		// One file per worker process, rewritten each time: a TempDir per input would dominate the run time.
		p, err := inspectIn(t, dir, data)
		if err != nil {
			if !errors.Is(err, ErrInvalidPackage) {
				t.Fatalf("Inspect error %v does not wrap ErrInvalidPackage", err)
			}
			return
		}
		if p.Size != int64(len(data)) || p.SHA256 != sha256Hex(data) {
			t.Fatalf("accepted package: Size %d SHA256 %s, file is %d bytes %s", p.Size, p.SHA256, len(data),
				sha256Hex(data))
		}
		if p.Name == "" || p.Version == "" || p.Release == "" || p.Arch == "" {
			t.Fatalf("accepted package with a missing field: %+v", p)
		}
	})
}

// FuzzGuard checks the guard's central promise in memory, thousands of times faster than FuzzInspect: whatever the
// guard accepts, the library decodes without panicking. (An allocation blow-up would show as the fuzzer's memory
// limit being hit; TestDecodeCostEstimate checks the budget's estimate directly.) Run it with:
// go test ./pkg/rpmmeta -run '^$' -fuzz FuzzGuard -fuzztime 30s. go test also replays testdata/fuzz/FuzzGuard.
func FuzzGuard(f *testing.F) {
	f.Add(testrpm.Build(f, testrpm.Spec{Name: "g", Version: "1", Release: "1", Arch: "x86_64"}))
	f.Add(rawPackage(minimalSig, minimalSig))
	f.Add(rawPackage(rawHeader([]rawEntry{{62, typeBin, 4, 16}, {1000, typeInt32, 0, 1}}, make([]byte, 20)),
		rawHeader([]rawEntry{{1000, typeString, 0, 1}, {1001, typeStringArray, 2, 2}}, []byte("a\x00b\x00c\x00"))))
	f.Fuzz(func(t *testing.T, data []byte) {
		lay, err := guard(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrInvalidPackage) {
				t.Fatalf("guard error %v does not wrap ErrInvalidPackage", err)
			}
			return
		}
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("guard accepted an input that panics the library: %v", r)
			}
		}()
		// bytes.Reader always returns full reads. Inspect decodes the headers with their index cut down to the
		// tags it reads (decodeReader); both must be safe.
		_, _ = rpm.Read(bytes.NewReader(data))
		_, _ = rpm.Read(lay.decodeReader())
	})
}
