package testrpm

import (
	"bytes"
	"encoding/binary"
)

// HeaderBombStrings is the number of empty strings in each of HeaderBomb's two headers.
//
// The number is chosen against the guard rpmmeta had before its whole-package decode budget: 7.8 million empty
// strings is 7.8 MB of store per header, under the old 32 MiB per-header size cap, and an estimated 17 bytes each
// (a 16-byte string header plus the byte) of decoding cost, just under the old 128 MiB per-header decode cap.
const HeaderBombStrings = 7_800_000

// HeaderBomb returns a crafted package of about 15.6 MB whose two headers are structurally valid (every bound the
// library relies on holds) but each hold one STRING_ARRAY of HeaderBombStrings empty strings. Decoding it with
// cavaliergopher/rpm turns each 1-byte string into a 16-byte Go string header: about 250 MiB of allocations for a
// 15 MB upload, plus the copies of the stores. The main header has no NAME, so even a parser that survives the
// decode refuses it.
//
// It exists to prove a decode budget: a test inspects it (or uploads many at once) and bounds the memory used.
// The error is always nil today; it is there so the generator can grow checks without changing callers.
func HeaderBomb() ([]byte, error) {
	const n = HeaderBombStrings
	// Tag numbers are arbitrary: 999 is unused in the signature header, 1082 is CHANGELOGTEXT, which is a
	// STRING_ARRAY in real packages too.
	sig := bombHeader(999, n)
	hdr := bombHeader(1082, n)

	var b bytes.Buffer
	b.Grow(96 + len(sig) + 8 + len(hdr))
	// Lead: magic, version 3.0, binary package, signature type 5 (a header). The rest (name, arch, os) is unused
	// by rpm 4 and left zero.
	lead := make([]byte, 96)
	copy(lead, []byte{0xed, 0xab, 0xee, 0xdb, 3, 0})
	binary.BigEndian.PutUint16(lead[78:], 5)
	b.Write(lead)
	b.Write(sig)
	// The signature header is padded to a multiple of 8 bytes before the main header.
	b.Write(make([]byte, (8-n%8)%8))
	b.Write(hdr)
	return b.Bytes(), nil
}

// bombHeader returns a header with one STRING_ARRAY entry for tag: count empty strings, i.e. count zero bytes.
func bombHeader(tag, count uint32) []byte {
	b := []byte{0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0}
	b = binary.BigEndian.AppendUint32(b, 1)     // index entries
	b = binary.BigEndian.AppendUint32(b, count) // store bytes
	for _, v := range []uint32{tag, 8 /* STRING_ARRAY */, 0 /* offset */, count} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return append(b, make([]byte, count)...)
}
