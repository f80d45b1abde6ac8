package signature

import (
	"crypto"
	"errors"
	"testing"
)

// FuzzParseSignature feeds arbitrary bytes as a header signature tag, as a hostile upload can. Inspect, Verify and
// VerifyAny must never panic, every error must wrap one of the package's sentinels, and Inspect and Verify must
// agree on what is parseable. The seed corpus in testdata/fuzz/FuzzParseSignature holds real packets (rpmsign
// v4 RSA and EdDSA, CentOS v3 DSA and RSA) and replays as an ordinary test; seeds added here reach the
// cryptographic checks with keys in the keyring.
func FuzzParseSignature(f *testing.F) {
	rsaKey := newEntity(f, "fuzz-rsa", "rsa", nil)
	edKey := newEntity(f, "fuzz-ed", "ed25519", nil)
	kr := keyringOf(f, rsaKey, edKey)
	for _, seed := range [][]byte{
		sign(f, rsaKey, data, sigOpts{}),
		sign(f, edKey, data, sigOpts{}),
		v3Sign(f, rsaKey, data, 8, crypto.SHA256),
		v3Sign(f, rsaKey, data, 2, crypto.SHA1),
		{0xc2, 0x01, 0x06},
		{},
	} {
		f.Add(seed)
	}
	sentinels := []error{ErrUnknownKey, ErrBadSignature, ErrUnparsable}
	f.Fuzz(func(t *testing.T, sig []byte) {
		id, inspectErr := Inspect(sig)
		s, verifyErr := kr.Verify(data, sig)
		if (inspectErr != nil) != errors.Is(verifyErr, ErrUnparsable) {
			t.Fatalf("Inspect error %v but Verify error %v", inspectErr, verifyErr)
		}
		if inspectErr == nil && len(id) != 16 {
			t.Fatalf("Inspect key id %q", id)
		}
		if verifyErr == nil && (s.KeyID == "" || s.Fingerprint == "") {
			t.Fatalf("Verify succeeded with an empty Signer %+v", s)
		}
		if verifyErr != nil && !isOneOf(verifyErr, sentinels) {
			t.Fatalf("Verify error %v wraps no sentinel", verifyErr)
		}
		_, anyErr := kr.VerifyAny(data, [][]byte{sig, sig})
		if (anyErr == nil) != (verifyErr == nil) {
			t.Fatalf("VerifyAny error %v, Verify error %v", anyErr, verifyErr)
		}
		if anyErr != nil && !isOneOf(anyErr, sentinels) {
			t.Fatalf("VerifyAny error %v wraps no sentinel", anyErr)
		}
	})
}

// isOneOf reports whether err wraps one of targets.
func isOneOf(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
