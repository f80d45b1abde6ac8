package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
)

// probeTimeout bounds one probe: /readyz writes and removes a file in two directories and looks up a program, so
// anything near this means the daemon is stuck, which is "not ready" too.
const probeTimeout = 10 * time.Second

// probe asks the running daemon named by the configuration at cfgPath whether it is ready (GET /readyz on
// server.listen: the unix socket, or the TCP address with a wildcard host replaced by loopback). It prints one
// line, "ready" on stdout or "rpm-ingestd: not ready: <reason>" on stderr, and returns the exit code: 0 ready, 1
// anything else. This is the container's HEALTHCHECK: the minimal image has no HTTP client.
//
// It reads the configuration without validating it: the probe must not fail because, say, createrepo_c's PATH or
// the htpasswd file differ in the probe's environment; the daemon that is running already passed validation.
func probe(cfgPath string, stdout, stderr io.Writer) int {
	fail := func(format string, args ...any) int {
		msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", "; ")
		fmt.Fprintf(stderr, "rpm-ingestd: not ready: %s\n", msg)
		return 1
	}
	cfg := config.Default()
	switch data, err := os.ReadFile(cfgPath); {
	case errors.Is(err, fs.ErrNotExist) && cfgPath == config.DefaultPath:
		// The daemon runs on the built-in defaults then, too.
	case err != nil:
		return fail("%v", err)
	default:
		// A key the parser does not know leaves the rest decoded: server.listen is all the probe needs.
		if cfg, err = config.Parse(data); cfg == nil {
			return fail("%s: %v", cfgPath, err)
		}
	}
	client, url, err := probeClient(cfg.Server.Listen)
	if err != nil {
		return fail("server.listen %q: %v", cfg.Server.Listen, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fail("%v", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail("%v", err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(io.LimitReader(resp.Body, 4096)).ReadString('\n')
	line = strings.TrimSpace(line)
	if resp.StatusCode != http.StatusOK {
		return fail("%s answered %s: %s", url, resp.Status, line)
	}
	fmt.Fprintln(stdout, line)
	return 0
}

// probeClient returns the client and the /readyz URL for a server.listen value.
func probeClient(listen string) (*http.Client, string, error) {
	tr := &http.Transport{DisableKeepAlives: true} // and no Proxy: never through $http_proxy
	client := &http.Client{Transport: tr, Timeout: probeTimeout,
		// /readyz never redirects; following one could lead the probe anywhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if path, ok := strings.CutPrefix(listen, "unix:"); ok {
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", path) }
		return client, "http://rpm-ingestd/readyz", nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, "", err
	}
	// A wildcard listen address (0.0.0.0:5000 in the container) is reached on loopback.
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::", "[::]":
		host = "::1"
	}
	return client, "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}
