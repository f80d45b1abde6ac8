package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"

	"golang.org/x/sys/unix"
)

// sendfilePut PUTs the file at path to target (a request URI such as /upload/?os_release=d0) on the daemon's unix
// socket, the body sent with sendfile(2), and returns the answer's status and the first 4 KiB of its body.
//
// Scenario 3 compares the daemon's ingest with cp on the same two cores. net/http's client copies a request body
// through user space in 32 KiB reads and writes: for 256 MiB about 8,000 of each and over 100 ms of CPU that a CI
// runner spends on its own machine, not on the repo host. Sending the file from the page cache with sendfile leaves
// the cores to what is measured, the daemon.
func sendfilePut(socket, target, path string) (int, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, "", err
	}
	c, err := net.Dial("unix", socket)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	conn := c.(*net.UnixConn)
	if _, err := fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: rpm-ingestd\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		target, fi.Size()); err != nil {
		return 0, "", err
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, "", err
	}
	var off int64
	var serr error
	werr := rc.Write(func(fd uintptr) bool {
		for off < fi.Size() {
			n, err := unix.Sendfile(int(fd), int(f.Fd()), &off, int(min(fi.Size()-off, 1<<30)))
			switch {
			case errors.Is(err, unix.EAGAIN):
				return false // wait until the socket is writable again
			case errors.Is(err, unix.EINTR):
				continue
			case err != nil:
				serr = err
				return true
			case n == 0:
				serr = io.ErrUnexpectedEOF
				return true
			}
		}
		return true
	})
	// An early answer (a refusal) closes the connection under the body: read it anyway, it says why.
	resp, rerr := http.ReadResponse(bufio.NewReader(conn), nil)
	if rerr != nil {
		return 0, "", fmt.Errorf("PUT %s: no answer (%v; sending the body: %v)", target, rerr, errors.Join(werr, serr))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body), nil
}
