package signature

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"testing"

	"github.com/cavaliergopher/rpm"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testsign"
)

// Tags of the rpm signature header that hold header-only OpenPGP signatures.
const (
	tagDSAHeader = 267
	tagRSAHeader = 268
)

// signedParts is what the verifier needs from a package file.
type signedParts struct {
	header []byte         // the main header's exact bytes, [start,end) of HeaderRange
	sigs   map[int][]byte // signature-header tag → packet, for 267 and 268 when present
	path   string
}

// extract reads the header bytes and the header signature tags. It uses cavaliergopher/rpm on a plain *os.File,
// as TECH-NOTES requires (its bufio path misparses); production code will get these from rpmmeta.
func extract(t *testing.T, path string) signedParts {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkg, err := rpm.Read(f)
	if err != nil {
		t.Fatalf("rpm.Read %s: %v", path, err)
	}
	start, end := pkg.HeaderRange()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if end > len(b) {
		t.Fatalf("%s: header range [%d,%d) beyond %d bytes", path, start, end, len(b))
	}
	p := signedParts{header: b[start:end], sigs: map[int][]byte{}, path: path}
	for _, tag := range []int{tagDSAHeader, tagRSAHeader} {
		if v := pkg.Signature.GetTag(tag).Bytes(); v != nil {
			p.sigs[tag] = v
		}
	}
	return p
}

// packets returns the signature packets in tag order, what VerifyAny receives.
func (p signedParts) packets() [][]byte {
	var out [][]byte
	for _, tag := range []int{tagDSAHeader, tagRSAHeader} {
		if v, ok := p.sigs[tag]; ok {
			out = append(out, v)
		}
	}
	return out
}

var (
	// rpmLongID matches `rpm -qp --qf '%{RSAHEADER:pgpsig}'`: "RSA/SHA256, <date>, Key ID 0123456789abcdef".
	rpmLongID = regexp.MustCompile(`Key ID ([0-9a-f]{16})`)
	// rpmShortID matches `rpmkeys -Kv` without the key: "Header V4 RSA/SHA256 Signature, key ID 89abcdef: NOKEY".
	rpmShortID = regexp.MustCompile(`Header V[34] [A-Za-z0-9/]+ Signature, key ID ([0-9a-f]{8}): NOKEY`)
)

// rpmKeyIDs asks the real rpm which key signed the package: the short id from `rpmkeys -Kv` with an empty
// keyring, and the long one from the header signature's pgpsig format.
func rpmKeyIDs(t *testing.T, path, qfTag string) (short, long string) {
	t.Helper()
	if _, err := exec.LookPath("rpmkeys"); err != nil {
		t.Fatal("rpmkeys not found: install gnupg and rpm (make deps)")
	}
	root := t.TempDir()
	// -K exits non-zero for NOKEY; the output is what matters.
	out, _ := exec.Command("rpmkeys", "--root", root, "-Kv", path).CombinedOutput()
	m := rpmShortID.FindSubmatch(out)
	if m == nil {
		t.Fatalf("rpmkeys -Kv %s: no NOKEY line:\n%s", path, out)
	}
	qf, err := exec.Command("rpm", "--root", root, "-qp", "--qf", "%{"+qfTag+":pgpsig}", path).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qp: %v\n%s", err, qf)
	}
	l := rpmLongID.FindSubmatch(qf)
	if l == nil {
		t.Fatalf("rpm -qp --qf %s: no key id:\n%s", qfTag, qf)
	}
	return string(m[1]), string(l[1])
}

// sigTag is where rpm 4.18's rpmsign stores the header signature of k, and the query tag name that prints it:
// RSA goes to 268 (RSAHEADER), EdDSA (a primary or a subkey) to 267 (DSAHEADER), as rpm files every non-RSA
// algorithm there.
func sigTag(k testsign.Key) (int, string) {
	if k.Algo == testsign.RSA2048 || k.Algo == testsign.RSA4096 {
		return tagRSAHeader, "RSAHEADER"
	}
	return tagDSAHeader, "DSAHEADER"
}

// signedPackage builds a package with testrpm and signs it with the real rpmsign.
func signedPackage(t *testing.T, k testsign.Key) signedParts {
	t.Helper()
	path := testrpm.WriteFile(t, t.TempDir(), testrpm.Spec{Name: "signed-" + k.Algo, Arch: "x86_64"})
	k.SignRPM(t, path)
	return extract(t, path)
}

// TestRealSignedPackages verifies packages signed by the real rpmsign with each key type against a keyring made
// of `gpg --export --armor` files, and checks that our key ids are the ones rpm prints.
func TestRealSignedPackages(t *testing.T) {
	algos := []string{testsign.RSA2048, testsign.RSA4096, testsign.Ed25519, testsign.Subkey}
	keys := map[string]testsign.Key{}
	var files []string
	for _, a := range algos {
		keys[a] = testsign.NewKey(t, a)
		files = append(files, keys[a].ExportArmored(t))
	}
	kr, err := LoadKeyring(files)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range algos {
		t.Run(a, func(t *testing.T) {
			k := keys[a]
			p := signedPackage(t, k)
			tag, qf := sigTag(k)
			sig, ok := p.sigs[tag]
			if !ok || len(p.sigs) != 1 {
				t.Fatalf("rpmsign wrote signature tags %v, want only %d", keysOf(p.sigs), tag)
			}
			short, long := rpmKeyIDs(t, p.path, qf)
			s, err := kr.Verify(p.header, sig)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := Signer{KeyID: short, LongKeyID: long, Fingerprint: k.Fingerprint, UserID: k.UserID, Created: s.Created}
			if s != want || short != k.ShortID {
				t.Fatalf("Signer = %+v\nwant     %+v (testsign short id %s)", s, want, k.ShortID)
			}
			if s.Created.IsZero() {
				t.Error("Created is zero")
			}
			if got, err := Inspect(sig); err != nil || got != long {
				t.Fatalf("Inspect = %q, %v; want %q", got, err, long)
			}
			if got, err := kr.VerifyAny(p.header, p.packets()); err != nil || got != s {
				t.Fatalf("VerifyAny = %+v, %v", got, err)
			}
		})
	}
}

// TestRealECDSA covers ECDSA, which rpm 4.18 can neither make nor check ("Unsupported PGP signature"): gpg signs
// the header bytes of a real package exactly as rpmsign would, and we verify that packet.
func TestRealECDSA(t *testing.T) {
	k := testsign.NewKey(t, testsign.NISTP256)
	kr, err := LoadKeyring([]string{k.ExportArmored(t)})
	if err != nil {
		t.Fatal(err)
	}
	p := extract(t, testrpm.WriteFile(t, t.TempDir(), testrpm.Spec{Name: "ecdsa"}))
	sig := k.SignBytes(t, p.header)
	s, err := kr.Verify(p.header, sig)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if s.KeyID != k.ShortID || s.Fingerprint != k.Fingerprint {
		t.Fatalf("Signer = %+v, want key %s %s", s, k.ShortID, k.Fingerprint)
	}
	if _, err := kr.Verify(flip(p.header, 100), sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("flipped header: error = %v, want ErrBadSignature", err)
	}
}

// TestRealRejections covers the refusals with real rpmsign output: a second key not in the keyring, a flipped
// signature byte (inside the signature MPI, so the packet still parses), and flipped header bytes.
func TestRealRejections(t *testing.T) {
	inRing := testsign.NewKey(t, testsign.RSA2048)
	other := testsign.NewKey(t, testsign.Ed25519)
	kr, err := LoadKeyring([]string{inRing.ExportArmored(t)})
	if err != nil {
		t.Fatal(err)
	}
	good := signedPackage(t, inRing)
	foreign := signedPackage(t, other)
	goodSig := good.sigs[tagRSAHeader]
	foreignTag, foreignQf := sigTag(other)
	short, long := rpmKeyIDs(t, foreign.path, foreignQf)

	tests := []struct {
		name    string
		header  []byte
		packets [][]byte
		wantErr error
		wantMsg []string
	}{
		{"second key not in keyring", foreign.header, foreign.packets(), ErrUnknownKey,
			[]string{"key " + short, other.Fingerprint, long[8:]}},
		// The last byte of an RSA packet is the low byte of the signature MPI: the packet parses, the maths fails.
		{"signature MPI byte flipped", good.header, [][]byte{flip(goodSig, -1)}, ErrBadSignature, []string{"key " + inRing.ShortID}},
		{"signature MPI middle byte flipped", good.header, [][]byte{flip(goodSig, -100)}, ErrBadSignature, nil},
		{"first header byte flipped", flip(good.header, 0), good.packets(), ErrBadSignature, nil},
		{"middle header byte flipped", flip(good.header, len(good.header)/2), good.packets(), ErrBadSignature, nil},
		{"last header byte flipped", flip(good.header, -1), good.packets(), ErrBadSignature, nil},
		{"header of another package", foreign.header, good.packets(), ErrBadSignature, nil},
		{"unsigned package", good.header, nil, ErrUnsigned, []string{"package is not signed"}},
		// rpm ≥ 4.20 may add a signature we cannot read next to the classic one: the readable one decides.
		{"mixed with an unparsable packet", good.header, [][]byte{{0xc2, 0x01, 0x06}, goodSig}, nil, nil},
		{"mixed with a foreign signature", good.header, [][]byte{foreign.sigs[foreignTag], goodSig}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := kr.VerifyAny(tc.header, tc.packets)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("VerifyAny error = %v, want %v", err, tc.wantErr)
			}
			if err == nil {
				if s.KeyID != inRing.ShortID {
					t.Fatalf("verified by %+v", s)
				}
				return
			}
			assertContains(t, err.Error(), tc.wantMsg...)
		})
	}
}

// TestRealUnsignedPackage checks that an rpmpack package without rpmsign has neither header signature tag, which
// is what makes VerifyAny report ErrUnsigned in production.
func TestRealUnsignedPackage(t *testing.T) {
	p := extract(t, testrpm.WriteFile(t, t.TempDir(), testrpm.Spec{Name: "unsigned"}))
	if len(p.sigs) != 0 {
		t.Fatalf("unsigned package has signature tags %v", keysOf(p.sigs))
	}
	kr := keyringOf(t, newEntity(t, "any", "ed25519", nil))
	if _, err := kr.VerifyAny(p.header, p.packets()); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("VerifyAny error = %v, want ErrUnsigned", err)
	}
}

func keysOf(m map[int][]byte) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	return out
}
