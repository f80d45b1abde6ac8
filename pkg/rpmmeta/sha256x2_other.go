//go:build !amd64

package rpmmeta

// pairHashing is false where sha256x2_amd64.s is not built: the digests are computed with crypto/sha256 on two
// goroutines instead.
var pairHashing = false

func sha256Block1(d *[8]uint32, p *byte, n int) {
	panic("rpmmeta: no SHA-256 pair hashing on this platform")
}
func sha256Block2(d1, d2 *[8]uint32, p1, p2 *byte, n int) {
	panic("rpmmeta: no SHA-256 pair hashing on this platform")
}
