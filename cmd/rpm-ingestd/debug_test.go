package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestDebugListen: with server.debug_listen on a unix socket, the daemon serves net/http/pprof there (a CPU
// profile can be taken), and never on its main listener; without the key, the main listener has no profiler either.
func TestDebugListen(t *testing.T) {
	tr := newTree(t)
	sock := filepath.Join(tr.dir, "debug.sock")
	d := tr.startWith(t, "1h", "  debug_listen: unix:"+sock+"\n")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	get := func(c *http.Client, url string) (int, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(hc, "http://debug/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("profiler index on debug_listen: %d %.200q", code, body)
	}
	if code, body := get(hc, "http://debug/debug/pprof/profile?seconds=1"); code != 200 || len(body) == 0 {
		t.Errorf("CPU profile on debug_listen: %d, %d bytes", code, len(body))
	}
	if code, _ := get(http.DefaultClient, "http://"+d.addr+"/debug/pprof/"); code == 200 {
		t.Errorf("the main listener serves the profiler")
	}
}
