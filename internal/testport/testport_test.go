package testport

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeIsBelowTheEphemeralRange: the port is one a listener can take, and no outgoing connection would take it
// on its own.
func TestFreeIsBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		addr := Free(t, "127.0.0.1")
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		if n >= ephemeralFrom() || n >= 20000 || n < 10000 {
			t.Fatalf("port %d: want 10000-19999 and below the ephemeral range (from %d)", n, ephemeralFrom())
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("Free gave %s, which cannot be listened on: %v", addr, err)
		}
		ln.Close()
	}
}
