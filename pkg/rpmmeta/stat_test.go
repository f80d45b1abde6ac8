package rpmmeta

import (
	"io"
	"os"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// Issue 20: Inspect reads with pread, so it neither needs nor moves the file's offset (it used to seek to 0 and
// read, one more system call per upload), and InspectStat takes the caller's stat instead of making its own.
func TestInspectLeavesOffsetAndUsesCallersStat(t *testing.T) {
	data := testrpm.Build(t, testrpm.Spec{Name: "off", Release: "1.el9", Arch: "x86_64",
		Files: map[string]string{"/usr/share/off/a": strings.Repeat("x", 40000)}})
	for _, tc := range []struct {
		name string
		data []byte
	}{{"small", testrpm.Build(t, testrpm.Spec{Name: "off", Release: "1.el9", Arch: "x86_64"})}, {"larger than the read-ahead", data}} {
		t.Run(tc.name, func(t *testing.T) {
			f := writeOpen(t, t.TempDir(), tc.data)
			if _, err := f.Seek(7, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			fi, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			p, err := InspectStat(f, fi, nil)
			if err != nil {
				t.Fatal(err)
			}
			if p.Size != int64(len(tc.data)) || p.SHA256 != sha256Hex(tc.data) {
				t.Fatalf("size %d sha256 %s, want %d %s", p.Size, p.SHA256, len(tc.data), sha256Hex(tc.data))
			}
			if off, _ := f.Seek(0, io.SeekCurrent); off != 7 {
				t.Fatalf("offset after Inspect: %d, want 7 (unchanged)", off)
			}
			// The stat given is the one used: a directory's is refused as not a regular file, with no stat of f.
			dfi, err := os.Stat(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := InspectStat(f, dfi, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("InspectStat with a directory's stat: %v, want not a regular file", err)
			}
		})
	}
}

// TestHexHelpers: the digest tags' fast path takes only lowercase hex of the right length (anything else goes
// the old way: decoded, refused or re-encoded in lowercase), and digests are compared with their hex without
// building it.
func TestHexHelpers(t *testing.T) {
	for _, tc := range []struct {
		s    string
		size int
		want bool
	}{
		{"00ff", 2, true}, {"00FF", 2, false}, {"00f", 2, false}, {"00ff00", 2, false}, {"0g00", 2, false}, {"", 0, true},
	} {
		if got := isLowerHex(tc.s, tc.size); got != tc.want {
			t.Errorf("isLowerHex(%q, %d) = %v, want %v", tc.s, tc.size, got, tc.want)
		}
	}
	for _, tc := range []struct {
		b    []byte
		s    string
		want bool
	}{
		{[]byte{0, 0xff}, "00ff", true}, {[]byte{0, 0xff}, "00FF", false}, {[]byte{0, 0xfe}, "00ff", false},
		{[]byte{0, 0xff}, "00ff0", false}, {make([]byte, 80), strings.Repeat("00", 80), true},
	} {
		if got := hexEqual(tc.b, tc.s); got != tc.want {
			t.Errorf("hexEqual(%x, %q) = %v, want %v", tc.b, tc.s, got, tc.want)
		}
	}
}
