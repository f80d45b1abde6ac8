package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the checkout's top directory, seen from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestMakeHelpListsEveryTarget runs the real `make help` and checks that every target documented with "## " in
// the Makefile is listed, digits in its name included (e2e once was not).
func TestMakeHelpListsEveryTarget(t *testing.T) {
	root := repoRoot(t)
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	documented := regexp.MustCompile(`(?m)^([A-Za-z0-9_.-]+):.*## `).FindAllStringSubmatch(string(mk), -1)
	if len(documented) < 5 {
		t.Fatalf("found only %d documented targets in the Makefile", len(documented))
	}
	cmd := exec.Command("make", "--no-print-directory", "-s", "help")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make help: %v\n%s", err, out)
	}
	for _, m := range documented {
		if !regexp.MustCompile(`(?m)^  make ` + regexp.QuoteMeta(m[1]) + ` `).Match(out) {
			t.Errorf("make help does not list %q:\n%s", m[1], out)
		}
	}
}

// TestLicense checks the project's licence: the Apache-2.0 text in LICENSE and the SPDX tag in the RPM spec, as
// rpmspec reads it.
func TestLicense(t *testing.T) {
	root := repoRoot(t)
	text, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Apache License", "Version 2.0, January 2004", "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION", "END OF TERMS AND CONDITIONS"} {
		if !strings.Contains(string(text), w) {
			t.Errorf("LICENSE lacks %q", w)
		}
	}
	out, err := exec.Command("rpmspec", "-q", "--srpm", "--qf", "%{LICENSE}", "--define", "pkg_version 1",
		filepath.Join(root, "deploy", "rpm", "rpm-ingestd.spec")).CombinedOutput()
	if err != nil {
		t.Fatalf("rpmspec: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "Apache-2.0" {
		t.Errorf("spec License: %q, want Apache-2.0", got)
	}
	sh, err := os.ReadFile(filepath.Join(root, "deploy", "rpm", "build-rpm.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sh), `"$root/LICENSE"`) {
		t.Error("build-rpm.sh does not put LICENSE into SOURCES, which the spec's %license needs")
	}
}

// TestMakeRunConfig: make run starts the daemon on CONFIG, deploy/config.dev.yml by default, so another port
// (server.listen) is one copied file away.
func TestMakeRunConfig(t *testing.T) {
	root := repoRoot(t)
	for _, tc := range []struct{ arg, want string }{
		{"", "bin/rpm-ingestd -c deploy/config.dev.yml"},
		{"CONFIG=deploy/my.yml", "bin/rpm-ingestd -c deploy/my.yml"},
	} {
		args := []string{"--no-print-directory", "-n", "-o", "deps-run", "-o", "build", "run"}
		if tc.arg != "" {
			args = append(args, tc.arg)
		}
		cmd := exec.Command("make", args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("make run %s would run:\n%s\nwant %q", tc.arg, out, tc.want)
		}
	}
}
