package signature

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// These tests use keys made by go-crypto, so that signatures with chosen times, types and versions can be built;
// real_test.go and centos_test.go cover what gpg, rpmsign and old rpm packages produce.

var data = []byte("the exact header bytes an rpm signature covers")

// t0 is a fixed key creation time for tests that need expiry.
var t0 = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// newEntity makes a key pair; algo is "rsa" (2048 bits) or "ed25519".
func newEntity(t testing.TB, name, algo string, cfg *packet.Config) *openpgp.Entity {
	t.Helper()
	if cfg == nil {
		cfg = &packet.Config{}
	}
	switch algo {
	case "rsa":
		cfg.Algorithm, cfg.RSABits = packet.PubKeyAlgoRSA, 2048
	case "ed25519":
		cfg.Algorithm = packet.PubKeyAlgoEdDSA
	default:
		t.Fatalf("unknown algo %s", algo)
	}
	e, err := openpgp.NewEntity(name, "", name+"@example.invalid", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// armored returns the armored public keys of ents in one block, as `gpg --export --armor A B` writes them.
func armored(t testing.TB, ents ...*openpgp.Entity) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := e.Serialize(w); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeFile writes b to a new file in a test directory and returns its path.
func writeFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// keyringOf loads a keyring holding ents, through a file as in production.
func keyringOf(t testing.TB, ents ...*openpgp.Entity) *Keyring {
	t.Helper()
	k, err := LoadKeyring([]string{writeFile(t, "keys.asc", armored(t, ents...))})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sigOpts tune sign.
type sigOpts struct {
	created time.Time // zero: now
	sigType packet.SignatureType
	key     *packet.PrivateKey // nil: the primary key
}

// sign makes a v4 signature packet over msg by e, with chosen creation time and type: openpgp.DetachSign would
// refuse an expired key and always uses the current time.
func sign(t testing.TB, e *openpgp.Entity, msg []byte, o sigOpts) []byte {
	t.Helper()
	priv := o.key
	if priv == nil {
		priv = e.PrivateKey
	}
	if o.created.IsZero() {
		o.created = time.Now()
	}
	id := priv.KeyId
	sig := &packet.Signature{
		SigType:      o.sigType,
		PubKeyAlgo:   priv.PubKeyAlgo,
		Hash:         crypto.SHA256,
		CreationTime: o.created,
		IssuerKeyId:  &id,
	}
	h := sha256.New()
	h.Write(msg)
	if err := sig.Sign(h, priv, nil); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := sig.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// v3Sign builds a version 3 RSA signature packet by hand (RFC 4880 5.2.2), as gpg 1.x with --force-v3-sigs made
// them for rpm: old-format packet header with a two-byte length.
func v3Sign(t testing.TB, e *openpgp.Entity, msg []byte, hashID byte, h crypto.Hash) []byte {
	t.Helper()
	rsaKey, ok := e.PrivateKey.PrivateKey.(*rsa.PrivateKey)
	if !ok {
		t.Fatal("v3Sign needs an RSA key")
	}
	var created [4]byte
	binary.BigEndian.PutUint32(created[:], uint32(time.Now().Unix()))
	hh := h.New()
	hh.Write(msg)
	hh.Write([]byte{0x00})
	hh.Write(created[:])
	digest := hh.Sum(nil)
	s, err := rsa.SignPKCS1v15(rand.Reader, rsaKey, h, digest)
	if err != nil {
		t.Fatal(err)
	}
	s = new(big.Int).SetBytes(s).Bytes() // an MPI has no leading zero bytes
	bits := new(big.Int).SetBytes(s).BitLen()
	body := []byte{3, 5, 0x00}
	body = append(body, created[:]...)
	body = binary.BigEndian.AppendUint64(body, e.PrimaryKey.KeyId)
	body = append(body, algoRSA, hashID, digest[0], digest[1], byte(bits>>8), byte(bits))
	body = append(body, s...)
	pkt := []byte{0x80 | tagSignature<<2 | 1, byte(len(body) >> 8), byte(len(body))}
	return append(pkt, body...)
}

// flip returns a copy of b with byte i inverted (negative i counts from the end).
func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	if i < 0 {
		i += len(c)
	}
	c[i] ^= 0xff
	return c
}

func TestVerify(t *testing.T) {
	rsaKey := newEntity(t, "rsa", "rsa", nil)
	edKey := newEntity(t, "ed", "ed25519", nil)
	stranger := newEntity(t, "stranger", "ed25519", nil)
	// A key that expired one hour after t0: signatures made before then stay valid.
	expiring := newEntity(t, "expiring", "ed25519", &packet.Config{Time: func() time.Time { return t0 }, KeyLifetimeSecs: 3600})
	revoked := newEntity(t, "revoked", "ed25519", nil)
	revokedSig := sign(t, revoked, data, sigOpts{})
	if err := revoked.RevokeKey(packet.KeyCompromised, "test", nil); err != nil {
		t.Fatal(err)
	}
	kr := keyringOf(t, rsaKey, edKey, expiring, revoked)

	rsaSig := sign(t, rsaKey, data, sigOpts{})
	tests := []struct {
		name    string
		signed  []byte
		sig     []byte
		wantErr error
		wantMsg []string // substrings of the error, or of Signer.String() on success
	}{
		{"rsa v4", data, rsaSig, nil, []string{shortID(rsaKey.PrimaryKey.KeyId), "rsa <rsa@example.invalid>"}},
		{"ed25519 v4", data, sign(t, edKey, data, sigOpts{}), nil, []string{shortID(edKey.PrimaryKey.KeyId)}},
		{"v3 rsa sha256", data, v3Sign(t, rsaKey, data, 8, crypto.SHA256), nil, []string{shortID(rsaKey.PrimaryKey.KeyId)}},
		{"v3 rsa sha512", data, v3Sign(t, rsaKey, data, 10, crypto.SHA512), nil, []string{shortID(rsaKey.PrimaryKey.KeyId)}},
		{"signed before expiry", data, sign(t, expiring, data, sigOpts{created: t0.Add(30 * time.Minute)}), nil, []string{"expiring"}},

		{"unknown key", data, sign(t, stranger, data, sigOpts{}), ErrUnknownKey,
			[]string{shortID(stranger.PrimaryKey.KeyId), "fingerprint " + hexOf(stranger.PrimaryKey.Fingerprint)}},
		{"v3 unknown key", data, v3Sign(t, newEntity(t, "v3stranger", "rsa", nil), data, 8, crypto.SHA256), ErrUnknownKey, []string{"key id "}},
		{"header byte flipped", flip(data, 3), rsaSig, ErrBadSignature, []string{shortID(rsaKey.PrimaryKey.KeyId)}},
		{"signature MPI flipped", data, flip(rsaSig, -1), ErrBadSignature, nil},
		{"v3 header byte flipped", flip(data, 0), v3Sign(t, rsaKey, data, 8, crypto.SHA256), ErrBadSignature, nil},
		{"v3 MPI flipped", data, flip(v3Sign(t, rsaKey, data, 8, crypto.SHA256), -1), ErrBadSignature, nil},
		{"signed after expiry", data, sign(t, expiring, data, sigOpts{created: t0.Add(2 * time.Hour)}), ErrBadSignature, []string{"expired"}},
		{"revoked key", data, revokedSig, ErrBadSignature, []string{"revoked"}},
		{"text signature", data, sign(t, edKey, data, sigOpts{sigType: packet.SigTypeText}), ErrUnparsable, []string{"0x01"}},
		{"v3 md5", data, v3Sign(t, rsaKey, data, 1, crypto.SHA256), ErrUnparsable, []string{"hash algorithm 1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := kr.Verify(tc.signed, tc.sig)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tc.wantErr)
			}
			msg := s.String()
			if err != nil {
				msg = err.Error()
			}
			assertContains(t, msg, tc.wantMsg...)
			if strings.Contains(msg, "\n") {
				t.Errorf("message spans lines: %q", msg)
			}
		})
	}
}

// TestSubkey checks that a subkey's signature verifies against its primary's keyring entry and reports the
// primary's fingerprint with the subkey's id.
func TestSubkey(t *testing.T) {
	e := newEntity(t, "primary", "ed25519", nil)
	if err := e.AddSigningSubkey(&packet.Config{Algorithm: packet.PubKeyAlgoEdDSA}); err != nil {
		t.Fatal(err)
	}
	// NewEntity already made an encryption subkey; the signing one is the last.
	sub := e.Subkeys[len(e.Subkeys)-1].PrivateKey
	kr := keyringOf(t, e)

	s, err := kr.Verify(data, sign(t, e, data, sigOpts{key: sub}))
	if err != nil {
		t.Fatal(err)
	}
	want := Signer{KeyID: shortID(sub.KeyId), LongKeyID: longID(sub.KeyId), Fingerprint: hexOf(e.PrimaryKey.Fingerprint), UserID: "primary <primary@example.invalid>"}
	s.Created = time.Time{}
	if s != want {
		t.Fatalf("Signer = %+v, want %+v", s, want)
	}
}

// TestKeyFlags checks the candidate filter: a key whose self-signature has key flags without "sign" is not a
// signer we trust, while a key without any key flags (common in old rpm signing keys) is.
func TestKeyFlags(t *testing.T) {
	tests := []struct {
		name      string
		flagsOK   bool // FlagsValid
		sign      bool // FlagSign
		wantError error
	}{
		{"flags allow signing", true, true, nil},
		{"flags forbid signing", true, false, ErrUnknownKey},
		{"no flags", false, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEntity(t, "flags", "ed25519", nil)
			sig := sign(t, e, data, sigOpts{})
			// Edit the parsed self-signature in memory: re-signing it with other flags is what a key owner would
			// do, and the filter reads only these fields.
			self, _ := e.PrimarySelfSignature()
			self.FlagsValid, self.FlagSign = tc.flagsOK, tc.sign
			kr := &Keyring{entities: openpgp.EntityList{e}}
			if _, err := kr.Verify(data, sig); !errors.Is(err, tc.wantError) {
				t.Fatalf("Verify error = %v, want %v", err, tc.wantError)
			}
		})
	}
}

func TestVerifyAny(t *testing.T) {
	known := newEntity(t, "known", "ed25519", nil)
	other := newEntity(t, "other", "ed25519", nil)
	third := newEntity(t, "third", "ed25519", nil)
	kr := keyringOf(t, known)
	good := sign(t, known, data, sigOpts{})
	bad := flip(good, -1)
	unknownA := sign(t, other, data, sigOpts{})
	unknownB := sign(t, third, data, sigOpts{})
	garbage := []byte{0xc2, 0x03, 6, 0, 0} // a v6 packet header, truncated: what we cannot parse
	v6ish := append([]byte{0xc2, 0x01}, 6)

	tests := []struct {
		name    string
		packets [][]byte
		wantErr error
		wantMsg []string
	}{
		{"good", [][]byte{good}, nil, nil},
		{"good then garbage", [][]byte{good, garbage}, nil, nil},
		{"garbage then good", [][]byte{v6ish, good}, nil, nil},
		{"unknown then good", [][]byte{unknownA, good}, nil, nil},
		{"no packets", nil, ErrUnsigned, []string{"package is not signed"}},
		{"only garbage", [][]byte{garbage, v6ish}, ErrUnparsable, []string{"version 6"}},
		{"two unknown keys", [][]byte{unknownA, garbage, unknownB}, ErrUnknownKey,
			[]string{shortID(other.PrimaryKey.KeyId), shortID(third.PrimaryKey.KeyId)}},
		{"good and bad", [][]byte{good, bad}, ErrBadSignature, []string{shortID(known.PrimaryKey.KeyId)}},
		{"bad and good", [][]byte{bad, good}, ErrBadSignature, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := kr.VerifyAny(data, tc.packets)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("VerifyAny error = %v, want %v", err, tc.wantErr)
			}
			if err == nil {
				if s.KeyID != shortID(known.PrimaryKey.KeyId) {
					t.Fatalf("Signer.KeyID = %s", s.KeyID)
				}
				return
			}
			assertContains(t, err.Error(), tc.wantMsg...)
		})
	}
}

func TestInspect(t *testing.T) {
	e := newEntity(t, "inspect", "rsa", nil)
	long := longID(e.PrimaryKey.KeyId)
	tests := []struct {
		name    string
		sig     []byte
		want    string
		wantErr error
	}{
		{"v4", sign(t, e, data, sigOpts{}), long, nil},
		{"v3", v3Sign(t, e, data, 8, crypto.SHA256), long, nil},
		{"empty", nil, "", ErrUnparsable},
		{"not a signature packet", []byte{0x99, 0x00, 0x01, 0x04}, "", ErrUnparsable},
		{"v6", []byte{0xc2, 0x01, 0x06}, "", ErrUnparsable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Inspect(tc.sig)
			if got != tc.want || !errors.Is(err, tc.wantErr) {
				t.Fatalf("Inspect = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestParseCorruptions feeds structural corruptions of valid v4 and v3 packets: each must be ErrUnparsable,
// never a panic, never accepted.
func TestParseCorruptions(t *testing.T) {
	e := newEntity(t, "corrupt", "rsa", nil)
	v4 := sign(t, e, data, sigOpts{})
	v3 := v3Sign(t, e, data, 8, crypto.SHA256)
	kr := keyringOf(t, e)
	withLen := func(b []byte, n int) []byte { // rewrite a v3 old-format two-byte length
		c := bytes.Clone(b)
		binary.BigEndian.PutUint16(c[1:3], uint16(n))
		return c
	}
	set := func(b []byte, i int, v byte) []byte { c := bytes.Clone(b); c[i] = v; return c }
	tests := []struct {
		name string
		sig  []byte
		want string
	}{
		{"one byte", v4[:1], "too short"},
		{"v4 truncated", v4[:len(v4)-1], "does not match"},
		{"v4 trailing byte", append(bytes.Clone(v4), 0), "does not match"},
		{"v3 truncated", v3[:len(v3)-5], "does not match"},
		{"v3 length short", withLen(v3[:len(v3)-5], len(v3)-8), "MPI truncated"},
		{"v3 trailing byte in body", withLen(append(bytes.Clone(v3), 0), len(v3)-2), "trailing"},
		{"v3 hashed length", set(v3, 4, 4), "hashed length"},
		{"v3 dsa algo", set(v3, 18, 99), "public key algorithm 99"},
		{"not a packet", set(v4, 0, 0x00), "header byte"},
		{"indeterminate length", set(v3, 0, 0x8b), "indeterminate"},
		{"version 2", set(v3, 3, 2), "version 2"},
		{"oversized", make([]byte, MaxPacketSize+1), "exceeds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kr.Verify(data, tc.sig)
			if !errors.Is(err, ErrUnparsable) {
				t.Fatalf("Verify error = %v, want ErrUnparsable", err)
			}
			assertContains(t, err.Error(), tc.want)
		})
	}
}

func TestLoadKeyring(t *testing.T) {
	a := newEntity(t, "a", "ed25519", nil)
	b := newEntity(t, "b", "ed25519", nil)
	var priv bytes.Buffer
	w, err := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	aArm, bArm := armored(t, a), armored(t, b)
	// Change one character in the middle of the base64 body: the CRC (or the packet parse) must catch it.
	corrupt := bytes.Clone(aArm)
	mid := bytes.Index(corrupt, []byte("\n\n")) + 10
	corrupt[mid] = map[bool]byte{true: 'B', false: 'A'}[corrupt[mid] == 'A']
	sigBlock := []byte("-----BEGIN PGP SIGNATURE-----\n\nwnUEABYKAB0WIQ==\n=AAAA\n-----END PGP SIGNATURE-----\n")

	tests := []struct {
		name     string
		files    map[string][]byte // nil value: the file does not exist
		wantKeys int
		wantMsg  []string // empty: success
	}{
		{"one key", map[string][]byte{"a.asc": aArm}, 1, nil},
		{"two keys in one block", map[string][]byte{"ab.asc": armored(t, a, b)}, 2, nil},
		{"two blocks concatenated", map[string][]byte{"ab.asc": append(bytes.Clone(aArm), bArm...)}, 2, nil},
		{"two files", map[string][]byte{"a.asc": aArm, "b.asc": bArm}, 2, nil},
		{"missing file", map[string][]byte{"nope.asc": nil}, 0, []string{"nope.asc", "no such file"}},
		{"empty file", map[string][]byte{"empty.asc": {}}, 0, []string{"empty.asc", "no armored"}},
		{"binary key", map[string][]byte{"bin.gpg": {0x99, 0x01}}, 0, []string{"bin.gpg", "no armored"}},
		{"private key", map[string][]byte{"secret.asc": priv.Bytes()}, 0, []string{"secret.asc", "PRIVATE"}},
		{"corrupt body", map[string][]byte{"bad.asc": corrupt}, 0, []string{"bad.asc"}},
		{"signature block", map[string][]byte{"sig.asc": sigBlock}, 0, []string{"sig.asc", "not a public key block"}},
		{"good then bad file", map[string][]byte{"a.asc": aArm, "z.asc": []byte("junk")}, 0, []string{"z.asc"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var files []string
			for name, b := range tc.files {
				p := filepath.Join(dir, name)
				files = append(files, p)
				if b != nil {
					if err := os.WriteFile(p, b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			kr, err := LoadKeyring(files)
			if len(tc.wantMsg) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if got := len(kr.Keys()); got != tc.wantKeys {
					t.Fatalf("%d keys, want %d", got, tc.wantKeys)
				}
				return
			}
			if err == nil {
				t.Fatal("LoadKeyring succeeded")
			}
			assertContains(t, err.Error(), tc.wantMsg...)
			if strings.Count(err.Error(), dir) != 1 {
				t.Errorf("error names the path %d times: %v", strings.Count(err.Error(), dir), err)
			}
		})
	}
	if _, err := LoadKeyring(nil); err == nil {
		t.Fatal("LoadKeyring(nil) succeeded")
	}
}

func TestKeys(t *testing.T) {
	e := newEntity(t, "listed", "ed25519", nil)
	got := keyringOf(t, e).Keys()
	want := []Signer{{KeyID: shortID(e.PrimaryKey.KeyId), LongKeyID: longID(e.PrimaryKey.KeyId),
		Fingerprint: hexOf(e.PrimaryKey.Fingerprint), UserID: "listed <listed@example.invalid>"}}
	if len(got) != 1 || got[0] != want[0] {
		t.Fatalf("Keys() = %+v, want %+v", got, want)
	}
}

func hexOf(b []byte) string { return fmt.Sprintf("%x", b) }

func assertContains(t *testing.T, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%q does not contain %q", s, sub)
		}
	}
}
