package testrpm

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
)

func u32(v uint32) *uint32 { return &v }

func TestBuildDeterministic(t *testing.T) {
	spec := Spec{Name: "det", Version: "1.2", Release: "3.el9", Arch: "x86_64"}
	a, b := Build(t, spec), Build(t, spec)
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same Spec differ")
	}
	salted := spec
	salted.Salt = "x"
	custom := spec
	custom.Files = map[string]string{"/etc/det.conf": "a=1\n"}
	customSalted := custom
	customSalted.Salt = "x"
	tests := []struct {
		name string
		spec Spec
	}{
		{"salt", salted},
		{"files", custom},
		{"files and salt", customSalted},
		{"epoch", Spec{Name: "det", Version: "1.2", Release: "3.el9", Arch: "x86_64", Epoch: u32(1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if bytes.Equal(Build(t, tc.spec), a) {
				t.Error("build equals the base build")
			}
			if !bytes.Equal(Build(t, tc.spec), Build(t, tc.spec)) {
				t.Error("two builds differ")
			}
		})
	}
}

// TestBuildInspect: every build is a package rpmmeta accepts, with the Spec's identity.
func TestBuildInspect(t *testing.T) {
	tests := []struct {
		name      string
		spec      Spec
		wantFile  string
		wantNEVRA string
	}{
		{"defaults", Spec{Name: "d"}, "d-1.0-1.noarch.rpm", "d-1.0-1.noarch"},
		{"x86_64", Spec{Name: "hello", Version: "2", Release: "1.el9", Arch: "x86_64"},
			"hello-2-1.el9.x86_64.rpm", "hello-2-1.el9.x86_64"},
		{"aarch64 epoch", Spec{Name: "a", Version: "1", Release: "1.fc39", Arch: "aarch64", Epoch: u32(4)},
			"a-1-1.fc39.aarch64.rpm", "a-4:1-1.fc39.aarch64"},
		{"files and salt", Spec{Name: "f", Version: "1", Release: "1", Arch: "noarch", Salt: "s",
			Files: map[string]string{"/usr/bin/f": "#!/bin/sh\necho f\n"}}, "f-1-1.noarch.rpm", "f-1-1.noarch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := WriteFile(t, t.TempDir(), tc.spec)
			if filepath.Base(path) != tc.wantFile {
				t.Errorf("WriteFile path %s, want base %s", path, tc.wantFile)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			p, err := rpmmeta.Inspect(f)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if p.FileName() != tc.wantFile || p.NEVRA() != tc.wantNEVRA || p.Source {
				t.Errorf("FileName, NEVRA, Source = %q, %q, %v; want %q, %q, false", p.FileName(), p.NEVRA(), p.Source,
					tc.wantFile, tc.wantNEVRA)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name    string
		spec    Spec
		wantMsg string
	}{
		{"no name", Spec{}, "empty Name"},
		{"reserved epoch", Spec{Name: "a", Epoch: u32(^uint32(0))}, "reserved"},
		{"relative path", Spec{Name: "a", Files: map[string]string{"etc/a": ""}}, "absolute"},
		{"unclean path", Spec{Name: "a", Files: map[string]string{"/etc/../a": ""}}, "clean"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := build(tc.spec); err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("build error = %v, want one containing %q", err, tc.wantMsg)
			}
		})
	}
}

// TestBuildRPMTool cross-checks with the real rpm tool: the package verifies and carries the expected NEVRA, files,
// modes and contents. rpm is required: skipping when it is missing would let rpmpack output that rpm refuses pass.
func TestBuildRPMTool(t *testing.T) {
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Fatalf("rpm is required by this test: %v; install rpm (make deps)", err)
	}
	dir := t.TempDir()
	// A private database: Debian's rpm otherwise creates ~/.rpmdb.
	rpmArgs := func(args ...string) []string { return append([]string{"--dbpath", filepath.Join(dir, "db")}, args...) }
	spec := Spec{Name: "tool", Version: "1.0", Release: "1.el9", Arch: "x86_64", Salt: "pepper",
		Files: map[string]string{"/usr/bin/tool": "#!/bin/sh\necho tool\n", "/etc/tool.conf": "x=1\n"}}
	path := WriteFile(t, dir, spec)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"digests", []string{"-K", "--nosignature", path}, "digests OK"},
		{"nevra", []string{"-qp", "--qf", "%{NAME} %{EPOCH} %{VERSION} %{RELEASE} %{ARCH}", path},
			"tool (none) 1.0 1.el9 x86_64"},
		{"files", []string{"-qp", "--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]", path},
			"-rw-r--r-- /etc/tool.conf\n-rwxr-xr-x /usr/bin/tool\n-rw-r--r-- /usr/share/tool/salt.txt\n"},
		{"no requires on a shell", []string{"-qp", "--requires", path}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command("rpm", rpmArgs(tc.args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("rpm %v: %v\n%s", tc.args, err, out)
			}
			if got := strings.TrimPrefix(string(out), path+": "); !strings.Contains(got, tc.want) ||
				tc.want == "" && got != "" {
				t.Errorf("rpm %v = %q, want %q", tc.args, got, tc.want)
			}
		})
	}
}

// TestHeaderBomb: the bomb is the size its doc promises, structurally a package (lead and header magics where a
// parser looks for them), and refused by rpmmeta as an invalid package. (rpmmeta's own tests bound the memory.)
func TestHeaderBomb(t *testing.T) {
	b, err := HeaderBomb()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 15_000_000 || len(b) > 16_000_000 {
		t.Errorf("HeaderBomb is %d bytes, want about 15.6 MB", len(b))
	}
	hdrStart := 96 + 32 + HeaderBombStrings // lead, signature intro+entry+store (no padding: n%8 == 0)
	if !bytes.Equal(b[:4], []byte{0xed, 0xab, 0xee, 0xdb}) || !bytes.Equal(b[hdrStart:hdrStart+3], []byte{0x8e, 0xad, 0xe8}) {
		t.Errorf("lead or main header magic missing")
	}
	p := filepath.Join(t.TempDir(), "bomb.rpm")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := rpmmeta.Inspect(f); !errors.Is(err, rpmmeta.ErrInvalidPackage) {
		t.Fatalf("Inspect(HeaderBomb) error = %v, want ErrInvalidPackage", err)
	}
}
