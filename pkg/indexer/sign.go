package indexer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/durable"
)

// DefaultPublicKeyName is the file, in the top directory, that main exports
// the signing key's public half to, so nginx (and serve_repo) publish it next
// to the repositories for clients' gpgkey= setting.
const DefaultPublicKeyName = "RPM-GPG-KEY-rpm-ingestd"

// signatureSuffix names a detached signature next to the file it signs:
// repomd.xml.asc is what dnf's repo_gpgcheck fetches.
const signatureSuffix = ".asc"

// keySuffix names the armored public key next to repomd.xml: repomd.xml.key
// is where zypper (and other SUSE-convention clients) look for the key of a
// signed repository added without a .repo file (`zypper ar URL`).
const keySuffix = ".key"

// armorSignature is how an armored detached signature starts; anything else
// on gpg's stdout means it did not produce one.
const armorSignature = "-----BEGIN PGP SIGNATURE-----"

// armorPublicKey is how an armored public key export starts.
const armorPublicKey = "-----BEGIN PGP PUBLIC KEY BLOCK-----"

// maxGPGOutput caps what is kept of gpg's stdout (a signature or a public
// key export; both are a few KiB, a key with many signatures some 100 KiB),
// so a misbehaving gpg cannot make the daemon buffer without bound.
const maxGPGOutput = 4 << 20

// Signer makes a detached signature of a metadata file. Sign writes
// <file>.asc, an armored detached OpenPGP signature of file, replacing any
// existing one, or returns an error and leaves no <file>.asc it wrote
// partially. It may block until ctx is done; implementations must be safe
// for concurrent use on different files (the scheduler runs repositories in
// parallel).
type Signer interface {
	Sign(ctx context.Context, file string) error
}

// PublicKeyer is implemented by a Signer that can give the armored public key
// its signatures verify with. Createrepo publishes it as
// repodata/repomd.xml.key in the same swap as repomd.xml.asc.
type PublicKeyer interface {
	PublicKey(ctx context.Context) ([]byte, error)
}

// GPG is the production Signer: it runs the real gpg from PATH against the
// admin's GnuPG home directory, so whatever that home is set up with (a key
// on disk, a gpg-agent holding an unlocked key, a smartcard or an HSM behind
// scdaemon) works unchanged.
//
// It passes no passphrase options: a daemon cannot answer a prompt, and
// forcing a pinentry mode would also defeat an agent configured with a
// non-interactive pinentry. A key that needs a passphrase must therefore be
// unlocked in the agent beforehand (gpg-preset-passphrase); otherwise the
// pinentry gpg-agent starts fails at once without a terminal, and the error
// says so. Should a pinentry wait instead, the run's timeout cancels it.
//
// GPG holds no state between calls but the exported public key (read once,
// see PublicKey), so it is safe for concurrent use; the gpg processes share
// the home's agent, which serialises what it must.
type GPG struct {
	// Home is gpg's --homedir (the admin's GNUPGHOME for the daemon user);
	// empty leaves the choice to gpg ($GNUPGHOME, else ~/.gnupg).
	Home string
	// KeyID selects the signing key (-u): a fingerprint is best; gpg picks
	// the key's signing subkey if it has one.
	KeyID string
	// Program is the gpg binary; empty means "gpg" from PATH.
	Program string
	// KillDelay is the exec.Cmd.WaitDelay after SIGTERM on cancellation;
	// zero means DefaultKillDelay.
	KillDelay time.Duration

	keyMu sync.Mutex
	key   []byte // the armored public key once exported
}

var (
	_ Signer      = (*GPG)(nil)
	_ PublicKeyer = (*GPG)(nil)
)

// PublicKey returns the armored public key of KeyID (`gpg --export --armor`),
// exported once and then kept: the key id cannot change while the daemon
// runs. A key id gpg exports nothing for is an error.
func (g *GPG) PublicKey(ctx context.Context) ([]byte, error) {
	g.keyMu.Lock()
	defer g.keyMu.Unlock()
	if g.key != nil {
		return g.key, nil
	}
	if g.KeyID == "" {
		return nil, errors.New("export public key: no key id configured")
	}
	key, err := g.run(ctx, "--export", "--armor", "--", g.KeyID)
	if err != nil {
		return nil, fmt.Errorf("export public key %s: %w", g.KeyID, err)
	}
	if !bytes.HasPrefix(key, []byte(armorPublicKey)) {
		return nil, fmt.Errorf("export public key %s: gpg exported nothing: no such key in the GnuPG home %q "+
			"(list the keys with `%s` and set key_id to a fingerprint from it)",
			g.KeyID, g.Home, listKeysCommand(g.Home))
	}
	g.key = key
	return key, nil
}

// NewGPG returns a GPG signing with keyID from the GnuPG home gpgHome.
func NewGPG(gpgHome, keyID string) *GPG {
	return &GPG{Home: gpgHome, KeyID: keyID, KillDelay: DefaultKillDelay}
}

// Sign runs `gpg --batch --homedir Home --detach-sign --armor -u KeyID
// --output - file` and writes the signature to file.asc atomically (temp
// file, fsync, rename). gpg writes to stdout rather than to the .asc itself
// so that a gpg killed on cancellation can never leave a truncated signature
// under the final name. A failure is a *RunError (exit code, output tail)
// wrapped with a hint on how to make the key usable.
func (g *GPG) Sign(ctx context.Context, file string) error {
	if g.KeyID == "" {
		return errors.New("sign: no key id configured")
	}
	sig, err := g.run(ctx, "--detach-sign", "--armor", "--local-user", g.KeyID, "--output", "-", "--", file)
	if err != nil {
		return fmt.Errorf("sign %s with key %s: %w; %s", file, g.KeyID, err, g.hint())
	}
	if !bytes.HasPrefix(sig, []byte(armorSignature)) {
		return fmt.Errorf("sign %s with key %s: gpg wrote no armored signature (%d bytes)", file, g.KeyID, len(sig))
	}
	return writeFileAtomic(file+signatureSuffix, sig, 0o644)
}

// hint tells the operator the two usual causes of a signing failure.
func (g *GPG) hint() string {
	return fmt.Sprintf("check that the secret key is listed by `%s %s`; "+
		"a key with a passphrase must be unlocked in gpg-agent beforehand (gpg-preset-passphrase), "+
		"because the daemon cannot answer a passphrase prompt", listKeysCommand(g.Home), g.KeyID)
}

// listKeysCommand is the command an operator runs to see the usable keys.
func listKeysCommand(home string) string {
	if home == "" {
		return "gpg --list-secret-keys"
	}
	return "gpg --homedir " + home + " --list-secret-keys"
}

// run runs gpg with --batch and --homedir plus args and returns its stdout.
func (g *GPG) run(ctx context.Context, args ...string) ([]byte, error) {
	prog := g.Program
	if prog == "" {
		prog = "gpg"
	}
	argv := []string{prog, "--batch"}
	if g.Home != "" {
		argv = append(argv, "--homedir", g.Home)
	}
	return runTool(ctx, append(argv, args...), g.KillDelay)
}

// ExportPublicKey writes the armored public key keyID from the GnuPG home
// gpgHome to dst (`gpg --export --armor KEYID`), atomically and mode 0644, so
// a client fetching it during a restart sees the old or the new key, never a
// truncated one. main calls it at start with <top_dir>/RPM-GPG-KEY-rpm-ingestd.
// An unknown key id is an error naming the command that lists the keys: gpg
// itself exits 0 after "WARNING: nothing exported".
func ExportPublicKey(ctx context.Context, gpgHome, keyID, dst string) error {
	if keyID == "" {
		return errors.New("export public key: no key id configured")
	}
	g := &GPG{Home: gpgHome, KeyID: keyID}
	key, err := g.PublicKey(ctx)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(dst, key, 0o644); err != nil {
		return fmt.Errorf("export public key %s: %w", keyID, err)
	}
	return nil
}

// signOutput is Createrepo.Run's step between createrepo_c and the swap: it
// makes out/repodata/repomd.xml.asc match the new repomd.xml, or makes sure
// there is none. The old generation's signature must go in any case:
// prepareOutput seeds it by hard link, and createrepo_c 0.17.3 also copies
// unknown files of the previous repodata/ into the new one, so without this
// the previous signature would be published next to a new repomd.xml, which
// every repo_gpgcheck client rejects (or, with signing turned off, keeps
// rejecting forever).
//
// With a Signer that is a PublicKeyer it also writes the public key to
// out/repodata/repomd.xml.key (zypper's place for it), so the key and the
// signature are published by the same swap; the previous generation's key
// file goes like its signature, and none is published unsigned.
func (c *Createrepo) signOutput(ctx context.Context, out string) error {
	md := filepath.Join(out, "repodata", "repomd.xml")
	asc := md + signatureSuffix
	for _, f := range []string{asc, md + keySuffix} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove previous signature: %w", err)
		}
	}
	if c.Signer == nil {
		return nil
	}
	if err := c.Signer.Sign(ctx, md); err != nil {
		return fmt.Errorf("sign metadata: %w", err)
	}
	// Trust but verify the contract: publishing unsigned metadata while
	// signing is on would break every repo_gpgcheck client.
	if _, err := os.Stat(asc); err != nil {
		return fmt.Errorf("sign metadata: signer reported success but %w", err)
	}
	if pk, ok := c.Signer.(PublicKeyer); ok {
		key, err := pk.PublicKey(ctx)
		if err != nil {
			return fmt.Errorf("sign metadata: %w", err)
		}
		if err := writeFileAtomic(md+keySuffix, key, 0o644); err != nil {
			return fmt.Errorf("sign metadata: %w", err)
		}
	}
	return nil
}

// runTool runs argv as a child of the daemon (see startTool) and returns its stdout, capped at maxGPGOutput;
// stderr is kept as the output tail of the *RunError returned on failure.
func runTool(ctx context.Context, argv []string, killDelay time.Duration) ([]byte, error) {
	stdout := &capBuffer{max: maxGPGOutput}
	err := startTool(ctx, argv, killDelay, stdout)
	if err == nil && stdout.over {
		err = &RunError{Argv: argv, ExitCode: 0, Err: fmt.Errorf("output exceeds %d bytes", maxGPGOutput)}
	}
	if err != nil {
		return nil, err
	}
	return stdout.Bytes(), nil
}

// capBuffer is a bytes.Buffer that keeps at most max bytes and remembers
// that it dropped some; it never fails a write, so the child is not killed
// by EPIPE before its exit status tells what happened.
type capBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *capBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := b.max - b.Len(); len(p) > room {
		p = p[:max(room, 0)]
		b.over = true
	}
	b.Buffer.Write(p)
	return n, nil
}

// writeFileAtomic writes data to path through a hidden temporary file in the
// same directory (fsync, chmod, rename, directory fsync), so readers see the
// old content or the new, never a partial file. The temporary name does not
// end in ".rpm" (createrepo_c indexes hidden *.rpm files) and is removed on
// every error path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+strings.TrimPrefix(base, ".")+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		// CreateTemp makes 0600; clients (through nginx) must read it.
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return durable.SyncDir(dir)
}
