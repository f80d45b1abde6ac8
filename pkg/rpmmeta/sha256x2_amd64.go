//go:build amd64

package rpmmeta

import "golang.org/x/sys/cpu"

// sha256Block1 runs SHA-256's compression function over the n 64-byte blocks at p, updating d.
//
//go:noescape
func sha256Block1(d *[8]uint32, p *byte, n int)

// sha256Block2 is sha256Block1 over two independent messages at once: n blocks at p1 into d1 and n blocks at p2
// into d2, their rounds interleaved.
//
//go:noescape
func sha256Block2(d1, d2 *[8]uint32, p1, p2 *byte, n int)

func cpuidSHA() bool

// pairHashing says whether this CPU has the instructions sha256Block1 and sha256Block2 use: the SHA extensions,
// SSSE3 (PSHUFB, PALIGNR) and SSE4.1 (PBLENDW).
var pairHashing = cpu.X86.HasSSSE3 && cpu.X86.HasSSE41 && cpuidSHA()
