package rpmmeta

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// The guard exists because cavaliergopher/rpm trusts its input: crafted headers of ~150 bytes make it panic, and an
// INT32 entry with count 0xFFFFFFFF makes it allocate until the runtime dies, which recover() cannot catch. So before
// the library sees a byte, the guard reads the lead and both headers with io.ReadFull and checks every bound the
// library relies on, mirroring rpm's own hdrblobVerifyInfo. Bytes that pass cannot make the library index out of
// range, loop past the store, or allocate more than MaxDecodeBytes for both headers together.

// Sizes and caps of the on-disk format.
const (
	leadSize  = 96 // the legacy lead before the signature header
	introSize = 16 // header intro: 8 magic/reserved bytes, index count, store size
	entrySize = 16 // one index entry: tag, type, offset, count

	// maxHeaderBytes caps index+store of each header, like rpm's own 32 MiB header limit. The library caps the
	// store alone at the same size, so nothing it would accept is refused here.
	maxHeaderBytes = 32 << 20
	// maxIndexEntries is rpm's HEADER_TAGS_MAX: rpm refuses headers with more tags.
	maxIndexEntries = 0xffff
)

// MaxDecodeBytes is the decode budget: the most the guard lets cavaliergopher/rpm allocate to decode the signature
// and main headers of one package together, as estimated by headerCost and decodedCost (its index and store copies,
// a Tag and map slot per entry, and the decoded values). Decoding expands data: each INT16 becomes an 8-byte int64
// and each 1-byte empty string a 16-byte Go string header, so a 15 MB file within every structural cap used to
// cost 267 MiB (testrpm.HeaderBomb). Real headers cost about 3.3 times their size: an rpmbuild package with 20,000
// files has 2.9 MB of headers estimated at 9.7 MB, so this budget admits packages of about 65,000 files, which
// covers all but the largest debuginfo/debugsource packages. The cap multiplies by the number of uploads inspected
// at once, which is why it is one total for the package rather than a per-header limit.
const MaxDecodeBytes = 32 << 20

// The lead and header magic numbers. rpm compares all 8 intro bytes (magic, version 1, 4 reserved zero bytes).
var (
	leadMagic   = []byte{0xed, 0xab, 0xee, 0xdb}
	headerMagic = []byte{0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0}
)

// Lead fields the guard checks.
const (
	leadMajorV3       = 3 // the lead version rpm 4 writes
	leadMajorV4       = 4 // accepted by rpm (rpmLeadCheck) and by the library; the layout after it is the same
	leadSigHeaderType = 5 // RPMSIGTYPE_HEADERSIG: the signature is a header structure
)

// Index entry data types (rpmTagType) and their element sizes; the string types are variable-length.
const (
	typeNull        = 0
	typeChar        = 1
	typeInt8        = 2
	typeInt16       = 3
	typeInt32       = 4
	typeInt64       = 5
	typeString      = 6
	typeBin         = 7
	typeStringArray = 8
	typeI18NString  = 9
)

// Region tags (HEADERIMAGE, HEADERSIGNATURES, HEADERIMMUTABLE). When the first entry carries one, its data is the
// region trailer, which rpm stores out of order; like rpm, the ordering check skips it.
const (
	tagRegionFirst = 61
	tagRegionLast  = 63
)

// headerLayout locates one header in the file.
type headerLayout struct {
	start  int64  // file offset of the intro
	il, dl uint32 // index entry count and store size, both capped by checkHeader
	cost   uint64 // estimated bytes the library allocates to decode this header (headerCost + decodedCost)
	raw    []byte // the header's bytes as read and checked: intro, index and store, file range [start, end())
}

// end returns the offset just past the header's store.
func (h headerLayout) end() int64 {
	return h.start + introSize + int64(h.il)*entrySize + int64(h.dl)
}

// layout locates the signature and main headers. The payload runs from hdr.end() to the end of the file.
type layout struct {
	sig, hdr headerLayout
	lead     []byte // the 96 lead bytes
	pad      []byte // the padding between the signature and main headers
	// tail is the rest of the file after the main header, the payload, when the guard's read-ahead held all of
	// it and the caller asked for it (readHeaders); nil otherwise. It is tailBuf's buffer: valid until release.
	tail    []byte
	tailBuf *bufio.Reader
	// decodedSig and decodedHdr are the sizes of the intro and index of each header as decodeReader gave them
	// to the library.
	decodedSig, decodedHdr int
}

// reader returns the bytes the guard checked, file range [0, hdr.end()), as one stream for the library. Reads are
// full (partsReader), so the library never sees the short reads it misparses.
func (lay *layout) reader() io.Reader {
	return newPartsReader(lay.lead, lay.sig.raw, lay.pad, lay.hdr.raw)
}

// partsReader reads its parts one after the other as one stream, filling each read as far as the parts go: a
// read never ends short at a part boundary (io.MultiReader's would), and it is one allocation where MultiReader
// of bytes.Readers was seven (issue 20: every upload decodes through it).
type partsReader struct {
	parts [6][]byte
	n, i  int
}

func newPartsReader(parts ...[]byte) *partsReader {
	r := &partsReader{n: len(parts)}
	copy(r.parts[:], parts)
	return r
}

func (r *partsReader) Read(p []byte) (int, error) {
	total := 0
	for len(p) > 0 && r.i < r.n {
		c := copy(p, r.parts[r.i])
		r.parts[r.i], p, total = r.parts[r.i][c:], p[c:], total+c
		if len(r.parts[r.i]) == 0 {
			r.i++
		}
	}
	if total == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return total, nil
}

// Tags whose values rpmmeta reads from the library's decode (metadata, sourceAgrees, expectations), by header.
// The library decodes every entry it is given into a Tag, a boxed value slice and a map slot: for a small package
// about 130 allocations, most of them for tags nothing reads (file lists, dependencies, changelog). So it is given
// only the entries of these tags (decodeReader). TestDecodedTagsSuffice holds the lists to what the code reads.
var (
	sigTagsRead = []uint32{sigTagDSA, sigTagRSA, sigTagSHA1, sigTagLongSize, sigTagSHA256, sigTagSize, sigTagPGP,
		sigTagMD5, sigTagGPG, tagSourcePackage}
	hdrTagsRead = []uint32{tagName, tagVersion, tagRelease, tagEpoch, tagSummary, tagArch, tagSourceRPM,
		tagSourcePackage, tagPayloadDigest, tagPayloadDigestAlgo}
)

// Main header tags the library's accessors read (Name, Version, Release, Summary, Architecture, SourceRPM).
const (
	tagName      = 1000
	tagVersion   = 1001
	tagRelease   = 1002
	tagSummary   = 1004
	tagArch      = 1022
	tagSourceRPM = 1044
)

// decodeReader is reader with each header's index cut down to the entries of the tags rpmmeta reads (sigTagsRead,
// hdrTagsRead), in their order, so that a tag present twice still decodes to its last entry as before. The stores
// are the checked ones, unchanged and not copied, so every kept entry points where the guard checked it; only the
// index count in each intro differs. The parts are returned whole, as by reader. The library's own header sizes
// are then those of the cut headers: decodedRange gives the range it must report.
func (lay *layout) decodeReader() io.Reader {
	sigIndex := cutIndex(lay.sig, sigTagsRead)
	hdrIndex := cutIndex(lay.hdr, hdrTagsRead)
	lay.decodedSig, lay.decodedHdr = len(sigIndex), len(hdrIndex)
	return newPartsReader(lay.lead, sigIndex, lay.sig.store(), lay.pad, hdrIndex, lay.hdr.store())
}

// decodedRange is the main header's range as the library reports it (rpm.Package.HeaderRange) after reading
// decodeReader: the cut signature header and padding before it, the cut main header's intro, index and store.
func (lay *layout) decodedRange() (start, end int64) {
	start = leadSize + int64(lay.decodedSig) + int64(lay.sig.dl) + int64(len(lay.pad))
	return start, start + int64(lay.decodedHdr) + int64(lay.hdr.dl)
}

// cutIndex returns the intro and those index entries of h whose tag is in keep, with the intro's count changed
// to match.
func cutIndex(h headerLayout, keep []uint32) []byte {
	index := h.raw[introSize : introSize+int(h.il)*entrySize]
	out := make([]byte, introSize, introSize+len(keep)*entrySize)
	copy(out, h.raw[:introSize])
	for i := 0; i < len(index); i += entrySize {
		if slices.Contains(keep, binary.BigEndian.Uint32(index[i:i+4])) {
			out = append(out, index[i:i+entrySize]...)
		}
	}
	binary.BigEndian.PutUint32(out[8:12], uint32((len(out)-introSize)/entrySize))
	return out
}

// store returns the header's store, as checked.
func (h headerLayout) store() []byte { return h.raw[introSize+int(h.il)*entrySize:] }

// headHash returns the SHA-256 of the bytes the guard checked, for comparison with the file's bytes in the same
// range when Inspect hashes the file.
func (lay *layout) headHash() []byte {
	h := sha256.New()
	for _, b := range [][]byte{lay.lead, lay.sig.raw, lay.pad, lay.hdr.raw} {
		h.Write(b)
	}
	return h.Sum(nil)
}

// guard reads the lead and both headers from r, which must be at offset 0 of a file of size bytes, and checks them.
// Every violation is an ErrInvalidPackage error; other read errors are returned wrapped.
func guard(r io.Reader, size int64) (layout, error) {
	var lay layout
	if size == 0 {
		return lay, fmt.Errorf("rpm: %w", ErrEmpty)
	}
	if size < leadSize {
		return lay, invalidf("truncated: file is %d bytes, shorter than the %d-byte lead", size, leadSize)
	}
	lead := make([]byte, leadSize)
	if err := readFull(r, lead, "lead", size); err != nil {
		return lay, err
	}
	lay.lead = lead
	if !bytes.Equal(lead[:4], leadMagic) {
		if isMultipartStart(lead) {
			return lay, fmt.Errorf("rpm: %w", ErrMultipart)
		}
		return lay, invalidf("not an rpm file: bad lead magic % x", lead[:4])
	}
	// rpm 4 writes lead 3.0 and reads major versions 3 and 4 with any minor (rpmLeadCheck in lib/rpmlead.c; checked
	// against rpm 4.18 by TestLeadVersionsAgreeWithRPM): the headers that follow are the same. Anything else is a
	// format rpm itself refuses as "unsupported RPM package version".
	if lead[4] != leadMajorV3 && lead[4] != leadMajorV4 {
		return lay, invalidf("unsupported lead version %d.%d: rpm reads only lead versions 3 and 4", lead[4], lead[5])
	}
	// Other signature types are pre-1997 fixed-size blobs, not headers; reading them as a header would be garbage.
	if st := binary.BigEndian.Uint16(lead[78:80]); st != leadSigHeaderType {
		return lay, invalidf("unsupported signature type %d in lead, want %d", st, leadSigHeaderType)
	}

	var err error
	if lay.sig, err = checkHeader(r, leadSize, "signature", size, 0); err != nil {
		return lay, err
	}
	// The signature header is padded to a multiple of 8 bytes; the main header starts after the padding. lead,
	// intro and entries are multiples of 8 already, so only the store size matters.
	lay.pad = make([]byte, (8-lay.sig.dl%8)%8)
	if err := readFull(r, lay.pad, "signature padding", size); err != nil {
		return lay, err
	}
	pad := int64(len(lay.pad))
	// One budget for both headers: the main header may spend what the signature header left.
	if lay.hdr, err = checkHeader(r, lay.sig.end()+pad, "main", size, lay.sig.cost); err != nil {
		return lay, err
	}
	return lay, nil
}

// smallHeader is the size up to which checkHeader allocates a header's buffer before its index is checked against
// the decode budget: so small an allocation is no bomb, and it saves an allocation and a copy per header.
const smallHeader = 64 << 10

// checkHeader reads one header starting at file offset start and validates its intro and every index entry. spent
// is the decode budget already used by the headers before this one; the returned cost includes only this header.
func checkHeader(r io.Reader, start int64, what string, size int64, spent uint64) (headerLayout, error) {
	h := headerLayout{start: start}
	if start+introSize > size {
		return h, invalidf("truncated: file is %d bytes, %s header intro ends at %d", size, what, start+introSize)
	}
	var intro [introSize]byte
	if err := readFull(r, intro[:], what+" header intro", size); err != nil {
		return h, err
	}
	if !bytes.Equal(intro[:8], headerMagic) {
		return h, invalidf("%s header at offset %d: bad magic % x", what, start, intro[:8])
	}
	h.il = binary.BigEndian.Uint32(intro[8:12])
	h.dl = binary.BigEndian.Uint32(intro[12:16])
	// Caps before any allocation: index and store are allocated from these attacker-chosen numbers.
	switch {
	case h.il == 0: // rpm refuses an empty header; a package without tags has no name anyway
		return h, invalidf("%s header has no index entries", what)
	case h.il > maxIndexEntries:
		return h, invalidf("%s header has %d index entries, more than rpm's limit of %d", what, h.il,
			maxIndexEntries)
	case uint64(h.il)*entrySize+uint64(h.dl) > maxHeaderBytes:
		return h, invalidf("%s header is %d bytes, more than the %d-byte limit", what,
			uint64(h.il)*entrySize+uint64(h.dl), maxHeaderBytes)
	case h.end() > size:
		// Checked before allocating, so a tiny file cannot make the guard allocate the full cap.
		return h, invalidf("truncated: file is %d bytes, %s header ends at %d", size, what, h.end())
	}
	// The budget is checked three times, each with a tighter estimate, so that a bomb is refused before the guard
	// itself allocates what it describes: from the intro alone (the library's copies of index and store), from
	// the index (plus what the counts alone imply), and from the store (plus the bytes of every string).
	if err := overBudget(what, spent+headerCost(h.il, h.dl)); err != nil {
		return h, err
	}
	// The header's bytes are kept in one buffer: the library decodes this very store (decodeReader), and the main
	// header's is what its signatures sign (Package.HeaderBytes). A small header's buffer is allocated at once
	// and its index read into it; a larger one's only after the index passed the budget, its index (at most
	// 1 MiB) then copied twice.
	var index []byte
	if n := h.end() - h.start; n <= smallHeader {
		h.raw = make([]byte, n)
		index = h.raw[introSize : introSize+int(h.il)*entrySize]
	} else {
		index = make([]byte, int(h.il)*entrySize)
	}
	if err := readFull(r, index, what+" header index", size); err != nil {
		return h, err
	}
	if err := overBudget(what, spent+headerCost(h.il, h.dl)+countsCost(index, h.dl)); err != nil {
		return h, err
	}
	if h.raw == nil {
		h.raw = make([]byte, h.end()-h.start)
		copy(h.raw[introSize:], index)
	}
	copy(h.raw, intro[:])
	store := h.raw[introSize+len(index):]
	if err := readFull(r, store, what+" header store", size); err != nil {
		return h, err
	}
	values, err := checkEntries(index, store, what)
	if err != nil {
		return h, err
	}
	h.cost = headerCost(h.il, h.dl) + values
	if err := overBudget(what, spent+h.cost); err != nil {
		return h, err
	}
	return h, nil
}

// overBudget refuses a package whose headers would cost more than MaxDecodeBytes to decode; total is the estimate
// so far, including the headers before this one.
func overBudget(what string, total uint64) error {
	if total > MaxDecodeBytes {
		return invalidf("headers would need more than the %d-byte decode budget (at least %d bytes by the %s header)",
			MaxDecodeBytes, total, what)
	}
	return nil
}

// headerCost estimates what the library allocates for one header before decoding any value: its own copies of the
// index (16 bytes per entry) and store, and per entry a Tag, the interface box of its value and a map slot.
func headerCost(il, dl uint32) uint64 {
	const perEntry = 128 // Tag struct (32), boxed slice header (32), map slot and growth share
	return uint64(il)*(entrySize+perEntry) + uint64(dl)
}

// countsCost is the part of the values' decoded cost that the index alone determines: decodedCost with the string
// bytes unknown (0). Each count is first capped at what can fit in the dl-byte store (a value takes at least one
// byte), so that a count too large for the store is reported by checkEntries as the bounds error it is, and the
// result stays a lower bound of the cost of any header that passes checkEntries. Unknown types cost nothing here.
func countsCost(index []byte, dl uint32) uint64 {
	var cost uint64
	for i := 0; i < len(index); i += entrySize {
		typ := binary.BigEndian.Uint32(index[i+4 : i+8])
		count := min(uint64(binary.BigEndian.Uint32(index[i+12:i+16])), uint64(dl))
		cost += decodedCost(typ, count, 0)
	}
	return cost
}

// entryRef names a header index entry in an error: "<what> tag <tag> (entry <n>)".
type entryRef struct {
	what  string
	tag   uint32
	entry int
}

func (e entryRef) String() string { return fmt.Sprintf("%s tag %d (entry %d)", e.what, e.tag, e.entry) }

// checkEntries validates every index entry against the store: known type, non-zero count, data inside the store
// (computed in uint64 so nothing overflows), strings NUL-terminated inside the store, entries' data in index order
// without overlap (rpm enforces this too, and it keeps the total scanning and decoding work linear in the store
// size). It returns the decoded cost of all values (see decodedCost), which the caller charges to the budget.
func checkEntries(index, store []byte, what string) (cost uint64, err error) {
	dl := uint64(len(store))
	var end uint64 // end of the previous entry's data
	for i := 0; i < len(index); i += entrySize {
		e := index[i : i+entrySize]
		tag := binary.BigEndian.Uint32(e[0:4])
		typ := binary.BigEndian.Uint32(e[4:8])
		off := uint64(binary.BigEndian.Uint32(e[8:12]))
		count := uint64(binary.BigEndian.Uint32(e[12:16]))
		// Where the entry is, for an error: formatted only when there is one (a package has dozens of entries).
		where := entryRef{what, tag, i / entrySize}

		if typ > typeI18NString {
			return 0, invalidf("%s: unknown data type %d", where, typ)
		}
		// The library rejects count 0 for every type, and rpm stores nothing without at least one value.
		if count == 0 {
			return 0, invalidf("%s: zero value count", where)
		}
		if off >= dl {
			return 0, invalidf("%s: offset %d outside the %d-byte store", where, off, dl)
		}
		region := i == 0 && tag >= tagRegionFirst && tag <= tagRegionLast
		if !region && off < end {
			return 0, invalidf("%s: data at offset %d overlaps the previous entry ending at %d", where, off, end)
		}

		// Length of this entry's data, computed from the store itself for strings: exactly the bytes the library
		// will walk, so anything it could slice past the store is caught here.
		n, err := dataLength(typ, count, store[off:])
		if err != nil {
			return 0, invalidf("%s: %v", where, err)
		}
		if !region {
			end = off + n
		}
		// The sum cannot overflow: count < 2^32 and n < 2^32 per entry, and fewer than 2^16 entries.
		cost += decodedCost(typ, count, n)
	}
	return cost, nil
}

// dataLength returns how many bytes of data, starting at data[0], an entry of type typ with count values occupies,
// or an error when they do not fit in data.
func dataLength(typ uint32, count uint64, data []byte) (uint64, error) {
	avail := uint64(len(data))
	var elem uint64
	switch typ {
	case typeNull:
		return 0, nil
	case typeChar, typeInt8, typeBin:
		elem = 1
	case typeInt16:
		elem = 2
	case typeInt32:
		elem = 4
	case typeInt64:
		elem = 8
	case typeString:
		// rpm's dataLength refuses STRING entries with count != 1; the library would otherwise read count strings.
		if count != 1 {
			return 0, fmt.Errorf("STRING with count %d, want 1", count)
		}
		return stringsLength(1, data)
	case typeStringArray, typeI18NString:
		return stringsLength(count, data)
	}
	// count < 2^32 and elem <= 8, so the product cannot overflow uint64.
	if n := count * elem; n <= avail {
		return n, nil
	}
	return 0, fmt.Errorf("%d values of %d bytes exceed the %d bytes left in the store", count, elem, avail)
}

// stringsLength returns the length of count consecutive NUL-terminated strings at the start of data.
func stringsLength(count uint64, data []byte) (uint64, error) {
	// Each string takes at least its NUL, so a count above the bytes left cannot fit; checking first keeps the loop
	// bounded by the data length rather than by count.
	if count > uint64(len(data)) {
		return 0, fmt.Errorf("%d strings cannot fit in the %d bytes left in the store", count, len(data))
	}
	var n uint64
	for range count {
		j := bytes.IndexByte(data[n:], 0)
		if j < 0 {
			return 0, errors.New("string not NUL-terminated within the store")
		}
		n += uint64(j) + 1
	}
	return n, nil
}

// decodedCost estimates what cavaliergopher/rpm allocates for the value of one entry whose data is n bytes (the
// per-entry overhead is in headerCost): a byte copy for CHAR/INT8/BIN, an int64 per integer of any width, and per
// string a 16-byte string header plus its bytes. The allocator rounds each string up to a size class, by at most 16
// bytes for short strings and 12.5% for long ones, hence 32 per string plus n*9/8 (n counts the NULs too).
// TestDecodeCostEstimate checks that this does not undercount. n = 0 gives a lower bound for strings.
func decodedCost(typ uint32, count, n uint64) uint64 {
	switch typ {
	case typeChar, typeInt8, typeBin:
		return count
	case typeInt16, typeInt32, typeInt64:
		return 8 * count
	case typeString, typeStringArray, typeI18NString:
		return 32*count + n + n/8
	}
	return 0
}

// readFull reads exactly len(buf) bytes. A short read means the file ended early, which makes the package invalid;
// any other error is an I/O problem and is returned wrapped as such.
func readFull(r io.Reader, buf []byte, what string, size int64) error {
	if _, err := io.ReadFull(r, buf); err != nil {
		return readErr(err, what, int64(len(buf)), size)
	}
	return nil
}

// readErr maps an error from reading what (need bytes) to ErrInvalidPackage on EOF, or a wrapped I/O error.
func readErr(err error, what string, need, size int64) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return invalidf("truncated: file of %d bytes ended inside the %s (%d bytes)", size, what, need)
	}
	return fmt.Errorf("rpmmeta: read %s: %w", what, err)
}

// isMultipartStart reports whether b starts like a multipart body (RFC 2046): "--", then a boundary of 1 to 70
// of its characters, then CRLF (or the end of b, for a boundary longer than what was read). No rpm starts with
// "--": its lead magic is ed ab ee db.
func isMultipartStart(b []byte) bool {
	rest, ok := bytes.CutPrefix(b, []byte("--"))
	if !ok {
		return false
	}
	n := 0
	for n < len(rest) && n < 70 && isBoundaryChar(rest[n]) {
		n++
	}
	return n > 0 && (n == len(rest) || bytes.HasPrefix(rest[n:], []byte("\r\n")))
}

func isBoundaryChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || bytes.IndexByte([]byte("'()+_,-./:=?"), c) >= 0
}
