package rpmmeta

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// gpgHome is a throwaway GnuPG home for one test. Its agent is stopped when the test ends.
type gpgHome struct {
	t   *testing.T
	gpg string
	dir string
}

func newGPGHome(t *testing.T) *gpgHome {
	t.Helper()
	g := &gpgHome{t: t, gpg: requireTool(t, "gpg")}
	// gpg-agent's socket path must fit in sockaddr_un (108 bytes): a short directory under /tmp, not t.TempDir().
	dir, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	g.dir = dir
	t.Cleanup(func() {
		c := exec.Command("gpgconf", "--kill", "gpg-agent")
		c.Env = g.env()
		_ = c.Run() // best effort: the agent exits on its own when its socket disappears
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *gpgHome) env() []string { return append(os.Environ(), "GNUPGHOME="+g.dir) }

// run runs gpg in the home and returns its combined output; fail says whether an error fails the test.
func (g *gpgHome) run(fail bool, args ...string) (string, error) {
	g.t.Helper()
	c := exec.Command(g.gpg, append([]string{"--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
	c.Env = g.env()
	out, err := c.CombinedOutput()
	if err != nil && fail {
		g.t.Fatalf("gpg %v: %v\n%s", args, err, out)
	}
	return string(out), err
}

// genKey makes a signing key of the given algorithm ("rsa2048", "ed25519") and returns its fingerprint.
func (g *gpgHome) genKey(algo string) string {
	g.t.Helper()
	g.run(true, "--quick-gen-key", "T <t@example.invalid>", algo, "sign", "never")
	out, _ := g.run(true, "--with-colons", "--list-secret-keys")
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" {
			return f[9]
		}
	}
	g.t.Fatalf("no fingerprint in gpg output:\n%s", out)
	return ""
}

// verify reports whether gpg accepts packet as a signature of data by a key in the home.
func (g *gpgHome) verify(packet, data []byte) (string, error) {
	g.t.Helper()
	dir := g.t.TempDir()
	sig, dat := filepath.Join(dir, "sig"), filepath.Join(dir, "data")
	if err := os.WriteFile(sig, packet, 0o600); err != nil {
		g.t.Fatal(err)
	}
	if err := os.WriteFile(dat, data, 0o600); err != nil {
		g.t.Fatal(err)
	}
	return g.run(false, "--verify", sig, dat)
}

// TestSignatureMaterialRpmsign signs a package with the real rpmsign and checks what Inspect exposes for
// pkg/signature: HeaderBytes are the file's main header, their SHA-256 is signature tag 273, and the header
// signature in HeaderSigs verifies over them with gpg (and fails over a changed byte).
func TestSignatureMaterialRpmsign(t *testing.T) {
	rpmsign := requireTool(t, "rpmsign")
	// rpm 4.18 puts RSA header signatures in tag 268 and every other algorithm, EdDSA included, in 267 (checked with
	// rpm -qp --qf '%{DSAHEADER:pgpsig}'), so a verifier must look at both.
	for _, tc := range []struct {
		algo string
		tag  int
	}{{"rsa2048", sigTagRSA}, {"ed25519", sigTagDSA}} {
		t.Run(tc.algo, func(t *testing.T) {
			g := newGPGHome(t)
			fpr := g.genKey(tc.algo)
			path := testrpm.WriteFile(t, t.TempDir(), testrpm.Spec{Name: "signed", Release: "1.el9", Arch: "x86_64"})
			out, err := exec.Command(rpmsign, "--define", "_gpg_name "+fpr, "--define", "__gpg "+g.gpg,
				"--define", "_gpg_path "+g.dir, "--addsign", path).CombinedOutput()
			if err != nil {
				t.Fatalf("rpmsign: %v\n%s", err, out)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			p, err := inspectBytes(t, data)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}

			if !bytes.Equal(p.HeaderBytes, data[p.HeaderStart:p.HeaderEnd]) || p.HeaderEnd <= p.HeaderStart {
				t.Fatalf("HeaderBytes (%d bytes) are not the file range [%d,%d)", len(p.HeaderBytes), p.HeaderStart,
					p.HeaderEnd)
			}
			sum := sha256.Sum256(p.HeaderBytes)
			if got, want := hex.EncodeToString(sum[:]), sigTag273(t, data); got != want {
				t.Errorf("SHA-256 of HeaderBytes = %s, signature tag 273 = %s", got, want)
			}
			// rpm >= 4.16 writes the header signature only.
			if len(p.HeaderSigs) != 1 || p.HeaderSigs[0].Tag != tc.tag || len(p.HeaderSigs[0].Packet) == 0 ||
				len(p.LegacySigs) != 0 {
				t.Fatalf("HeaderSigs %v, LegacySigs %v; want one non-empty tag %d and no legacy signature",
					sigTags(p.HeaderSigs), sigTags(p.LegacySigs), tc.tag)
			}
			if out, err := g.verify(p.HeaderSigs[0].Packet, p.HeaderBytes); err != nil ||
				!strings.Contains(out, "Good signature") {
				t.Fatalf("gpg --verify of tag 268 over HeaderBytes: %v\n%s", err, out)
			}
			changed := append([]byte{}, p.HeaderBytes...)
			changed[len(changed)-1] ^= 1
			if out, err := g.verify(p.HeaderSigs[0].Packet, changed); err == nil {
				t.Fatalf("gpg --verify accepted a changed header:\n%s", out)
			}
		})
	}
}

// sigTag273 returns signature tag 273 (the hex SHA-256 of the main header) as rpm itself reads it.
func sigTag273(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.rpm")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(requireTool(t, "rpm"), "--dbpath", t.TempDir(), "-qp", "--qf", "%{SHA256HEADER}",
		path).Output()
	if err != nil || len(out) != 64 {
		t.Fatalf("rpm -qp SHA256HEADER: %v %q", err, out)
	}
	return string(out)
}

func sigTags(sigs []RawSig) []int {
	var tags []int
	for _, s := range sigs {
		tags = append(tags, s.Tag)
	}
	return tags
}

// TestSignatureMaterialLegacy: old packages carry header signatures (267/268) next to header+payload signatures
// (1002/1005), or only the latter. The EL7 package's signatures both verify with gpg and the CentOS 7 key: the
// header signature over HeaderBytes, the legacy one over the file from HeaderStart to the end.
func TestSignatureMaterialLegacy(t *testing.T) {
	tests := []struct {
		file             string
		header, legacy   []int
		verifyWithCentOS bool
	}{
		{"epel-release-7-5.noarch.rpm", []int{268}, []int{1002}, true},
		{"centos-release-5-0.0.el5.centos.2.x86_64.rpm", []int{267}, []int{1005}, false},
		{"centos-release-as-2.1AS-4.noarch.rpm", nil, []int{1005}, false},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data := readLegacy(t, tc.file)
			p, err := inspectBytes(t, data)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if got := sigTags(p.HeaderSigs); !equalInts(got, tc.header) {
				t.Errorf("HeaderSigs tags %v, want %v", got, tc.header)
			}
			if got := sigTags(p.LegacySigs); !equalInts(got, tc.legacy) {
				t.Errorf("LegacySigs tags %v, want %v", got, tc.legacy)
			}
			for _, s := range append(append([]RawSig{}, p.HeaderSigs...), p.LegacySigs...) {
				if len(s.Packet) == 0 {
					t.Errorf("tag %d: empty packet", s.Tag)
				}
			}
			if !bytes.Equal(p.HeaderBytes, data[p.HeaderStart:p.HeaderEnd]) {
				t.Errorf("HeaderBytes are not the file range [%d,%d)", p.HeaderStart, p.HeaderEnd)
			}
			if !tc.verifyWithCentOS {
				return
			}
			g := newGPGHome(t)
			g.run(true, "--import", filepath.Join(legacyDir, "RPM-GPG-KEY-CentOS-7"))
			if out, err := g.verify(p.HeaderSigs[0].Packet, p.HeaderBytes); err != nil {
				t.Errorf("gpg --verify of tag 268 over HeaderBytes: %v\n%s", err, out)
			}
			if out, err := g.verify(p.LegacySigs[0].Packet, data[p.HeaderStart:]); err != nil {
				t.Errorf("gpg --verify of tag 1002 over [HeaderStart, end): %v\n%s", err, out)
			}
			if out, err := g.verify(p.LegacySigs[0].Packet, data[p.HeaderEnd:]); err == nil {
				t.Errorf("gpg --verify of tag 1002 over the payload alone succeeded:\n%s", out)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSignatureTagWrongType: a signature tag that is present but not binary is refused, not treated as unsigned.
func TestSignatureTagWrongType(t *testing.T) {
	for _, tag := range []uint32{sigTagRSA, sigTagPGP} {
		data := readLegacy(t, "epel-release-7-5.noarch.rpm")
		setEntry(t, data, layoutOf(t, data).sig, tag, fieldType, typeChar)
		_, err := inspectBytes(t, data)
		if !errors.Is(err, ErrInvalidPackage) || !strings.Contains(err.Error(), "has type") {
			t.Errorf("tag %d retyped: Inspect error = %v, want ErrInvalidPackage about its type", tag, err)
		}
	}
}

// TestUnchanged: when the hashing pass reads other header bytes than the guard did (the file changed under
// Inspect), Inspect fails, and not with ErrInvalidPackage: the upload was not at fault.
func TestUnchanged(t *testing.T) {
	data := testrpm.Build(t, testrpm.Spec{Name: "u", Release: "1.el9", Arch: "x86_64"})
	lay := layoutOf(t, data)
	changed := append([]byte{}, data...)
	changed[lay.sig.start+introSize] ^= 1 // a signature index byte: covered by no digest
	for _, tc := range []struct {
		name    string
		file    []byte
		wantErr bool
	}{{"same", data, false}, {"changed", changed, true}} {
		sum, err := hashFile(bytes.NewReader(tc.file), lay.hdr.start, lay.hdr.end(), "", "")
		if err != nil {
			t.Fatal(err)
		}
		err = unchanged("p.rpm", &lay, sum)
		if (err != nil) != tc.wantErr || errors.Is(err, ErrInvalidPackage) {
			t.Errorf("%s: unchanged error = %v, want error %v and not ErrInvalidPackage", tc.name, err, tc.wantErr)
		}
	}
}
