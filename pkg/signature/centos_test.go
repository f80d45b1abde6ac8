package signature

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rpmTestdata returns cavaliergopher/rpm's testdata directory in the module cache: real CentOS 3-7 and EPEL
// packages with OpenPGP v3 header signatures (DSA/SHA1 and RSA/SHA256), and the CentOS public keys.
func rpmTestdata(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cavaliergopher/rpm").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/cavaliergopher/rpm: %v (run go mod download)", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "testdata")
}

// TestCentOSV3Signatures verifies real v3 signature packets, made by the CentOS build systems between 2004 and
// 2015, with the keys CentOS published. go-crypto no longer parses v3 signatures, so this pins our own parser.
// rpm 4.18 prints the same key ids; it verifies the RSA ones too, but refuses to import the DSA keys, which we
// still accept when an admin puts them in the keyring.
func TestCentOSV3Signatures(t *testing.T) {
	dir := rpmTestdata(t)
	var keys []string
	for _, n := range []string{"3", "4", "5", "6", "7"} {
		keys = append(keys, filepath.Join(dir, "RPM-GPG-KEY-CentOS-"+n))
	}
	kr, err := LoadKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := LoadKeyring([]string{filepath.Join(dir, "RPM-GPG-KEY-CentOS-7")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file, qfTag string
		tag         int
		wantUser    string
	}{
		{"centos-release-3.1-1.i386.rpm", "DSAHEADER", tagDSAHeader, "CentOS-3 Key <centos-3key@caosity.org>"},
		{"centos-release-4-0.1.x86_64.rpm", "DSAHEADER", tagDSAHeader, "CentOS-4 key <centos-4key@centos.org>"},
		{"centos-release-5-0.0.el5.centos.2.x86_64.rpm", "DSAHEADER", tagDSAHeader, "CentOS-5 Key (CentOS 5 Official Signing Key) <centos-5-key@centos.org>"},
		// Signed in 2011 with a key that expired in 2021: valid, as for rpm, because it was valid when signing.
		{"centos-release-6-0.el6.centos.5.x86_64.rpm", "RSAHEADER", tagRSAHeader, "CentOS-6 Key (CentOS 6 Official Signing Key) <centos-6-key@centos.org>"},
		{"centos-release-7-2.1511.el7.centos.2.10.x86_64.rpm", "RSAHEADER", tagRSAHeader, "CentOS-7 Key (CentOS 7 Official Signing Key) <security@centos.org>"},
		{"epel-release-7-5.noarch.rpm", "RSAHEADER", tagRSAHeader, "CentOS-7 Key (CentOS 7 Official Signing Key) <security@centos.org>"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			p := extract(t, filepath.Join(dir, tc.file))
			sig := p.sigs[tc.tag]
			if _, body, err := splitPacket(sig); err != nil || body[0] != 3 {
				t.Fatalf("tag %d is not a v3 packet (%v): % x", tc.tag, err, sig[:min(len(sig), 4)])
			}
			short, long := rpmKeyIDs(t, p.path, tc.qfTag)
			s, err := kr.Verify(p.header, sig)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if s.KeyID != short || s.LongKeyID != long || s.UserID != tc.wantUser {
				t.Fatalf("Signer = %+v, want key %s (%s) %q", s, short, long, tc.wantUser)
			}
			if got, err := Inspect(sig); err != nil || got != long {
				t.Fatalf("Inspect = %q, %v; want %q", got, err, long)
			}
			if _, err := kr.VerifyAny(p.header, p.packets()); err != nil {
				t.Fatalf("VerifyAny: %v", err)
			}
			if _, err := kr.Verify(flip(p.header, len(p.header)/2), sig); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("flipped header: error = %v, want ErrBadSignature", err)
			}
			if _, err := kr.Verify(p.header, flip(sig, -1)); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("flipped MPI: error = %v, want ErrBadSignature", err)
			}
			// Without its key, the refusal names the id exactly as `rpm -K` prints it with NOKEY.
			if strings.Contains(tc.wantUser, "CentOS-7") {
				return
			}
			_, err = empty.Verify(p.header, sig)
			if !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("Verify without the key: error = %v, want ErrUnknownKey", err)
			}
			assertContains(t, err.Error(), "key "+short, long)
		})
	}
}
