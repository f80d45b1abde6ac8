package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRefusalReachesAClosingClient: a client that sends "Connection: close" and a body the daemon refuses unread
// (here 8 MiB over the 1 MiB max_upload_size: a 413 on Content-Length) and reads the answer gets the whole 413,
// every time, although it is still sending the body when the answer comes. net/http then closes the socket on the
// unread bytes at once and the kernel answers the client's next segment with a RST, but what the client had
// received stays readable. Go's own HTTP client fails such a round trip with "broken pipe" on its write instead of
// reading the answer (golang/go#51109): the cmd tests' "too large" step sends from a keep-alive client for that.
func TestRefusalReachesAClosingClient(t *testing.T) {
	f := newFixture(t, nil)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	const size = 8 << 20
	lost := 0
	for i := range 20 {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		go func() {
			fmt.Fprintf(c, "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", size)
			io.Copy(c, io.LimitReader(zeros{}, size)) // fails once the daemon stops reading: expected
		}()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
		}
		c.Close()
		if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "max_upload_size") {
			lost++
			t.Logf("try %d: %v %v %q", i, err, resp, body)
		}
	}
	if lost > 0 {
		t.Errorf("%d of 20 clients did not get the whole 413", lost)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
