// Package testsign makes OpenPGP keys with the real gpg and signs with the real rpmsign and gpg, for tests in any
// package. Keys are generated during the test run, never committed: each algorithm is generated once per test
// process (RSA 4096 takes seconds), kept in memory as exported bytes, and imported into a fresh private GNUPGHOME
// for every NewKey call, so tests do not share gpg state and nothing outlives the test. Production code must not
// import it.
package testsign

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Algorithms NewKey accepts.
const (
	RSA2048 = "rsa2048"
	RSA4096 = "rsa4096"
	Ed25519 = "ed25519"
	// NISTP256 is an ECDSA key on NIST P-256. rpm 4.18 cannot make or check ECDSA signatures ("Unsupported PGP
	// signature"), so SignRPM fails with it; use SignBytes over the header bytes instead.
	NISTP256 = "nistp256"
	// Subkey is an RSA 2048 primary key that may only certify, with an Ed25519 signing subkey: gpg and rpmsign
	// sign with the subkey.
	Subkey = "subkey"
)

// installHint is in every failure caused by a missing tool, so CI logs say what to do.
const installHint = "install gnupg and rpm (make deps)"

// Key is a generated key pair imported into a GNUPGHOME private to one test.
type Key struct {
	// Algo is the NewKey algorithm.
	Algo string
	// Home is the GNUPGHOME holding the secret key; removed when the test ends.
	Home string
	// Fingerprint is the primary key's fingerprint, 40 lower-case hex digits.
	Fingerprint string
	// KeyID is the full 16-hex key id of the key that signs (the subkey for Subkey), lower-case.
	KeyID string
	// ShortID is KeyID's last 8 digits: what `rpm -K` prints.
	ShortID string
	// UserID is the primary user id.
	UserID string

	public []byte // armored public key
}

// material is what generation produces once per algorithm and process.
type material struct {
	fingerprint, keyID, userID string
	public, secret             []byte
	err                        error
}

// cache holds one generated key per algorithm for the life of the test process. It is package state by necessity
// (the point is sharing across tests); it only ever grows and is guarded by mu.
var cache = struct {
	mu   sync.Mutex
	keys map[string]*material
	once map[string]*sync.Once
}{keys: map[string]*material{}, once: map[string]*sync.Once{}}

// NewKey returns a key of the given algorithm (RSA2048, RSA4096, Ed25519, NISTP256 or Subkey) in a fresh
// GNUPGHOME. Calls with the same algo in one process return the same key material.
func NewKey(t testing.TB, algo string) Key {
	t.Helper()
	need(t, "gpg")
	need(t, "gpgconf")
	cache.mu.Lock()
	once, ok := cache.once[algo]
	if !ok {
		once = new(sync.Once)
		cache.once[algo] = once
	}
	cache.mu.Unlock()
	// Generation runs outside mu, so two algorithms generate in parallel; once makes a second caller of the same
	// algorithm wait for the first.
	once.Do(func() {
		m := generate(algo)
		cache.mu.Lock()
		cache.keys[algo] = m
		cache.mu.Unlock()
	})
	cache.mu.Lock()
	m := cache.keys[algo]
	cache.mu.Unlock()
	if m.err != nil {
		t.Fatalf("testsign: generate %s key: %v", algo, m.err)
	}
	home := newHome(t)
	if out, err := gpg(home, "--import", "-").input(m.secret).run(); err != nil {
		t.Fatalf("testsign: import %s key: %v\n%s", algo, err, out)
	}
	return Key{
		Algo:        algo,
		Home:        home,
		Fingerprint: m.fingerprint,
		KeyID:       m.keyID,
		ShortID:     m.keyID[len(m.keyID)-8:],
		UserID:      m.userID,
		public:      m.public,
	}
}

// ExportArmored writes the armored public key (what `gpg --export --armor` writes) to a file in a fresh test
// directory and returns its path.
func (k Key) ExportArmored(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), k.Algo+".asc")
	if err := os.WriteFile(p, k.public, 0o644); err != nil {
		t.Fatalf("testsign: %v", err)
	}
	return p
}

// PublicArmored returns the armored public key bytes.
func (k Key) PublicArmored() []byte { return bytes.Clone(k.public) }

// SignRPM signs the package at path in place with the real `rpmsign --addsign`, which (rpm ≥ 4.16) writes the
// header-only signature into tag 268 (RSAHEADER; EdDSA and ECDSA go there too).
func (k Key) SignRPM(t testing.TB, path string) {
	t.Helper()
	need(t, "rpmsign")
	gpgPath, err := exec.LookPath("gpg")
	if err != nil {
		t.Fatalf("testsign: gpg not found: %s", installHint)
	}
	cmd := exec.Command("rpmsign",
		"--define", "_gpg_name "+k.Fingerprint,
		// Debian's rpm otherwise looks for gpg2 and fails.
		"--define", "__gpg "+gpgPath,
		"--define", "_gpg_path "+k.Home,
		"--addsign", path)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+k.Home)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testsign: rpmsign --addsign %s: %v\n%s", path, err, out)
	}
}

// SignBytes returns a binary detached signature of data made by the real gpg: one OpenPGP signature packet, which
// is exactly what rpmsign stores in tag 268 when data is the package's header.
func (k Key) SignBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	sig, err := gpg(k.Home, "--detach-sign", "-u", k.Fingerprint, "-o", "-").input(data).output()
	if err != nil {
		t.Fatalf("testsign: %v", err)
	}
	return sig
}

// DetachSign writes an armored detached signature of file to file+".asc" (what dnf's repo_gpgcheck reads for
// repomd.xml) and returns its path.
func (k Key) DetachSign(t testing.TB, file string) string {
	t.Helper()
	out := file + ".asc"
	if b, err := gpg(k.Home, "--yes", "--detach-sign", "--armor", "-u", k.Fingerprint, "-o", out, file).run(); err != nil {
		t.Fatalf("testsign: gpg --detach-sign %s: %v\n%s", file, err, b)
	}
	return out
}

// need fails the test when a tool is missing: a signing test that silently skipped would prove nothing.
func need(t testing.TB, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("testsign: %s not found in PATH: %s", tool, installHint)
	}
}

// newHome makes a GNUPGHOME for one test and stops its gpg-agent afterwards. os.MkdirTemp keeps the path short:
// gpg-agent's socket lives in the home when /run/user/UID is absent, and long t.TempDir paths overflow the 108-byte
// limit of a unix socket path.
func newHome(t testing.TB) string {
	t.Helper()
	home, err := os.MkdirTemp("", "tsg")
	if err != nil {
		t.Fatalf("testsign: %v", err)
	}
	t.Cleanup(func() {
		killAgent(home)
		os.RemoveAll(home)
	})
	return home
}

// killAgent stops the gpg-agent that gpg started for home, so test runs leave no daemons behind.
func killAgent(home string) {
	_ = exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
}

// generate makes one key of algo in a throw-away home and exports it. It returns errors in the material instead of
// failing a test because the first caller's test must not be blamed for, or be the only one to see, the failure.
func generate(algo string) *material {
	home, err := os.MkdirTemp("", "tsg")
	if err != nil {
		return &material{err: err}
	}
	defer func() {
		killAgent(home)
		os.RemoveAll(home)
	}()
	m := &material{userID: fmt.Sprintf("rpm-ingestd test %s <%s@example.invalid>", algo, algo)}
	primary, usage := algo, "sign"
	switch algo {
	case RSA2048, RSA4096, Ed25519, NISTP256:
	case Subkey:
		// The primary may only certify, so only the subkey can have made a data signature.
		primary, usage = RSA2048, "cert"
	default:
		return &material{err: fmt.Errorf("unknown algorithm %q", algo)}
	}
	if out, err := gpg(home, "--quick-gen-key", m.userID, primary, usage, "never").run(); err != nil {
		return &material{err: fmt.Errorf("%w\n%s", err, out)}
	}
	pub, _, err := listKeys(home)
	if err != nil {
		return &material{err: err}
	}
	m.fingerprint, m.keyID = pub.fpr, pub.keyID
	if algo == Subkey {
		if out, err := gpg(home, "--quick-add-key", m.fingerprint, Ed25519, "sign", "never").run(); err != nil {
			return &material{err: fmt.Errorf("add subkey: %w\n%s", err, out)}
		}
		_, subs, err := listKeys(home)
		if err != nil {
			return &material{err: err}
		}
		if len(subs) != 1 {
			return &material{err: fmt.Errorf("want one subkey, gpg lists %d", len(subs))}
		}
		m.keyID = subs[0].keyID
	}
	if m.public, err = gpg(home, "--export", "--armor", m.fingerprint).output(); err != nil {
		return &material{err: fmt.Errorf("export: %w", err)}
	}
	if m.secret, err = gpg(home, "--export-secret-keys", m.fingerprint).output(); err != nil {
		return &material{err: fmt.Errorf("export secret: %w", err)}
	}
	return m
}

// colonKey is one pub or sub record of `gpg --with-colons`.
type colonKey struct{ keyID, fpr string }

// listKeys parses `gpg --with-colons --fingerprint --list-keys`: a pub or sub record carries the key id in field 5
// and is followed by its fpr record with the fingerprint in field 10.
func listKeys(home string) (pub colonKey, subs []colonKey, err error) {
	out, err := gpg(home, "--with-colons", "--fingerprint", "--fingerprint", "--list-keys").output()
	if err != nil {
		return pub, nil, fmt.Errorf("list keys: %w", err)
	}
	var cur *colonKey
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ":")
		switch {
		case len(f) > 4 && f[0] == "pub":
			pub = colonKey{keyID: strings.ToLower(f[4])}
			cur = &pub
		case len(f) > 4 && f[0] == "sub":
			subs = append(subs, colonKey{keyID: strings.ToLower(f[4])})
			cur = &subs[len(subs)-1]
		case len(f) > 9 && f[0] == "fpr" && cur != nil:
			cur.fpr = strings.ToLower(f[9])
			cur = nil
		}
	}
	if pub.fpr == "" || len(pub.keyID) != 16 {
		return pub, nil, fmt.Errorf("no primary key in gpg output:\n%s", out)
	}
	return pub, subs, nil
}

// gpgCmd is a gpg invocation in batch mode against one home, with no passphrase prompts.
type gpgCmd struct{ cmd *exec.Cmd }

// gpg builds a batch gpg command for home.
func gpg(home string, args ...string) gpgCmd {
	base := []string{"--homedir", home, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}
	cmd := exec.Command("gpg", append(base, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	return gpgCmd{cmd}
}

// input sets stdin.
func (g gpgCmd) input(b []byte) gpgCmd { g.cmd.Stdin = bytes.NewReader(b); return g }

// run returns combined output, for error messages.
func (g gpgCmd) run() ([]byte, error) { return g.cmd.CombinedOutput() }

// output returns stdout, with stderr in the error.
func (g gpgCmd) output() ([]byte, error) {
	var stderr bytes.Buffer
	g.cmd.Stderr = &stderr
	out, err := g.cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("gpg %s: %w: %s", strings.Join(g.cmd.Args[1:], " "), err, stderr.Bytes())
	}
	return out, nil
}
