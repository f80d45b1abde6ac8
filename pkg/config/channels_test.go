package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validConfig returns Default() with existing directories, so Validate reports only what a test changes.
func validConfig(t *testing.T) *Config {
	t.Helper()
	base := t.TempDir()
	c := Default()
	c.Server.SpoolDir, c.Repo.TopDir = filepath.Join(base, "incoming"), filepath.Join(base, "storage")
	for _, d := range []string{c.Server.SpoolDir, c.Repo.TopDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the base config is not valid: %v", err)
	}
	return c
}

func TestValidateChannels(t *testing.T) {
	tests := []struct {
		name     string
		layout   string
		channels []string
		def      string
		want     []string // substrings of the error; none means valid
	}{
		{"no channels, as before", "{{.OSRelease}}/{{.Arch}}", nil, "", nil},
		{"channels", "{{.Channel}}/{{.OSRelease}}/{{.Arch}}", []string{"testing", "stable"}, "testing", nil},
		{"channel deeper in the layout", "el{{.OSRelease}}/{{.Channel}}/{{.Arch}}", []string{"testing", "stable"}, "stable", nil},
		{"layout without the channel", "{{.OSRelease}}/{{.Arch}}", []string{"testing", "stable"}, "testing",
			[]string{`repo.layout: "{{.OSRelease}}/{{.Arch}}" does not use {{.Channel}}, so every channel would share one directory`}},
		{"channel without channels", "{{.Channel}}/{{.OSRelease}}/{{.Arch}}", nil, "",
			[]string{"repo.layout", "uses {{.Channel}} but repo.channels lists no channel"}},
		{"channel only in a branch, without channels", `{{if .Channel}}{{.Channel}}/{{end}}{{.OSRelease}}/{{.Arch}}`, nil, "",
			[]string{"uses {{.Channel}} but repo.channels lists no channel"}},
		{"default missing", "{{.Channel}}/{{.OSRelease}}/{{.Arch}}", []string{"testing"}, "",
			[]string{"repo.default_channel: must be set when repo.channels is: name the channel (one of testing)"}},
		{"default not listed", "{{.Channel}}/{{.OSRelease}}/{{.Arch}}", []string{"testing", "stable"}, "prod",
			[]string{`repo.default_channel: "prod" is not one of repo.channels (testing, stable)`}},
		{"default without channels", "{{.OSRelease}}/{{.Arch}}", nil, "stable",
			[]string{`repo.default_channel: is "stable" but repo.channels lists no channel`}},
		{"bad names", "{{.Channel}}/{{.OSRelease}}/{{.Arch}}", []string{"testing", "../up", ".hidden", "a/b", "x.RPM", "testing"}, "testing",
			[]string{`"../up" is not a valid channel name`, `".hidden" is not a valid channel name`, `"a/b" is not a valid channel name`,
				`"x.RPM" ends in .rpm`, `"testing" is listed twice`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			c.Repo.Layout, c.Repo.Channels, c.Repo.DefaultChannel = tc.layout, tc.channels, tc.def
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
				}
			}
		})
	}
}

func TestLoadChannels(t *testing.T) {
	c := validConfig(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	yaml := "server:\n  spool_dir: " + c.Server.SpoolDir + "\nrepo:\n  top_dir: " + c.Repo.TopDir +
		"\n  layout: \"{{.Channel}}/{{.OSRelease}}/{{.Arch}}\"\n  channels: [testing, stable]\n  default_channel: tesitng\n"
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(file)
	if err == nil || !strings.Contains(err.Error(), `line 7: repo.default_channel: "tesitng" is not one of repo.channels (testing, stable)`) {
		t.Fatalf("Load: %v, want the misspelt default channel named with its line", err)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(yaml, "tesitng", "testing", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	out, err := got.YAML()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out)
	if err != nil || strings.Join(again.Repo.Channels, ",") != "testing,stable" || again.Repo.DefaultChannel != "testing" {
		t.Errorf("channels do not survive --check-config: %v %v %q\n%s", err, again.Repo.Channels, again.Repo.DefaultChannel, out)
	}
}

func TestRenderLayoutChannel(t *testing.T) {
	c := Default()
	c.Repo.Layout = "{{.Channel}}/{{.OSRelease}}/{{.Arch}}"
	c.Repo.Channels = []string{"testing", "stable"}
	tests := []struct {
		channel, want string
		err           error
	}{
		{"stable", "stable/9/x86_64", nil},
		{"testing", "testing/9/x86_64", nil},
		{"", "", ErrUnknownChannel},     // never silently without its channel segment
		{"prod", "", ErrUnknownChannel}, // not configured
		{"../x", "", ErrUnknownChannel}, // never rendered, whatever it would do
		{"stable/", "", ErrUnknownChannel},
	}
	for _, tc := range tests {
		got, err := c.RenderLayout(LayoutFields{OSAbbr: "el", OSRelease: "9", Arch: "x86_64", Channel: tc.channel})
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("channel %q: %q, %v; want %q, %v", tc.channel, got, err, tc.want, tc.err)
		}
	}
	c.Repo.Channels = nil
	c.Repo.Layout = "{{.OSRelease}}/{{.Arch}}"
	if _, err := c.RenderLayout(LayoutFields{OSRelease: "9", Arch: "x86_64", Channel: "stable"}); !errors.Is(err, ErrUnknownChannel) {
		t.Errorf("a channel without channels configured: %v, want ErrUnknownChannel", err)
	}
}

func TestLocateRepo(t *testing.T) {
	type want struct {
		channel, osRelease, arch string
		ok                       bool
	}
	tests := []struct {
		name     string
		layout   string
		channels []string
		dir      string
		want     want
	}{
		{"default layout", "{{.OSRelease}}/{{.Arch}}", nil, "9/x86_64", want{"", "9", "x86_64", true}},
		{"sources", "{{.OSRelease}}/{{.Arch}}", nil, "9/SRPMS", want{"", "9", "SRPMS", true}},
		{"minor release", "{{.OSRelease}}/{{.Arch}}", nil, "9.4/aarch64", want{"", "9.4", "aarch64", true}},
		{"trailing slash and dot", "{{.OSRelease}}/{{.Arch}}", nil, "./9/x86_64/", want{"", "9", "x86_64", true}},
		{"unknown arch", "{{.OSRelease}}/{{.Arch}}", nil, "9/ppc64le", want{}},
		{"too deep", "{{.OSRelease}}/{{.Arch}}", nil, "9/x86_64/Packages", want{}},
		{"empty", "{{.OSRelease}}/{{.Arch}}", nil, "", want{}},
		{"channels", "{{.Channel}}/{{.OSRelease}}/{{.Arch}}", []string{"testing", "stable"}, "stable/9/x86_64", want{"stable", "9", "x86_64", true}},
		{"unknown channel", "{{.Channel}}/{{.OSRelease}}/{{.Arch}}", []string{"testing", "stable"}, "prod/9/x86_64", want{}},
		{"dist tag in the path", "{{.OSAbbr}}{{.OSRelease}}/{{.Channel}}/{{.Arch}}/os", []string{"testing", "stable"}, "fc40/testing/aarch64/os", want{"testing", "40", "aarch64", true}},
		{"dist tag not configured", "{{.OSAbbr}}{{.OSRelease}}/{{.Arch}}", nil, "xx9/x86_64", want{}},
		{"release twice, agreeing", "{{.OSRelease}}/{{.Arch}}/el{{.OSRelease}}", nil, "8/x86_64/el8", want{"", "8", "x86_64", true}},
		{"release twice, disagreeing", "{{.OSRelease}}/{{.Arch}}/el{{.OSRelease}}", nil, "8/x86_64/el9", want{}},
		{"branch on the arch", `{{.OSRelease}}/{{if eq .Arch "SRPMS"}}source/tree{{else}}{{.Arch}}/os{{end}}`, nil, "9/source/tree", want{"", "9", "SRPMS", true}},
		{"branch on the arch, binary", `{{.OSRelease}}/{{if eq .Arch "SRPMS"}}source/tree{{else}}{{.Arch}}/os{{end}}`, nil, "9/x86_64/os", want{"", "9", "x86_64", true}},
		{"regexp characters are literal", "{{.OSRelease}}+x/{{.Arch}}", nil, "9+x/x86_64", want{"", "9", "x86_64", true}},
		{"regexp characters are literal, mismatch", "{{.OSRelease}}+x/{{.Arch}}", nil, "9xx/x86_64", want{}},
		{"layout without the arch is ambiguous", "{{.OSRelease}}/all", nil, "9/all", want{}},
		{"layout without the release", "fixed/{{.Arch}}", nil, "fixed/x86_64", want{"", "", "x86_64", true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Repo.Layout, c.Repo.Channels = tc.layout, tc.channels
			var got want
			got.channel, got.osRelease, got.arch, got.ok = c.LocateRepo(tc.dir)
			if got != tc.want {
				t.Errorf("LocateRepo(%q) = %+v, want %+v", tc.dir, got, tc.want)
			}
		})
	}
}

// TestLocateRepoInvertsRenderLayout: whatever RenderLayout renders, LocateRepo maps back to its fields.
func TestLocateRepoInvertsRenderLayout(t *testing.T) {
	for _, layout := range []string{"{{.Channel}}/{{.OSRelease}}/{{.Arch}}", "{{.OSAbbr}}{{.OSRelease}}-{{.Channel}}/{{.Arch}}/os"} {
		c := Default()
		c.Repo.Layout, c.Repo.Channels = layout, []string{"testing", "stable", "rc.1"}
		for _, ch := range c.Repo.Channels {
			for _, arch := range append(c.Repo.Arches, "SRPMS") {
				for _, rel := range []string{"9", "10", "2023", "9.4"} {
					dir, err := c.RenderLayout(LayoutFields{OSAbbr: "el", OSRelease: rel, Arch: arch, Channel: ch})
					if err != nil {
						t.Fatal(err)
					}
					gc, gr, ga, ok := c.LocateRepo(filepath.ToSlash(dir))
					if !ok || gc != ch || gr != rel || ga != arch {
						t.Errorf("%s: LocateRepo(%q) = %q %q %q %v, want %q %q %q", layout, dir, gc, gr, ga, ok, ch, rel, arch)
					}
				}
			}
		}
	}
}
