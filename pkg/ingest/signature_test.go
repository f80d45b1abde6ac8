package ingest

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testsign"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/signature"
)

// signedRPM builds a routable package with testrpm and, unless signer is "", signs it with the real
// `rpmsign --addsign` using that testsign key. It returns the file's bytes and its path (for asking rpm about it).
func signedRPM(t *testing.T, name string, signer *testsign.Key) ([]byte, string) {
	t.Helper()
	path := testrpm.WriteFile(t, t.TempDir(), testrpm.Spec{Name: name, Release: "1.el9", Arch: "x86_64"})
	if signer != nil {
		signer.SignRPM(t, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b, path
}

// flipSignatureByte flips the last byte of the package's first header signature packet where it sits in the file.
// For RSA that byte is the low byte of the signature MPI, so the packet still parses and only the maths fails:
// the refusal must then be ErrBadSignature, not ErrUnparsable. The packet is located through rpmmeta, the same
// code the ingester uses, and must occur exactly once in the file so the flip cannot land elsewhere.
func flipSignatureByte(t *testing.T, data []byte) []byte {
	t.Helper()
	p, err := inspectBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.HeaderSigs) == 0 {
		t.Fatal("signed package has no header signature")
	}
	pkt := p.HeaderSigs[0].Packet
	at := bytes.Index(data, pkt)
	if at < 0 || bytes.Contains(data[at+1:], pkt) {
		t.Fatalf("signature packet (%d bytes) found at %d, want exactly once", len(pkt), at)
	}
	out := bytes.Clone(data)
	out[at+len(pkt)-1] ^= 0x01
	return out
}

// flipHeaderByte flips a byte in the middle of the signed main header, after signing.
func flipHeaderByte(t *testing.T, data []byte) []byte {
	t.Helper()
	p, err := inspectBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	out := bytes.Clone(data)
	out[(p.HeaderStart+p.HeaderEnd)/2] ^= 0x01
	return out
}

var (
	// rpmNoKey matches `rpmkeys -Kv` with an empty keyring: "Header V4 RSA/SHA256 Signature, key ID 89abcdef: NOKEY".
	rpmNoKey = regexp.MustCompile(`Header V[34] [A-Za-z0-9/]+ Signature, key ID ([0-9a-f]{8}): NOKEY`)
	// rpmPgpsig matches `rpm -qp --qf '%{DSAHEADER:pgpsig}'`: "EdDSA/SHA512, <date>, Key ID 0123456789abcdef".
	rpmPgpsig = regexp.MustCompile(`Key ID ([0-9a-f]{16})`)
)

// rpmSigner asks the real rpm who signed the package at path: the short id as `rpmkeys -K` prints it, and the long
// id from the header signature tag qfTag (RSAHEADER or DSAHEADER). The refusal message must use rpm's own ids,
// because those are what an admin compares with.
func rpmSigner(t *testing.T, path, qfTag string) (short, long string) {
	t.Helper()
	if _, err := exec.LookPath("rpmkeys"); err != nil {
		t.Fatal("rpmkeys not found: install rpm (make deps)")
	}
	root := t.TempDir() // an empty rpm database: every key is unknown
	// -K exits non-zero for NOKEY; the output is what matters.
	out, _ := exec.Command("rpmkeys", "--root", root, "-Kv", path).CombinedOutput()
	m := rpmNoKey.FindSubmatch(out)
	if m == nil {
		t.Fatalf("rpmkeys -Kv %s: no NOKEY line:\n%s", path, out)
	}
	qf, err := exec.Command("rpm", "--root", root, "-qp", "--qf", "%{"+qfTag+":pgpsig}", path).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qp --qf %s: %v\n%s", qfTag, err, qf)
	}
	l := rpmPgpsig.FindSubmatch(qf)
	if l == nil {
		t.Fatalf("rpm -qp --qf %s %s: no key id:\n%s", qfTag, path, qf)
	}
	return string(m[1]), string(l[1])
}

// TestSignaturePolicy runs packages signed by the real rpmsign through the real ingester, in header mode (a spooled
// file named by the proxy) and as a direct body, against keyrings of `gpg --export --armor` files loaded by
// signature.LoadKeyring: the keys rpm would accept are accepted and recorded, every refusal is a 422-kind
// ErrRejected that leaves nothing in the spool or the tree, and a header altered after signing fails earlier, as
// an invalid package (400), because its digest no longer matches.
func TestSignaturePolicy(t *testing.T) {
	// One key per algorithm per process (testsign caches the material); each NewKey has its own GNUPGHOME.
	keys := map[string]testsign.Key{}
	armored := map[string]string{}
	for _, algo := range []string{testsign.RSA2048, testsign.RSA4096, testsign.Ed25519, testsign.Subkey} {
		keys[algo] = testsign.NewKey(t, algo)
		armored[algo] = keys[algo].ExportArmored(t) // for Subkey: the primary's export, holding the subkey
	}
	rsa, ed := keys[testsign.RSA2048], keys[testsign.Ed25519]

	// The package signed by a key outside the keyring (Ed25519, with only RSA 2048 in the ring), and the ids rpm
	// itself reports for it. rpm 4.18 files EdDSA signatures in DSAHEADER (267).
	foreignData, foreignPath := signedRPM(t, "foreign", &ed)
	foreignShort, foreignLong := rpmSigner(t, foreignPath, "DSAHEADER")
	if foreignShort != ed.ShortID || foreignLong != ed.KeyID {
		t.Fatalf("rpm reports key %s / %s, testsign %s / %s", foreignShort, foreignLong, ed.ShortID, ed.KeyID)
	}
	rsaSigned, _ := signedRPM(t, "rsa", &rsa)

	tests := []struct {
		name    string
		data    func(t *testing.T) []byte
		require bool
		ring    []string // algorithms whose exported keys make the keyring
		want    string   // SignedBy when accepted
		claimed string   // ClaimedKeyID when accepted
		kind    error    // nil: accepted (Created)
		cause   error    // the signature sentinel the refusal must wrap, if any
		msg     []string // substrings of the refusal message
	}{
		{"RSA 2048", signed(keys, testsign.RSA2048), true, all(keys), rsa.KeyID, "", nil, nil, nil},
		{"RSA 4096", signed(keys, testsign.RSA4096), true, all(keys), keys[testsign.RSA4096].KeyID, "", nil, nil, nil},
		{"Ed25519", signed(keys, testsign.Ed25519), true, all(keys), ed.KeyID, "", nil, nil, nil},
		// The keyring holds the primary's export; the signer recorded is the subkey that signed, as rpm prints it.
		{"signing subkey", signed(keys, testsign.Subkey), true, []string{testsign.Subkey}, keys[testsign.Subkey].KeyID, "", nil, nil, nil},
		{"unsigned", unsigned, true, all(keys), "", "", ErrRejected, signature.ErrUnsigned,
			[]string{"package is not signed", "unsigned-1.0-1.el9.x86_64"}},
		{"second key not in the keyring", bytesOf(foreignData), true, []string{testsign.RSA2048}, "", "", ErrRejected, signature.ErrUnknownKey,
			// rpm's short id, and the full id (inside the v4 issuer fingerprint, which ends with it).
			[]string{"key " + foreignShort, foreignLong, "foreign-1.0-1.el9.x86_64"}},
		{"signature byte flipped", func(t *testing.T) []byte { return flipSignatureByte(t, rsaSigned) }, true, all(keys), "", "",
			ErrRejected, signature.ErrBadSignature, []string{"signature does not verify", "key " + rsa.ShortID}},
		// The header digests are checked before any policy: an altered header is a broken package (400), not a
		// bad signature (422), whatever the policy. Nothing about the signature may be claimed for it.
		{"header byte flipped after signing", func(t *testing.T) []byte { return flipHeaderByte(t, rsaSigned) }, true, all(keys), "", "",
			rpmmeta.ErrInvalidPackage, nil, []string{"invalid rpm package"}},
		{"require off: unsigned", unsigned, false, all(keys), "", "", nil, nil, nil},
		// Without require_signature only a signature that verifies against the keyring names a signer; any
		// other is recorded as the key it claims, never as signed_by (issue 18 item 5).
		{"require off: verified signer recorded", signed(keys, testsign.RSA2048), false, all(keys), rsa.KeyID, "", nil, nil, nil},
		{"require off: unknown key is only claimed", bytesOf(foreignData), false, []string{testsign.RSA2048}, "", ed.KeyID, nil, nil, nil},
		{"require off: no keyring, key only claimed", signed(keys, testsign.RSA2048), false, nil, "", rsa.KeyID, nil, nil, nil},
		{"require off: signature byte flipped, key only claimed", func(t *testing.T) []byte { return flipSignatureByte(t, rsaSigned) },
			false, all(keys), "", rsa.KeyID, nil, nil, nil},
	}
	for _, tc := range tests {
		data := tc.data(t) // signed once, uploaded both ways
		for _, viaSpool := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/spool=%v", tc.name, viaSpool), func(t *testing.T) {
				var files []string
				for _, algo := range tc.ring {
					files = append(files, armored[algo])
				}
				var kr *signature.Keyring
				if len(files) > 0 {
					var err error
					if kr, err = signature.LoadKeyring(files); err != nil {
						t.Fatal(err)
					}
				}
				e := newEnv(t, func(o *Options) {
					o.Signatures = signature.Policy{Keyring: kr, Require: tc.require}
				})
				res, err := e.upload(t, data, viaSpool, "")
				defer e.assertSpoolEmpty(t)
				if tc.kind == nil {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					if res.Status != Created || res.SignedBy != tc.want || res.ClaimedKeyID != tc.claimed {
						t.Errorf("status %q signed_by %q claimed %q, want created %q claimed %q", res.Status, res.SignedBy,
							res.ClaimedKeyID, tc.want, tc.claimed)
					}
					if got := e.treeFiles(t); len(got) != 1 {
						t.Errorf("tree holds %v, want the one package", got)
					}
					return
				}
				if !errors.Is(err, tc.kind) {
					t.Fatalf("err = %v, want %v", err, tc.kind)
				}
				var ie *Error
				if tc.kind == ErrRejected && !errors.As(err, &ie) {
					t.Errorf("err %T is not an *ingest.Error", err)
				}
				if tc.cause != nil && !errors.Is(err, tc.cause) {
					t.Errorf("err = %v, does not wrap %v", err, tc.cause)
				}
				// A corrupted header must not be reported as a signature problem, or the order is wrong.
				if tc.cause == nil && errors.Is(err, ErrRejected) {
					t.Errorf("err = %v, want no signature judgment", err)
				}
				for _, m := range tc.msg {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("message %q lacks %q", err.Error(), m)
					}
				}
				if res != nil && (res.SignedBy != "" || res.ClaimedKeyID != "") {
					t.Errorf("refused package records signer %q / %q", res.SignedBy, res.ClaimedKeyID)
				}
				if got := e.treeFiles(t); len(got) != 0 {
					t.Errorf("refusal left files in the tree: %v", got)
				}
				if len(e.dirty) != 0 {
					t.Errorf("refusal marked repositories dirty: %v", e.dirty)
				}
			})
		}
	}
}

// signed returns a table data function: a fresh package signed by keys[algo] with the real rpmsign.
func signed(keys map[string]testsign.Key, algo string) func(t *testing.T) []byte {
	return func(t *testing.T) []byte {
		k := keys[algo]
		b, _ := signedRPM(t, "signed-"+algo, &k)
		return b
	}
}

// unsigned is a package rpmsign never touched: rpmpack writes no header signature tags.
func unsigned(t *testing.T) []byte {
	b, _ := signedRPM(t, "unsigned", nil)
	return b
}

// bytesOf returns a table data function for bytes made before the table.
func bytesOf(b []byte) func(*testing.T) []byte { return func(*testing.T) []byte { return b } }

// all lists every algorithm in keys, so the keyring holds every test key.
func all(keys map[string]testsign.Key) []string {
	out := make([]string, 0, len(keys))
	for algo := range keys {
		out = append(out, algo)
	}
	return out
}

// TestSignatureFlipHelpers checks that the flip helpers land where they claim, so a passing refusal test is about
// the byte we meant.
func TestSignatureFlipHelpers(t *testing.T) {
	k := testsign.NewKey(t, testsign.RSA2048)
	data, _ := signedRPM(t, "flip", &k)
	p, err := inspectBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	flipped := flipSignatureByte(t, data)
	q, err := inspectBytes(t, flipped)
	if err != nil {
		t.Fatalf("a flipped signature byte must leave a valid package: %v", err)
	}
	if len(q.HeaderSigs) != 1 || bytes.Equal(q.HeaderSigs[0].Packet, p.HeaderSigs[0].Packet) ||
		!bytes.Equal(q.HeaderSigs[0].Packet[:len(p.HeaderSigs[0].Packet)-1], p.HeaderSigs[0].Packet[:len(p.HeaderSigs[0].Packet)-1]) {
		t.Fatal("the flip did not change exactly the packet's last byte")
	}
	if !bytes.Equal(q.HeaderBytes, p.HeaderBytes) {
		t.Fatal("the signature flip changed the signed header")
	}
	if _, err := inspectBytes(t, flipHeaderByte(t, data)); !errors.Is(err, rpmmeta.ErrInvalidPackage) {
		t.Fatalf("header flip: err = %v, want ErrInvalidPackage", err)
	}
	// Sanity: the tag is where rpm 4.18 puts RSA signatures.
	if p.HeaderSigs[0].Tag != 268 {
		t.Errorf("RSA signature in tag %d, want 268 (RSAHEADER)", p.HeaderSigs[0].Tag)
	}
}

// TestSignatureLegacyPayload: issue 18 item 2. A signed EL7 package (rpm < 4.14: no SHA-256 payload digest) with 16
// payload bytes swapped and its MD5 tag (1004) rewritten passes every digest; rpmkeys -Kv says its header+payload
// signature is BAD. With require_signature it must be refused, and the intact package accepted.
func TestSignatureLegacyPayload(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cavaliergopher/rpm").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/cavaliergopher/rpm: %v (run go mod download)", err)
	}
	key := filepath.Join(strings.TrimSpace(string(out)), "testdata", "RPM-GPG-KEY-CentOS-7")
	kr, err := signature.LoadKeyring([]string{key})
	if err != nil {
		t.Fatal(err)
	}
	epel, err := os.ReadFile("../../testdata/rpms/legacy/epel-release-7-5.noarch.rpm")
	if err != nil {
		t.Fatal(err)
	}
	p, err := inspectBytes(t, epel)
	if err != nil {
		t.Fatal(err)
	}
	old := md5.Sum(epel[p.HeaderStart:])
	at := bytes.Index(epel, old[:])
	if at < 0 || at >= int(p.HeaderStart) {
		t.Fatalf("MD5 tag value at %d, want it in the signature header", at)
	}
	swapped := bytes.Clone(epel)
	for i := range 16 {
		swapped[len(swapped)-100+i] ^= 0xff
	}
	sum := md5.Sum(swapped[p.HeaderStart:])
	copy(swapped[at:], sum[:])

	for _, viaSpool := range []bool{true, false} {
		e := newEnv(t, func(o *Options) { o.Signatures = signature.Policy{Keyring: kr, Require: true} })
		res, err := e.upload(t, swapped, viaSpool, "7")
		if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "header+payload signature") ||
			!strings.Contains(err.Error(), "signature does not verify") {
			t.Fatalf("spool=%v: swapped payload: %v, %v; want ErrRejected: header+payload signature does not verify", viaSpool, res, err)
		}
		if got := e.treeFiles(t); len(got) != 0 {
			t.Fatalf("refusal left files: %v", got)
		}
		e.assertSpoolEmpty(t)
		res, err = e.upload(t, epel, viaSpool, "7")
		if err != nil || res.Status != Created || res.SignedBy != "24c6a8a7f4a80eb5" {
			t.Fatalf("spool=%v: intact package: %+v, %v; want created, signed by 24c6a8a7f4a80eb5", viaSpool, res, err)
		}
	}
}
