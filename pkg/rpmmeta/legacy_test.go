package rpmmeta

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// legacyDir holds real packages from rpm < 4.14 (see its README.md): no SHA-256 digests, only SIZE, the SHA-1
// header digest and the MD5 digest of header and payload.
const legacyDir = fixtureDir + "/legacy"

func readLegacy(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(legacyDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInspectLegacy: packages without a SHA-256 payload digest are accepted with their payload checked by MD5, as
// rpm -K checks them.
func TestInspectLegacy(t *testing.T) {
	rpmBin := requireTool(t, "rpm")
	tests := []struct {
		file, nevra string
	}{
		{"epel-release-7-5.noarch.rpm", "epel-release-7-5.noarch"},
		{"centos-release-5-0.0.el5.centos.2.x86_64.rpm", "centos-release-10:5-0.0.el5.centos.2.x86_64"}, // epoch 10
		{"centos-release-as-2.1AS-4.noarch.rpm", "centos-release-as-2.1AS-4.noarch"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(legacyDir, tc.file)
			out, err := exec.Command(rpmBin, "--dbpath", t.TempDir(), "-Kv", "--nosignature", path).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "MD5 digest: OK") || strings.Contains(string(out), "SHA256") {
				t.Fatalf("rpm -Kv: %v\n%s\nwant an MD5-only package", err, out)
			}
			data := readLegacy(t, tc.file)
			p, err := inspectBytes(t, data)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if p.NEVRA() != tc.nevra || p.PayloadChecked != "md5" || p.Size != int64(len(data)) {
				t.Errorf("NEVRA, PayloadChecked, Size = %q, %q, %d; want %q, md5, %d", p.NEVRA(), p.PayloadChecked,
					p.Size, tc.nevra, len(data))
			}
		})
	}
}

// TestInspectLegacyCorruption: what the MD5 check adds is the refusal of a same-size payload corruption, which the
// size tag cannot see; the MD5 tag itself is validated like every digest tag.
func TestInspectLegacyCorruption(t *testing.T) {
	base := readLegacy(t, "epel-release-7-5.noarch.rpm")
	lay := layoutOf(t, base)
	noMD5 := func(b []byte) []byte { setEntry(t, b, lay.sig, sigTagMD5, fieldTag, 1999); return b }
	tests := []struct {
		name    string
		mutate  func(b []byte) []byte
		wantMsg string
	}{
		{"flipped byte in payload", func(b []byte) []byte { b[len(b)-5] ^= 1; return b }, "payload md5 digest mismatch"},
		{"flipped first payload byte", func(b []byte) []byte { b[lay.hdr.end()] ^= 0x80; return b },
			"payload md5 digest mismatch"},
		{"flipped byte in header", func(b []byte) []byte { b[lay.hdr.end()-1] ^= 1; return b },
			"header sha1 digest mismatch"},
		{"flipped header byte, no SHA-1: MD5 covers the header too", func(b []byte) []byte {
			setEntry(t, b, lay.sig, sigTagSHA1, fieldTag, 1998)
			b[lay.hdr.end()-1] ^= 1
			return b
		}, "payload md5 digest mismatch"},
		{"MD5 tag retyped", func(b []byte) []byte { setEntry(t, b, lay.sig, sigTagMD5, fieldType, typeChar); return b },
			"not a 16-byte binary MD5"},
		{"MD5 tag 15 bytes", func(b []byte) []byte { setEntry(t, b, lay.sig, sigTagMD5, fieldCount, 15); return b },
			"not a 16-byte binary MD5"},
		{"no size tag, truncated: MD5 establishes completeness", func(b []byte) []byte {
			setEntry(t, b, lay.sig, sigTagSize, fieldTag, 1997)
			return b[:len(b)-1]
		}, "payload md5 digest mismatch"},
		{"no size tag, appended garbage", func(b []byte) []byte {
			setEntry(t, b, lay.sig, sigTagSize, fieldTag, 1997)
			return append(b, "garbage"...)
		}, "payload md5 digest mismatch"},
		{"no size tag and no MD5", func(b []byte) []byte {
			setEntry(t, b, lay.sig, sigTagSize, fieldTag, 1997)
			return noMD5(b)
		}, "cannot verify completeness"},
		{"no MD5, truncated: the size tag still counts", func(b []byte) []byte { return noMD5(b)[:len(b)-1] },
			"truncated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := inspectBytes(t, tc.mutate(append([]byte{}, base...)))
			if !errors.Is(err, ErrInvalidPackage) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Inspect error = %v, want ErrInvalidPackage containing %q", err, tc.wantMsg)
			}
		})
	}
}

// TestInspectNoPayloadDigest documents the one accepted gap: a package with a size tag but neither a SHA-256
// payload digest nor an MD5 tag is accepted with PayloadChecked "", and a same-size payload corruption goes
// unnoticed. rpm has nothing to check it against either: rpm -Kv reports the header digest OK and every payload
// digest NOTFOUND (and exits 1 for the NOTFOUND), corrupted or not. Whether to take such packages is the caller's
// policy, which PayloadChecked lets it apply.
func TestInspectNoPayloadDigest(t *testing.T) {
	rpmBin := requireTool(t, "rpm")
	base := readLegacy(t, "epel-release-7-5.noarch.rpm")
	lay := layoutOf(t, base)
	for _, corrupt := range []bool{false, true} {
		data := append([]byte{}, base...)
		setEntry(t, data, lay.sig, sigTagMD5, fieldTag, 1999)
		if corrupt {
			data[len(data)-5] ^= 1
		}
		p, err := inspectBytes(t, data)
		if err != nil || p.PayloadChecked != "" {
			t.Fatalf("corrupt=%v: Inspect = %+v, %v; want accepted with PayloadChecked \"\"", corrupt, p, err)
		}
		path := filepath.Join(t.TempDir(), "p.rpm")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		out, _ := exec.Command(rpmBin, "--dbpath", t.TempDir(), "-Kv", "--nosignature", path).CombinedOutput()
		if s := string(out); !strings.Contains(s, "Header SHA1 digest: OK") || !strings.Contains(s, "MD5 digest: NOTFOUND") ||
			strings.Contains(s, "BAD") {
			t.Fatalf("corrupt=%v: rpm -Kv:\n%s\nwant the header OK and the payload unchecked (NOTFOUND)", corrupt, out)
		}
	}
}
