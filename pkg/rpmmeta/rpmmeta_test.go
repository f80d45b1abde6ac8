package rpmmeta

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cavaliergopher/rpm"
	"github.com/google/rpmpack"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// fixtureDir holds the real rpmbuild packages made by testdata/rpms/make-fixtures.sh.
const fixtureDir = "../../testdata/rpms"

func u32(v uint32) *uint32 { return &v }

// inspectBytes writes data to a temp file and inspects it, as the daemon does with a spooled upload.
func inspectBytes(t testing.TB, data []byte) (*Package, error) {
	t.Helper()
	return inspectIn(t, t.TempDir(), data)
}

// inspectIn is inspectBytes reusing dir, for loops over thousands of inputs.
func inspectIn(t testing.TB, dir string, data []byte) (*Package, error) {
	t.Helper()
	return Inspect(writeOpen(t, dir, data))
}

// writeOpen writes data to dir/pkg.rpm (replacing it) and opens it read-only until the test ends: Inspect
// wants a plain *os.File.
func writeOpen(t testing.TB, dir string, data []byte) *os.File {
	t.Helper()
	p := filepath.Join(dir, "pkg.rpm")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestInspectRpmpack(t *testing.T) {
	tests := []struct {
		name      string
		spec      testrpm.Spec
		wantEpoch *uint32
		wantFile  string
		wantNEVRA string
	}{
		{
			name:      "x86_64 no epoch",
			spec:      testrpm.Spec{Name: "hello", Version: "1.0", Release: "1.el9", Arch: "x86_64"},
			wantFile:  "hello-1.0-1.el9.x86_64.rpm",
			wantNEVRA: "hello-1.0-1.el9.x86_64",
		},
		{
			name:      "aarch64 with epoch",
			spec:      testrpm.Spec{Name: "tool", Version: "2.3.4", Release: "5.fc39", Arch: "aarch64", Epoch: u32(2)},
			wantEpoch: u32(2),
			wantFile:  "tool-2.3.4-5.fc39.aarch64.rpm",
			wantNEVRA: "tool-2:2.3.4-5.fc39.aarch64",
		},
		{
			name:      "noarch explicit epoch 0",
			spec:      testrpm.Spec{Name: "data-files", Version: "0.1~rc1", Release: "1.el8_10", Arch: "noarch", Epoch: u32(0)},
			wantEpoch: u32(0),
			wantFile:  "data-files-0.1~rc1-1.el8_10.noarch.rpm",
			wantNEVRA: "data-files-0:0.1~rc1-1.el8_10.noarch",
		},
		{
			name: "module release and several files",
			spec: testrpm.Spec{Name: "lib-foo_bar+x", Version: "1.2^git3", Release: "1.module+el8.9.0+20000+abcdef12",
				Arch: "x86_64", Files: map[string]string{"/usr/bin/foo": "#!/bin/sh\necho foo\n", "/etc/foo.conf": "x=1\n"}},
			wantFile:  "lib-foo_bar+x-1.2^git3-1.module+el8.9.0+20000+abcdef12.x86_64.rpm",
			wantNEVRA: "lib-foo_bar+x-1.2^git3-1.module+el8.9.0+20000+abcdef12.x86_64",
		},
		{
			name:      "large epoch and salt",
			spec:      testrpm.Spec{Name: "e", Version: "1", Release: "1", Arch: "ppc64le", Epoch: u32(1 << 31), Salt: "s"},
			wantEpoch: u32(1 << 31),
			wantFile:  "e-1-1.ppc64le.rpm",
			wantNEVRA: "e-2147483648:1-1.ppc64le",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := testrpm.Build(t, tc.spec)
			got, err := inspectBytes(t, data)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			want := &Package{
				Name: tc.spec.Name, Version: tc.spec.Version, Release: tc.spec.Release, Epoch: tc.wantEpoch,
				Arch: tc.spec.Arch, Size: int64(len(data)), SHA256: sha256Hex(data), PayloadChecked: "sha256",
			}
			assertPackage(t, got, want)
			if got.FileName() != tc.wantFile || got.NEVRA() != tc.wantNEVRA {
				t.Errorf("FileName, NEVRA = %q, %q; want %q, %q", got.FileName(), got.NEVRA(), tc.wantFile, tc.wantNEVRA)
			}
		})
	}
}

// TestInspectManyRpmpack parses a few hundred rpmpack packages whose header sizes and entry positions all differ:
// rpm.Open failed on about a quarter of such packages because entries straddled its 4 KiB buffer, so a small
// table could pass by luck.
func TestInspectManyRpmpack(t *testing.T) {
	dir := t.TempDir()
	for i := range 300 {
		files := map[string]string{}
		for j := range i%7 + 1 {
			files[fmt.Sprintf("/usr/share/many/d%s/f%d", strings.Repeat("d", i%40), j)] = strings.Repeat("c", i*13+j)
		}
		spec := testrpm.Spec{Name: "p" + strings.Repeat("x", i%50), Version: fmt.Sprint(i), Release: "1.el9",
			Arch: "x86_64", Files: files}
		if _, err := inspectIn(t, dir, testrpm.Build(t, spec)); err != nil {
			t.Errorf("package %d: %v", i, err)
		}
	}
}

// identity is the part of Package that assertPackage compares: every field but the signature material, which has
// its own tests (signature_test.go), with Epoch dereferenced.
type identity struct {
	Name, Version, Release, Epoch, Arch string
	Source                              bool
	Size                                int64
	SHA256, PayloadChecked              string
}

func identityOf(p *Package) identity {
	return identity{p.Name, p.Version, p.Release, epochString(p.Epoch), p.Arch, p.Source, p.Size, p.SHA256,
		p.PayloadChecked}
}

// assertPackage compares the identity fields of got and want.
func assertPackage(t *testing.T, got, want *Package) {
	t.Helper()
	if g, w := identityOf(got), identityOf(want); g != w {
		t.Errorf("Inspect =\n %+v\nwant\n %+v", g, w)
	}
}

func epochString(e *uint32) string {
	if e == nil {
		return "nil"
	}
	return strconv.FormatUint(uint64(*e), 10)
}

// TestInspectFixtures checks the real rpmbuild packages, whose headers differ from rpmpack's (more tags, SHA-1 and
// MD5 digests, SRPM layout).
func TestInspectFixtures(t *testing.T) {
	tests := []struct {
		file    string
		release string
		arch    string
		source  bool
		nevra   string
	}{
		{"hello-1.0-1.el9.x86_64.rpm", "1.el9", "x86_64", false, "hello-1.0-1.el9.x86_64"},
		{"hello-1.0-1.el8.x86_64.rpm", "1.el8", "x86_64", false, "hello-1.0-1.el8.x86_64"},
		{"hello-1.0-1.el9.aarch64.rpm", "1.el9", "aarch64", false, "hello-1.0-1.el9.aarch64"},
		{"hello-1.0-1.fc39.x86_64.rpm", "1.fc39", "x86_64", false, "hello-1.0-1.fc39.x86_64"},
		{"hello-1.0-1.module+el8.9.0+20000+abcdef12.x86_64.rpm", "1.module+el8.9.0+20000+abcdef12", "x86_64", false,
			"hello-1.0-1.module+el8.9.0+20000+abcdef12.x86_64"},
		{"hello-1.0-3.el7_9.x86_64.rpm", "3.el7_9", "x86_64", false, "hello-1.0-3.el7_9.x86_64"},
		{"hello-1.0-1.x86_64.rpm", "1", "x86_64", false, "hello-1.0-1.x86_64"},
		{"hello-data-1.0-1.el9.noarch.rpm", "1.el9", "noarch", false, "hello-data-1.0-1.el9.noarch"},
		// The SRPM's header arch is the build host's; Source and FileArch make it "src".
		{"hello-1.0-1.el9.src.rpm", "1.el9", "x86_64", true, "hello-1.0-1.el9.src"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(fixtureDir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := inspectBytes(t, data)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			name := "hello"
			if strings.HasPrefix(tc.file, "hello-data") {
				name = "hello-data"
			}
			want := &Package{Name: name, Version: "1.0", Release: tc.release, Arch: tc.arch, Source: tc.source,
				Size: int64(len(data)), SHA256: sha256Hex(data), PayloadChecked: "sha256"}
			assertPackage(t, got, want)
			if got.FileName() != tc.file || got.NEVRA() != tc.nevra {
				t.Errorf("FileName, NEVRA = %q, %q; want %q, %q", got.FileName(), got.NEVRA(), tc.file, tc.nevra)
			}
		})
	}
}

// TestInspectSourceDetection: a package is a source package when its main header, the part a signature covers, has
// no SOURCERPM (rpm's own rule). The lead and the signature header are covered by nothing, so when they, or the
// header's SOURCEPACKAGE tag, say otherwise, the package is refused as contradictory instead of being filed by
// bytes anyone can rewrite (rpmpack always writes SOURCERPM, so its packages are binary by the header).
func TestInspectSourceDetection(t *testing.T) {
	spec := testrpm.Spec{Name: "src", Version: "1", Release: "1.el9", Arch: "x86_64"}
	withTag := func(sig bool) []byte {
		r, err := rpmpack.NewRPM(rpmpack.RPMMetaData{Name: spec.Name, Version: spec.Version, Release: spec.Release,
			Arch: spec.Arch, Epoch: rpmpack.NoEpoch})
		if err != nil {
			t.Fatal(err)
		}
		if sig {
			r.AddCustomSig(tagSourcePackage, rpmpack.EntryInt32([]int32{1}))
		} else {
			r.AddCustomTag(tagSourcePackage, rpmpack.EntryInt32([]int32{1}))
		}
		var b bytes.Buffer
		if err := r.Write(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	// Lead bytes 6-7 are the package type: covered by no digest and no signature, so the package stays valid.
	leadType := testrpm.Build(t, spec)
	leadType[6], leadType[7] = 0, leadTypeSource
	srpm, err := os.ReadFile(filepath.Join(fixtureDir, "hello-1.0-1.el9.src.rpm"))
	if err != nil {
		t.Fatal(err)
	}
	srpmBinaryLead := bytes.Clone(srpm)
	srpmBinaryLead[6], srpmBinaryLead[7] = 0, 0
	leadOther := testrpm.Build(t, spec)
	leadOther[6], leadOther[7] = 0, 2

	tests := []struct {
		name    string
		data    []byte
		want    bool
		wantErr string // "" when accepted
	}{
		{"binary", testrpm.Build(t, spec), false, ""},
		{"rpmbuild SRPM", srpm, true, ""},
		{"SOURCEPACKAGE in header next to SOURCERPM", withTag(false), false, "SOURCEPACKAGE (a source package) and SOURCERPM"},
		{"SOURCEPACKAGE in signature, binary header", withTag(true), false, "signature header says a source package"},
		{"lead type source, binary header", leadType, false, "the lead says a source package but the header says a binary package"},
		{"lead type binary, source header", srpmBinaryLead, false, "the lead says a binary package but the header says a source package"},
		{"lead type 2", leadOther, false, "lead type 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := inspectBytes(t, tc.data)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalidPackage) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Inspect error = %v (package %v); want ErrInvalidPackage containing %q", err, got != nil, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			wantArch := "x86_64"
			if tc.want {
				wantArch = "src"
			}
			if got.Source != tc.want || got.FileArch() != wantArch || got.Arch != "x86_64" {
				t.Errorf("Source, FileArch, Arch = %v, %q, %q; want %v, %q, x86_64", got.Source, got.FileArch(),
					got.Arch, tc.want, wantArch)
			}
		})
	}
}

// TestInspectRejectsBadFields: a header without its identifying fields is not a package. (Which characters the
// fields may hold is the caller's policy: pkg/ingest tests it.)
func TestInspectRejectsBadFields(t *testing.T) {
	tests := []struct {
		name    string
		spec    testrpm.Spec
		wantMsg string
	}{
		{"empty name", testrpm.Spec{Name: "", Version: "1", Release: "1", Arch: "x86_64"}, "missing name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := buildRaw(t, tc.spec)
			_, err := inspectBytes(t, data)
			if !errors.Is(err, ErrInvalidPackage) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Inspect error = %v, want ErrInvalidPackage containing %q", err, tc.wantMsg)
			}
		})
	}
}

// TestInspectAcceptsOddNames: names rpmbuild can produce are valid packages even when a repository would refuse
// them; that policy is the caller's (pkg/ingest), reported with its own error rather than ErrInvalidPackage.
func TestInspectAcceptsOddNames(t *testing.T) {
	for _, name := range []string{".hidden", "-rf", "hello%{x}", "a.b_c+d-e"} {
		t.Run(name, func(t *testing.T) {
			p, err := inspectBytes(t, buildRaw(t, testrpm.Spec{Name: name, Version: "1", Release: "1", Arch: "x86_64"}))
			if err != nil || p.Name != name {
				t.Fatalf("Inspect = %+v, %v; want name %q accepted", p, err, name)
			}
		})
	}
}

// buildRaw builds with rpmpack directly: testrpm refuses an empty name, which this test needs.
func buildRaw(t *testing.T, s testrpm.Spec) []byte {
	t.Helper()
	r, err := rpmpack.NewRPM(rpmpack.RPMMetaData{Name: s.Name, Version: s.Version, Release: s.Release, Arch: s.Arch,
		Epoch: rpmpack.NoEpoch})
	if err != nil {
		t.Fatal(err)
	}
	r.AddFile(rpmpack.RPMFile{Name: "/usr/share/x", Body: []byte("x"), Mode: 0o100644, Owner: "root", Group: "root"})
	var b bytes.Buffer
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestInspectNotRegularFile(t *testing.T) {
	f, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A directory is a caller bug, not a bad upload: it must not be reported as ErrInvalidPackage (a 400).
	if _, err := Inspect(f); err == nil || errors.Is(err, ErrInvalidPackage) {
		t.Fatalf("Inspect(dir) error = %v, want a non-ErrInvalidPackage error", err)
	}
}

func TestPackageNames(t *testing.T) {
	tests := []struct {
		name      string
		p         Package
		wantFile  string
		wantNEVRA string
	}{
		{"binary", Package{Name: "a", Version: "1", Release: "2.el9", Arch: "x86_64"},
			"a-1-2.el9.x86_64.rpm", "a-1-2.el9.x86_64"},
		{"epoch", Package{Name: "a", Version: "1", Release: "2", Arch: "noarch", Epoch: u32(3)},
			"a-1-2.noarch.rpm", "a-3:1-2.noarch"},
		{"source", Package{Name: "a", Version: "1", Release: "2", Arch: "aarch64", Source: true},
			"a-1-2.src.rpm", "a-1-2.src"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.FileName(); got != tc.wantFile {
				t.Errorf("FileName = %q, want %q", got, tc.wantFile)
			}
			if got := tc.p.NEVRA(); got != tc.wantNEVRA {
				t.Errorf("NEVRA = %q, want %q", got, tc.wantNEVRA)
			}
		})
	}
}

// BenchmarkInspect measures Inspect on a 1 MiB package against the floor of what any checker must do, measured
// in the same run: the library's own header parse plus one SHA-256 pass over the file. The ratio is what the
// bounds guard and the digest and size verification cost on top.
func BenchmarkInspect(b *testing.B) {
	blob := make([]byte, 1<<20)
	for i := range blob {
		blob[i] = byte(i*7919 + i>>8) // varied bytes, so gzip leaves the package near 1 MiB
	}
	p := testrpm.WriteFile(b, b.TempDir(), testrpm.Spec{Name: "bench", Release: "1.el9", Arch: "x86_64",
		Files: map[string]string{"/usr/share/bench/blob": string(blob)}})
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var inspect, floor time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := Inspect(f); err != nil {
			b.Fatal(err)
		}
		inspect += time.Since(start)

		start = time.Now()
		f.Seek(0, io.SeekStart)
		if _, err := rpm.Read(f); err != nil {
			b.Fatal(err)
		}
		f.Seek(0, io.SeekStart)
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			b.Fatal(err)
		}
		floor += time.Since(start)
	}
	b.ReportMetric(float64(inspect)/float64(floor), "inspect/floor")
	b.ReportMetric(0, "ns/op")
}
