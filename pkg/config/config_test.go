package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestLoadRejectsBadFiles(t *testing.T) {
	tests := []struct {
		file string
		want []string // every substring must appear in the error
	}{
		{"syntax.yaml", []string{"line 1: YAML: syntax error: did not find expected ',' or ']' (nothing after it was checked)"}},
		{"unknown-key.yaml", []string{"line 2: server.listn: unknown key; did you mean listen?"}},
		{"bad-duration.yaml", []string{"line 6:", `"30 parsecs" is not a duration`}},
		{"bad-size.yaml", []string{"line 3:", `"lots" is not a size`}},
		{"wrong-type.yaml", []string{`line 5: repo.arches: "x86_64" is not a list of text values, like [a, b]`, `line 7: indexer.workers: "two" is not a whole number`}},
		{"missing-dirs.yaml", []string{
			"line 2: server.spool_dir: /nonexistent/rpm-ingestd/spool does not exist: create it (mkdir -p /nonexistent/rpm-ingestd/spool)",
			"line 4: repo.top_dir: " + abs(t, "does-not-exist") + " does not exist",
		}},
		{"spool-inside-top.yaml", []string{"line 3: server.spool_dir: " + abs(t, "tree/storage/incoming") + " lies inside repo.top_dir"}},
		{"escaping-layout.yaml", []string{"line 5: repo.layout:", "not a directory below top_dir"}},
		{"bad-limits.yaml", []string{
			"line 3: server.max_concurrent_uploads: must be at least 1",
			"line 4: server.memory_limit: 1MiB is too small to run in: use at least 64MiB, or 0 to turn the limit off",
			"line 5: server.upload_idle_timeout: must be a positive duration",
			"line 7: server.read_header_timeout: must be a positive duration",
			"line 8: server.idle_timeout: must be a positive duration",
			"line 9: server.max_header_bytes: 100 is too small",
			"line 10: server.shutdown_timeout: must be a positive duration",
		}},
		{"over-stop-budget.yaml", []string{
			"line 8: indexer.shutdown_timeout: the longest stop adds up to 1m55s, more than the 1m50s stop budget: 30s (server.shutdown_timeout, line 4) + 5s",
			"+ 1m10s (indexer.shutdown_timeout) + 10s (createrepo_c's SIGTERM-to-SIGKILL delay)",
		}},
		{"bad-signing.yaml", []string{
			"line 5: repo.require_signature: is on but repo.keyring lists no key file",
			"line 7: indexer.sign: key_id is missing",
			`line 7: indexer.sign: public_key "../escape.asc" must be a plain file name`,
			"line 7: indexer.sign: gpg_home " + abs(t, "no-such-gnupg") + " is not a directory",
		}},
		{"missing-keyring.yaml", []string{"line 6: repo.keyring: " + abs(t, "keys/absent.asc") + " is not a readable file: export the key with gpg --export --armor"}},
		{"bad-auth.yaml", []string{
			"line 3: server.htpasswd: " + abs(t, "tree/auth/missing.htpasswd") + " does not exist: create it with htpasswd -c -B",
			`line 4: server.trusted_proxies: "10.1.2.3/8" has host bits set; write 10.0.0.0/8 for the network or 10.1.2.3 for the host`,
			`line 4: server.trusted_proxies: "nginx" is not a CIDR`,
			`line 4: server.trusted_proxies: "fe80::1%eth0": zones are not supported`,
			`line 4: server.trusted_proxies: "::ffff:10.0.0.0/104" is an IPv4-mapped IPv6 prefix`,
			"line 6: repo.top_dir: " + abs(t, "tree/storage-not-there") + " does not exist", // reported together
		}},
		{"bad-rescan.yaml", []string{"line 6: indexer.rescan_interval: -5m0s: use 1s or more", "or 0 to turn rescans off"}},
		{"short-rescan.yaml", []string{"line 6: indexer.rescan_interval: 10ms: use 1s or more"}},
		{"htpasswd-is-dir.yaml", []string{"line 3: server.htpasswd: " + abs(t, "tree/auth") + " is not a regular file"}},
		{"many-problems.yaml", []string{
			`line 2: server.listen: "localhost" is neither host:port nor unix:/path`,
			`line 3: server.upload_path: "upload" must be a URL path`,
			`line 4: server.upload_header: "X Package" is not a valid HTTP header name`,
			"line 6: server.max_upload_size: must be positive",
			"line 9: repo.layout:", "can't evaluate field Release",
			`line 10: repo.arches: "x86_64" is listed twice`,
			`line 10: repo.arches: "noarch" is not a repository architecture`,
			`line 11: repo.dist_tags: "EL" is not a valid dist tag`,
			"line 14: indexer.max_delay: 1m0s is shorter than indexer.quiet_period 10m0s",
			"line 15: indexer.workers: must be at least 1",
			"line 16: indexer.timeout: must be a positive duration",
			`line 18: log.level: "loud" is not one of`,
			`line 19: log.format: "xml" is not one of`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load(filepath.Join("..", "..", "testdata", "config", tc.file))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
				}
			}
		})
	}
}

// abs is where a path relative to testdata/config resolves.
func abs(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "testdata", "config", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadGood(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "testdata", "config", "good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", cfg.Server.Listen, "unix:/run/rpm-ingestd/rpm-ingestd.sock"},
		{"upload_path trimmed", cfg.Server.UploadPath, "/upload"},
		{"spool_dir resolved", cfg.Server.SpoolDir, abs(t, "tree/spool")},
		{"top_dir resolved", cfg.Repo.TopDir, abs(t, "tree/storage")},
		{"max_upload_size", cfg.Server.MaxUploadSize, Size(64 << 20)},
		{"arches", strings.Join(cfg.Repo.Arches, ","), "x86_64"},
		{"quiet_period", time.Duration(cfg.Indexer.QuietPeriod), 2 * time.Second},
		{"max_delay default", time.Duration(cfg.Indexer.MaxDelay), 5 * time.Minute},
		{"rescan_interval default", time.Duration(cfg.Indexer.RescanInterval), 5 * time.Minute},
		{"dist_tags default", strings.Join(cfg.Repo.DistTags, ","), "el,fc,amzn,ol,an,oe,mga"},
		{"header default", cfg.Server.UploadHeader, "X-Package-Name"},
		{"format", cfg.Log.Format, "console"},
		{"max_concurrent_uploads default", cfg.Server.MaxConcurrentUploads, 16},
		{"memory_limit default", cfg.Server.MemoryLimit, Size(1 << 30)},
		{"upload_idle_timeout default", time.Duration(cfg.Server.UploadIdleTimeout), 30 * time.Second},
		{"upload_min_rate default", cfg.Server.UploadMinRate, Size(4 << 10)},
		{"read_header_timeout default", time.Duration(cfg.Server.ReadHeaderTimeout), 10 * time.Second},
		{"idle_timeout default", time.Duration(cfg.Server.IdleTimeout), 2 * time.Minute},
		{"max_header_bytes default", cfg.Server.MaxHeaderBytes, Size(64 << 10)},
		{"shutdown_timeout default", time.Duration(cfg.Server.ShutdownTimeout), 20 * time.Second},
		{"stop time within budget", cfg.StopTime() <= StopBudget, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	// The printed config must load again to the same values: --check-config output is a valid config file.
	again, err := Parse(out)
	if err != nil {
		t.Fatalf("re-parse printed config: %v\n%s", err, out)
	}
	if again.Server.MaxUploadSize != cfg.Server.MaxUploadSize || again.Indexer.QuietPeriod != cfg.Indexer.QuietPeriod {
		t.Errorf("round trip changed values:\n%s", out)
	}
}

func TestLoadAuth(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "testdata", "config", "auth.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Htpasswd != abs(t, "tree/auth/htpasswd") {
		t.Errorf("htpasswd = %q, want it resolved against the config file's directory", cfg.Server.Htpasswd)
	}
	// [] must stay an explicit "trust no TCP peer", not fall back to the default.
	if cfg.Server.TrustedProxies == nil || len(cfg.Server.TrustedProxies) != 0 {
		t.Errorf("trusted_proxies = %#v, want empty", cfg.Server.TrustedProxies)
	}
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out)
	if err != nil || again.Server.TrustedProxies == nil || len(again.Server.TrustedProxies) != 0 {
		t.Errorf("trusted_proxies: [] does not survive --check-config: %#v, %v\n%s", again.Server.TrustedProxies, err, out)
	}

	good, err := Load(filepath.Join("..", "..", "testdata", "config", "good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if good.Server.Htpasswd != "" || strings.Join(good.Server.TrustedProxies, ",") != "127.0.0.0/8,::1/128" {
		t.Errorf("defaults: htpasswd %q, trusted_proxies %v", good.Server.Htpasswd, good.Server.TrustedProxies)
	}
}

func TestCheckProxy(t *testing.T) {
	for _, ok := range []string{"127.0.0.0/8", "::1/128", "10.0.0.1", "2001:db8::/32", "192.0.2.7/32", "0.0.0.0/0"} {
		if err := checkProxy(ok); err != nil {
			t.Errorf("checkProxy(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "10.0.0.1/8", "nginx", "fe80::1%eth0", "::ffff:10.0.0.0/104", "10.0.0.0/8 "} {
		if err := checkProxy(bad); err == nil {
			t.Errorf("checkProxy(%q) accepted", bad)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		give string
		want Size
		ok   bool
	}{
		{"128MiB", 128 << 20, true},
		{"128M", 128 << 20, true},
		{"1GiB", 1 << 30, true},
		{"500MB", 500_000_000, true},
		{"512k", 512 << 10, true},
		{"1024", 1024, true},
		{"10B", 10, true},
		{"lots", 0, false},
		{"-1MiB", 0, false},
		{"1.5GiB", 0, false},
		{"99999999999TiB", 0, false},
		{"1PiB", 1 << 50, true},
		{"1P", 1 << 50, true},
		{"7EiB", 7 << 60, true},
		{"2EB", 2_000_000_000_000_000_000, true},
		{"1024TiB", 1 << 50, true},
		{"8EiB", 0, false},                       // 2^63 does not fit
		{"9223372036854775807", 1<<63 - 1, true}, // the largest
		{"9223372036854775808", 0, false},        // one more
		{"10EB", 0, false},
		{"1XB", 0, false},
		{"1iB", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.give, func(t *testing.T) {
			got, err := ParseSize(tc.give)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tc.give, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestRenderLayout(t *testing.T) {
	tests := []struct {
		layout, want string
		ok           bool
	}{
		{"{{.OSRelease}}/{{.Arch}}", "9/x86_64", true},
		{"{{.OSAbbr}}{{.OSRelease}}/{{.Arch}}/os", "el9/x86_64/os", true},
		{"/abs/{{.Arch}}", "", false},
		{"{{.OSRelease}}/../../{{.Arch}}", "", false},
		{"", "", false},
		{"{{.Nope}}", "", false},
		{"{{", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.layout, func(t *testing.T) {
			c := Default()
			c.Repo.Layout = tc.layout
			got, err := c.RenderLayout(LayoutFields{OSAbbr: "el", OSRelease: "9", Arch: "x86_64"})
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("RenderLayout = %q, %v; want %q, ok=%v", got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestParseSizeTooLargeMessage(t *testing.T) {
	for _, give := range []string{"8EiB", "9223372036854775808", "99999999999999999999999"} {
		if _, err := ParseSize(give); err == nil || !strings.Contains(err.Error(), "is too large") {
			t.Errorf("ParseSize(%q) error %v, want one saying it is too large", give, err)
		}
	}
}

// TestSizeRoundTrip: whatever String prints (and so --check-config), ParseSize and the YAML decoder read back to
// the same value. 1 TiB once printed as "1024TiB"-style text that came back as a different size.
func TestSizeRoundTrip(t *testing.T) {
	sizes := []Size{0, 1, 2, 999, 1000, 1001, 1023, 1024, 1025, 1536, 4096, 1000000, 1024000, 1 << 20, 3 << 20,
		1 << 30, 1_000_000_000, 1 << 40, 5 << 40, 1_000_000_000_000, 1 << 50, 1<<50 + 1, 1 << 60, 7 << 60,
		1_000_000_000_000_000_000, 9_000_000_000_000_000_000, 1<<63 - 1, 1<<63 - 1024, 1<<62 + 1<<61}
	// Every power of two and of ten, and their neighbours, in range.
	for i := range 62 {
		p := Size(1) << i
		sizes = append(sizes, p-1, p, p+1, 3*p) // 3 * 2^61 still fits below 2^63
	}
	for p, i := Size(1), 0; i <= 18; p, i = p*10, i+1 {
		sizes = append(sizes, p-1, p, p+1, 9*p) // 9e18 still fits below 2^63
	}
	for _, want := range sizes {
		text := want.String()
		got, err := ParseSize(text)
		if err != nil || got != want {
			t.Errorf("Size(%d).String() = %q, which parses as %d, %v", want, text, got, err)
			continue
		}
		out, err := yaml.Marshal(struct {
			S Size `yaml:"s"`
		}{want})
		if err != nil {
			t.Fatal(err)
		}
		var back struct {
			S Size `yaml:"s"`
		}
		if err := yaml.Unmarshal(out, &back); err != nil || back.S != want {
			t.Errorf("YAML %q reads back as %d, %v; want %d", out, back.S, err, want)
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		give Size
		want string
	}{
		{0, "0"},
		{1023, "1023"},
		{1024, "1KiB"},
		{1536, "1536"},
		{1000, "1KB"},
		{128 << 20, "128MiB"},
		{1 << 40, "1TiB"},
		{1 << 50, "1PiB"},
		{5 << 40, "5TiB"},
		{1 << 60, "1EiB"},
		{1_000_000_000, "1GB"},
		{-5, "-5"},
	}
	for _, tc := range tests {
		if got := tc.give.String(); got != tc.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tc.give), got, tc.want)
		}
	}
}

// TestRenderLayoutWithoutOSAbbr: an upload that names its release by hand has no OSAbbr. A layout that depends on
// it must fail with ErrNoOSAbbr (which says what to do), not render a wrong or refused path; one that does not
// depend on it renders as usual.
func TestRenderLayoutWithoutOSAbbr(t *testing.T) {
	tests := []struct {
		layout, want string
		err          error // nil: success
	}{
		{"{{.OSRelease}}/{{.Arch}}", "9/x86_64", nil},
		{"{{.OSAbbr}}{{.OSRelease}}/{{.Arch}}", "", ErrNoOSAbbr},            // would file el9's packages under 9/
		{"{{.OSAbbr}}/{{.OSRelease}}/{{.Arch}}", "", ErrNoOSAbbr},           // would render the absolute /9/x86_64
		{"{{if .OSAbbr}}x{{end}}{{.OSRelease}}/{{.Arch}}", "", ErrNoOSAbbr}, // read in a condition
		{"{{$a := .OSAbbr}}{{.OSRelease}}/{{.Arch}}", "9/x86_64", nil},      // read but unused: the result does not depend on it
		{"{{with $x := .}}{{$x.OSAbbr}}{{end}}-{{.OSRelease}}/{{.Arch}}", "", ErrNoOSAbbr},
	}
	for _, tc := range tests {
		t.Run(tc.layout, func(t *testing.T) {
			c := Default()
			c.Repo.Layout = tc.layout
			got, err := c.RenderLayout(LayoutFields{OSRelease: "9", Arch: "x86_64"})
			if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Errorf("RenderLayout = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
			// With a dist tag the same layouts all render.
			if _, err := c.RenderLayout(LayoutFields{OSAbbr: "el", OSRelease: "9", Arch: "x86_64"}); err != nil {
				t.Errorf("with OSAbbr: %v", err)
			}
		})
	}
	if msg := ErrNoOSAbbr.Error(); !strings.Contains(msg, "os_release=el9") || !strings.Contains(msg, "{{.OSAbbr}}") {
		t.Errorf("message does not say what to do: %q", msg)
	}
}

// TestLayoutUsingOSAbbrLoads: a layout that uses {{.OSAbbr}} is valid; Load accepts it and Notes explains what it
// means for packages without a dist tag. The default layout has no note.
func TestLayoutUsingOSAbbrLoads(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "testdata", "config", "layout-osabbr.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	notes := cfg.Notes()
	if len(notes) != 1 || !strings.Contains(notes[0], "os_release=el9") {
		t.Errorf("notes %q, want one naming os_release=el9", notes)
	}
	if notes := Default().Notes(); len(notes) != 0 {
		t.Errorf("default layout has notes: %q", notes)
	}
}
