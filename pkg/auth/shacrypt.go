package auth

import (
	"crypto/sha256"
	"crypto/sha512"
	"hash"
)

// SHA-crypt bounds, from Ulrich Drepper's specification ("Unix crypt using SHA-256 and SHA-512", the algorithm
// behind glibc's $5$ and $6$ and `htpasswd -2`/`-5`): 5000 rounds unless the hash says "rounds=N$", and N is
// clamped to 1000..999,999,999. We refuse more than maxShaRounds instead of clamping: a check at a billion
// rounds takes minutes, and the file, not the client, would be choosing that cost.
const (
	defaultShaRounds = 5000
	minShaRounds     = 1000
	maxShaRounds     = 1_000_000
	maxShaSalt       = 16
)

// shaCryptVariant is what differs between $5$ and $6$: the hash, and the byte order of the final encoding.
type shaCryptVariant struct {
	name  string // for logs: "sha256-crypt", "sha512-crypt"
	magic string
	new   func() hash.Hash
	size  int
	// order lists the digest's bytes in the order the encoding takes them, three at a time (most significant
	// first), the last group padded with zeros at its front; encodedLen is the length of the encoded digest.
	order      []int
	encodedLen int
}

var (
	sha256Crypt = shaCryptVariant{name: "sha256-crypt", magic: "$5$", new: sha256.New, size: sha256.Size, encodedLen: 43, order: []int{
		0, 10, 20, 21, 1, 11, 12, 22, 2, 3, 13, 23, 24, 4, 14, 15, 25, 5, 6, 16, 26, 27, 7, 17, 18, 28, 8, 9, 19, 29,
		-1, 31, 30, // -1: a zero byte
	}}
	sha512Crypt = shaCryptVariant{name: "sha512-crypt", magic: "$6$", new: sha512.New, size: sha512.Size, encodedLen: 86, order: []int{
		0, 21, 42, 22, 43, 1, 44, 2, 23, 3, 24, 45, 25, 46, 4, 47, 5, 26, 6, 27, 48, 28, 49, 7, 50, 8, 29, 9, 30, 51,
		31, 52, 10, 53, 11, 32, 12, 33, 54, 34, 55, 13, 56, 14, 35, 15, 36, 57, 37, 58, 16, 59, 17, 38, 18, 39, 60,
		40, 61, 19, 62, 20, 41, -1, -1, 63,
	}}
)

// shaCrypt computes the encoded digest of pass (without magic, rounds or salt). salt has at most 16 bytes and
// no '$'; rounds is within the bounds above (the parser guarantees all three). The work depends only on the
// lengths of pass and salt and on rounds.
func shaCrypt(v shaCryptVariant, pass []byte, salt string, rounds int) []byte {
	// Digest B: password, salt, password.
	h := v.new()
	h.Write(pass)
	h.Write([]byte(salt))
	h.Write(pass)
	b := h.Sum(nil)

	// Digest A: password, salt, B repeated over the password's length, then per bit of the length (lowest
	// first) B for a one and the password for a zero.
	h = v.new()
	h.Write(pass)
	h.Write([]byte(salt))
	for n := len(pass); n > 0; n -= v.size {
		h.Write(b[:min(n, v.size)])
	}
	for n := len(pass); n > 0; n >>= 1 {
		if n&1 != 0 {
			h.Write(b)
		} else {
			h.Write(pass)
		}
	}
	a := h.Sum(nil)

	// P: a digest of the password repeated len(pass) times, stretched to len(pass) bytes.
	h = v.new()
	for range len(pass) {
		h.Write(pass)
	}
	p := stretch(h.Sum(nil), len(pass))

	// S: a digest of the salt repeated 16 + A[0] times, stretched to len(salt) bytes.
	h = v.new()
	for range 16 + int(a[0]) {
		h.Write([]byte(salt))
	}
	s := stretch(h.Sum(nil), len(salt))

	// The rounds, in the same pattern as md5-crypt's.
	c := a
	for i := range rounds {
		h = v.new()
		if i&1 != 0 {
			h.Write(p)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(s)
		}
		if i%7 != 0 {
			h.Write(p)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(p)
		}
		c = h.Sum(c[:0])
	}

	out := make([]byte, 0, v.encodedLen)
	for i := 0; i < len(v.order); i += 3 {
		var w uint32
		for _, idx := range v.order[i : i+3] {
			w <<= 8
			if idx >= 0 {
				w |= uint32(c[idx])
			}
		}
		for range min(4, v.encodedLen-len(out)) {
			out = append(out, itoa64[w&0x3f])
			w >>= 6
		}
	}
	return out
}

// stretch repeats d to n bytes.
func stretch(d []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, d[:min(len(d), n-len(out))]...)
	}
	return out
}
