package auth

import "crypto/md5" //nolint:gosec // apr1 and md5-crypt are MD5 by definition; accepted as weak, named at start-up.

// The magic strings that select the md5-crypt variant. apr1 is Apache's, and what `htpasswd -m` (and plain
// `htpasswd`) write; $1$ is the original FreeBSD/glibc md5-crypt that nginx also reads through crypt(3).
const (
	apr1Magic = "$apr1$"
	md5Magic  = "$1$"
)

// md5Crypt is Poul-Henning Kamp's md5-crypt, as in Apache's apr_md5.c and glibc's md5-crypt.c. It returns
// only the 22-character encoded hash (not magic or salt), which the caller compares with the stored one. salt
// is at most 8 characters and has no '$' (the parser guarantees both). The work depends only on the lengths of
// password and salt, never on their contents.
func md5Crypt(pass []byte, magic, salt string) []byte {
	// Step 1: the "alternate" sum, password + salt + password.
	alt := md5.New() //nolint:gosec
	alt.Write(pass)
	alt.Write([]byte(salt))
	alt.Write(pass)
	altSum := alt.Sum(nil)

	// Step 2: password, magic, salt, then the alternate sum repeated over the password's length.
	ctx := md5.New() //nolint:gosec
	ctx.Write(pass)
	ctx.Write([]byte(magic))
	ctx.Write([]byte(salt))
	for n := len(pass); n > 0; n -= md5.Size {
		ctx.Write(altSum[:min(n, md5.Size)])
	}
	// Then, for each bit of the length from the lowest: a zero byte for a one bit, the password's first byte
	// for a zero bit. (The original meant to add the sum's first byte; every implementation keeps the quirk.)
	for n := len(pass); n != 0; n >>= 1 {
		if n&1 != 0 {
			ctx.Write([]byte{0})
		} else {
			ctx.Write(pass[:1])
		}
	}
	final := ctx.Sum(nil)

	// Step 3: 1,000 rounds meant to slow brute force down (they no longer do much against a GPU).
	for i := range 1000 {
		r := md5.New() //nolint:gosec
		if i&1 != 0 {
			r.Write(pass)
		} else {
			r.Write(final)
		}
		if i%3 != 0 {
			r.Write([]byte(salt))
		}
		if i%7 != 0 {
			r.Write(pass)
		}
		if i&1 != 0 {
			r.Write(final)
		} else {
			r.Write(pass)
		}
		final = r.Sum(final[:0])
	}

	// Step 4: encode the 16 bytes in a fixed shuffled order, 3 bytes to 4 characters, low bits first.
	out := make([]byte, 0, 22)
	to64 := func(v uint32, n int) {
		for ; n > 0; n-- {
			out = append(out, itoa64[v&0x3f])
			v >>= 6
		}
	}
	for _, g := range [5][3]int{{0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}} {
		to64(uint32(final[g[0]])<<16|uint32(final[g[1]])<<8|uint32(final[g[2]]), 4)
	}
	to64(uint32(final[11]), 2)
	return out
}
