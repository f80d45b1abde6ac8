package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// TestS3Migrate copies an fs tree with published metadata into a bucket with `rpm-ingestd migrate`, checks what
// it says and stores (every package with its sha256, the metadata), runs it again (nothing copied, everything
// published), refuses to replace a package that differs in the bucket, and has dnf list every package through
// serve_repo of a daemon on that bucket.
func TestS3Migrate(t *testing.T) {
	t.Parallel()
	srv := sharedSeaweed(t) // buckets of its own on the shared server
	d := prepareS3Daemon(t, srv, "", "mig", s3Extra{})
	ctx := context.Background()

	// The old fs tree: three repositories, published by createrepo_c as the fs daemon would, plus things that
	// are not packages of a repository (a hidden upload, the daemon's dotfiles, the .repo file).
	from := filepath.Join(d.dir, "old")
	want := map[string][]string{}
	for _, b := range []struct{ repo, name, version, arch string }{
		{"9/x86_64", "alpha", "1.0", "x86_64"}, {"9/x86_64", "alpha", "1.1", "x86_64"}, {"9/x86_64", "docs", "2.0", "noarch"},
		{"9/aarch64", "docs", "2.0", "noarch"}, {"8/x86_64", "beta", "3", "x86_64"},
	} {
		dir := filepath.Join(from, b.repo, "Packages")
		os.MkdirAll(dir, 0o755)
		testrpm.WriteFile(t, dir, testrpm.Spec{Name: b.name, Version: b.version, Release: "1.el9", Arch: b.arch})
		want["/repo/"+b.repo+"/"] = append(want["/repo/"+b.repo+"/"], b.name+"-"+b.version+"-1.el9."+b.arch)
	}
	for repo := range want {
		slices.Sort(want[repo])
		dir := filepath.Join(from, strings.TrimPrefix(repo, "/repo/"))
		if out, err := exec.Command("createrepo_c", "--no-database", dir).CombinedOutput(); err != nil {
			t.Fatalf("createrepo_c %s: %v\n%s", dir, err, out)
		}
	}
	os.WriteFile(filepath.Join(from, "9/x86_64/Packages/.half-1-1.el9.x86_64.rpm"), []byte("partial"), 0o644)
	os.WriteFile(filepath.Join(from, "9/x86_64/.rpm-ingestd.dirty"), nil, 0o644)
	os.WriteFile(filepath.Join(from, "rpm-ingestd.repo"), []byte("[x]\n"), 0o644)

	migrate := func(wantCode int) string {
		t.Helper()
		cmd := exec.Command(daemonBin, "migrate", "-c", d.conf, "--from", from)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + d.dir}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode {
			t.Fatalf("migrate: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, wantCode, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	out := migrate(0)
	for _, w := range []string{
		"9/x86_64: 3 packages: 3 copied, 0 already there, 0 conflicting; metadata copied",
		"9/aarch64: 1 packages: 1 copied",
		"8/x86_64: 1 packages: 1 copied",
		"total: 3 repositories, 5 packages: 5 copied, 0 already there, 0 conflicting; 3 published, 0 left to a daemon, 0 failed",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("migrate output lacks %q:\n%s", w, out)
		}
	}
	st := d.store(t)
	p := filepath.Join(from, "9/x86_64/Packages/alpha-1.1-1.el9.x86_64.rpm")
	b, _ := os.ReadFile(p)
	sum := sha256.Sum256(b)
	if info, err := st.Head(ctx, "9/x86_64/Packages/alpha-1.1-1.el9.x86_64.rpm"); err != nil || info.Metadata["sha256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("migrated package: %v %v, want sha256 %x in its metadata", info.Metadata, err, sum)
	}
	for _, k := range d.keys(t, "") {
		if strings.Contains(k, ".half-") || strings.HasSuffix(k, ".dirty") || k == "rpm-ingestd.repo" {
			t.Errorf("migrate copied %s", k)
		}
	}

	// Safe to re-run: nothing copied again, every repository published again.
	out = migrate(0)
	if w := "total: 3 repositories, 5 packages: 0 copied, 5 already there, 0 conflicting; 3 published"; !strings.Contains(out, w) {
		t.Errorf("second migrate output lacks %q:\n%s", w, out)
	}
	if !strings.Contains(out, "metadata already in the bucket (kept)") {
		t.Errorf("second migrate did not keep the published metadata:\n%s", out)
	}

	// A different build under a name the bucket holds is reported, exit 1, and never replaces it.
	other := filepath.Join(from, "8/x86_64/Packages/beta-3-1.el9.x86_64.rpm")
	os.WriteFile(other, testrpm.Build(t, testrpm.Spec{Name: "beta", Version: "3", Release: "1.el9", Arch: "x86_64", Salt: "rebuilt"}), 0o644)
	out = migrate(1)
	if !strings.Contains(out, "8/x86_64: conflict: beta-3-1.el9.x86_64.rpm") {
		t.Errorf("conflict not reported:\n%s", out)
	}
	if info, err := st.Head(ctx, "8/x86_64/Packages/beta-3-1.el9.x86_64.rpm"); err != nil || info.Metadata["sha256"] == "" {
		t.Fatal(err)
	} else if b, _ := os.ReadFile(other); hex.EncodeToString(sha(b)) == info.Metadata["sha256"] {
		t.Error("the conflicting build replaced the migrated one")
	}

	// dnf through serve_repo of a daemon on the bucket lists every migrated package.
	d.start(t)
	for repo, w := range want {
		if got := d.sortedQuery(t, repo); !slices.Equal(got, w) {
			t.Errorf("repoquery %s = %v, want %v", repo, got, w)
		}
	}
}

func sha(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
