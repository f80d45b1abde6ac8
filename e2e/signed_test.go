package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testsign"
)

// TestSignedRepository runs the daemon with the signature policy on (packages must be signed by the CI key) and
// metadata signing (the repository key, held in a gpg home the daemon's user owns), behind the shipped nginx
// snippet. dnf with gpgcheck=1 and repo_gpgcheck=1, fetching the repository key from the URL the daemon exported
// it to, installs the signed package; after repomd.xml is altered, the same client refuses the repository.
func TestSignedRepository(t *testing.T) {
	ciKey := testsign.NewKey(t, testsign.RSA2048)
	repoKey := testsign.NewKey(t, testsign.Ed25519)
	var ciKeyFile string
	s := newStackWith(t, func(s *stack) {
		gnupg := filepath.Join(s.dir, "gnupg")
		// The repository's secret key, copied into a home of the daemon's own (without the test agent's sockets).
		if out, err := exec.Command("cp", "-r", repoKey.Home, gnupg).CombinedOutput(); err != nil {
			t.Fatalf("copy gpg home: %v: %s", err, out)
		}
		sockets, _ := filepath.Glob(filepath.Join(gnupg, "S.*"))
		for _, p := range sockets {
			os.Remove(p)
		}
		if out, err := exec.Command("chown", "-R", s.acct.name+":"+s.acct.group, gnupg).CombinedOutput(); err != nil {
			t.Fatalf("chown gpg home: %v: %s", err, out)
		}
		ciKeyFile = filepath.Join(s.dir, "ci.asc")
		writeFile(t, ciKeyFile, string(ciKey.PublicArmored()))
		s.repoExtra = "  require_signature: true\n  keyring: [" + ciKeyFile + "]"
		s.indexerExtra = "  sign:\n    gpg_home: " + gnupg + "\n    key_id: " + repoKey.Fingerprint
	})
	defer killAgents(filepath.Join(s.dir, "gnupg"))
	auth := []string{"-u", uploadUser + ":" + uploadPass}

	signed := filepath.Join(s.dir, "trusted-1.0-1.el9.x86_64.rpm")
	writeFile(t, signed, string(testrpm.Build(t, testrpm.Spec{Name: "trusted", Release: "1.el9", Arch: "x86_64"})))
	ciKey.SignRPM(t, signed)
	if r := s.curlUpload(t, signed, s.base+"/upload/", auth...); r.code != http.StatusCreated {
		t.Fatalf("signed upload: %d %s", r.code, r.body)
	}
	unsigned := filepath.Join(s.dir, "untrusted-1.0-1.el9.x86_64.rpm")
	writeFile(t, unsigned, string(testrpm.Build(t, testrpm.Spec{Name: "untrusted", Release: "1.el9", Arch: "x86_64"})))
	if r := s.curlUpload(t, unsigned, s.base+"/upload/", auth...); r.code != http.StatusUnprocessableEntity || !strings.Contains(r.body, "package is not signed") {
		t.Fatalf("unsigned upload: %d %s, want 422 saying the package is not signed", r.code, r.body)
	}
	s.requireSpoolEmpty(t, "after the refused unsigned upload")

	const repo = "/repo/9/x86_64/"
	s.waitIndexed(t, map[string]int{repo: 1}, repo)
	got := map[string]string{}
	for _, p := range []string{"/repo/RPM-GPG-KEY-rpm-ingestd", repo + "repodata/repomd.xml.asc", repo + "repodata/repomd.xml.key"} {
		r := s.do(t, http.MethodGet, p, nil, nil, false)
		if r.code != http.StatusOK {
			t.Fatalf("GET %s: %d, want 200", p, r.code)
		}
		got[p] = r.body
	}
	// zypper's place for the key (`zypper ar URL` has no .repo file naming one): the configured key.
	if k := got[repo+"repodata/repomd.xml.key"]; k != got["/repo/RPM-GPG-KEY-rpm-ingestd"] || !strings.HasPrefix(k, "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
		t.Fatalf("GET %srepodata/repomd.xml.key = %q, want the exported key", repo, k)
	}

	s.dnfGPG = []string{"--setopt=r0.gpgcheck=1", "--setopt=r0.repo_gpgcheck=1",
		"--setopt=r0.gpgkey=" + s.base + "/repo/RPM-GPG-KEY-rpm-ingestd file://" + ciKeyFile}
	root := filepath.Join(s.dnfDir, "signed-root")
	s.dnf(t, root, []string{repo}, "install", "trusted")
	if b, err := os.ReadFile(filepath.Join(root, "usr", "share", "trusted", "trusted.txt")); err != nil || string(b) != "trusted-1.0-1.el9\n" {
		t.Fatalf("dnf install trusted: the package's file in the installroot: %q, %v", b, err)
	}

	// Alter the published repomd.xml after signing: one space inside the document.
	s.tamperRepomd(t, "9/x86_64")
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := s.tryDnf(ctx, filepath.Join(s.dnfDir, "tampered-root"), []string{repo}, "repoquery", "trusted")
	if err == nil {
		t.Fatalf("dnf accepted a repository whose repomd.xml was altered after signing: %s", out)
	}
	t.Logf("dnf refused the altered repository: %v", strings.Join(lines(err.Error()), " | "))
}

// killAgents stops the gpg-agent the daemon's gpg started in home, so it does not outlive the test.
func killAgents(home string) {
	exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
}

// tamperRepomd alters the published repomd.xml of repo (relative to top_dir) after signing: one space inside the
// document, so its signature no longer matches.
func (s *stack) tamperRepomd(t *testing.T, repo string) {
	t.Helper()
	md := filepath.Join(s.top, filepath.FromSlash(repo), "repodata", "repomd.xml")
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(md, []byte(strings.Replace(string(b), "<revision>", " <revision>", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}
