// Package rpmmeta reads and verifies the metadata of an RPM package file: a bounded pre-parse guard over the raw
// headers with one decode budget (MaxDecodeBytes), cavaliergopher/rpm for decoding, SHA-256 (or legacy SHA-1/MD5)
// digest and size checks, source-package detection, NEVRA and canonical file names, dist-tag parsing of release
// strings, and the raw signature tags with the exact bytes they sign, for a verifier elsewhere. It is pure: no
// logging, no HTTP, no globals that change.
package rpmmeta

import (
	"bufio"
	"bytes"
	"crypto/md5" // only for the size of the legacy MD5 digest tag
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/cavaliergopher/rpm"
	"golang.org/x/sys/unix"
)

// ErrInvalidPackage is wrapped by every error that means "these bytes are not a complete, intact RPM package":
// parse failures, truncation, trailing data, digest mismatches and bounds violations. Callers match it with
// errors.Is; the wrapping message carries a one-line human reason.
var ErrInvalidPackage = errors.New("invalid rpm package")

// Two kinds of ErrInvalidPackage that say what the bytes are instead, so a caller can tell the sender what to
// do: nothing at all, or a multipart form (what curl -F and HTML forms send) around the file.
var (
	ErrEmpty     = fmt.Errorf("empty file (0 bytes): %w", ErrInvalidPackage)
	ErrMultipart = fmt.Errorf("a multipart form, not a package: %w", ErrInvalidPackage)
)

// invalidf builds an ErrInvalidPackage error with a reason, e.g. "rpm: truncated: ...: invalid rpm package".
func invalidf(format string, args ...any) error {
	return fmt.Errorf("rpm: %s: %w", fmt.Sprintf(format, args...), ErrInvalidPackage)
}

// Package is the verified metadata of one RPM file.
type Package struct {
	Name, Version, Release string
	// Epoch is nil when the header has no epoch tag, which rpm treats like epoch 0.
	Epoch *uint32
	// Arch is the header's arch. For source packages it is still the build arch (rpm records where the SRPM was
	// built), so use FileArch for paths and names.
	Arch string
	// Source reports a source package (SRPM).
	Source bool
	// Summary is the header's one-line summary (tag 1004), as the builder wrote it: untrusted text.
	Summary string
	// Size is the file size in bytes, as read during verification.
	Size int64
	// SHA256 is the lowercase hex SHA-256 of the whole file.
	SHA256 string
	// PayloadChecked says how Inspect verified the payload: "sha256" when the header's SHA-256 payload digest (tag
	// 5092, rpm >= 4.14) matched, "md5" when a package without it had its legacy MD5 digest of header and payload
	// (signature tag 1004, e.g. EL7 and older builds) match, and "" when the package carries neither. Then only
	// the size tag was checked: a truncated or extended file is still refused, but a same-size corruption of the
	// payload is not detected (the header is still checked by its SHA-1 or SHA-256 digest when it has one).
	PayloadChecked string

	// HeaderSigs are the OpenPGP signatures of the main header alone, signature tags 267 (DSAHEADER) and 268
	// (RSAHEADER), in tag order; nil for an unsigned package. rpm 4.18 writes RSA signatures in 268 and all others,
	// EdDSA included, in 267; rpm >= 4.16 writes only these. Each signs HeaderBytes. Inspect does not verify them:
	// that needs a keyring and a policy (pkg/signature).
	HeaderSigs []RawSig
	// LegacySigs are the OpenPGP signatures of header and payload, signature tags 1002 (PGP) and 1005 (GPG), in tag
	// order, written by rpm < 4.16 next to the header signatures (or alone, by much older rpm). Each signs the file
	// range [HeaderStart, Size), which can be as large as the package: stream it from the file to verify.
	LegacySigs []RawSig
	// HeaderBytes are the exact bytes of the main header, file range [HeaderStart, HeaderEnd): the bytes the header
	// digests were verified over, that the metadata above was decoded from, and that HeaderSigs sign. Their size is
	// bounded by MaxDecodeBytes; typically a few KiB, a few MiB for packages with tens of thousands of files.
	HeaderBytes []byte
	// HeaderStart and HeaderEnd are the file offsets of the main header; the payload starts at HeaderEnd.
	HeaderStart, HeaderEnd int64
}

// RawSig is one signature tag of a package: its tag number and its value, a binary OpenPGP signature packet as rpm
// stores it (not armored). The packet is untrusted input, only extracted, never parsed here.
type RawSig struct {
	Tag    int
	Packet []byte
}

// FileArch returns "src" for source packages and Arch otherwise: the arch rpm tooling uses in file names.
func (p *Package) FileArch() string {
	if p.Source {
		return "src"
	}
	return p.Arch
}

// FileName returns the canonical file name "<name>-<version>-<release>.<FileArch()>.rpm". The fields come from an
// untrusted header and are not restricted here: validate them before using FileName as a path (pkg/ingest does).
func (p *Package) FileName() string {
	return p.Name + "-" + p.Version + "-" + p.Release + "." + p.FileArch() + ".rpm"
}

// NEVRA returns "name-[epoch:]version-release.arch" with FileArch as the arch. The epoch appears whenever the
// package has an epoch tag, including an explicit 0, so the string says exactly what the header says.
func (p *Package) NEVRA() string {
	evr := p.Version + "-" + p.Release
	if p.Epoch != nil {
		evr = strconv.FormatUint(uint64(*p.Epoch), 10) + ":" + evr
	}
	return p.Name + "-" + evr + "." + p.FileArch()
}

// Tag numbers from rpm's rpmtag.h that Inspect reads. Signature-header tags share the number space with the main
// header but mean different things, hence the two groups.
const (
	sigTagSHA1     = 269  // RPMSIGTAG_SHA1: hex SHA-1 of the main header
	sigTagLongSize = 270  // RPMSIGTAG_LONGSIZE: header+payload size, 64-bit
	sigTagSHA256   = 273  // RPMSIGTAG_SHA256: hex SHA-256 of the main header
	sigTagSize     = 1000 // RPMSIGTAG_SIZE: header+payload size, 32-bit
	sigTagMD5      = 1004 // RPMSIGTAG_MD5: binary MD5 of header+payload
	sigTagDSA      = 267  // RPMSIGTAG_DSA: OpenPGP signature of the main header, any algorithm but RSA (EdDSA too)
	sigTagRSA      = 268  // RPMSIGTAG_RSA: OpenPGP RSA signature of the main header
	sigTagPGP      = 1002 // RPMSIGTAG_PGP: OpenPGP RSA signature of header+payload
	sigTagGPG      = 1005 // RPMSIGTAG_GPG: OpenPGP DSA signature of header+payload

	tagEpoch             = 1003
	tagSourcePackage     = 1106 // present (in either header) only in source packages
	tagPayloadDigest     = 5092 // PAYLOADDIGEST, PAYLOADSHA256 in rpm 6
	tagPayloadDigestAlgo = 5093 // PAYLOADDIGESTALGO; rpm 6 omits it

	// pgpHashSHA256 is the PGPHASHALGO value rpm stores in tagPayloadDigestAlgo for SHA-256.
	pgpHashSHA256 = 8
	// leadTypeSource is the lead's package type for source packages.
	leadTypeSource = 1
)

// Inspect reads the package in f from offset 0, verifies it and returns its metadata.
//
// f must be a plain *os.File on a regular file that nothing writes to while Inspect runs (a spooled upload).
// Inspect reads it twice: the guard reads the lead and headers, which the library then decodes from memory, and
// one pass hashes the whole file; if the two reads disagree, Inspect fails with an error that is not
// ErrInvalidPackage. A small package, whose every byte the guard's read-ahead (16 KiB) already holds, is read
// once: the hashing pass hashes those bytes. It reads f with pread and leaves its offset alone. It never panics,
// and whatever the input its memory use is bounded by the guard's header caps and decode budget (MaxDecodeBytes,
// for both headers together), not by the file size: headers over the
// budget are refused with ErrInvalidPackage before the library decodes them.
//
// Verification: the guard checks the lead and both headers' structure; the library decodes them; then one
// sequential pass hashes the file, and the file size must match the signature SIZE/LONGSIZE tag, the header must
// match the signature SHA-256 (or SHA-1) digest, and the payload must match the header's SHA-256 payload digest
// or, in packages without one, the signature's MD5 digest of header and payload, each when present (see
// Package.PayloadChecked). A package with neither a size tag nor a payload digest is rejected because its
// completeness cannot be established. Every such failure wraps ErrInvalidPackage; other errors (stat, seek, read
// I/O) are returned as they are.
func Inspect(f *os.File) (*Package, error) {
	return InspectDigested(f, nil)
}

// InspectDigested is Inspect for a file whose bytes were also written to a Digester, as they arrived: it checks
// everything Inspect checks, but takes the digests from d instead of reading the file again, when d saw the same
// layout and size as the guard finds in the file (else, or with d nil, it hashes the file like Inspect). The caller
// must have written exactly the bytes now in f to the Digester. The guard's read of the lead and headers from f is
// still compared with the Digester's hash of them.
func InspectDigested(f *os.File, d *Digests) (*Package, error) {
	return InspectStat(f, nil, d)
}

// InspectStat is InspectDigested for a caller that has just stat'ed f itself: fi is that stat (nil: f is stat'ed
// here), so the file is not stat'ed twice (issue 20). fi must describe f's open file, not a path that may name
// another file by now; a non-regular one is refused as by Inspect.
func InspectStat(f *os.File, fi os.FileInfo, d *Digests) (*Package, error) {
	fi, lay, pkg, err := readHeaders(f, fi, true)
	if err != nil {
		return nil, err
	}
	defer lay.release()
	// The library computes the header range on its own, of the headers it was given (the guard's, with the index
	// cut down to the tags read: decodeReader); if it disagrees, it did not decode the headers the guard checked,
	// and the digests below would not cover what the metadata came from.
	start, end := pkg.HeaderRange()
	if ws, we := lay.decodedRange(); int64(start) != ws || int64(end) != we {
		return nil, invalidf("header range [%d,%d) disagrees with layout [%d,%d)", start, end, ws, we)
	}

	// Fields and tags first: a package refused for its name should not cost a pass over a large payload.
	p, err := metadata(pkg)
	if err != nil {
		return nil, err
	}
	want, err := expectations(pkg)
	if err != nil {
		return nil, err
	}
	sum, ok := d.forInspect(fi.Size(), lay.hdr.start, lay.hdr.end(), want.headerHash, want.payloadHash)
	if !ok {
		if lay.tail != nil {
			// The guard read the whole file: hash those bytes instead of reading it again.
			sum = hashMem(&lay, want.headerHash, want.payloadHash)
		} else if sum, err = hashFileAt(f, &lay, fi.Size(), lay.hdr.start, lay.hdr.end(), want.headerHash, want.payloadHash); err != nil {
			return nil, err
		}
	}
	if err := unchanged(f.Name(), &lay, sum); err != nil {
		return nil, err
	}
	if err := want.verify(sum, lay.hdr.start); err != nil {
		return nil, err
	}
	p.Size = sum.size
	p.SHA256 = hex.EncodeToString(sum.whole)
	p.PayloadChecked = want.payloadHash
	p.HeaderBytes, p.HeaderStart, p.HeaderEnd = lay.hdr.raw, lay.hdr.start, lay.hdr.end()
	return p, nil
}

// unchanged checks that the hashing pass read the same lead and headers as the guard. The digests are computed
// over the file, while HeaderBytes and the metadata come from the guard's read: they are the same bytes only if the
// file did not change in between, which the caller promises and this checks. A change is not the package's fault,
// so the error is not ErrInvalidPackage.
func unchanged(name string, lay *layout, sum fileSums) error {
	if sum.headCompared {
		if sum.headDiffers {
			return fmt.Errorf("rpmmeta: %s changed while it was inspected", name)
		}
		return nil
	}
	if !bytes.Equal(sum.head, lay.headHash()) {
		return fmt.Errorf("rpmmeta: %s changed while it was inspected", name)
	}
	return nil
}

// parse runs rpm.Read on r, turning any panic into ErrInvalidPackage. The guard should make panics impossible; this
// is the second line of defence. It cannot catch an out-of-memory crash, which is why the guard bounds allocations.
// r must return full reads (see layout.reader).
// readHeaders checks that f is a regular file, runs the guard over its lead and headers from the start, and has
// the library decode the bytes the guard checked (not a second read of the file: the guard's bounds hold for
// those bytes only), with each header's index cut down to the tags rpmmeta reads (layout.decodeReader). Inspect
// and Identify share it. With withTail, the layout keeps the rest of a file that the read-ahead holds whole
// (layout.tail), and the caller must call its release when done hashing.
func readHeaders(f *os.File, fi os.FileInfo, withTail bool) (os.FileInfo, layout, *rpm.Package, error) {
	if fi == nil {
		var err error
		if fi, err = f.Stat(); err != nil {
			return nil, layout{}, nil, fmt.Errorf("rpmmeta: stat: %w", err)
		}
	}
	if !fi.Mode().IsRegular() {
		// A pipe or device has no stable size and cannot be re-read; that is a caller bug, not a bad package.
		return nil, layout{}, nil, fmt.Errorf("rpmmeta: %s is not a regular file", f.Name())
	}
	// Buffered: the guard reads the lead and headers in many small pieces, each a system call on a bare file.
	// Read from offset 0 with pread, not seek and read: f's offset is not used, and the seek was one more system
	// call per upload.
	pr, err := newPreader(f)
	if err != nil {
		return nil, layout{}, nil, fmt.Errorf("rpmmeta: %w", err)
	}
	br := guardBufs.Get().(*bufio.Reader)
	br.Reset(pr)
	lay, err := guard(br, fi.Size())
	if err != nil {
		br.Reset(nil)
		guardBufs.Put(br)
		return nil, layout{}, nil, err
	}
	if n := br.Buffered(); withTail && lay.hdr.end()+int64(n) == fi.Size() {
		// The read-ahead holds the rest of the file (a small package: it fits the buffer): the hashing pass
		// hashes it (hashMem) instead of reading the file again. It stays the buffer's until release.
		lay.tail, _ = br.Peek(n)
		if lay.tail == nil {
			lay.tail = []byte{}
		}
		lay.tailBuf = br
	} else {
		br.Reset(nil)
		guardBufs.Put(br)
	}
	pkg, err := parse(lay.decodeReader())
	if err != nil {
		lay.release()
		return nil, layout{}, nil, err
	}
	return fi, lay, pkg, nil
}

// preader reads a file from offset 0 on, one pread(2) per Read (os.File.ReadAt would repeat it until the buffer
// is full, which at the end of a small file costs a second call that reads nothing).
type preader struct {
	rc   syscall.RawConn
	name string
	off  int64
}

func newPreader(f *os.File) (*preader, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &preader{rc: rc, name: f.Name()}, nil
}

func (r *preader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var rerr error
	if err := r.rc.Read(func(fd uintptr) bool {
		for {
			n, rerr = unix.Pread(int(fd), p, r.off)
			if rerr != unix.EINTR {
				return rerr != unix.EAGAIN
			}
		}
	}); err != nil {
		return 0, err
	}
	switch {
	case rerr != nil:
		return 0, &os.PathError{Op: "read", Path: r.name, Err: rerr}
	case n == 0:
		return 0, io.EOF
	}
	r.off += int64(n)
	return n, nil
}

// guardBufs are the read buffers of readHeaders.
var guardBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}

func parse(r io.Reader) (pkg *rpm.Package, err error) {
	defer func() {
		if r := recover(); r != nil {
			pkg, err = nil, invalidf("parser panic: %v", r)
		}
	}()
	pkg, err = rpm.Read(r)
	if err != nil {
		// The guard already read these bytes successfully, so any error here is about their content.
		return nil, invalidf("parse: %v", err)
	}
	return pkg, nil
}

// expected is what the tags say the file must hash and measure to. Empty fields mean "not recorded".
type expected struct {
	size          int64  // header+payload bytes (signature SIZE or LONGSIZE), -1 when absent
	headerHash    string // "sha256" or "sha1"; "" when the signature has no header digest
	headerDigest  string // lowercase hex
	payloadHash   string // "sha256" (payload only), "md5" (header+payload) or "" when the package has neither
	payloadDigest string // lowercase hex
}

// expectations collects the size and digests to verify from the signature and main headers. A tag that is present
// with the wrong type or a malformed value is an error rather than "absent": otherwise corrupting a tag's type would
// switch its check off.
func expectations(pkg *rpm.Package) (expected, error) {
	want := expected{size: -1}
	sig, hdr := &pkg.Signature, &pkg.Header

	// LONGSIZE wins when both are present: SIZE is 32-bit and cannot describe packages of 4 GiB or more.
	if v, ok, err := intTag(sig, "signature", sigTagLongSize, rpm.TagTypeInt64); err != nil {
		return want, err
	} else if ok {
		if v < 0 { // a uint64 above MaxInt64 wrapped by the library; no file is that large
			return want, invalidf("signature tag %d: impossible size %d", sigTagLongSize, uint64(v))
		}
		want.size = v
	} else if v, ok, err := intTag(sig, "signature", sigTagSize, rpm.TagTypeInt32); err != nil {
		return want, err
	} else if ok {
		want.size = v // decoded from a uint32: never negative
	}

	// SHA-256 is what rpm >= 4.14 writes; SHA-1 is the fallback older packages carry.
	if d, ok, err := hexTag(sig, "signature", sigTagSHA256, sha256.Size); err != nil {
		return want, err
	} else if ok {
		want.headerHash, want.headerDigest = "sha256", d
	} else if d, ok, err := hexTag(sig, "signature", sigTagSHA1, 20); err != nil {
		return want, err
	} else if ok {
		want.headerHash, want.headerDigest = "sha1", d
	}

	if t := hdr.GetTag(tagPayloadDigest); t != nil {
		algo, ok, err := intTag(hdr, "header", tagPayloadDigestAlgo, rpm.TagTypeInt32)
		if err != nil {
			return want, err
		}
		// rpm verifies tag 5092 as SHA-256 whatever the algorithm tag says (rpmvs.c), and rpm 6 no longer writes
		// the algorithm tag at all (it renamed 5092 PAYLOADSHA256): absent means SHA-256. Other algorithms are
		// legal in the tag but not produced by any rpm; such a package falls back to the size check.
		if !ok || algo == pgpHashSHA256 {
			d, _, err := hexTag(hdr, "header", tagPayloadDigest, sha256.Size)
			if err != nil {
				return want, err
			}
			want.payloadHash, want.payloadDigest = "sha256", d
		}
	}
	// Packages from rpm < 4.14 have no payload digest, but rpmbuild has always written the MD5 of header and
	// payload. MD5 is broken against an attacker, who could also just rewrite the tag; it is here to catch the
	// corruption a size check misses, like a flipped byte. Signatures, not digests, are the defence against forgery.
	if want.payloadHash == "" {
		if t := sig.GetTag(sigTagMD5); t != nil {
			if b := t.Bytes(); t.Type != rpm.TagTypeBinary || len(b) != md5.Size {
				return want, invalidf("signature tag %d is not a %d-byte binary MD5 digest (type %v, %d bytes)",
					sigTagMD5, md5.Size, t.Type, len(b))
			}
			want.payloadHash, want.payloadDigest = "md5", hex.EncodeToString(t.Bytes())
		}
	}

	if want.size < 0 && want.payloadHash == "" {
		return want, invalidf("cannot verify completeness: no size tag and no payload digest")
	}
	return want, nil
}

// verify compares the hashing pass with the expectations. hdrStart is where the main header begins: the size tags
// count everything from there to the end of the file.
func (want expected) verify(sum fileSums, hdrStart int64) error {
	if want.size >= 0 {
		switch wantTotal := hdrStart + want.size; {
		case sum.size < wantTotal:
			return invalidf("truncated: file is %d bytes, header says %d", sum.size, wantTotal)
		case sum.size > wantTotal:
			return invalidf("trailing data: file is %d bytes, header says %d", sum.size, wantTotal)
		}
	}
	if want.headerHash != "" {
		if !hexEqual(sum.header, want.headerDigest) {
			return invalidf("header %s digest mismatch: got %x, signature says %s", want.headerHash, sum.header,
				want.headerDigest)
		}
	}
	if want.payloadHash != "" {
		if !hexEqual(sum.payload, want.payloadDigest) {
			return invalidf("payload %s digest mismatch: got %x, package says %s", want.payloadHash, sum.payload,
				want.payloadDigest)
		}
	}
	return nil
}

// isLowerHex reports whether s is the lowercase hex of size bytes.
func isLowerHex(s string, size int) bool {
	if len(s) != 2*size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// hexEqual reports whether the lowercase hex of b is want, without allocating it (every upload compares two).
func hexEqual(b []byte, want string) bool {
	var buf [2 * 64]byte
	if 2*len(b) != len(want) || len(want) > len(buf) {
		return 2*len(b) == len(want) && hex.EncodeToString(b) == want
	}
	hex.Encode(buf[:], b)
	return string(buf[:len(want)]) == want
}

// metadata extracts and validates the fields of Package that come from the tags: identity and signatures (the
// sizes, digests and header bytes are set by Inspect).
func metadata(pkg *rpm.Package) (*Package, error) {
	p := &Package{
		Name:    pkg.Name(),
		Version: pkg.Version(),
		Release: pkg.Release(),
		Arch:    pkg.Architecture(),
		Summary: pkg.Summary(),
		// rpm decides "source" by the absence of SOURCERPM in the main header (headerIsSource), the one place a
		// signature covers. The lead and the signature header are covered by nothing: they may only agree.
		Source: pkg.SourceRPM() == "",
	}
	if err := sourceAgrees(pkg, p.Source); err != nil {
		return nil, err
	}
	if v, ok, err := intTag(&pkg.Header, "header", tagEpoch, rpm.TagTypeInt32); err != nil {
		return nil, err
	} else if ok {
		e := uint32(v) // INT32 tags are decoded from a uint32, so this cannot truncate
		p.Epoch = &e
	}
	if err := validateFields(p); err != nil {
		return nil, err
	}
	var err error
	if p.HeaderSigs, err = rawSigs(&pkg.Signature, sigTagDSA, sigTagRSA); err != nil {
		return nil, err
	}
	if p.LegacySigs, err = rawSigs(&pkg.Signature, sigTagPGP, sigTagGPG); err != nil {
		return nil, err
	}
	return p, nil
}

// sourceAgrees refuses a package whose unsigned parts (the lead's type, a SOURCEPACKAGE tag in the signature
// header) or whose own header (SOURCEPACKAGE next to SOURCERPM) say otherwise than the main header's SOURCERPM:
// rpm, createrepo_c and dnf go by the header, so a package filed by anything else would sit in the wrong
// repository, and the unsigned bytes can be rewritten by anyone without breaking a signature.
func sourceAgrees(pkg *rpm.Package, source bool) error {
	kind := func(src bool) string {
		if src {
			return "a source package"
		}
		return "a binary package"
	}
	hdr := kind(source) + " (the header " + map[bool]string{true: "has no SOURCERPM", false: "has SOURCERPM"}[source] + ")"
	switch {
	case pkg.Lead.Type != 0 && pkg.Lead.Type != leadTypeSource:
		return invalidf("lead type %d is neither binary (0) nor source (1)", pkg.Lead.Type)
	case (pkg.Lead.Type == leadTypeSource) != source:
		return invalidf("the lead says %s but the header says %s", kind(pkg.Lead.Type == leadTypeSource), hdr)
	case pkg.Header.GetTag(tagSourcePackage) != nil && !source:
		return invalidf("the header has SOURCEPACKAGE (a source package) and SOURCERPM (a binary package)")
	case pkg.Signature.GetTag(tagSourcePackage) != nil && !source:
		return invalidf("the signature header says a source package (SOURCEPACKAGE) but the header says %s", hdr)
	}
	return nil
}

// rawSigs returns the signature tags ids that are present, in the order given. A present tag that is not binary is
// an error rather than "unsigned": otherwise retyping a signature would switch its verification off.
func rawSigs(sig *rpm.Header, ids ...int) ([]RawSig, error) {
	var sigs []RawSig
	for _, id := range ids {
		t := sig.GetTag(id)
		if t == nil {
			continue
		}
		if t.Type != rpm.TagTypeBinary {
			return nil, invalidf("signature tag %d has type %v, want %v", id, t.Type, rpm.TagTypeBinary)
		}
		// The library's decoded copy: the caller may keep it without pinning anything else.
		sigs = append(sigs, RawSig{Tag: id, Packet: t.Bytes()})
	}
	return sigs, nil
}

// intTag returns the first value of an integer tag that must have type typ. ok is false when the tag is absent.
func intTag(h *rpm.Header, where string, id int, typ rpm.TagType) (v int64, ok bool, err error) {
	t := h.GetTag(id)
	if t == nil {
		return 0, false, nil
	}
	vals := t.Int64Slice()
	if t.Type != typ || len(vals) == 0 {
		return 0, false, invalidf("%s tag %d has type %v, want %v", where, id, t.Type, typ)
	}
	return vals[0], true, nil
}

// hexTag returns the first string of a tag that must hold a hex digest of size bytes, lowercased. ok is false when
// the tag is absent.
func hexTag(h *rpm.Header, where string, id, size int) (digest string, ok bool, err error) {
	t := h.GetTag(id)
	if t == nil {
		return "", false, nil
	}
	s := t.String()
	if isLowerHex(s, size) {
		return s, true, nil // the usual case, as rpm writes it: no decode and re-encode
	}
	b, herr := hex.DecodeString(s)
	if herr != nil || len(b) != size {
		return "", false, invalidf("%s tag %d is not a %d-byte hex digest: %.80q", where, id, size, s)
	}
	// Re-encoding normalises upper-case hex, which rpm accepts.
	return hex.EncodeToString(b), true, nil
}
