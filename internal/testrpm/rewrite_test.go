package testrpm

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHeaderRoundTrip: decoding and re-encoding rpmpack's headers gives the same bytes, so a rewrite changes only
// what it means to.
func TestHeaderRoundTrip(t *testing.T) {
	pkg := Build(t, Spec{Name: "rt", Files: map[string]string{"/usr/bin/rt": "#!/bin/sh\n", "/etc/rt.conf": "a\n"}})
	_, sig, hdr, _, err := Parts(pkg)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"signature": sig, "main": hdr} {
		h, err := parseHeader(b)
		if err != nil {
			t.Fatalf("%s header: %v", name, err)
		}
		if h.region == nil || !bytes.Equal(h.bytes(), b) {
			t.Errorf("%s header: re-encoding differs from rpmpack's bytes (region %v)", name, h.region)
		}
	}
}

// rpmK runs the real `rpm -Kv` (with --nosignature: no keyring here) on pkg.
func rpmK(t *testing.T, pkg []byte) string {
	t.Helper()
	rpmBin, err := exec.LookPath("rpm")
	if err != nil {
		t.Fatalf("rpm not found: install rpm (make deps)")
	}
	path := filepath.Join(t.TempDir(), "p.rpm")
	if err := os.WriteFile(path, pkg, 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(rpmBin, "--dbpath", t.TempDir(), "-Kv", "--nosignature", path).CombinedOutput()
	return string(out)
}

// TestBuildRPM6: the rewritten package has exactly the tags of an rpm 6 build (5092 without 5093, no size or MD5
// tag in the signature header), the same payload, and the real rpm verifies its header and payload digests. Signing
// it keeps rpm's verdict.
func TestBuildRPM6(t *testing.T) {
	spec := Spec{Name: "six"}
	pkg := BuildRPM6(t, spec)
	if !bytes.Equal(pkg, BuildRPM6(t, spec)) {
		t.Fatal("two builds of the same Spec differ")
	}
	for _, c := range []struct {
		sig  bool
		tag  uint32
		want bool
	}{
		{false, TagPayloadDigest, true}, {false, TagPayloadDigestA, false},
		{true, TagSigSize, false}, {true, TagSigLongSize, false}, {true, TagSigMD5, false},
		{true, TagSigSHA256, true}, {true, TagSigSHA1, true},
	} {
		if got := HasTag(t, pkg, c.sig, c.tag); got != c.want {
			t.Errorf("tag %d (signature header: %v) present = %v, want %v", c.tag, c.sig, got, c.want)
		}
	}
	_, _, _, payload, err := Parts(pkg)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, orig, _ := Parts(Build(t, spec))
	if !bytes.Equal(payload, orig) {
		t.Fatal("the rewrite changed the payload")
	}

	fakeSig := func(data []byte) []byte { return []byte("not a signature") }
	for name, p := range map[string][]byte{"unsigned": pkg, "signed": SignBoth(t, pkg, fakeSig)} {
		out := rpmK(t, p)
		for _, want := range []string{"Header SHA256 digest: OK", "Header SHA1 digest: OK", "Payload SHA256 digest: OK"} {
			if !strings.Contains(out, want) || strings.Contains(out, "BAD") {
				t.Errorf("%s: rpm -Kv --nosignature:\n%s\nwant %q and nothing BAD", name, out, want)
			}
		}
	}
	// rpm -K itself proves this check can fail: a flipped payload byte is BAD.
	bad := bytes.Clone(pkg)
	bad[len(bad)-5] ^= 1
	if out := rpmK(t, bad); !strings.Contains(out, "Payload SHA256 digest: BAD") {
		t.Fatalf("flipped payload byte: rpm -Kv --nosignature:\n%s\nwant the payload digest BAD", out)
	}
}
