package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/indexer"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
)

// TestOSReleasesFirstRun: with channels and repo.os_releases, a fresh daemon serves a repomd.xml at every baseurl
// of its .repo file before anything is uploaded, and a real dnf, given only that .repo file, reads every section
// (the default channel's, and with --enablerepo='*' every other channel's and the sources) for every listed
// release. Only the default channel is enabled by default.
func TestOSReleasesFirstRun(t *testing.T) {
	tr := newTree(t)
	addr := freeAddr(t)
	cfg := tr.writeConfig(t, daemonConfig(addr, "1h", "  serve_repo: true\n", `  layout: '{{.Channel}}/{{.OSRelease}}/{{.Arch}}'
  arches: [x86_64, aarch64]
  channels: [testing, stable]
  default_channel: testing
  os_releases: ["9", "10"]
`, ""))
	d := tr.launch(t, addr, cfg)
	d.waitHealthy(t)

	for _, ch := range []string{"testing", "stable"} {
		for _, rel := range []string{"9", "10"} {
			for _, arch := range []string{"x86_64", "aarch64", "SRPMS"} {
				p := filepath.Join(tr.top, ch, rel, arch, "repodata", "repomd.xml")
				if _, err := os.Stat(p); err != nil {
					t.Errorf("no metadata at start: %v", err)
				}
			}
		}
	}
	for _, absent := range []string{"8", "noarch"} {
		if _, err := os.Stat(filepath.Join(tr.top, "testing", absent)); err == nil {
			t.Errorf("testing/%s was created", absent)
		}
	}

	// An upload routed to a release the list lacks: 422 naming the list, and no directory.
	for _, rel := range []string{"nine", "EL9", "rhel9", "9.2"} {
		req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/upload/?os_release="+rel,
			bytes.NewReader(testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1", Arch: "x86_64"})))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), "is not one of repo.os_releases (9, 10)") {
			t.Errorf("os_release=%s: %s %s, want 422 naming repo.os_releases", rel, resp.Status, body)
		}
		if _, err := os.Stat(filepath.Join(tr.top, "testing", rel)); err == nil {
			t.Errorf("os_release=%s created testing/%s", rel, rel)
		}
	}

	resp, err := http.Get("http://" + addr + "/repo/rpm-ingestd.repo")
	if err != nil {
		t.Fatal(err)
	}
	repoFile, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the .repo file: %s", resp.Status)
	}
	reposdir := filepath.Join(tr.dir, "yum.repos.d")
	os.Mkdir(reposdir, 0o755)
	os.WriteFile(filepath.Join(reposdir, "rpm-ingestd.repo"), repoFile, 0o644)

	dnf := func(releasever, arch string, args ...string) string {
		t.Helper()
		tmp := t.TempDir()
		argv := append([]string{"-q", "--installroot", filepath.Join(tmp, "root"), "--setopt=reposdir=" + reposdir,
			"--setopt=cachedir=" + filepath.Join(tmp, "cache"), "--releasever=" + releasever, "--forcearch=" + arch}, args...)
		out, err := exec.Command("dnf", argv...).CombinedOutput()
		if err != nil {
			t.Errorf("dnf %s: %v\n%s\n.repo file:\n%s", strings.Join(argv, " "), err, out, repoFile)
		}
		return string(out)
	}
	// Every section, enabled or not, for both releases and both arches: makecache fails on the first baseurl
	// without metadata, since the file says skip_if_unavailable=0.
	for _, rel := range []string{"9", "10"} {
		for _, arch := range []string{"x86_64", "aarch64"} {
			dnf(rel, arch, "--enablerepo=*", "makecache")
		}
	}
	// The package pages of an upload: the header's summary, a download link, and for the source package a
	// line that works (dnf cannot install a .src).
	srpm, err := os.ReadFile(filepath.Join("..", "..", "testdata", "rpms", "hello-1.0-1.el9.src.rpm"))
	if err != nil {
		t.Fatal(err)
	}
	for _, up := range []struct {
		data       []byte
		path, want string
	}{
		{testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"}), "testing/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", "sudo dnf install &#39;hello-1.0-1.el9.x86_64&#39;"},
		{srpm, "testing/9/SRPMS/Packages/hello-1.0-1.el9.src.rpm", "dnf download --source &#39;hello-1.0-1.el9&#39;"},
	} {
		d.upload(t, up.data)
		resp, err := http.Get("http://" + addr + "/packages/" + up.path)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		summary := map[bool]string{false: "rpm-ingestd test package hello", true: "Tiny test package for rpm-ingestd"}[strings.HasSuffix(up.path, ".src.rpm")]
		for _, w := range []string{up.want, `href="/repo/` + up.path + `" download>`, `<p class="summary">` + summary} {
			if !strings.Contains(string(page), w) {
				t.Errorf("page of %s lacks %q:\n%s", up.path, w, page)
			}
		}
		if dl, err := http.Get("http://" + addr + "/repo/" + up.path); err != nil || dl.StatusCode != http.StatusOK {
			t.Errorf("download link of %s: %v %v", up.path, dl, err)
		} else {
			dl.Body.Close()
		}
	}

	enabled := dnf("9", "x86_64", "repolist", "--enabled")
	if !strings.Contains(enabled, "rpm-ingestd-testing ") || strings.Contains(enabled, "rpm-ingestd-stable") || strings.Contains(enabled, "source") {
		t.Errorf("enabled repositories:\n%s\nwant only rpm-ingestd-testing", enabled)
	}
}

// TestCreateConfiguredReposKeepsExisting: an existing repository's metadata is not rebuilt at start, and
// without repo.os_releases nothing is created.
func TestCreateConfiguredReposKeepsExisting(t *testing.T) {
	if _, err := exec.LookPath("createrepo_c"); err != nil {
		t.Fatal("createrepo_c not on PATH: run `make deps`")
	}
	cfg := config.Default()
	cfg.Repo.TopDir = t.TempDir()
	cfg.Repo.Arches = []string{"x86_64"}
	runner := indexer.NewCreaterepo(indexer.DefaultCommand())
	log := zaptest.NewLogger(t)
	tr, err := fstree.New(fstree.Options{TopDir: cfg.Repo.TopDir})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if n, err := createConfiguredRepos(context.Background(), cfg, tr, runner, log); n != 0 || err != nil {
		t.Fatalf("without os_releases: %d, %v", n, err)
	}
	entries, _ := os.ReadDir(cfg.Repo.TopDir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") { // the fs tree's own locks and staging
			t.Fatalf("without os_releases the tree got %v", entries)
		}
	}
	cfg.Repo.OSReleases = []string{"9"}
	if n, err := createConfiguredRepos(context.Background(), cfg, tr, runner, log); n != 2 || err != nil {
		t.Fatalf("first start: %d, %v; want 2 (9/x86_64, 9/SRPMS)", n, err)
	}
	if n, err := createConfiguredRepos(context.Background(), cfg, tr, runner, log); n != 0 || err != nil {
		t.Fatalf("second start: %d, %v; want 0", n, err)
	}
	// Another daemon's start, with its own empty top_dir (its work directory on s3): the repositories are
	// published in the tree, which is what it asks, so it publishes nothing again.
	other := *cfg
	other.Repo.TopDir = t.TempDir()
	if n, err := createConfiguredRepos(context.Background(), &other, tr, failRunner{t}, log); n != 0 || err != nil {
		t.Fatalf("start with the repositories published in the tree but not under top_dir: %d, %v; want 0", n, err)
	}
}

// failRunner fails the test when a repository is indexed.
type failRunner struct{ t *testing.T }

func (f failRunner) Run(_ context.Context, dir string) error {
	f.t.Errorf("%s indexed, but its metadata is published", dir)
	return nil
}

// TestHeaderSummary reads a stored package's summary from its header through the tree (here an fs tree on a
// directory that is not top_dir, as an s3 tree's packages are nowhere under top_dir), inside the tree only.
func TestHeaderSummary(t *testing.T) {
	base := t.TempDir()
	top := filepath.Join(base, "top")
	pk := filepath.Join(top, "9", "x86_64", "Packages")
	os.MkdirAll(pk, 0o755)
	data := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"})
	os.WriteFile(filepath.Join(pk, "hello-1.0-1.el9.x86_64.rpm"), data, 0o644)
	os.WriteFile(filepath.Join(base, "outside.rpm"), data, 0o644)
	os.Symlink(filepath.Join(base, "outside.rpm"), filepath.Join(pk, "link-1.0-1.el9.x86_64.rpm"))
	os.WriteFile(filepath.Join(pk, "junk-1.0-1.el9.x86_64.rpm"), []byte("not an rpm"), 0o644)
	tests := []struct{ rel, want string }{
		{"9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", "rpm-ingestd test package hello"},
		{"9/x86_64/Packages/link-1.0-1.el9.x86_64.rpm", ""}, // points out of top_dir
		{"9/x86_64/Packages/junk-1.0-1.el9.x86_64.rpm", ""},
		{"9/x86_64/Packages/absent-1.0-1.el9.x86_64.rpm", ""},
		{"../outside.rpm", ""},
	}
	tr, err := fstree.New(fstree.Options{TopDir: top})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, tc := range tests {
		if got := headerSummary(t.Context(), tr, tc.rel); got != tc.want {
			t.Errorf("headerSummary(%s) = %q, want %q", tc.rel, got, tc.want)
		}
	}
}
