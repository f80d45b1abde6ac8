package testrpm

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"testing"
)

// Tag numbers the rewrites below touch (rpm's rpmtag.h).
const (
	TagSigSize        = 1000 // RPMSIGTAG_SIZE: header+payload size, 32-bit
	TagSigLongSize    = 270  // RPMSIGTAG_LONGSIZE: header+payload size, 64-bit
	TagSigSHA1        = 269  // RPMSIGTAG_SHA1: hex SHA-1 of the main header
	TagSigSHA256      = 273  // RPMSIGTAG_SHA256: hex SHA-256 of the main header
	TagSigMD5         = 1004 // RPMSIGTAG_MD5: binary MD5 of header+payload
	TagSigRSA         = 268  // RPMSIGTAG_RSA: OpenPGP signature of the main header
	TagSigPGP         = 1002 // RPMSIGTAG_PGP: OpenPGP signature of header+payload
	TagPayloadDigest  = 5092 // PAYLOADDIGEST (PAYLOADSHA256 in rpm 6)
	TagPayloadDigestA = 5093 // PAYLOADDIGESTALGO, which rpm 6 no longer writes
)

const (
	leadSize   = 96
	introSize  = 16
	entrySize  = 16
	typeInt16  = 3
	typeInt32  = 4
	typeInt64  = 5
	typeString = 6
	typeBin    = 7
	typeStrArr = 8
	typeI18N   = 9
	regionLow  = 61 // HEADERIMAGE
	regionHigh = 63 // HEADERIMMUTABLE
)

// rawEntry is one index entry with its data bytes.
type rawEntry struct {
	tag, typ, count uint32
	data            []byte
}

// rawHeader is a decoded header: its region tag entry (nil when the header has none) and its other entries in
// index order.
type rawHeader struct {
	region  *rawEntry
	entries []rawEntry
}

// Parts splits a package into lead, signature header (without its padding), main header and payload. It trusts
// its input: it is for packages built by this package, not for uploads.
func Parts(pkg []byte) (lead, sig, header, payload []byte, err error) {
	if len(pkg) < leadSize+introSize {
		return nil, nil, nil, nil, errors.New("too short for a package")
	}
	sigLen, err := headerLen(pkg[leadSize:])
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("signature header: %w", err)
	}
	sigEnd := leadSize + sigLen
	hdrStart := sigEnd + (8-sigLen%8)%8
	if hdrStart > len(pkg) {
		return nil, nil, nil, nil, errors.New("truncated after the signature header")
	}
	hdrLen, err := headerLen(pkg[hdrStart:])
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("main header: %w", err)
	}
	return pkg[:leadSize], pkg[leadSize:sigEnd], pkg[hdrStart : hdrStart+hdrLen], pkg[hdrStart+hdrLen:], nil
}

// headerLen returns the length of the header at the start of b: intro, index and store.
func headerLen(b []byte) (int, error) {
	if len(b) < introSize || !bytes.Equal(b[:3], []byte{0x8e, 0xad, 0xe8}) {
		return 0, errors.New("no header magic")
	}
	n := introSize + int(binary.BigEndian.Uint32(b[8:]))*entrySize + int(binary.BigEndian.Uint32(b[12:]))
	if n > len(b) {
		return 0, errors.New("header runs past the end")
	}
	return n, nil
}

// parseHeader decodes header bytes into entries.
func parseHeader(b []byte) (*rawHeader, error) {
	il := int(binary.BigEndian.Uint32(b[8:]))
	dl := int(binary.BigEndian.Uint32(b[12:]))
	store := b[introSize+il*entrySize:]
	if len(store) != dl {
		return nil, fmt.Errorf("store is %d bytes, intro says %d", len(store), dl)
	}
	h := &rawHeader{}
	for i := range il {
		e := b[introSize+i*entrySize:]
		tag, typ := binary.BigEndian.Uint32(e), binary.BigEndian.Uint32(e[4:])
		off, count := int(binary.BigEndian.Uint32(e[8:])), binary.BigEndian.Uint32(e[12:])
		if i == 0 && tag >= regionLow && tag <= regionHigh {
			if typ != typeBin || count != 16 || off+16 > dl {
				return nil, fmt.Errorf("region tag %d malformed", tag)
			}
			h.region = &rawEntry{tag: tag, typ: typ, count: count}
			continue
		}
		n, err := dataLen(typ, count, store[off:])
		if err != nil {
			return nil, fmt.Errorf("tag %d: %w", tag, err)
		}
		h.entries = append(h.entries, rawEntry{tag, typ, count, bytes.Clone(store[off : off+n])})
	}
	return h, nil
}

// dataLen is the length of an entry's data of type typ with count elements at the start of b.
func dataLen(typ, count uint32, b []byte) (int, error) {
	switch typ {
	case typeString, typeStrArr, typeI18N:
		if typ == typeString {
			count = 1
		}
		n := 0
		for range count {
			i := bytes.IndexByte(b[n:], 0)
			if i < 0 {
				return 0, errors.New("unterminated string")
			}
			n += i + 1
		}
		return n, nil
	case typeInt16:
		return 2 * int(count), nil
	case typeInt32:
		return 4 * int(count), nil
	case typeInt64:
		return 8 * int(count), nil
	default: // NULL, CHAR, INT8, BIN
		return int(count), nil
	}
}

// align is the store alignment of typ.
func align(typ uint32) int {
	switch typ {
	case typeInt16:
		return 2
	case typeInt32:
		return 4
	case typeInt64:
		return 8
	}
	return 1
}

// bytes encodes the header as rpm lays it out: index sorted by tag with the region tag first, data in index
// order with each value aligned to its type, and the region trailer last. The trailer's negative offset counts
// every entry, region included, so the whole header is the region, as rpm writes it.
func (h *rawHeader) bytes() []byte {
	sort.SliceStable(h.entries, func(i, j int) bool { return h.entries[i].tag < h.entries[j].tag })
	il := len(h.entries)
	if h.region != nil {
		il++
	}
	var index, store bytes.Buffer
	put := func(w *bytes.Buffer, tag, typ, off, count uint32) {
		var e [entrySize]byte
		binary.BigEndian.PutUint32(e[0:], tag)
		binary.BigEndian.PutUint32(e[4:], typ)
		binary.BigEndian.PutUint32(e[8:], off)
		binary.BigEndian.PutUint32(e[12:], count)
		w.Write(e[:])
	}
	var rest bytes.Buffer
	for _, e := range h.entries {
		for store.Len()%align(e.typ) != 0 {
			store.WriteByte(0)
		}
		put(&rest, e.tag, e.typ, uint32(store.Len()), e.count)
		store.Write(e.data)
	}
	if h.region != nil {
		put(&index, h.region.tag, typeBin, uint32(store.Len()), 16)
		var trailer bytes.Buffer
		put(&trailer, h.region.tag, typeBin, uint32(-int32(il*entrySize)), 16)
		store.Write(trailer.Bytes())
	}
	index.Write(rest.Bytes())
	var out bytes.Buffer
	out.Write([]byte{0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0})
	binary.Write(&out, binary.BigEndian, uint32(il))
	binary.Write(&out, binary.BigEndian, uint32(store.Len()))
	out.Write(index.Bytes())
	out.Write(store.Bytes())
	return out.Bytes()
}

// drop removes the entries with the given tags and reports how many it removed.
func (h *rawHeader) drop(tags ...uint32) int {
	n := 0
	kept := h.entries[:0]
	for _, e := range h.entries {
		if contains(tags, e.tag) {
			n++
			continue
		}
		kept = append(kept, e)
	}
	h.entries = kept
	return n
}

// has reports whether the header has tag.
func (h *rawHeader) has(tag uint32) bool {
	for _, e := range h.entries {
		if e.tag == tag {
			return true
		}
	}
	return false
}

// set replaces or adds tag with the given type, count and data.
func (h *rawHeader) set(tag, typ, count uint32, data []byte) {
	h.drop(tag)
	h.entries = append(h.entries, rawEntry{tag, typ, count, data})
}

func contains(s []uint32, v uint32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// assemble joins lead, signature header (padded to 8 bytes), main header and payload.
func assemble(lead, sig, header, payload []byte) []byte {
	var out bytes.Buffer
	out.Write(lead)
	out.Write(sig)
	out.Write(make([]byte, (8-len(sig)%8)%8))
	out.Write(header)
	out.Write(payload)
	return out.Bytes()
}

// BuildRPM6 returns the package Build makes from s, rewritten into the shape of a package built by rpm 6: the main
// header keeps its SHA-256 payload digest (tag 5092) but loses PAYLOADDIGESTALGO (5093), and the signature header
// has no size tag (1000 SIZE, 270 LONGSIZE) and no MD5 (1004), so the payload digest is the only thing that checks
// the payload and the file's length. The signature header's header digests (273 SHA-256, 269 SHA-1) are recomputed
// over the new main header. rpm 4.18 checks 5092 as SHA-256 whatever 5093 says, so `rpm -K` accepts the result
// ("Payload SHA256 digest: OK"). Deterministic: the same Spec always gives the same bytes.
func BuildRPM6(t testing.TB, s Spec) []byte {
	t.Helper()
	out, err := toRPM6(Build(t, s))
	if err != nil {
		t.Fatalf("testrpm: rewrite %s for rpm 6: %v", s.Name, err)
	}
	return out
}

// toRPM6 is BuildRPM6's rewrite, on any package that has tag 5093.
func toRPM6(pkg []byte) ([]byte, error) {
	lead, sigBytes, hdrBytes, payload, err := Parts(pkg)
	if err != nil {
		return nil, err
	}
	hdr, err := parseHeader(hdrBytes)
	if err != nil {
		return nil, fmt.Errorf("main header: %w", err)
	}
	if !hdr.has(TagPayloadDigest) || hdr.drop(TagPayloadDigestA) != 1 {
		return nil, errors.New("want a package with tags 5092 and 5093")
	}
	sig, err := parseHeader(sigBytes)
	if err != nil {
		return nil, fmt.Errorf("signature header: %w", err)
	}
	sig.drop(TagSigSize, TagSigLongSize, TagSigMD5)
	newHdr := hdr.bytes()
	s256 := sha256.Sum256(newHdr)
	s1 := sha1.Sum(newHdr)
	sig.set(TagSigSHA256, typeString, 1, append([]byte(hex.EncodeToString(s256[:])), 0))
	sig.set(TagSigSHA1, typeString, 1, append([]byte(hex.EncodeToString(s1[:])), 0))
	return assemble(lead, sig.bytes(), newHdr, payload), nil
}

// AddSignatures returns pkg with the given binary signature-header tags set (e.g. 268 over the main header, 1002
// over header and payload; see Parts for the bytes to sign), the signature header re-laid out and re-padded. The
// main header and payload are unchanged, so signatures made over them before the call stay valid.
func AddSignatures(t testing.TB, pkg []byte, tags map[uint32][]byte) []byte {
	t.Helper()
	lead, sigBytes, hdrBytes, payload, err := Parts(pkg)
	if err != nil {
		t.Fatalf("testrpm: %v", err)
	}
	sig, err := parseHeader(sigBytes)
	if err != nil {
		t.Fatalf("testrpm: signature header: %v", err)
	}
	for tag, v := range tags {
		sig.set(tag, typeBin, uint32(len(v)), bytes.Clone(v))
	}
	return assemble(lead, sig.bytes(), hdrBytes, payload)
}

// HasTag reports whether the signature header (sig true) or the main header of pkg has tag.
func HasTag(t testing.TB, pkg []byte, sig bool, tag uint32) bool {
	t.Helper()
	_, sigBytes, hdrBytes, _, err := Parts(pkg)
	if err != nil {
		t.Fatalf("testrpm: %v", err)
	}
	b := hdrBytes
	if sig {
		b = sigBytes
	}
	h, err := parseHeader(b)
	if err != nil {
		t.Fatalf("testrpm: %v", err)
	}
	return h.has(tag)
}

// SignBoth returns pkg signed the way rpm < 4.16 signed: sign's signature of the main header in tag 268 (RSAHEADER)
// and its signature of header and payload in tag 1002 (PGP). sign returns one binary OpenPGP signature packet of
// its argument, e.g. testsign.Key.SignBytes.
func SignBoth(t testing.TB, pkg []byte, sign func(data []byte) []byte) []byte {
	t.Helper()
	_, _, hdr, payload, err := Parts(pkg)
	if err != nil {
		t.Fatalf("testrpm: %v", err)
	}
	whole := append(bytes.Clone(hdr), payload...)
	return AddSignatures(t, pkg, map[uint32][]byte{TagSigRSA: sign(bytes.Clone(hdr)), TagSigPGP: sign(whole)})
}
