package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runProbe runs `rpm-ingestd --probe -c cfg` in-process and returns its exit code and output.
func runProbe(t *testing.T, cfg string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run([]string{"--probe", "-c", cfg}, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestProbeAgainstRealDaemon runs the real daemon on each kind of listen address the configuration allows and probes
// it with the same configuration file, as the container's HEALTHCHECK does: ready is exit 0 and "ready"; a daemon
// that cannot take uploads, one that is gone, and an unreadable configuration are exit 1 with one line that says why.
func TestProbeAgainstRealDaemon(t *testing.T) {
	oneLine := func(t *testing.T, stderr, want string) {
		t.Helper()
		if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "rpm-ingestd: not ready: ") || !strings.Contains(stderr, want) {
			t.Errorf("stderr %q, want one line \"rpm-ingestd: not ready: ...%s...\"", stderr, want)
		}
	}
	for _, tc := range []struct{ name, listen string }{
		{"tcp loopback", "127.0.0.1"},
		{"tcp wildcard as in the container", "0.0.0.0"},
		{"unix socket", "unix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTree(t)
			listen, base, hc := "", "", unixClient(filepath.Join(tr.dir, "d.sock"))
			switch tc.listen {
			case "unix":
				listen, base = "unix:"+filepath.Join(tr.dir, "d.sock"), "http://rpm-ingestd"
			default:
				addr := freeAddr(t)
				_, port, _ := net.SplitHostPort(addr)
				listen, base, hc = net.JoinHostPort(tc.listen, port), "http://"+addr, tcpFrom("127.0.0.1")
			}
			d := tr.startAuth(t, listen, "", hc, base)
			cfg := filepath.Join(tr.dir, "config.yml")

			if code, stdout, stderr := runProbe(t, cfg); code != 0 || stdout != "ready\n" || stderr != "" {
				t.Fatalf("ready daemon: exit %d, stdout %q, stderr %q; want 0 and \"ready\"", code, stdout, stderr)
			}

			// The spool gone: the daemon answers /readyz 503 with the reason, and the probe passes it on.
			if err := os.Rename(tr.spool, tr.spool+".away"); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runProbe(t, cfg)
			if code != 1 || stdout != "" {
				t.Errorf("no spool: exit %d, stdout %q; want 1 and nothing", code, stdout)
			}
			oneLine(t, stderr, "503 Service Unavailable: ")
			if !strings.Contains(stderr, "incoming") {
				t.Errorf("no spool: %q does not name the spool directory", stderr)
			}
			if err := os.Rename(tr.spool+".away", tr.spool); err != nil {
				t.Fatal(err)
			}
			if code, _, stderr := runProbe(t, cfg); code != 0 {
				t.Errorf("spool back: exit %d, %q; want ready again", code, stderr)
			}

			d.stop(t)
			code, _, stderr = runProbe(t, cfg)
			if code != 1 {
				t.Errorf("daemon stopped: exit %d, want 1", code)
			}
			oneLine(t, stderr, "connect")
		})
	}

	t.Run("unreadable configuration", func(t *testing.T) {
		code, _, stderr := runProbe(t, filepath.Join(t.TempDir(), "absent.yml"))
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		oneLine(t, stderr, "no such file")
	})
	t.Run("broken YAML", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "c.yml")
		os.WriteFile(p, []byte("server: [\n"), 0o644)
		code, _, stderr := runProbe(t, p)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		oneLine(t, stderr, "c.yml")
	})
}
