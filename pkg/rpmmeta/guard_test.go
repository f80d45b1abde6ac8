package rpmmeta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// layoutOf locates the headers of a valid package (via the guard, which the valid-package tests cover).
func layoutOf(t *testing.T, data []byte) layout {
	t.Helper()
	lay, err := guard(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("guard on a valid package: %v", err)
	}
	return lay
}

// entryPos returns the file offset of the index entry for tag in header h.
func entryPos(t *testing.T, data []byte, h headerLayout, tag uint32) int {
	t.Helper()
	for i := range int(h.il) {
		pos := int(h.start) + introSize + i*entrySize
		if binary.BigEndian.Uint32(data[pos:]) == tag {
			return pos
		}
	}
	t.Fatalf("tag %d not in header at %d", tag, h.start)
	return 0
}

// storePos returns the file offset of header h's store.
func storePos(h headerLayout) int { return int(h.start) + introSize + int(h.il)*entrySize }

// Field offsets inside an index entry and a header intro.
const (
	fieldTag, fieldType, fieldOffset, fieldCount = 0, 4, 8, 12
	introIL, introDL                             = 8, 12
)

func put32(b []byte, pos int, v uint32) { binary.BigEndian.PutUint32(b[pos:], v) }

// setEntry overwrites one field of the index entry for tag.
func setEntry(t *testing.T, b []byte, h headerLayout, tag uint32, field int, v uint32) {
	t.Helper()
	put32(b, entryPos(t, b, h, tag)+field, v)
}

// rawEntry and rawHeader craft headers from scratch, for inputs no packager would write.
type rawEntry struct{ tag, typ, off, count uint32 }

func rawHeader(entries []rawEntry, store []byte) []byte {
	b := append([]byte{}, headerMagic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(entries)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(store)))
	for _, e := range entries {
		for _, v := range []uint32{e.tag, e.typ, e.off, e.count} {
			b = binary.BigEndian.AppendUint32(b, v)
		}
	}
	return append(b, store...)
}

// rawPackage joins a v3 lead, a signature header with its padding, and a main header.
func rawPackage(sig, hdr []byte) []byte {
	lead := make([]byte, leadSize)
	copy(lead, leadMagic)
	lead[4] = leadMajorV3
	binary.BigEndian.PutUint16(lead[78:], leadSigHeaderType)
	b := append(lead, sig...)
	b = append(b, make([]byte, (8-len(sig)%8)%8)...)
	return append(b, hdr...)
}

// minimalSig is a valid signature header: one SIZE entry.
var minimalSig = rawHeader([]rawEntry{{sigTagSize, typeInt32, 0, 1}}, []byte{0, 0, 0, 0})

// TestInspectRejectsCorruption: every input must be refused with ErrInvalidPackage, without panicking, and for the
// reason named in wantMsg (so a bounds violation is proven to be caught by the guard, not by luck downstream).
func TestInspectRejectsCorruption(t *testing.T) {
	base := testrpm.Build(t, testrpm.Spec{Name: "corrupt", Version: "1.0", Release: "1.el9", Arch: "x86_64"})
	lay := layoutOf(t, base)
	fixture, err := os.ReadFile(filepath.Join(fixtureDir, "hello-1.0-1.el9.x86_64.rpm"))
	if err != nil {
		t.Fatal(err)
	}
	fixLay := layoutOf(t, fixture)
	rng := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(rng.UintN(256))
	}
	summary := bytes.Index(base, []byte("rpm-ingestd test package"))
	if summary < storePos(lay.hdr) {
		t.Fatal("summary string not found in the main header store")
	}

	tests := []struct {
		name    string
		data    []byte // the base to corrupt; mutate works on a copy
		mutate  func(b []byte) []byte
		wantMsg string
	}{
		{"empty file", nil, nil, "empty file (0 bytes)"},
		{"random junk", junk, nil, "bad lead magic"},
		{"junk after lead magic", append(append([]byte{}, leadMagic...), append([]byte{9, 0}, junk...)...), nil,
			"lead version 9.0"},
		{"lead only", base[:leadSize], nil, "truncated"},
		{"lead and half a signature intro", base[:leadSize+8], nil, "truncated"},
		{"lead version 2", base, func(b []byte) []byte { b[4] = 2; return b }, "lead version 2.0"},
		{"lead version 5", base, func(b []byte) []byte { b[4] = 5; return b }, "lead version 5.0"},
		{"lead signature type 0", base, func(b []byte) []byte { b[79] = 0; return b }, "signature type 0"},
		{"signature header bad magic", base, func(b []byte) []byte { b[leadSize] ^= 0xff; return b }, "bad magic"},
		{"main header bad magic", base, func(b []byte) []byte { b[lay.hdr.start+2] ^= 0xff; return b }, "main header"},
		{"main header reserved byte set", base, func(b []byte) []byte { b[lay.hdr.start+5] = 1; return b }, "bad magic"},
		{"zero index count", base, func(b []byte) []byte { put32(b, int(lay.hdr.start)+introIL, 0); return b },
			"no index entries"},
		{"huge index count", base, func(b []byte) []byte { put32(b, int(lay.hdr.start)+introIL, 0x10000); return b },
			"rpm's limit"},
		{"max index count", base, func(b []byte) []byte { put32(b, leadSize+introIL, 0xffffffff); return b },
			"rpm's limit"},
		{"huge store size", base, func(b []byte) []byte { put32(b, int(lay.hdr.start)+introDL, 0x7fffffff); return b },
			"-byte limit"},
		{"max store size", base, func(b []byte) []byte { put32(b, leadSize+introDL, 0xffffffff); return b },
			"-byte limit"},
		{"store past end of file", base, func(b []byte) []byte {
			put32(b, int(lay.hdr.start)+introDL, lay.hdr.dl+uint32(len(b)))
			return b
		}, "truncated"},
		{"INT32 count 0xFFFFFFFF", base, func(b []byte) []byte {
			setEntry(t, b, lay.hdr, 1009, fieldCount, 0xffffffff) // rpmpack writes SIZE (1009) as INT32
			return b
		}, "exceed"},
		{"STRING_ARRAY count 0xFFFFFFFF", base, func(b []byte) []byte {
			setEntry(t, b, lay.hdr, 1117, fieldCount, 0xffffffff) // BASENAMES
			return b
		}, "cannot fit"},
		{"BIN count 0xFFFFFFFF in signature region", base, func(b []byte) []byte {
			setEntry(t, b, lay.sig, 62, fieldCount, 0xffffffff)
			return b
		}, "exceed"},
		{"offset far out of store", base, func(b []byte) []byte {
			setEntry(t, b, lay.hdr, 1000, fieldOffset, 0xffffff00)
			return b
		}, "outside"},
		{"offset at store end", base, func(b []byte) []byte {
			setEntry(t, b, lay.hdr, 1000, fieldOffset, lay.hdr.dl)
			return b
		}, "outside"},
		{"INT32 running past store end", base, func(b []byte) []byte {
			// The signature's last data entry is 4 bytes followed by the 16-byte region trailer; 6 values overrun.
			setEntry(t, b, lay.sig, 1007, fieldCount, 6)
			return b
		}, "exceed"},
		{"unterminated string", base, func(b []byte) []byte {
			// Retype the signature's last entry as a string in the final byte of the store, which is non-zero.
			setEntry(t, b, lay.sig, 1007, fieldType, typeString)
			setEntry(t, b, lay.sig, 1007, fieldOffset, lay.sig.dl-1)
			return b
		}, "not NUL-terminated"},
		{"STRING with count 2", base, func(b []byte) []byte {
			setEntry(t, b, lay.hdr, 1000, fieldCount, 2)
			return b
		}, "want 1"},
		{"unknown type", base, func(b []byte) []byte { setEntry(t, b, lay.hdr, 1000, fieldType, 10); return b },
			"unknown data type 10"},
		{"huge type", base, func(b []byte) []byte { setEntry(t, b, lay.hdr, 1000, fieldType, 0xffffffff); return b },
			"unknown data type"},
		{"zero count", base, func(b []byte) []byte { setEntry(t, b, lay.hdr, 1000, fieldCount, 0); return b },
			"zero value count"},
		{"overlapping entries", base, func(b []byte) []byte {
			// Point entry 2's data at entry 1's (entry 0 is the region tag).
			e1 := int(lay.hdr.start) + introSize + entrySize
			copy(b[e1+entrySize+fieldOffset:e1+entrySize+fieldOffset+4], b[e1+fieldOffset:e1+fieldOffset+4])
			return b
		}, "overlaps"},
		{"flipped byte in header store", base, func(b []byte) []byte { b[summary] ^= 0x20; return b },
			"header sha256 digest mismatch"},
		{"flipped byte in payload", base, func(b []byte) []byte { b[len(b)-10] ^= 1; return b },
			"payload sha256 digest mismatch"},
		{"appended garbage", base, func(b []byte) []byte { return append(b, "garbage"...) }, "trailing data"},
		{"appended zero byte", base, func(b []byte) []byte { return append(b, 0) }, "trailing data"},
		{"truncated mid-payload", base, func(b []byte) []byte { return b[:lay.hdr.end()+(int64(len(b))-lay.hdr.end())/2] },
			"truncated"},
		{"truncated by one byte", base, func(b []byte) []byte { return b[:len(b)-1] }, "truncated"},
		{"size tag with wrong type", base, func(b []byte) []byte {
			setEntry(t, b, lay.sig, sigTagSize, fieldType, typeInt16)
			return b
		}, "has type"},
		{"header digest not hex", base, func(b []byte) []byte {
			b[storePos(lay.sig)+int(binary.BigEndian.Uint32(b[entryPos(t, b, lay.sig, sigTagSHA256)+fieldOffset:]))] = 'z'
			return b
		}, "hex digest"},
		{"no size tag, truncated payload", base, func(b []byte) []byte {
			setEntry(t, b, lay.sig, sigTagSize, fieldTag, 1999) // an unknown tag: as if SIZE were absent
			return b[:len(b)-1]
		}, "payload sha256 digest mismatch"},
		{"no size tag, appended garbage", base, func(b []byte) []byte {
			setEntry(t, b, lay.sig, sigTagSize, fieldTag, 1999)
			return append(b, "garbage"...)
		}, "payload sha256 digest mismatch"},
		{"no size tag and no payload digest", base, func(b []byte) []byte {
			setEntry(t, b, lay.sig, sigTagSize, fieldTag, 1999)
			setEntry(t, b, lay.sig, sigTagSHA256, fieldTag, 1998) // else renaming 5092 breaks the header digest
			setEntry(t, b, lay.hdr, tagPayloadDigest, fieldTag, 5999)
			return b
		}, "cannot verify completeness"},
		{"rpmbuild: flipped byte in header", fixture, func(b []byte) []byte { b[fixLay.hdr.end()-1] ^= 1; return b },
			"digest mismatch"},
		{"rpmbuild: SHA-1 fallback catches flipped byte", fixture, func(b []byte) []byte {
			setEntry(t, b, fixLay.sig, sigTagSHA256, fieldTag, 1999)
			b[fixLay.hdr.end()-1] ^= 1
			return b
		}, "header sha1 digest mismatch"},
		{"rpmbuild: flipped byte in payload", fixture, func(b []byte) []byte { b[len(b)-5] ^= 1; return b },
			"payload sha256 digest mismatch"},
		{"rpmbuild: appended garbage", fixture, func(b []byte) []byte { return append(b, 1, 2, 3) }, "trailing data"},
		{"decoding cost over budget", rawPackage(minimalSig, rawHeader(
			[]rawEntry{{1000, typeStringArray, 0, 9 << 20}}, make([]byte, 9<<20))), nil, "decode budget"},
		{"crafted header that panics the library", rawPackage(rawHeader(
			[]rawEntry{{1000, typeStringArray, 1, 2}}, []byte("\x00ab")), minimalSig), nil, "not NUL-terminated"},
		{"signature only", rawPackage(minimalSig, nil), nil, "truncated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := append([]byte{}, tc.data...)
			if tc.mutate != nil {
				data = tc.mutate(data)
			}
			_, err := inspectBytes(t, data)
			if !errors.Is(err, ErrInvalidPackage) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Inspect error = %v, want ErrInvalidPackage containing %q", err, tc.wantMsg)
			}
			t.Log(err)
			// The reason is one line starting with "rpm: ", readable in an HTTP 400 body.
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "rpm: ") {
				t.Errorf("error %q is not a one-line rpm: reason", msg)
			}
		})
	}
}

// TestInspectTruncatedEverywhere cuts packages at every 7th byte through the headers and at several payload
// offsets: "rpm -qp" and the library both accept some truncated files, Inspect must not.
func TestInspectTruncatedEverywhere(t *testing.T) {
	inputs := map[string][]byte{
		"rpmpack": testrpm.Build(t, testrpm.Spec{Name: "cut", Version: "1", Release: "1.el9", Arch: "x86_64"}),
	}
	for _, f := range []string{"hello-1.0-1.el9.x86_64.rpm", "hello-1.0-1.el9.src.rpm"} {
		b, err := os.ReadFile(filepath.Join(fixtureDir, f))
		if err != nil {
			t.Fatal(err)
		}
		inputs[f] = b
	}
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			end := int(layoutOf(t, data).hdr.end())
			var cuts []int
			for n := 0; n <= end; n += 7 {
				cuts = append(cuts, n)
			}
			payload := len(data) - end
			cuts = append(cuts, end-1, end, end+1, end+payload/3, end+payload/2, len(data)-2, len(data)-1)
			dir := t.TempDir()
			for _, n := range cuts {
				if _, err := inspectIn(t, dir, data[:n]); !errors.Is(err, ErrInvalidPackage) {
					t.Errorf("cut at %d of %d: Inspect error = %v, want ErrInvalidPackage", n, len(data), err)
				}
			}
		})
	}
}

// TestInspectAcceptsWithoutSizeTag: with SIZE absent, the payload digest alone establishes completeness.
func TestInspectAcceptsWithoutSizeTag(t *testing.T) {
	data := testrpm.Build(t, testrpm.Spec{Name: "nosize", Version: "1", Release: "1", Arch: "x86_64"})
	setEntry(t, data, layoutOf(t, data).sig, sigTagSize, fieldTag, 1999)
	if _, err := inspectBytes(t, data); err != nil {
		t.Fatalf("Inspect: %v", err)
	}
}

// TestParseRecoversPanic feeds the library, bypassing the guard, a header that makes it slice past its buffer:
// parse must turn the panic into ErrInvalidPackage.
func TestParseRecoversPanic(t *testing.T) {
	data := rawPackage(rawHeader([]rawEntry{{1000, typeStringArray, 1, 2}}, []byte("\x00ab")), minimalSig)
	if _, err := parse(writeOpen(t, t.TempDir(), data)); !errors.Is(err, ErrInvalidPackage) || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("parse error = %v, want ErrInvalidPackage from a recovered panic", err)
	}
}
