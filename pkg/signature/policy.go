package signature

// Policy is a repository's signature rule (repo.require_signature, repo.keyring). With Require, a package must
// carry a header signature that verifies against Keyring; without, signatures are only read, so that who signed
// can be logged and reported. It is immutable and safe for concurrent use.
type Policy struct {
	Keyring *Keyring // required when Require is set
	Require bool
}

// Judge returns the 16-hex key id of the package's signer, or "" for an unsigned package a lax policy accepts,
// or the reason to refuse the package (wrapping ErrUnsigned, ErrUnknownKey, ErrBadSignature or ErrUnparsable).
// header is the exact main-header bytes the packets (signature tags 267 and 268) sign.
func (p Policy) Judge(header []byte, packets [][]byte) (signedBy string, err error) {
	if p.Require {
		s, err := p.Keyring.VerifyAny(header, packets)
		return s.LongKeyID, err
	}
	for _, pk := range packets {
		if id, err := Inspect(pk); err == nil {
			return id, nil
		}
	}
	return "", nil
}
