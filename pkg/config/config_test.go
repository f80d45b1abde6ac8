package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadRejectsBadFiles(t *testing.T) {
	tests := []struct {
		file string
		want []string // every substring must appear in the error
	}{
		{"syntax.yaml", []string{"yaml: line 1:"}},
		{"unknown-key.yaml", []string{"line 2: field listn is not a known key in Server"}},
		{"bad-duration.yaml", []string{"line 6:", `"30 parsecs" is not a duration`}},
		{"bad-size.yaml", []string{"line 3:", `"lots" is not a size`}},
		{"wrong-type.yaml", []string{"line 5:", "line 7:"}},
		{"missing-dirs.yaml", []string{
			"server.spool_dir (line 2): /nonexistent/rpm-ingestd/spool does not exist: create it (mkdir -p /nonexistent/rpm-ingestd/spool)",
			"repo.top_dir (line 4): " + abs(t, "does-not-exist") + " does not exist",
		}},
		{"spool-inside-top.yaml", []string{"server.spool_dir (line 3): " + abs(t, "tree/storage/incoming") + " lies inside repo.top_dir"}},
		{"escaping-layout.yaml", []string{"repo.layout (line 5):", "not a directory below top_dir"}},
		{"many-problems.yaml", []string{
			`server.listen (line 2): "localhost" is neither host:port nor unix:/path`,
			`server.upload_path (line 3): "upload" must be a URL path`,
			`server.upload_header (line 4): "X Package" is not a valid HTTP header name`,
			"server.max_upload_size (line 6): must be positive",
			"repo.layout (line 9):", "can't evaluate field Release",
			`repo.arches (line 10): "x86_64" is listed twice`,
			`repo.arches (line 10): "noarch" is not a repository architecture`,
			`repo.dist_tags (line 11): "EL" is not a valid dist tag`,
			"indexer.max_delay (line 14): 1m0s is shorter than indexer.quiet_period 10m0s",
			"indexer.workers (line 15): must be at least 1",
			"indexer.timeout (line 16): must be a positive duration",
			`log.level (line 18): "loud" is not one of`,
			`log.format (line 19): "xml" is not one of`,
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
		{"dist_tags default", strings.Join(cfg.Repo.DistTags, ","), "el,fc,amzn,ol,an,oe,mga"},
		{"header default", cfg.Server.UploadHeader, "X-Package-Name"},
		{"format", cfg.Log.Format, "console"},
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
