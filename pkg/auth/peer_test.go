package auth

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// accepted dials l and returns the server side of the connection.
func accepted(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		ch <- result{c, err}
	}()
	client, err := net.Dial(l.Addr().Network(), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c
}

// TestPeerOfUnixSocket checks SO_PEERCRED over a real unix socket: the peer is this very process.
func TestPeerOfUnixSocket(t *testing.T) {
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := accepted(t, l)
	p := PeerOf(c)
	want := Peer{Unix: true, Cred: true, UID: os.Getuid(), PID: os.Getpid()}
	if p != want {
		t.Fatalf("PeerOf(unix) = %+v, want %+v", p, want)
	}
	// Behind TLS the peer is that of the connection underneath (no handshake is needed to unwrap it).
	if p := PeerOf(tls.Server(c, &tls.Config{})); p != want {
		t.Fatalf("PeerOf(tls over unix) = %+v, want %+v", p, want)
	}
	if got := p.String(); got != fmt.Sprintf("unix uid %d pid %d", os.Getuid(), os.Getpid()) {
		t.Errorf("String() = %q", got)
	}
}

// TestPeerOfTCP checks that a TCP peer is its address, unmapped, for both address families.
func TestPeerOfTCP(t *testing.T) {
	tests := []struct{ network, listen, want string }{
		{"tcp4", "127.0.0.1:0", "127.0.0.1"},
		{"tcp6", "[::1]:0", "::1"},
		// A dual-stack listener sees IPv4 clients as ::ffff:127.0.0.1; the peer must still read as 127.0.0.1.
		{"tcp", "[::]:0", "127.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.listen, func(t *testing.T) {
			l, err := net.Listen(tc.network, tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var c net.Conn
			if tc.listen == "[::]:0" {
				c = acceptedFrom(t, l, "127.0.0.1")
			} else {
				c = accepted(t, l)
			}
			p := PeerOf(c)
			if p.Unix || p.Cred || p.Addr != netip.MustParseAddr(tc.want) {
				t.Fatalf("PeerOf = %+v, want address %s", p, tc.want)
			}
		})
	}
}

// acceptedFrom dials l's port on host (for a listener on the unspecified address).
func acceptedFrom(t *testing.T, l net.Listener, host string) net.Conn {
	t.Helper()
	port := l.Addr().(*net.TCPAddr).Port
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			ch <- nil
			return
		}
		ch <- c
	}()
	client, err := net.Dial("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c := <-ch
	if c == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestPeerOfOther checks connections that are neither: a pipe has no IP and is trusted for nothing.
func TestPeerOfOther(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if p := PeerOf(a); p != (Peer{}) {
		t.Errorf("PeerOf(pipe) = %+v, want the zero Peer", p)
	}
	if got := (Peer{}).String(); got != "unknown" {
		t.Errorf("zero Peer String() = %q", got)
	}
	if got := (Peer{Unix: true}).String(); got != "unix (no credentials)" {
		t.Errorf("unix Peer without credentials String() = %q", got)
	}
}

// TestConnContextHTTP wires ConnContext into a real http.Server on a unix socket, as main will, and checks
// that a handler sees its client's uid.
func TestConnContextHTTP(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "http.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		ConnContext: ConnContext,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := PeerFrom(r.Context())
			fmt.Fprintf(w, "%v %v %d", ok, p.Unix && p.Cred, p.UID)
		}),
	}
	go srv.Serve(l) //nolint:errcheck // stopped by Close below; Serve then returns ErrServerClosed
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := client.Get("http://daemon/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if want := fmt.Sprintf("true true %d", os.Getuid()); strings.TrimSpace(string(body)) != want {
		t.Fatalf("handler saw %q, want %q", body, want)
	}
}

func TestPeerFromMissing(t *testing.T) {
	if p, ok := PeerFrom(context.Background()); ok || p != (Peer{}) {
		t.Fatalf("PeerFrom(empty) = %+v, %v", p, ok)
	}
}
