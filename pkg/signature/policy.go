package signature

import (
	"errors"
	"fmt"
	"io"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
)

// Policy is a repository's signature rule (repo.require_signature, repo.keyring). With Require, a package must
// carry signatures that verify against Keyring and together cover the whole file; without, a package passes
// either way, and only a signature that verifies against Keyring (when there is one) names a signer. It is
// immutable and safe for concurrent use.
type Policy struct {
	Keyring *Keyring // required when Require is set; optional otherwise
	Require bool
}

// Judge decides on the package p, whose file (the bytes Inspect verified, read from offset 0) is file. It returns
// the 16-hex key id of a signer verified against the keyring by the rule below, or, when there is none and the
// policy does not require one, the key id the package's first readable signature claims, unverified ("" when
// unsigned). With Require, a package that fails the rule is refused: the error wraps ErrUnsigned,
// ErrUnknownKey, ErrBadSignature, ErrUnparsable or ErrUncovered. An error reading file wraps none of them.
//
// The rule, so that "signed" means the signature covers the whole package, as for `rpmkeys -K`:
//   - every kind of signature the package carries must verify, as rpm checks them all: header signatures (tags
//     267/268) over the header bytes (VerifyAny), header+payload signatures (tags 1002 PGP / 1005 GPG, written
//     by rpm < 4.16 and by `rpmsign --rpmv3`) over the file range [HeaderStart, Size), streamed from file;
//   - a package with a SHA-256 payload digest (rpm >= 4.14; Inspect checked the payload against it) is covered by
//     a header signature alone: the header signature covers the payload through the digest;
//   - a package without a SHA-256 payload digest whose only signatures are header signatures is refused with
//     ErrUncovered: its payload is covered only by the MD5 in the unsigned signature header, which anyone can
//     rewrite.
func (p Policy) Judge(pkg *rpmmeta.Package, file io.ReaderAt) (signedBy, claimed string, err error) {
	if p.Keyring == nil {
		if p.Require {
			return "", "", errors.New("signature policy: require_signature without a keyring")
		}
		return "", claimedKey(pkg), nil
	}
	s, err := p.Keyring.judge(pkg, file)
	var re *readError
	switch {
	case err == nil:
		return s.LongKeyID, "", nil
	case p.Require || errors.As(err, &re):
		return "", "", err
	}
	return "", claimedKey(pkg), nil
}

// judge applies the rule of Policy.Judge with this keyring.
func (k *Keyring) judge(pkg *rpmmeta.Package, file io.ReaderAt) (Signer, error) {
	header, whole := packets(pkg.HeaderSigs), packets(pkg.LegacySigs)
	switch {
	case len(header) == 0 && len(whole) == 0:
		return Signer{}, ErrUnsigned
	case len(whole) == 0 && pkg.PayloadChecked != "sha256":
		return Signer{}, fmt.Errorf("%w: the package has no SHA-256 payload digest (built by rpm older than 4.14), so its header signature (tag %d) leaves the payload unsigned, and it has no header+payload signature (tag 1002 or 1005): rebuild it with rpm 4.14 or later and sign it again",
			ErrUncovered, pkg.HeaderSigs[0].Tag)
	}
	// Every signature the package carries must verify, as rpm checks them all on install: a bad header+payload
	// signature beside a good header signature makes `rpmkeys -K` say BAD and dnf refuse the package.
	var signer Signer
	if len(whole) > 0 {
		s, err := k.verifyAny(io.NewSectionReader(file, pkg.HeaderStart, pkg.Size-pkg.HeaderStart), whole)
		if err != nil {
			return Signer{}, fmt.Errorf("header+payload signature: %w", err)
		}
		signer = s
	}
	if len(header) > 0 {
		s, err := k.VerifyAny(pkg.HeaderBytes, header)
		if err != nil {
			return Signer{}, fmt.Errorf("header signature: %w", err)
		}
		if len(whole) == 0 {
			signer = s
		}
	}
	return signer, nil
}

// claimedKey is the key id the package's first readable signature names, header signatures first; "" when none.
func claimedKey(pkg *rpmmeta.Package) string {
	for _, sigs := range [][]rpmmeta.RawSig{pkg.HeaderSigs, pkg.LegacySigs} {
		for _, s := range sigs {
			if id, err := Inspect(s.Packet); err == nil {
				return id
			}
		}
	}
	return ""
}

// packets returns the raw packets of sigs.
func packets(sigs []rpmmeta.RawSig) [][]byte {
	out := make([][]byte, 0, len(sigs))
	for _, s := range sigs {
		out = append(out, s.Packet)
	}
	return out
}
