package signature

import (
	"bytes"
	"crypto"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testsign"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
)

const legacyDir = "../../testdata/rpms/legacy"

// inspected writes data to a file, runs rpmmeta.Inspect on it and returns the package and the open file.
func inspected(t *testing.T, data []byte) (*rpmmeta.Package, *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.rpm")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	p, err := rpmmeta.Inspect(f)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	return p, f
}

// swapPayload flips 16 payload bytes of a pre-4.14 package and rewrites its MD5 tag (1004) to match, the attack of
// issue 18 item 2: every digest still matches, and only a signature over header and payload can notice.
func swapPayload(t *testing.T, data []byte) []byte {
	t.Helper()
	p, _ := inspected(t, data)
	if p.PayloadChecked != "md5" {
		t.Fatalf("PayloadChecked = %q, want a package whose payload only MD5 covers", p.PayloadChecked)
	}
	old := md5.Sum(data[p.HeaderStart:])
	at := bytes.Index(data, old[:])
	if at < 0 || at >= int(p.HeaderStart) || bytes.Contains(data[at+1:], old[:]) {
		t.Fatalf("MD5 tag value found at %d, want exactly once, in the signature header", at)
	}
	out := bytes.Clone(data)
	for i := range 16 {
		out[len(out)-100+i] ^= 0xff
	}
	sum := md5.Sum(out[p.HeaderStart:])
	copy(out[at:], sum[:])
	return out
}

// renameSigTag renames signature-header tag from to to (an unknown tag rpm and rpmmeta ignore), in place.
func renameSigTag(t *testing.T, data []byte, from, to uint32) []byte {
	t.Helper()
	const sigStart, intro, entry = 96, 16, 16
	n := int(binary.BigEndian.Uint32(data[sigStart+8:]))
	for i := range n {
		pos := sigStart + intro + i*entry
		if binary.BigEndian.Uint32(data[pos:]) == from {
			out := bytes.Clone(data)
			binary.BigEndian.PutUint32(out[pos:], to)
			return out
		}
	}
	t.Fatalf("signature tag %d not found", from)
	return nil
}

// rpmKV runs the real `rpmkeys -Kv` on data with the public key file key imported into a fresh database.
func rpmKV(t *testing.T, data []byte, key string) string {
	t.Helper()
	root := t.TempDir()
	if out, err := exec.Command("rpmkeys", "--root", root, "--import", key).CombinedOutput(); err != nil {
		t.Fatalf("rpmkeys --import %s: %v\n%s", key, err, out)
	}
	path := filepath.Join(t.TempDir(), "p.rpm")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("rpmkeys", "--root", root, "-Kv", path).CombinedOutput() // exits 1 on BAD
	return string(out)
}

// TestPolicyCoversPayload: with require_signature, "signed" means the signatures cover header and payload, as for
// rpmkeys -K. A pre-4.14 package (no SHA-256 payload digest) is judged by its header+payload signature (tag
// 1002/1005), so a swapped payload whose MD5 tag was rewritten is refused, exactly when rpm says BAD; one that has
// only a header signature is refused as uncovered. Real packages and keys: EPEL 7 signed by CentOS 7; and a package
// shaped like rpm 6's (testrpm.BuildRPM6: SHA-256 payload digest without PAYLOADDIGESTALGO, no size tag) signed in
// header and header+payload signatures, once by gpg (v4) with a key made by gpg in the test and once with v3
// packets as old rpm signed, each checked against rpmkeys.
func TestPolicyCoversPayload(t *testing.T) {
	if _, err := exec.LookPath("rpmkeys"); err != nil {
		t.Fatal("rpmkeys not found: install rpm (make deps)")
	}
	centosKey := filepath.Join(rpmTestdata(t), "RPM-GPG-KEY-CentOS-7")
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	epel := read(filepath.Join(legacyDir, "epel-release-7-5.noarch.rpm"))
	const epelSigner = "24c6a8a7f4a80eb5" // CentOS 7 key, as rpm -qp --qf '%{RSAHEADER:pgpsig}' prints it

	rpm6 := testrpm.BuildRPM6(t, testrpm.Spec{Name: "rpm6test"})
	gpgKey := testsign.NewKey(t, testsign.RSA2048)
	v4sig := testrpm.SignBoth(t, rpm6, func(b []byte) []byte { return gpgKey.SignBytes(t, b) })
	gpgKeyFile := gpgKey.ExportArmored(t)
	// The same package whose header+payload signature signs other bytes: its header signature still verifies.
	calls := 0
	badWhole := testrpm.SignBoth(t, rpm6, func(b []byte) []byte {
		if calls++; calls == 2 { // SignBoth signs the header first, then header+payload
			b = flip(b, -1)
		}
		return gpgKey.SignBytes(t, b)
	})
	v3Key := newEntity(t, "v3", "rsa", nil)
	v3sig := testrpm.SignBoth(t, rpm6, func(b []byte) []byte { return v3Sign(t, v3Key, b, 8, crypto.SHA256) })
	v3KeyFile := writeFile(t, "v3.asc", armored(t, v3Key))
	v3Signer := longID(v3Key.PrimaryKey.KeyId)

	tests := []struct {
		name     string
		data     []byte
		key      string
		rpmSays  string // what rpmkeys -Kv must print for the same bytes: "" for all OK, else a substring
		want     string // signer when accepted
		wantErr  error
		contains string
	}{
		{"EL7 package, both signatures good", epel, centosKey, "", epelSigner, nil, ""},
		{"EL7 package, payload swapped and MD5 rewritten", swapPayload(t, epel), centosKey,
			"V3 RSA/SHA256 Signature, key ID f4a80eb5: BAD", "", ErrBadSignature, "header+payload signature"},
		{"EL7 package without its header+payload signature", renameSigTag(t, epel, 1002, 1999), centosKey,
			"", "", ErrUncovered, "no SHA-256 payload digest"},
		// rpm -K finds nothing wrong here (header signature, SHA-1 and the rewritten MD5 all OK): without the
		// header+payload signature nothing signed covers the payload, which is why such a package is refused.
		{"EL7 package, payload swapped, only a header signature", renameSigTag(t, swapPayload(t, epel), 1002, 1999), centosKey,
			"", "", ErrUncovered, "rebuild it with rpm 4.14 or later"},
		{"EL7 package with only its header+payload signature", renameSigTag(t, epel, 268, 1999), centosKey,
			"", epelSigner, nil, ""},
		{"rpm 6 package, v4 signatures", v4sig, gpgKeyFile, "", gpgKey.KeyID, nil, ""},
		{"rpm 6 package, only its v4 header+payload signature", renameSigTag(t, v4sig, 268, 1999), gpgKeyFile,
			"", gpgKey.KeyID, nil, ""},
		{"rpm 6 package, only its v4 header signature", renameSigTag(t, v4sig, 1002, 1999), gpgKeyFile,
			"", gpgKey.KeyID, nil, ""},
		{"rpm 6 package, v3 signatures", v3sig, v3KeyFile, "V3 RSA/SHA256 Signature", v3Signer, nil, ""},
		{"rpm 6 package, only its v3 header+payload signature", renameSigTag(t, v3sig, 268, 1999), v3KeyFile,
			"V3 RSA/SHA256 Signature", v3Signer, nil, ""},
		// rpm checks every signature it finds: the payload digest does not excuse a bad header+payload signature.
		{"rpm 6 package, good header signature, bad header+payload signature", badWhole, gpgKeyFile,
			"BAD", "", ErrBadSignature, "header+payload signature"},
		{"rpm 6 package, key not in the keyring", v4sig, v3KeyFile, "NOKEY", "", ErrUnknownKey, gpgKey.ShortID},
		{"EL7 package, key not in the keyring", epel, gpgKeyFile, "NOKEY", "", ErrUnknownKey, "f4a80eb5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := rpmKV(t, tc.data, tc.key)
			if (tc.rpmSays == "" || tc.wantErr == nil) && (strings.Contains(out, "BAD") || strings.Contains(out, "NOKEY") || !strings.Contains(out, "OK")) {
				t.Fatalf("rpmkeys -Kv:\n%s\nwant every check OK", out)
			}
			if tc.rpmSays != "" && !strings.Contains(out, tc.rpmSays) {
				t.Fatalf("rpmkeys -Kv:\n%s\nwant %q", out, tc.rpmSays)
			}
			kr, err := LoadKeyring([]string{tc.key})
			if err != nil {
				t.Fatal(err)
			}
			p, f := inspected(t, tc.data)
			by, claimed, err := Policy{Keyring: kr, Require: true}.Judge(p, f)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.contains) || by != "" {
					t.Fatalf("Judge = %q, %v; want %v containing %q", by, err, tc.wantErr, tc.contains)
				}
			} else if err != nil || by != tc.want || claimed != "" {
				t.Fatalf("Judge = %q, %q, %v; want signed by %s", by, claimed, err, tc.want)
			}
			// Without require_signature the same package passes; signed_by only when it verified.
			by, claimed, err = Policy{Keyring: kr}.Judge(p, f)
			switch {
			case err != nil:
				t.Fatalf("lax Judge: %v", err)
			case tc.wantErr == nil && (by != tc.want || claimed != ""):
				t.Fatalf("lax Judge = %q, %q; want signed by %s", by, claimed, tc.want)
			case tc.wantErr != nil && (by != "" || claimed == ""):
				t.Fatalf("lax Judge = %q, %q; want no signer and a claimed key id", by, claimed)
			}
		})
	}
}

// TestPolicyClaimed: without require_signature a package always passes, and signed_by names only a signer that
// verified against the keyring; any other signature is reported as the key it claims (issue 18 item 5).
func TestPolicyClaimed(t *testing.T) {
	alice := newEntity(t, "alice", "rsa", nil)
	header := []byte("header bytes")
	good := sign(t, alice, header, sigOpts{})
	bad := flip(good, -1)
	aliceID := longID(alice.PrimaryKey.KeyId)
	pkg := func(sig []byte) *rpmmeta.Package {
		p := &rpmmeta.Package{HeaderBytes: header, PayloadChecked: "sha256"}
		if sig != nil {
			p.HeaderSigs = []rpmmeta.RawSig{{Tag: 268, Packet: sig}}
		}
		return p
	}
	ring := keyringOf(t, alice)
	other := keyringOf(t, newEntity(t, "bob", "rsa", nil))
	tests := []struct {
		name         string
		policy       Policy
		sig          []byte
		wantBy, want string
		wantErr      error
	}{
		{"verified", Policy{Keyring: ring}, good, aliceID, "", nil},
		{"flipped signature byte", Policy{Keyring: ring}, bad, "", aliceID, nil},
		{"key not in the keyring", Policy{Keyring: other}, good, "", aliceID, nil},
		{"no keyring", Policy{}, good, "", aliceID, nil},
		{"unsigned", Policy{Keyring: ring}, nil, "", "", nil},
		{"required, flipped", Policy{Keyring: ring, Require: true}, bad, "", "", ErrBadSignature},
		{"required, verified", Policy{Keyring: ring, Require: true}, good, aliceID, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			by, claimed, err := tc.policy.Judge(pkg(tc.sig), bytes.NewReader(nil))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) || by != tc.wantBy || claimed != tc.want {
				t.Fatalf("Judge = %q, %q, %v; want %q, %q, %v", by, claimed, err, tc.wantBy, tc.want, tc.wantErr)
			}
		})
	}
}

// failingReader fails every read, like a disk error on the package file.
type failingReader struct{}

func (failingReader) ReadAt([]byte, int64) (int, error) { return 0, errors.New("input/output error") }

// TestPolicyReadError: a failure to read the file is not a verdict on the signature, under either policy.
func TestPolicyReadError(t *testing.T) {
	epel, err := os.ReadFile(filepath.Join(legacyDir, "epel-release-7-5.noarch.rpm"))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := LoadKeyring([]string{filepath.Join(rpmTestdata(t), "RPM-GPG-KEY-CentOS-7")})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := inspected(t, epel)
	for _, require := range []bool{true, false} {
		_, _, err := Policy{Keyring: kr, Require: require}.Judge(p, failingReader{})
		if err == nil || !strings.Contains(err.Error(), "input/output error") ||
			isOneOf(err, []error{ErrUnsigned, ErrUnknownKey, ErrBadSignature, ErrUnparsable, ErrUncovered}) {
			t.Fatalf("require=%v: Judge error = %v, want the read error and no verdict", require, err)
		}
	}
}
