package testsign

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// TestSignRPM checks each algorithm end to end with rpm itself: the key ids NewKey reports are the ones rpm
// prints, the signed package verifies against the exported public key, and a second NewKey call reuses the
// generated key.
func TestSignRPM(t *testing.T) {
	need(t, "rpmkeys")
	// NISTP256 is left out: rpm 4.18 cannot make ECDSA signatures (TestSignBytes covers that key).
	for _, algo := range []string{RSA2048, Ed25519, Subkey} {
		t.Run(algo, func(t *testing.T) {
			k := NewKey(t, algo)
			if again := NewKey(t, algo); again.Fingerprint != k.Fingerprint || again.Home == k.Home {
				t.Fatalf("second NewKey: fingerprint %s home %s, want the same key in a new home", again.Fingerprint, again.Home)
			}
			if len(k.Fingerprint) != 40 || len(k.KeyID) != 16 || !strings.HasSuffix(k.KeyID, k.ShortID) {
				t.Fatalf("bad ids: %+v", k)
			}
			if (algo == Subkey) == strings.HasSuffix(k.Fingerprint, k.KeyID) {
				t.Fatalf("KeyID %s vs primary fingerprint %s: want the subkey's id only for Subkey", k.KeyID, k.Fingerprint)
			}
			pkg := testrpm.WriteFile(t, t.TempDir(), testrpm.Spec{Name: "signed-" + algo})
			k.SignRPM(t, pkg)
			root := t.TempDir()
			if out, err := exec.Command("rpmkeys", "--root", root, "--import", k.ExportArmored(t)).CombinedOutput(); err != nil {
				t.Fatalf("rpmkeys --import: %v\n%s", err, out)
			}
			out, err := exec.Command("rpmkeys", "--root", root, "-Kv", pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("rpmkeys -Kv: %v\n%s", err, out)
			}
			if want := "key ID " + k.ShortID + ": OK"; !strings.Contains(string(out), want) {
				t.Fatalf("rpmkeys -Kv output lacks %q:\n%s", want, out)
			}
		})
	}
}

// TestDetachSign checks the detached signature with gpg, and that it fails once the file changes.
func TestDetachSign(t *testing.T) {
	k := NewKey(t, Ed25519)
	f := filepath.Join(t.TempDir(), "repomd.xml")
	if err := os.WriteFile(f, []byte("<repomd/>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	asc := k.DetachSign(t, f)
	if asc != f+".asc" {
		t.Fatalf("DetachSign returned %s", asc)
	}
	if out, err := gpg(k.Home, "--verify", asc, f).run(); err != nil {
		t.Fatalf("gpg --verify: %v\n%s", err, out)
	}
	if err := os.WriteFile(f, []byte("<repomd>changed</repomd>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := gpg(k.Home, "--verify", asc, f).run(); err == nil {
		t.Fatalf("gpg --verify accepted a changed file:\n%s", out)
	}
}

// TestSignBytes checks that SignBytes makes one binary signature packet that gpg verifies over the data.
func TestSignBytes(t *testing.T) {
	k := NewKey(t, NISTP256)
	dir := t.TempDir()
	data, sig := filepath.Join(dir, "data"), filepath.Join(dir, "data.sig")
	if err := os.WriteFile(data, []byte("header bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := k.SignBytes(t, []byte("header bytes"))
	// 0x88/0x89 old-format or 0xc2 new-format signature packet tags.
	if len(b) == 0 || (b[0] != 0x88 && b[0] != 0x89 && b[0] != 0xc2) {
		t.Fatalf("SignBytes returned % x, want a signature packet", b[:min(len(b), 4)])
	}
	if err := os.WriteFile(sig, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := gpg(k.Home, "--verify", sig, data).run(); err != nil {
		t.Fatalf("gpg --verify: %v\n%s", err, out)
	}
}

func TestUnknownAlgorithm(t *testing.T) {
	if m := generate("dsa512"); m.err == nil || !strings.Contains(m.err.Error(), "unknown algorithm") {
		t.Fatalf("generate(dsa512) error = %v", m.err)
	}
}
