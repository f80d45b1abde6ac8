package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLoadPermissions (issue 19): every mistake in server.permissions is reported at once, with its rule and
// line, together with the file's other problems; a good list loads and survives --check-config's output.
func TestLoadPermissions(t *testing.T) {
	c := validConfig(t)
	file := filepath.Join(t.TempDir(), "c.yaml")
	head := "server:\n  spool_dir: " + c.Server.SpoolDir + "\n  permissions:\n"
	tail := "repo:\n  top_dir: " + c.Repo.TopDir + "\n  layout: \"{{.Channel}}/{{.OSRelease}}/{{.Arch}}\"\n" +
		"  channels: [testing, stable]\n  default_channel: testing\n  os_releases: [\"8\", \"9\"]\n"
	bad := head +
		"    - users: [ci]\n" + // line 4
		"      actions: [upload, publish]\n" +
		"      channels: [testing, prod]\n" +
		"      os_releases: [\"9\", \"7\"]\n" +
		"    - actions: [promote]\n" + // line 8
		"    - users: [admin]\n" + // line 9
		"      actions: []\n" +
		tail
	if err := os.WriteFile(file, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(file)
	if err == nil {
		t.Fatal("Load accepted a bad permissions list")
	}
	for _, want := range []string{
		`line 4: server.permissions[0]: unknown action "publish": use any of upload, promote, delete`,
		`line 4: server.permissions[0]: channel "prod" is not in repo.channels (testing, stable)`,
		`line 4: server.permissions[0]: OS release "7" is not in repo.os_releases (8, 9)`,
		`line 8: server.permissions[1]: names no users: list htpasswd users, or "*" for any authenticated user`,
		`line 9: server.permissions[2]: names no actions: use any of upload, promote, delete`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 5 {
		t.Errorf("%d problems reported, want 5:\n%v", n, err)
	}

	good := head +
		"    - users: [ci]\n      actions: [upload]\n      channels: [testing]\n      os_releases: [\"9\"]\n" +
		"    - users: [release]\n      actions: [upload, promote]\n" +
		"    - users: [admin, \"*\"]\n      actions: [upload, promote, delete]\n" + tail
	if err := os.WriteFile(file, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Server.Permissions) != 3 || !slices.Equal(got.PermissionUsers(), []string{"ci", "release", "admin"}) {
		t.Errorf("loaded %+v, users %v", got.Server.Permissions, got.PermissionUsers())
	}
	out, err := got.YAML()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out)
	if err != nil || len(again.Server.Permissions) != 3 || !slices.Equal(again.Server.Permissions[0].OSReleases, []string{"9"}) {
		t.Errorf("permissions do not survive --check-config: %v\n%s", err, out)
	}
	empty := strings.Replace(head, "  permissions:\n", "  permissions: []\n", 1) + tail
	if err := os.WriteFile(file, []byte(empty), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(file); err == nil || !strings.Contains(err.Error(), "line 3: server.permissions: lists no rule") {
		t.Errorf("permissions: [] loads with %v, want it refused", err)
	}
	if Default().Server.Permissions != nil {
		t.Error("permissions are on by default")
	}
}

// TestValidatePermissions: the cases Load does not reach in one file.
func TestValidatePermissions(t *testing.T) {
	tests := []struct {
		name  string
		rules []PermissionRule
		mod   func(*Config)
		want  string // "" when valid
	}{
		{"empty list", []PermissionRule{}, nil, "server.permissions: lists no rule, which would refuse every change"},
		{"channels without repo.channels", []PermissionRule{{Users: []string{"ci"}, Actions: []string{"upload"}, Channels: []string{"testing"}}}, nil,
			`server.permissions[0]: names channel "testing", but repo.channels lists none`},
		{"any release without repo.os_releases", []PermissionRule{{Users: []string{"ci"}, Actions: []string{"upload"}, OSReleases: []string{"nine"}}}, nil, ""},
		{"empty user", []PermissionRule{{Users: []string{""}, Actions: []string{"upload"}}}, nil, `user "" is not a user name`},
		{"absent", nil, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			c.Server.Permissions = tc.rules
			err := c.Validate()
			if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}
