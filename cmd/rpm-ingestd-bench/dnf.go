package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// dnfLists reports whether dnf, reading the repository directory repoDir directly (no HTTP: the daemon's tree
// is what nginx would serve), lists the package name. Its own installroot and cache under work; --refresh so a
// cache from an earlier query is never trusted (libdnf compares whole seconds).
func dnfLists(work, repoDir, name string) (bool, error) {
	root, cache, home := filepath.Join(work, "root"), filepath.Join(work, "cache"), filepath.Join(work, "home")
	for _, d := range []string{root, cache, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return false, err
		}
	}
	cmd := exec.Command("dnf", "-q", "--refresh", "--noplugins", "--installroot="+root, "--releasever=9",
		"--setopt=reposdir=/dev/null", "--setopt=cachedir="+cache, "--repofrompath=t,"+repoDir, "--repo=t",
		"--setopt=t.metadata_expire=0", "--nogpgcheck", "repoquery", "--qf", "%{name}", name)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LC_ALL=C.UTF-8"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return false, fmt.Errorf("dnf repoquery: %w: %s", err, tail(errb.String(), 1000))
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.TrimSpace(l) == name {
			return true, nil
		}
	}
	return false, nil
}
