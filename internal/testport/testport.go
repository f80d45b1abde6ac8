// Package testport gives tests a TCP port to start a server on.
//
// A port taken with Listen(":0") and closed again for a child process to bind comes from the kernel's ephemeral
// range, the same range every outgoing connection on the machine takes its local port from. Between the close and
// the child's bind, a client socket of another test running in parallel can take that port, and the child's bind
// fails with "address already in use" (seen in CI: TestProbeAgainstRealDaemon). Free picks below that range
// instead, where no connection takes a port on its own: only another server asking for that very port can. It keeps
// to 10000-19999, also below the ports internal/seaweed picks for SeaweedFS (20000 and up).
package testport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// ephemeralFrom is the first port of the kernel's ephemeral range (net.ipv4.ip_local_port_range), 32768 where it
// cannot be read.
func ephemeralFrom() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

// Free returns host:port for a port on host from 10000 up to 19999 or the ephemeral range, whichever is lower, that
// was free a moment ago; it fails the test when 100 random tries find none.
func Free(t testing.TB, host string) string {
	t.Helper()
	top, bottom := min(ephemeralFrom(), 20000), 10000
	if top <= bottom {
		t.Fatalf("testport: the ephemeral range starts at %d: no room below it for test servers", top)
	}
	for range 100 {
		addr := net.JoinHostPort(host, strconv.Itoa(bottom+rand.IntN(top-bottom)))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr
	}
	t.Fatalf("testport: no free port on %s in [%d, %d) after 100 tries", host, bottom, top)
	return ""
}

// FreePort is Free's port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(Free(t, "127.0.0.1"))
	n, _ := strconv.Atoi(p)
	return n
}
