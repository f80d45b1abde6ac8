package signature

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	// Hash implementations must be linked in for crypto.Hash.New; go-crypto does not import them all itself.
	_ "crypto/sha1" // v3 DSA signatures of old packages use SHA-1, which rpm accepts
	_ "crypto/sha256"
	_ "crypto/sha512"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// MaxPacketSize bounds a signature packet. A v4 RSA-4096 signature is about 600 bytes; 64 KiB leaves room for
// large keys and notation subpackets while keeping a hostile header from making us hash megabytes of junk.
const MaxPacketSize = 64 << 10

// OpenPGP constants used here (RFC 4880).
const (
	tagSignature   = 2
	sigTypeBinary  = 0x00 // signature of a binary document: what rpmsign makes
	algoRSA        = 1
	algoRSASign    = 3
	algoDSA        = 17
	v3HashedLength = 5 // a v3 packet hashes exactly the signature type and the 4-byte creation time
)

// parsedSig is one signature packet, v3 (parsed here, because go-crypto ≥ 1.x dropped v3 signature packets) or
// v4 (parsed by go-crypto).
type parsedSig struct {
	keyID       uint64
	fingerprint []byte // the issuer fingerprint subpacket, nil when absent (always absent in v3)
	created     time.Time
	sig         *packet.Signature
}

// describeIssuer names the issuer the way both rpm users and gpg users recognise it.
func (s *parsedSig) describeIssuer() string {
	if s.fingerprint != nil {
		return fmt.Sprintf("key %s (fingerprint %x)", shortID(s.keyID), s.fingerprint)
	}
	return fmt.Sprintf("key %s (key id %s)", shortID(s.keyID), longID(s.keyID))
}

// check verifies the signature over signed with pk. For v3 packets it relies on go-crypto's VerifySignature being
// version-agnostic for v3/v4 (it hashes signed, then HashSuffix, then checks the algorithm's MPIs), with the v3
// hash suffix (type and creation time) in HashSuffix. The CentOS v3 packages in the tests pin that assumption.
//
// signed is read from its start each time, so a header+payload signature over a large file is streamed, never held
// in memory. A read error is returned as a *readError: it says nothing about the signature.
func (s *parsedSig) check(pk *packet.PublicKey, signed *io.SectionReader) error {
	h, err := s.sig.PrepareVerify()
	if err != nil {
		return err
	}
	if _, err := io.Copy(h, io.NewSectionReader(signed, 0, signed.Size())); err != nil {
		return &readError{err}
	}
	return pk.VerifySignature(h, s.sig)
}

// readError is a failure to read the signed bytes (an I/O error on the package file), not a verdict on the
// signature: it wraps none of the sentinels, and callers report it as their own failure.
type readError struct{ err error }

func (e *readError) Error() string { return "read signed data: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// parse reads exactly one signature packet from b. Every error wraps ErrUnparsable.
func parse(b []byte) (*parsedSig, error) {
	s, err := parseRaw(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnparsable, err)
	}
	// rpmsign only makes binary-document signatures over the header; a text-mode signature would be hashed with
	// line ending normalisation, which is not what we hash, so it cannot be a signature of this header.
	if s.sig.SigType != sigTypeBinary {
		return nil, fmt.Errorf("%w: signature type 0x%02x is not a binary document signature", ErrUnparsable, byte(s.sig.SigType))
	}
	return s, nil
}

// parseRaw does the work of parse with plain errors.
func parseRaw(b []byte) (*parsedSig, error) {
	if len(b) > MaxPacketSize {
		return nil, fmt.Errorf("packet of %d bytes exceeds %d", len(b), MaxPacketSize)
	}
	tag, body, err := splitPacket(b)
	if err != nil {
		return nil, err
	}
	if tag != tagSignature {
		return nil, fmt.Errorf("packet tag %d is not a signature", tag)
	}
	if len(body) == 0 {
		return nil, errors.New("empty signature packet")
	}
	switch v := body[0]; v {
	case 3:
		return parseV3(body)
	case 4:
		return parseV4(b)
	default:
		// v5 and v6 (RFC 9580) are what rpm ≥ 4.20 can add next to a v4 signature; rpm 4.18, which we match,
		// cannot read them either. VerifyAny then judges the package by its other signatures.
		return nil, fmt.Errorf("signature packet version %d is not supported", v)
	}
}

// splitPacket parses an OpenPGP packet header (old or new format, RFC 4880 4.2) and returns the tag and the body.
// The body must end exactly at the end of b: an rpm signature tag holds one packet, and trailing bytes would be
// data nobody verified.
func splitPacket(b []byte) (tag byte, body []byte, err error) {
	if len(b) < 2 {
		return 0, nil, errors.New("packet too short")
	}
	h := b[0]
	if h&0x80 == 0 {
		return 0, nil, fmt.Errorf("bad packet header byte 0x%02x", h)
	}
	var n, hdr int
	if h&0x40 == 0 { // old format: tag in bits 5-2, length type in bits 1-0
		tag = (h >> 2) & 0x0f
		switch h & 0x03 {
		case 0:
			n, hdr = int(b[1]), 2
		case 1:
			if len(b) < 3 {
				return 0, nil, errors.New("packet header truncated")
			}
			n, hdr = int(binary.BigEndian.Uint16(b[1:3])), 3
		case 2:
			if len(b) < 5 {
				return 0, nil, errors.New("packet header truncated")
			}
			n, hdr = int(binary.BigEndian.Uint32(b[1:5])&0x7fffffff), 5 // bounded below by len(b) anyway
		default:
			return 0, nil, errors.New("indeterminate packet length")
		}
	} else { // new format: tag in bits 5-0, then a one, two or five byte length
		tag = h & 0x3f
		switch l := b[1]; {
		case l < 192:
			n, hdr = int(l), 2
		case l < 224:
			if len(b) < 3 {
				return 0, nil, errors.New("packet header truncated")
			}
			n, hdr = (int(l)-192)<<8+int(b[2])+192, 3
		case l == 255:
			if len(b) < 6 {
				return 0, nil, errors.New("packet header truncated")
			}
			n, hdr = int(binary.BigEndian.Uint32(b[2:6])&0x7fffffff), 6
		default:
			return 0, nil, errors.New("partial body length in a signature packet")
		}
	}
	if n != len(b)-hdr {
		return 0, nil, fmt.Errorf("packet length %d does not match the %d bytes present", n, len(b)-hdr)
	}
	return tag, b[hdr:], nil
}

// parseV4 lets go-crypto parse a v4 packet, then insists on an issuer so that the key can be found.
func parseV4(b []byte) (*parsedSig, error) {
	p, err := packet.Read(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return nil, fmt.Errorf("packet is a %T, not a signature", p)
	}
	if sig.IssuerKeyId == nil {
		return nil, errors.New("signature names no issuer key")
	}
	return &parsedSig{keyID: *sig.IssuerKeyId, fingerprint: sig.IssuerFingerprint, created: sig.CreationTime, sig: sig}, nil
}

// v3Hashes maps RFC 4880 hash ids to the hashes we accept in v3 packets. MD5 (1) is refused: rpm's old
// whole-package signatures used it, but it is broken and never protects the header signatures we check.
var v3Hashes = map[byte]crypto.Hash{
	2:  crypto.SHA1,
	8:  crypto.SHA256,
	9:  crypto.SHA384,
	10: crypto.SHA512,
	11: crypto.SHA224,
}

// parseV3 parses a version 3 signature packet body (RFC 4880 5.2.2):
//
//	version(1)=3 hashed-length(1)=5 type(1) created(4) keyid(8) pubkey-algo(1) hash-algo(1) hash-left16(2) MPIs
//
// RSA carries one MPI, DSA two (r, s). The result is a packet.Signature that go-crypto's VerifySignature checks.
func parseV3(body []byte) (*parsedSig, error) {
	const fixed = 19
	if len(body) < fixed {
		return nil, errors.New("v3 signature truncated")
	}
	if body[1] != v3HashedLength {
		return nil, fmt.Errorf("v3 signature hashed length %d, want %d", body[1], v3HashedLength)
	}
	sigType := body[2]
	created := binary.BigEndian.Uint32(body[3:7])
	keyID := binary.BigEndian.Uint64(body[7:15])
	algo, hashID := body[15], body[16]
	hash, ok := v3Hashes[hashID]
	if !ok {
		return nil, fmt.Errorf("v3 signature hash algorithm %d is not supported", hashID)
	}
	sig := &packet.Signature{
		Version:      3,
		SigType:      packet.SignatureType(sigType),
		PubKeyAlgo:   packet.PublicKeyAlgorithm(algo),
		Hash:         hash,
		CreationTime: time.Unix(int64(created), 0),
		IssuerKeyId:  &keyID,
		HashTag:      [2]byte{body[17], body[18]},
		// What a v3 signature appends to the signed data before hashing.
		HashSuffix: []byte{sigType, body[3], body[4], body[5], body[6]},
	}
	r := bytes.NewReader(body[fixed:])
	switch algo {
	case algoRSA, algoRSASign:
		m, err := readMPI(r)
		if err != nil {
			return nil, err
		}
		sig.RSASignature = m
	case algoDSA:
		rr, err := readMPI(r)
		if err != nil {
			return nil, err
		}
		ss, err := readMPI(r)
		if err != nil {
			return nil, err
		}
		sig.DSASigR, sig.DSASigS = rr, ss
	default:
		return nil, fmt.Errorf("v3 signature public key algorithm %d is not supported", algo)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d trailing bytes after the v3 signature", r.Len())
	}
	return &parsedSig{keyID: keyID, created: sig.CreationTime, sig: sig}, nil
}

// mpi is a multiprecision integer as OpenPGP encodes it. It satisfies go-crypto's internal encoding.Field
// interface (only standard types in its method set), which lets a hand-parsed v3 signature use go-crypto's
// verification code instead of a second copy of RSA and DSA verification.
type mpi struct {
	bytes  []byte
	bitLen uint16
}

// readMPI reads a two-byte bit count and the big-endian bytes it implies.
func readMPI(r *bytes.Reader) (*mpi, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, errors.New("v3 signature MPI truncated")
	}
	bits := binary.BigEndian.Uint16(l[:])
	b := make([]byte, (int(bits)+7)/8)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, errors.New("v3 signature MPI truncated")
	}
	return &mpi{bytes: b, bitLen: bits}, nil
}

// Bytes returns the integer's big-endian bytes.
func (m *mpi) Bytes() []byte { return m.bytes }

// BitLength returns the bit count from the encoding.
func (m *mpi) BitLength() uint16 { return m.bitLen }

// EncodedBytes returns the encoding: bit count and bytes.
func (m *mpi) EncodedBytes() []byte {
	return append([]byte{byte(m.bitLen >> 8), byte(m.bitLen)}, m.bytes...)
}

// EncodedLength returns the length of EncodedBytes.
func (m *mpi) EncodedLength() uint16 { return uint16(2 + len(m.bytes)) }

// ReadFrom is part of the interface; this type is only ever filled by readMPI.
func (m *mpi) ReadFrom(io.Reader) (int64, error) { return 0, errors.New("mpi.ReadFrom not supported") }
