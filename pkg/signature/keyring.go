package signature

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// maxKeyFileSize bounds one keyring file. Exported public keys are a few KiB (a key with many third-party
// signatures perhaps a few hundred); a bigger file is a wrong path, not a keyring.
const maxKeyFileSize = 16 << 20

// armorBegin starts every armored block; a file may hold several, e.g. two `gpg --export --armor` outputs
// concatenated.
var armorBegin = []byte("-----BEGIN PGP ")

// LoadKeyring reads armored OpenPGP public keys from files: each file holds one or more armored blocks (as
// `gpg --export --armor` writes them, possibly concatenated), each block one or more keys. Loading is strict,
// because a key silently skipped is a package wrongly refused later: a file that cannot be read, holds no key, holds
// a key go-crypto cannot read, or holds a private key is an error naming the file.
func LoadKeyring(files []string) (*Keyring, error) {
	if len(files) == 0 {
		return nil, errors.New("keyring: no key files given")
	}
	var all openpgp.EntityList
	for _, f := range files {
		ents, err := loadFile(f)
		if err != nil {
			return nil, fmt.Errorf("keyring %s: %w", f, err)
		}
		all = append(all, ents...)
	}
	return &Keyring{entities: all}, nil
}

// loadFile reads every armored block of one file.
func loadFile(name string) (openpgp.EntityList, error) {
	f, err := os.Open(name)
	if err != nil {
		// LoadKeyring names the file already; keep the cause (still errors.Is(err, fs.ErrNotExist)).
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err
		}
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxKeyFileSize)
	}
	var ents openpgp.EntityList
	blocks := 0
	for rest := data; ; {
		i := bytes.Index(rest, armorBegin)
		if i < 0 {
			break
		}
		rest = rest[i:]
		blocks++
		// armor.Decode reads through its own buffer, so each block gets a fresh reader over the remaining
		// bytes rather than sharing one reader across blocks.
		got, err := decodeBlock(rest)
		if err != nil {
			return nil, fmt.Errorf("armored block %d: %w", blocks, err)
		}
		ents = append(ents, got...)
		rest = rest[len(armorBegin):]
	}
	if blocks == 0 {
		return nil, errors.New("no armored OpenPGP block (export the key with gpg --export --armor KEYID)")
	}
	return ents, nil
}

// decodeBlock decodes the armored block at the start of b and reads its keys one entity at a time, so that an
// entity go-crypto rejects is reported instead of skipped (openpgp.ReadKeyRing skips it silently).
func decodeBlock(b []byte) (openpgp.EntityList, error) {
	block, err := armor.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	switch block.Type {
	case openpgp.PublicKeyType:
	case openpgp.PrivateKeyType:
		return nil, errors.New("holds a PRIVATE key: export only the public key (gpg --export --armor KEYID), and treat this private key as exposed")
	default:
		// A signature block or a message in the keyring is a mix-up worth stopping for.
		return nil, fmt.Errorf("%q is not a public key block", block.Type)
	}
	// Reading the body to the end makes armor check the CRC before any key is trusted.
	body, err := io.ReadAll(block.Body)
	if err != nil {
		return nil, err
	}
	var ents openpgp.EntityList
	packets := packet.NewReader(bytes.NewReader(body))
	for {
		e, err := openpgp.ReadEntity(packets)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", len(ents)+1, err)
		}
		if e.PrivateKey != nil {
			return nil, errors.New("holds a private key packet: export only the public key")
		}
		ents = append(ents, e)
	}
	if len(ents) == 0 {
		return nil, errors.New("no public key in the block")
	}
	return ents, nil
}
