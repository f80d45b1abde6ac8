package auth

import (
	"context"
	"net"
	"net/netip"
	"strconv"
)

// Peer is the other end of one connection, as the kernel reports it: never what the client or a header
// claims. ConnContext records it when the connection is accepted.
//
// The zero Peer is an unknown peer, trusted for nothing.
type Peer struct {
	// Unix is true for a unix-socket connection.
	Unix bool
	// Cred is true when UID and PID came from SO_PEERCRED (unix sockets on Linux). Without it they mean nothing:
	// UID 0 would otherwise read as root.
	Cred bool
	// UID and PID are the peer process's user and process ids at connect time.
	UID, PID int
	// Addr is a TCP peer's address, with IPv4-mapped IPv6 addresses unmapped and any zone dropped so that
	// "::ffff:127.0.0.1" is loopback and matches 127.0.0.0/8. It is invalid for unix sockets.
	Addr netip.Addr
}

// String renders the peer for logs and error messages: "unix uid 990 pid 1234", "unix (no credentials)",
// "192.0.2.7" or "unknown".
func (p Peer) String() string {
	switch {
	case p.Unix && p.Cred:
		return "unix uid " + strconv.Itoa(p.UID) + " pid " + strconv.Itoa(p.PID)
	case p.Unix:
		return "unix (no credentials)"
	case p.Addr.IsValid():
		return p.Addr.String()
	}
	return "unknown"
}

// peerKey is the context key of the Peer; unexported so only this package can set it.
type peerKey struct{}

// ConnContext stores the peer of c in ctx. Its signature is http.Server.ConnContext's:
//
//	srv := &http.Server{ConnContext: auth.ConnContext, ...}
//
// It runs once per connection, on the accepting goroutine, and costs one getsockopt for unix sockets.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return WithPeer(ctx, PeerOf(c))
}

// WithPeer returns ctx carrying p. ConnContext uses it; tests use it to build requests from any peer.
func WithPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFrom returns the peer that ConnContext stored, and false when there is none (the server was built
// without ConnContext). Callers treat a missing peer as the zero Peer: trusted for nothing.
func PeerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// PeerOf reads the peer of c from the kernel. A TLS connection is unwrapped first. A unix socket whose
// credentials cannot be read yields a Peer with Cred false, so a failure never grants trust.
func PeerOf(c net.Conn) Peer {
	// *tls.Conn and similar wrappers expose the connection underneath; a few levels are plenty.
	for range 4 {
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = w.NetConn()
	}
	switch conn := c.(type) {
	case *net.UnixConn:
		p := Peer{Unix: true}
		if uid, pid, err := peerCred(conn); err == nil {
			p.Cred, p.UID, p.PID = true, uid, pid
		}
		return p
	case *net.TCPConn:
		if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
			return Peer{Addr: cleanAddr(a.AddrPort().Addr())}
		}
	}
	// Some other net.Conn (a test pipe, a custom listener): take the remote address if it is an IP.
	if c.RemoteAddr() == nil {
		return Peer{}
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return Peer{Addr: cleanAddr(ap.Addr())}
	}
	return Peer{}
}

func cleanAddr(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }
