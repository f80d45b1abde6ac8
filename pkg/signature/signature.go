// Package signature owns the OpenPGP side of the signature policy: it loads keyrings of armored public keys and
// verifies an rpm header signature (tags 268 RSAHEADER / 267 DSAHEADER) over the exact header bytes it signs, and
// a header+payload signature (tags 1002 PGP / 1005 GPG) over the file range it signs, the way `rpmkeys -K` does.
// Policy applies the rule of which signatures must cover what to an inspected package (rpmmeta.Package); the rest
// takes bytes and knows nothing of the rpm file format. No HTTP, no logging.
package signature

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Sentinel errors. Every error Verify, VerifyAny and Inspect return wraps exactly one of them (Policy.Judge: one, or
// none for a failure to read the package file), with a one-line message that names the key ids involved, so
// callers match with errors.Is and may show the message to a client.
var (
	// ErrUnsigned: the package carries no signature packet at all.
	ErrUnsigned = errors.New("package is not signed")
	// ErrUnknownKey: the signature is well formed but was made by a key that is not in the keyring.
	ErrUnknownKey = errors.New("signed by a key not in the keyring")
	// ErrBadSignature: a key in the keyring claims the signature but it does not verify (the signed bytes or the
	// signature were altered), or the key may not vouch for it (revoked, expired when signing).
	ErrBadSignature = errors.New("signature does not verify")
	// ErrUnparsable: the bytes are not a signature packet this package understands (corrupt, a v5/v6 packet, an
	// unknown algorithm, a rejected hash such as MD5, or not a binary-document signature, so not one of a header).
	ErrUnparsable = errors.New("unparsable signature")
	// ErrUncovered: the package's signatures leave part of it unsigned. A header-only signature (tags 267/268)
	// covers the payload only through the header's SHA-256 payload digest, which packages built by rpm < 4.14
	// lack; such a package needs a header+payload signature (tags 1002/1005).
	ErrUncovered = errors.New("signature does not cover the payload")
)

// Signer describes who made a signature that verified. For a signature made by a subkey, KeyID and LongKeyID are
// the subkey's (what rpm prints), while Fingerprint and UserID are the primary key's (what an admin recognises in
// the keyring file).
type Signer struct {
	// KeyID is the signing key's id as `rpm -K` prints it: the last 8 hex digits, lower-case.
	KeyID string
	// LongKeyID is the signing key's full 64-bit key id, 16 lower-case hex digits.
	LongKeyID string
	// Fingerprint is the primary key's fingerprint in lower-case hex (40 digits for a v4 key).
	Fingerprint string
	// UserID is the primary key's primary user id, e.g. "CI <ci@example.com>".
	UserID string
	// Created is when the signature says it was made; zero in Keyring.Keys.
	Created time.Time
}

// String returns "KEYID (UserID)" for log lines.
func (s Signer) String() string {
	return fmt.Sprintf("%s (%s)", s.KeyID, s.UserID)
}

// Keyring is a set of trusted OpenPGP public keys. It is immutable after LoadKeyring and safe for concurrent use.
type Keyring struct {
	entities openpgp.EntityList
}

// Keys describes the primary keys in the keyring, in file order, for the start-up log.
func (k *Keyring) Keys() []Signer {
	out := make([]Signer, 0, len(k.entities))
	for _, e := range k.entities {
		out = append(out, describe(e, e.PrimaryKey, time.Time{}))
	}
	return out
}

// Verify checks that sigPacket (the raw value of header tag 268 or 267: exactly one OpenPGP signature packet, v3
// or v4) is a valid signature over signed (the header bytes from HeaderRange) by a key in the keyring. The error
// wraps ErrUnknownKey, ErrBadSignature or ErrUnparsable.
func (k *Keyring) Verify(signed, sigPacket []byte) (Signer, error) {
	sig, err := parse(sigPacket)
	if err != nil {
		return Signer{}, err
	}
	return k.verify(section(signed), sig)
}

// section makes in-memory signed bytes readable like a range of a file.
func section(b []byte) *io.SectionReader {
	return io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b)))
}

// VerifyAny judges a package by all its header signature packets, as rpm does when a package carries several
// (rpm ≥ 4.20 can add one with a newer algorithm next to the classic one):
//   - no packets: ErrUnsigned;
//   - any packet by a key in the keyring that does not verify: ErrBadSignature, even when another verifies,
//     because it is evidence of tampering;
//   - otherwise the first one that verifies decides, and packets we cannot parse or whose keys we do not hold
//     are ignored;
//   - if none verifies: ErrUnknownKey naming every unknown key, or ErrUnparsable when no packet could be parsed.
func (k *Keyring) VerifyAny(signed []byte, packets [][]byte) (Signer, error) {
	return k.verifyAny(section(signed), packets)
}

// verifyAny is VerifyAny over signed bytes that may be a range of a file (a header+payload signature signs up to
// the whole package); each packet's check reads them again from the start. A read error is returned as it is.
func (k *Keyring) verifyAny(signed *io.SectionReader, packets [][]byte) (Signer, error) {
	if len(packets) == 0 {
		return Signer{}, ErrUnsigned
	}
	var (
		found      bool
		signer     Signer
		unknown    []string
		unparsable []string
	)
	for _, p := range packets {
		sig, err := parse(p)
		if err != nil {
			unparsable = append(unparsable, strings.TrimPrefix(err.Error(), ErrUnparsable.Error()+": "))
			continue
		}
		s, err := k.verify(signed, sig)
		switch {
		case err == nil:
			if !found {
				found, signer = true, s
			}
		case errors.Is(err, ErrUnknownKey):
			unknown = append(unknown, sig.describeIssuer())
		default:
			return Signer{}, err
		}
	}
	switch {
	case found:
		return signer, nil
	case len(unknown) > 0:
		return Signer{}, fmt.Errorf("%w: %s", ErrUnknownKey, strings.Join(unknown, "; "))
	default:
		return Signer{}, fmt.Errorf("%w: %s", ErrUnparsable, strings.Join(unparsable, "; "))
	}
}

// Inspect reads the issuer of a signature packet without verifying it, for packages accepted unsigned-or-signed
// (require_signature: false) whose signer is only logged. It returns the full 16-hex key id, lower-case: the short
// form rpm prints is its last 8 digits, and short ids collide too easily to be recorded on their own.
func Inspect(sigPacket []byte) (keyID string, err error) {
	sig, err := parse(sigPacket)
	if err != nil {
		return "", err
	}
	return longID(sig.keyID), nil
}

// verify checks a parsed signature against every candidate key with its issuer key id. More than one candidate is
// possible (64-bit ids can collide, and a key may sit in two files); any one that verifies suffices.
func (k *Keyring) verify(signed *io.SectionReader, sig *parsedSig) (Signer, error) {
	keys := k.candidates(sig)
	if len(keys) == 0 {
		return Signer{}, fmt.Errorf("%w: %s", ErrUnknownKey, sig.describeIssuer())
	}
	var lastErr error
	for _, key := range keys {
		if err := sig.check(key.PublicKey, signed); err != nil {
			var re *readError
			if errors.As(err, &re) {
				return Signer{}, err
			}
			lastErr = err
			continue
		}
		if err := usable(key, sig.created); err != nil {
			return Signer{}, fmt.Errorf("%w: key %s: %v", ErrBadSignature, shortID(sig.keyID), err)
		}
		return describe(key.Entity, key.PublicKey, sig.created), nil
	}
	return Signer{}, fmt.Errorf("%w: key %s (%s): %v", ErrBadSignature, shortID(sig.keyID), longID(sig.keyID), lastErr)
}

// candidates returns the keys that may have made sig: a primary key or subkey with the issuer key id (and the
// issuer fingerprint, when the packet carries one) that is allowed to sign.
func (k *Keyring) candidates(sig *parsedSig) []openpgp.Key {
	var out []openpgp.Key
	for _, key := range k.entities.KeysById(sig.keyID) {
		if sig.fingerprint != nil && !equalBytes(sig.fingerprint, key.PublicKey.Fingerprint) {
			continue
		}
		if !key.PublicKey.PubKeyAlgo.CanSign() {
			continue
		}
		// Key flags are optional in old keys (many rpm signing keys predate them): no flags means "any use", as
		// rpm reads it. When flags are present, they must allow signing.
		if self := key.SelfSignature; self != nil && self.FlagsValid && !self.FlagSign {
			continue
		}
		// go-crypto keeps a subkey only with a verified binding signature (and the cross-signature a signing
		// subkey needs), so a subkey here really belongs to its primary.
		out = append(out, key)
	}
	return out
}

// usable reports why a key that produced a valid signature may not vouch for it. Revocation counts at any time.
// Expiry counts at the signature's creation time, not now: rpm repositories keep old packages, and rpm itself
// accepts a signature made before the key expired (CentOS 6's key expired in 2021; its packages still verify).
func usable(key openpgp.Key, created time.Time) error {
	now := time.Now()
	e := key.Entity
	primarySelf, _ := e.PrimarySelfSignature()
	if e.Revoked(now) {
		return errors.New("primary key is revoked")
	}
	if key.PublicKey != e.PrimaryKey && key.Revoked(now) {
		return errors.New("subkey is revoked")
	}
	if primarySelf != nil && e.PrimaryKey.KeyExpired(primarySelf, created) {
		return errors.New("primary key had expired when the signature was made")
	}
	if key.PublicKey != e.PrimaryKey && key.SelfSignature != nil && key.PublicKey.KeyExpired(key.SelfSignature, created) {
		return errors.New("subkey had expired when the signature was made")
	}
	return nil
}

// describe builds a Signer for the key pk of entity e.
func describe(e *openpgp.Entity, pk *packet.PublicKey, created time.Time) Signer {
	s := Signer{
		KeyID:       shortID(pk.KeyId),
		LongKeyID:   longID(pk.KeyId),
		Fingerprint: fmt.Sprintf("%x", e.PrimaryKey.Fingerprint),
		Created:     created,
	}
	if id := e.PrimaryIdentity(); id != nil {
		s.UserID = id.Name
	}
	return s
}

// shortID is the key id as rpm prints it: the last 8 hex digits.
func shortID(id uint64) string { return fmt.Sprintf("%08x", uint32(id)) }

// longID is the full 64-bit key id in 16 hex digits.
func longID(id uint64) string { return fmt.Sprintf("%016x", id) }

// equalBytes avoids importing bytes for one comparison of public values (no constant time needed).
func equalBytes(a, b []byte) bool { return string(a) == string(b) }
