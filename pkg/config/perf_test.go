package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQueueAndDebugDefaults: an upload over the cap waits 30s for a slot by default, and the profiler is off.
func TestQueueAndDebugDefaults(t *testing.T) {
	d := Default()
	if got := time.Duration(d.Server.QueueTimeout); got != 30*time.Second {
		t.Errorf("queue_timeout default %s, want 30s", got)
	}
	if d.Server.DebugListen != "" {
		t.Errorf("debug_listen default %q, want off", d.Server.DebugListen)
	}
}

// TestCheckDebugListen: the profiler may listen only on a unix socket or a loopback address.
func TestCheckDebugListen(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want string // substring of the refusal; "" means accepted
	}{
		{"", ""},
		{"127.0.0.1:6060", ""},
		{"127.1.2.3:6060", ""},
		{"[::1]:6060", ""},
		{"localhost:6060", ""},
		{"unix:/run/rpm-ingestd/debug.sock", ""},
		{"unix:debug.sock", "must be absolute"},
		{"0.0.0.0:6060", "is not a loopback address"},
		{":6060", "is not a loopback address"}, // every interface
		{"[::]:6060", "is not a loopback address"},
		{"192.168.1.5:6060", "is not a loopback address"},
		{"example.com:6060", "is not a loopback address"},
		{"[fe80::1%lo]:6060", "is not a loopback address"},
		{"[::ffff:127.0.0.1]:6060", ""}, // IPv4-mapped loopback is still loopback
		{"127.0.0.1", "neither a loopback host:port"},
		{"127.0.0.1:", "neither a loopback host:port"},
	} {
		got := checkDebugListen(tc.addr)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("checkDebugListen(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// TestBadQueueAndDebugListen: a negative queue_timeout and a public debug_listen are refused by Load, each
// naming its key and line.
func TestBadQueueAndDebugListen(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"spool", "storage"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "c.yaml")
	yml := "server:\n  spool_dir: spool\n  queue_timeout: -1s\n  debug_listen: 0.0.0.0:6060\nrepo:\n  top_dir: storage\n"
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	for _, want := range []string{
		"line 3: server.queue_timeout: must be 0 (answer 503 at once) or a duration",
		`line 4: server.debug_listen: "0.0.0.0:6060" is not a loopback address`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load: %v; want it to contain %q", err, want)
		}
	}
}

// TestHtpasswdCache: a right password is remembered for 5 minutes by default, 0 turns that off, and a negative
// value is refused naming its key and line.
func TestHtpasswdCache(t *testing.T) {
	if got := time.Duration(Default().Server.HtpasswdCache); got != 5*time.Minute {
		t.Errorf("htpasswd_cache default %s, want 5m", got)
	}
	dir := t.TempDir()
	for _, d := range []string{"spool", "storage"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ value, want string }{
		{"0", ""},
		{"90s", ""},
		{"-1s", "line 3: server.htpasswd_cache: must be 0 (check every login against its hash) or a duration"},
	} {
		path := filepath.Join(dir, "c.yaml")
		yml := "server:\n  spool_dir: spool\n  htpasswd_cache: " + tc.value + "\nrepo:\n  top_dir: storage\n"
		if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("htpasswd_cache: %s: %v", tc.value, err)
		case tc.want == "" && tc.value == "90s" && time.Duration(c.Server.HtpasswdCache) != 90*time.Second:
			t.Errorf("htpasswd_cache: 90s loaded as %s", time.Duration(c.Server.HtpasswdCache))
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("htpasswd_cache: %s: %v; want it to contain %q", tc.value, err, tc.want)
		}
	}
}
