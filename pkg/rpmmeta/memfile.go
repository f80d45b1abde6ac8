package rpmmeta

import "io"

// memFile returns the whole file as the guard read it, lead, headers and tail, as an io.ReaderAt for the hashing
// pass. Only for a layout whose tail is set.
func (lay *layout) memFile() io.ReaderAt {
	return partsAt{lay.lead, lay.sig.raw, lay.pad, lay.hdr.raw, lay.tail}
}

// release gives the read-ahead buffer that holds the tail back to readHeaders' pool; the tail is gone after.
func (lay *layout) release() {
	if lay.tailBuf != nil {
		lay.tailBuf.Reset(nil)
		guardBufs.Put(lay.tailBuf)
		lay.tail, lay.tailBuf = nil, nil
	}
}

// partsAt reads the concatenation of its parts.
type partsAt [][]byte

func (p partsAt) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, io.EOF
	}
	n := 0
	for _, part := range p {
		if off >= int64(len(part)) {
			off -= int64(len(part))
			continue
		}
		c := copy(b[n:], part[off:])
		n += c
		off = 0
		if n == len(b) {
			return n, nil
		}
	}
	return n, io.EOF
}
