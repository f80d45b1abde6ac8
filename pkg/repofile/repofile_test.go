package repofile

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
)

var update = flag.Bool("update", false, "rewrite the golden .repo files in testdata")

// layout renders a text/template over Fields as config.RenderLayout does, failing like it when the template
// reads .OSAbbr and none is given.
func layout(t *testing.T, text string) LayoutFunc {
	t.Helper()
	tmpl := template.Must(template.New("l").Option("missingkey=error").Parse(text))
	render := func(f Fields) (string, error) {
		var b strings.Builder
		err := tmpl.Execute(&b, f)
		return b.String(), err
	}
	return func(f Fields) (string, error) {
		out, err := render(f)
		if err != nil {
			return "", err
		}
		if f.OSAbbr == "" {
			probe := f
			probe.OSAbbr = "probe"
			if with, _ := render(probe); with != out {
				return "", errors.New("needs a dist tag")
			}
		}
		return out, nil
	}
}

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		golden string
		layout string
		mod    func(*Options)
	}{
		{"default.repo", "{{.OSRelease}}/{{.Arch}}", nil},
		{"signed.repo", "{{.OSRelease}}/{{.Arch}}", func(o *Options) {
			o.GPGKeyURL = "https://repo.example.com/repo/RPM-GPG-KEY-rpm-ingestd"
		}},
		{"signed-packages.repo", "{{.OSRelease}}/{{.Arch}}", func(o *Options) {
			o.GPGKeyURL = "https://repo.example.com/repo/RPM-GPG-KEY-rpm-ingestd"
			o.PackageGPGCheck = true
			o.PackageKeyURLs = []string{"https://repo.example.com/keys/ci.asc"}
		}},
		{"dist-tags.repo", "{{.OSAbbr}}{{.OSRelease}}/{{.Arch}}", nil},
		{"channels.repo", "{{.Channel}}/{{.OSRelease}}/{{.Arch}}", func(o *Options) {
			o.Channels, o.DefaultChannel = []string{"stable", "testing"}, "testing"
		}},
		{"channels-ignored.repo", "{{.OSRelease}}/{{.Arch}}", func(o *Options) {
			o.Channels, o.DefaultChannel = []string{"stable", "testing"}, "stable" // the layout does not use them: one set of sections
		}},
		{"escaped.repo", "{{.Channel}}/{{.OSRelease}}/{{.Arch}}", func(o *Options) {
			o.Channels = []string{"ci builds"}
			o.ID = "acme"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			o := Options{FileName: "rpm-ingestd.repo", BaseURL: "https://repo.example.com/repo", Layout: layout(t, tc.layout),
				DistTags: []string{"el", "fc"}}
			if tc.mod != nil {
				tc.mod(&o)
			}
			got, err := Render(o)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(p, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("%v (run go test ./pkg/repofile -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("Render() differs from %s:\n--- got\n%s--- want\n%s", p, got, want)
			}
		})
	}
}

func TestRenderRefuses(t *testing.T) {
	tests := []struct {
		name     string
		layout   string
		distTags []string
		want     string
	}{
		{"broken layout", "{{.OSRelease}}/{{.Nope}}", []string{"el"}, `render the layout for channel "", dist tag "el"`},
		{"dist tag needed, none configured", "{{.OSAbbr}}/{{.Arch}}", nil, "without a dist tag (and no dist tags are configured): needs a dist tag"},
		{"multi-line rendering", "{{.OSRelease}}\n/{{.Arch}}", nil, "spans lines"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render(Options{FileName: "x.repo", BaseURL: "http://h", Layout: layout(t, tc.layout), DistTags: tc.distTags})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Render() error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	o := Options{FileName: "rpm-ingestd.repo", BaseURL: "http://127.0.0.1:5000/repo", Layout: layout(t, "{{.OSRelease}}/{{.Arch}}")}
	if err := os.WriteFile(filepath.Join(dir, o.FileName), []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A crash of an earlier start left its temporary file.
	if err := os.WriteFile(filepath.Join(dir, ".rpm-ingestd.repo.tmp-123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, o); err != nil {
		t.Fatal(err)
	}
	want, _ := Render(o)
	p := filepath.Join(dir, o.FileName)
	got, err := os.ReadFile(p)
	if err != nil || string(got) != string(want) {
		t.Fatalf("file = %q, %v; want %q", got, err, want)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 so the web server's user can read it", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir holds %v, want only %s (no temporary file left)", entries, o.FileName)
	}
}

func TestWriteRefuses(t *testing.T) {
	good := layout(t, "{{.OSRelease}}/{{.Arch}}")
	tests := []struct {
		name string
		dir  string
		o    Options
		want string
	}{
		{"name with a directory", "", Options{FileName: "../x.repo", BaseURL: "http://h", Layout: good}, "not a plain file name"},
		{"hidden name", "", Options{FileName: ".x.repo", BaseURL: "http://h", Layout: good}, "not a plain file name"},
		{"missing directory", "/nonexistent/rpm-ingestd", Options{FileName: "x.repo", BaseURL: "http://h", Layout: good}, "no such file"},
		{"layout error", "", Options{FileName: "x.repo", BaseURL: "http://h", Layout: layout(t, "{{.Nope}}")}, "render the layout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir
			if dir == "" {
				dir = t.TempDir()
			}
			err := Write(dir, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write() error = %v, want one containing %q", err, tc.want)
			}
			if tc.dir == "" {
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("a refused Write left %v", entries)
				}
			}
		})
	}
}

// TestOnlyDefaultChannelEnabled: with channels, only the default channel's binary section is enabled; the other
// channels' sections are there, disabled, and every source section is disabled.
func TestOnlyDefaultChannelEnabled(t *testing.T) {
	got, err := Render(Options{FileName: "x.repo", BaseURL: "http://h/repo", Layout: layout(t, "{{.Channel}}/{{.OSRelease}}/{{.Arch}}"),
		Channels: []string{"testing", "stable", "nightly"}, DefaultChannel: "stable"})
	if err != nil {
		t.Fatal(err)
	}
	enabled := map[string]string{}
	var id string
	for _, line := range strings.Split(string(got), "\n") {
		if strings.HasPrefix(line, "[") {
			id = strings.Trim(line, "[]")
		}
		if v, ok := strings.CutPrefix(line, "enabled="); ok {
			enabled[id] = v
		}
	}
	want := map[string]string{
		"rpm-ingestd-testing": "0", "rpm-ingestd-testing-source": "0",
		"rpm-ingestd-stable": "1", "rpm-ingestd-stable-source": "0",
		"rpm-ingestd-nightly": "0", "rpm-ingestd-nightly-source": "0",
	}
	if len(enabled) != len(want) {
		t.Errorf("sections %v, want %v", enabled, want)
	}
	for k, v := range want {
		if enabled[k] != v {
			t.Errorf("%s: enabled=%q, want %s", k, enabled[k], v)
		}
	}
}
