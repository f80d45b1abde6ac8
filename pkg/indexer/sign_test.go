package indexer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
)

// fakeSigner records each Sign call and what the file system looked like at
// that moment, then writes "sig:" plus the signed file's content as the
// signature (unless told to fail or to lie).
type fakeSigner struct {
	repo      string // the repository, to see what is published while signing
	err       error  // returned instead of signing
	skipWrite bool   // report success without writing a signature
	calls     []signCall
}

type signCall struct {
	file       string
	content    string // of the file being signed
	ascExisted bool   // a <file>.asc was already there
	published  string // repo/repodata/repomd.xml at that moment
}

func (f *fakeSigner) Sign(_ context.Context, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	_, aerr := os.Lstat(file + signatureSuffix)
	pub, _ := os.ReadFile(filepath.Join(f.repo, "repodata", "repomd.xml"))
	f.calls = append(f.calls, signCall{file: file, content: string(b), ascExisted: aerr == nil, published: string(pub)})
	if f.err != nil {
		return f.err
	}
	if f.skipWrite {
		return nil
	}
	return os.WriteFile(file+signatureSuffix, append([]byte("sig:"), b...), 0o644)
}

// carryingScript stands in for createrepo_c 0.17.3 where the signature
// matters: it builds the new generation in <out>/.repodata and renames it
// over <out>/repodata (so, unlike a write through prepareOutput's hard links,
// the published files are never modified in place), and like the real tool
// it copies a repomd.xml.asc found in the previous repodata/ into the new
// one. The new repomd.xml is "new <n>", n counting the runs.
const carryingScript = `set -eu
for a; do :; done
out=$a
prev=
for a; do [ "$prev" = --outputdir ] && out=$a; prev=$a; done
n=$(cat "$out/../.runs" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" >"$out/../.runs"
mkdir "$out/.repodata"
[ -e "$out/repodata/repomd.xml.asc" ] && cp -p "$out/repodata/repomd.xml.asc" "$out/.repodata/"
printf 'new %s' "$n" >"$out/.repodata/repomd.xml"
rm -rf "$out/repodata"
mv "$out/.repodata" "$out/repodata"
`

// carryingCreaterepo returns a Createrepo running carryingScript.
func carryingCreaterepo(t *testing.T) *Createrepo {
	t.Helper()
	c := testCreaterepo(t, []string{"sh", "-c", carryingScript, "fake-createrepo"})
	c.Log = zaptest.NewLogger(t)
	return c
}

// seedSignedGeneration publishes a previous, signed generation by hand.
func seedSignedGeneration(t *testing.T, repo string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(repo, "repodata"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"repomd.xml": "old", "repomd.xml.asc": "sig:old"} {
		if err := os.WriteFile(filepath.Join(repo, "repodata", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCreaterepoSignsBetweenCommandAndPublish(t *testing.T) {
	repo := mkRepo(t, t.TempDir(), "r", DirtyMarker)
	seedSignedGeneration(t, repo)
	c := carryingCreaterepo(t)
	s := &fakeSigner{repo: repo}
	c.Signer = s
	if err := c.Run(t.Context(), repo); err != nil {
		t.Fatal(err)
	}
	if len(s.calls) != 1 {
		t.Fatalf("%d Sign calls, want 1", len(s.calls))
	}
	call := s.calls[0]
	if want := filepath.Join(repo, outputDir, "repodata", "repomd.xml"); call.file != want {
		t.Errorf("signed %s, want %s (the new generation, before the swap)", call.file, want)
	}
	// After the command: the file signed is the one the command wrote.
	if call.content != "new 1" {
		t.Errorf("signed %q, want the command's new repomd.xml", call.content)
	}
	// Before the publish: the old generation was still the visible one.
	if call.published != "old" {
		t.Errorf("published repomd.xml while signing = %q, want the old one", call.published)
	}
	if call.ascExisted {
		t.Error("the previous generation's signature was still in the output when signing started")
	}
	// Published together: the new repomd.xml and its own signature.
	md := readString(t, filepath.Join(repo, "repodata", "repomd.xml"))
	if md != call.content {
		t.Fatalf("published repomd.xml %q, want the signed one", md)
	}
	if got := readString(t, filepath.Join(repo, "repodata", "repomd.xml.asc")); got != "sig:"+md {
		t.Fatalf("published signature %q, want the new repomd.xml's", got)
	}
	for _, gone := range []string{outputDir, IndexingMarker} {
		if exists(t, filepath.Join(repo, gone)) {
			t.Errorf("%s left after a successful run", gone)
		}
	}
}

func TestCreaterepoSignFailureKeepsOldMetadata(t *testing.T) {
	errSign := errors.New("card removed")
	tests := []struct {
		name    string
		signer  *fakeSigner
		wantErr string
	}{
		{"signer fails", &fakeSigner{err: errSign}, "card removed"},
		{"signer writes no signature", &fakeSigner{skipWrite: true}, "signer reported success"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := mkRepo(t, t.TempDir(), "r", DirtyMarker)
			seedSignedGeneration(t, repo)
			c := carryingCreaterepo(t)
			tc.signer.repo = repo
			c.Signer = tc.signer
			err := c.Run(t.Context(), repo)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "sign metadata") {
				t.Fatalf("err = %v, want a signing error containing %q", err, tc.wantErr)
			}
			if tc.signer.err != nil && !errors.Is(err, tc.signer.err) {
				t.Errorf("err = %v does not wrap the signer's error", err)
			}
			if got := readString(t, filepath.Join(repo, "repodata", "repomd.xml")); got != "old" {
				t.Errorf("published repomd.xml = %q, want the old one", got)
			}
			if got := readString(t, filepath.Join(repo, "repodata", "repomd.xml.asc")); got != "sig:old" {
				t.Errorf("published signature = %q, want the old one", got)
			}
			if exists(t, filepath.Join(repo, outputDir)) {
				t.Error("output directory left after a failed signature")
			}
			// The claimed marker stays, so the retry (or Recover after a
			// crash) runs again.
			if !exists(t, filepath.Join(repo, IndexingMarker)) {
				t.Error("indexing marker removed after a failed run")
			}
		})
	}
}

func TestCreaterepoUnsignedDropsStaleSignature(t *testing.T) {
	// Signing was on for the previous generation and is off now: an old
	// signature next to the new repomd.xml would make every repo_gpgcheck
	// client fail forever, so none is published.
	repo := mkRepo(t, t.TempDir(), "r")
	seedSignedGeneration(t, repo)
	c := carryingCreaterepo(t)
	if err := c.Run(t.Context(), repo); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, filepath.Join(repo, "repodata", "repomd.xml")); got != "new 1" {
		t.Fatal("new generation not published")
	}
	if exists(t, filepath.Join(repo, "repodata", "repomd.xml.asc")) {
		t.Fatal("the previous generation's repomd.xml.asc was published with the new repomd.xml")
	}
}

// requireGPG fails the test when gpg is missing.
func requireGPG(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"gpg", "gpgconf"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not on PATH (%v): run `make deps` to install the test dependencies (Debian: gnupg)", tool, err)
		}
	}
}

// gpgCmd runs gpg with home as its home directory and returns its combined
// output, failing the test on an error.
func gpgCmd(t *testing.T, home string, args ...string) string {
	t.Helper()
	out, err := exec.Command("gpg", append([]string{"--batch", "--homedir", home}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("gpg %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// newGPGHome makes a GnuPG home in a temporary directory and stops the
// gpg-agent it starts when the test ends.
func newGPGHome(t *testing.T) string {
	t.Helper()
	requireGPG(t)
	home := filepath.Join(t.TempDir(), "gnupg")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run() })
	return home
}

// newKey generates an RSA 2048 signing key (with passphrase, or none if
// empty) in a new GnuPG home and returns the home and the key's fingerprint.
func newKey(t *testing.T, passphrase string) (home, fpr string) {
	t.Helper()
	home = newGPGHome(t)
	gpgCmd(t, home, "--pinentry-mode", "loopback", "--passphrase", passphrase,
		"--quick-gen-key", "T <t@example.invalid>", "rsa2048", "sign", "never")
	for _, line := range strings.Split(gpgCmd(t, home, "--with-colons", "--list-secret-keys"), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			return home, f[9]
		}
	}
	t.Fatal("no fingerprint listed for the new key")
	return "", ""
}

// verify checks sig over file with gpg, trusting only the armored public key
// in keyFile (imported into a fresh home), and returns gpg's error.
func verify(t *testing.T, keyFile, sig, file string) error {
	t.Helper()
	home := newGPGHome(t)
	gpgCmd(t, home, "--import", keyFile)
	out, err := exec.Command("gpg", "--batch", "--homedir", home, "--verify", sig, file).CombinedOutput()
	if err != nil {
		return errors.New(string(out))
	}
	return nil
}

func TestGPGSign(t *testing.T) {
	home, fpr := newKey(t, "")
	file := filepath.Join(t.TempDir(), "repomd.xml")
	if err := os.WriteFile(file, []byte("<repomd/>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A stale signature is replaced, not appended to.
	if err := os.WriteFile(file+".asc", []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := NewGPG(home, fpr).Sign(t.Context(), file); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file + ".asc")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("signature mode %v, want 0644", fi.Mode().Perm())
	}
	key := filepath.Join(t.TempDir(), "key.asc")
	if err := ExportPublicKey(t.Context(), home, fpr, key); err != nil {
		t.Fatal(err)
	}
	if err := verify(t, key, file+".asc", file); err != nil {
		t.Fatalf("gpg --verify: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(file))
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want repomd.xml and its .asc only (no temporary files)", len(entries))
	}
}

func TestGPGSignErrors(t *testing.T) {
	home, fpr := newKey(t, "")
	locked, lockedFpr := newKey(t, "s3cret")
	// Forget the passphrase the key generation left in the agent's cache:
	// a daemon started later finds the key locked.
	if out, err := exec.Command("gpgconf", "--homedir", locked, "--kill", "gpg-agent").CombinedOutput(); err != nil {
		t.Fatalf("gpgconf --kill: %v\n%s", err, out)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "repomd.xml")
	if err := os.WriteFile(file, []byte("<repomd/>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name     string
		gpg      *GPG
		ctx      context.Context
		file     string
		exitCode int // of the *RunError; 0: not a *RunError
		want     []string
	}{
		{"unknown key", NewGPG(home, "0123456789ABCDEF0123456789ABCDEF01234567"), t.Context(), file, 2,
			[]string{"No secret key", "--list-secret-keys", "sign " + file}},
		{"key locked by a passphrase", NewGPG(locked, lockedFpr), t.Context(), file, 2,
			[]string{"signing failed", "must be unlocked in gpg-agent"}},
		{"missing file", NewGPG(home, fpr), t.Context(), filepath.Join(dir, "absent.xml"), 2,
			[]string{"absent.xml"}},
		{"gpg not installed", &GPG{Home: home, KeyID: fpr, Program: filepath.Join(dir, "no-gpg")}, t.Context(), file, -1,
			[]string{"no-gpg"}},
		{"cancelled", NewGPG(home, fpr), cancelled, file, -1, []string{"context canceled"}},
		{"no key id", NewGPG(home, ""), t.Context(), file, 0, []string{"no key id"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.gpg.Sign(tc.ctx, tc.file)
			if err == nil {
				t.Fatal("Sign succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			var re *RunError
			if got := errors.As(err, &re); got != (tc.exitCode != 0) || (got && re.ExitCode != tc.exitCode) {
				t.Errorf("err = %#v, want a *RunError with exit code %d", err, tc.exitCode)
			}
			if exists(t, tc.file+".asc") {
				t.Error("a signature file was written by a failed Sign")
			}
		})
	}
	if !errors.Is(NewGPG(home, fpr).Sign(cancelled, file), context.Canceled) {
		t.Error("a cancelled Sign does not wrap context.Canceled")
	}
}

func TestExportPublicKey(t *testing.T) {
	home, fpr := newKey(t, "")
	top := t.TempDir()
	dst := filepath.Join(top, DefaultPublicKeyName)
	// An older export (a rotated key) is replaced.
	if err := os.WriteFile(dst, []byte("old key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ExportPublicKey(t.Context(), home, fpr, dst); err != nil {
		t.Fatal(err)
	}
	b := readString(t, dst)
	if !strings.HasPrefix(b, armorPublicKey) {
		t.Fatalf("exported %q, want an armored public key", b[:min(len(b), 60)])
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 (nginx serves it)", fi.Mode().Perm())
	}
	if strings.Contains(b, "PRIVATE") {
		t.Fatal("the export contains a private key")
	}
	if imp := gpgCmd(t, newGPGHome(t), "--import", dst); !strings.Contains(imp, "imported: 1") {
		t.Fatalf("the exported file does not import one key:\n%s", imp)
	}
	if entries, _ := os.ReadDir(top); len(entries) != 1 {
		t.Errorf("%d entries in the top directory, want only the key (no temporary files)", len(entries))
	}
}

func TestExportPublicKeyErrors(t *testing.T) {
	home, fpr := newKey(t, "")
	top := t.TempDir()
	tests := []struct {
		name  string
		home  string
		keyID string
		dst   string
		want  []string
	}{
		{"unknown key", home, "0123456789ABCDEF0123456789ABCDEF01234567", filepath.Join(top, "k1"),
			[]string{"exported nothing", "--list-secret-keys", home}},
		{"no key id", home, "", filepath.Join(top, "k2"), []string{"no key id"}},
		{"missing destination dir", home, fpr, filepath.Join(top, "absent", "k3"), []string{"absent"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ExportPublicKey(t.Context(), tc.home, tc.keyID, tc.dst)
			if err == nil {
				t.Fatal("ExportPublicKey succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if exists(t, tc.dst) {
				t.Error("destination written by a failed export")
			}
		})
	}
	if entries, _ := os.ReadDir(top); len(entries) != 0 {
		t.Errorf("failed exports left %d files behind", len(entries))
	}
}

// signedRepoquery lists the package names dnf sees in repo when it checks
// repomd.xml's signature against keyFile (repo_gpgcheck=1; gpgcheck=0, the
// test packages are unsigned). -y accepts the key import dnf asks for: dnf
// keeps repository keys in the cache's per-repo keyring, not in the rpmdb.
// skip_if_unavailable=False makes a refused repository an error: by default
// dnf only warns and lists nothing.
func signedRepoquery(t *testing.T, repo, keyFile string) ([]string, error) {
	t.Helper()
	cmd := exec.Command("dnf", "-y", "-q", "repoquery",
		"--setopt=reposdir=/dev/null", "--setopt=cachedir="+t.TempDir(), "--installroot="+t.TempDir(),
		"--releasever=9", "--repofrompath=t,file://"+repo, "--repo=t",
		"--setopt=t.repo_gpgcheck=1", "--setopt=t.gpgkey=file://"+keyFile, "--setopt=t.gpgcheck=0",
		"--setopt=t.skip_if_unavailable=False", "--setopt=t.metadata_expire=0",
		"-a", "--qf", "%{name}")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, errors.New(stderr.String() + stdout.String())
	}
	names := strings.Fields(stdout.String())
	slices.Sort(names)
	return names, nil
}

func TestRealSignedRepository(t *testing.T) {
	requireTools(t)
	home, fpr := newKey(t, "")
	top := t.TempDir()
	repo := filepath.Join(top, "9", "x86_64")
	key := filepath.Join(top, DefaultPublicKeyName)
	if err := ExportPublicKey(t.Context(), home, fpr, key); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(repo, "repodata", "repomd.xml")
	c := testCreaterepo(t, DefaultCommand())
	c.Signer = NewGPG(home, fpr)

	// Two generations: the second must carry its own signature, not the
	// first one's (createrepo_c copies unknown files such as repomd.xml.asc
	// from the previous repodata/).
	for i, name := range []string{"alpha", "bravo"} {
		addRPM(t, repo, name)
		if err := c.Run(t.Context(), repo); err != nil {
			t.Fatalf("generation %d: %v", i+1, err)
		}
		if err := verify(t, key, md+".asc", md); err != nil {
			t.Fatalf("generation %d: gpg --verify of the published pair: %v", i+1, err)
		}
		// zypper's place for the key (issue 18 item 20): published with the signature, the configured key,
		// and good for gpg --verify on its own.
		if got, want := readString(t, md+".key"), readString(t, key); got != want {
			t.Fatalf("generation %d: repodata/repomd.xml.key = %q, want the configured key %q", i+1, got, want)
		}
		if err := verify(t, md+".key", md+".asc", md); err != nil {
			t.Fatalf("generation %d: gpg --verify with repodata/repomd.xml.key: %v", i+1, err)
		}
		got, err := signedRepoquery(t, repo, key)
		if err != nil {
			t.Fatalf("generation %d: dnf refused the signed repository: %v", i+1, err)
		}
		if want := []string{"alpha", "bravo"}[:i+1]; !slices.Equal(got, want) {
			t.Fatalf("generation %d: repoquery = %v, want %v", i+1, got, want)
		}
	}

	// A different key in gpgkey=: dnf must refuse, or the checks above
	// prove nothing about the signature.
	otherHome, otherFpr := newKey(t, "")
	otherKey := filepath.Join(t.TempDir(), "other.asc")
	if err := ExportPublicKey(t.Context(), otherHome, otherFpr, otherKey); err != nil {
		t.Fatal(err)
	}
	if got, err := signedRepoquery(t, repo, otherKey); err == nil {
		t.Fatalf("dnf accepted a repository signed by another key: %v", got)
	}

	// Tampering after signing: one space inside repomd.xml, signature kept.
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(b, []byte("</repomd>"), []byte(" </repomd>"), 1)
	if bytes.Equal(tampered, b) {
		t.Fatal("repomd.xml has no </repomd> to tamper with")
	}
	if err := os.WriteFile(md, tampered, 0o644); err != nil {
		t.Fatal(err)
	}
	if verify(t, key, md+".asc", md) == nil {
		t.Fatal("gpg --verify accepted the tampered repomd.xml")
	}
	got, err := signedRepoquery(t, repo, key)
	if err == nil {
		t.Fatalf("dnf accepted the tampered repository: %v", got)
	}
	if !strings.Contains(err.Error(), "GPG signature verification error") {
		t.Fatalf("dnf refused for another reason than the signature: %v", err)
	}

	// Signing turned off: the real createrepo_c copies the previous
	// repomd.xml.asc into the new generation, and it must not be published.
	c.Signer = nil
	addRPM(t, repo, "charlie")
	if err := c.Run(t.Context(), repo); err != nil {
		t.Fatal(err)
	}
	if exists(t, md+".asc") {
		t.Fatal("a stale repomd.xml.asc was published with unsigned metadata")
	}
	if exists(t, md+".key") {
		t.Fatal("a stale repomd.xml.key was published with unsigned metadata")
	}
	if got := repoquery(t, repo); !slices.Equal(got, []string{"alpha", "bravo", "charlie"}) {
		t.Fatalf("unsigned repoquery = %v", got)
	}
}

func TestGPGEmptyHomeUsesGNUPGHOME(t *testing.T) {
	// gpg_home left out of the config: gpg's own default applies, which an
	// admin may point elsewhere with GNUPGHOME in the unit's environment.
	home, fpr := newKey(t, "")
	t.Setenv("GNUPGHOME", home)
	file := filepath.Join(t.TempDir(), "repomd.xml")
	if err := os.WriteFile(file, []byte("<repomd/>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := NewGPG("", fpr).Sign(t.Context(), file); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "key.asc")
	if err := ExportPublicKey(t.Context(), "", fpr, key); err != nil {
		t.Fatal(err)
	}
	if err := verify(t, key, file+".asc", file); err != nil {
		t.Fatalf("gpg --verify: %v", err)
	}
}

// updateinfoXML is one security advisory for alpha, as an errata tool writes it.
const updateinfoXML = `<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update from="security@example.invalid" status="stable" type="security" version="1">
    <id>TEST-2026-0001</id>
    <title>alpha: security fix</title>
    <issued date="2026-01-01 00:00:00"/>
    <severity>Important</severity>
    <description>Fixes a flaw in alpha.</description>
    <pkglist><collection short="test"><name>test</name>
      <package name="alpha" version="1.0" release="1.el9" epoch="0" arch="x86_64"><filename>alpha-1.0-1.el9.x86_64.rpm</filename></package>
    </collection></pkglist>
  </update>
</updates>
`

// compsXML is one package group.
const compsXML = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE comps PUBLIC "-//Red Hat, Inc.//DTD Comps info//EN" "comps.dtd">
<comps>
  <group>
    <id>our-tools</id>
    <name>Our Tools</name>
    <description>Tools we build</description>
    <default>false</default>
    <uservisible>true</uservisible>
    <packagelist><packagereq type="mandatory">alpha</packagereq></packagelist>
  </group>
</comps>
`

// TestRealKeepsHandAddedMetadata (issue 18 item 10): an updateinfo and a comps group file added with the real
// modifyrepo_c survive the daemon's next runs (createrepo_c --update --keep-all-metadata through --outputdir and the
// RENAME_EXCHANGE swap), are covered by the new signature, and dnf sees the group and the advisory.
func TestRealKeepsHandAddedMetadata(t *testing.T) {
	requireTools(t)
	if _, err := exec.LookPath("modifyrepo_c"); err != nil {
		t.Fatalf("modifyrepo_c not on PATH (%v): install createrepo-c", err)
	}
	home, fpr := newKey(t, "")
	top := t.TempDir()
	repo := filepath.Join(top, "9", "x86_64")
	key := filepath.Join(top, DefaultPublicKeyName)
	if err := ExportPublicKey(t.Context(), home, fpr, key); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(repo, "repodata", "repomd.xml")
	// The command an existing configuration has (no --keep-all-metadata): the daemon adds the flag itself.
	c := testCreaterepo(t, []string{"createrepo_c", "--update", "--no-database", "--error-exit-val", "--retain-old-md-by-age=10m"})
	c.Signer = NewGPG(home, fpr)
	addRPM(t, repo, "alpha")
	if err := c.Run(t.Context(), repo); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for name, text := range map[string]string{"updateinfo.xml": updateinfoXML, "comps.xml": compsXML} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"--mdtype=updateinfo", filepath.Join(src, "updateinfo.xml")},
		{"--mdtype=group", filepath.Join(src, "comps.xml")},
	} {
		if out, err := exec.Command("modifyrepo_c", append(args, filepath.Join(repo, "repodata"))...).CombinedOutput(); err != nil {
			t.Fatalf("modifyrepo_c %v: %v\n%s", args, err, out)
		}
	}
	for i, name := range []string{"bravo", "charlie"} { // two more generations
		addRPM(t, repo, name)
		if err := c.Run(t.Context(), repo); err != nil {
			t.Fatal(err)
		}
		repomd := readString(t, md)
		for _, typ := range []string{`type="updateinfo"`, `type="group"`} {
			if !strings.Contains(repomd, typ) {
				t.Fatalf("generation %d: repomd.xml lost %s:\n%s", i+2, typ, repomd)
			}
		}
		if err := verify(t, key, md+".asc", md); err != nil {
			t.Fatalf("generation %d: gpg --verify: %v", i+2, err)
		}
	}
	dnf := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("dnf", append([]string{"-q", "--setopt=reposdir=/dev/null", "--setopt=cachedir=" + t.TempDir(),
			"--installroot=" + t.TempDir(), "--releasever=9", "--repofrompath=t,file://" + repo, "--repo=t",
			"--setopt=t.repo_gpgcheck=1", "--setopt=t.gpgkey=file://" + key, "--setopt=t.gpgcheck=0", "-y"}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("dnf %v: %v\n%s%s", args, err, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	if out := dnf("group", "list", "--hidden"); !strings.Contains(out, "Our Tools") {
		t.Errorf("dnf group list does not show the group:\n%s", out)
	}
	if out := dnf("repoquery", "--advisory=TEST-2026-0001", "--qf", "%{name}"); strings.TrimSpace(out) != "alpha" {
		t.Errorf("dnf repoquery --advisory=TEST-2026-0001 = %q, want alpha", out)
	}
}
