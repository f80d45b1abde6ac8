package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testsign"
)

// patientTiming has a quiet period far longer than any test: nothing is published unless an upload asks for
// publish=now, so a publish that happens proves the flag did it, and a wait that ends early proves nothing.
var patientTiming = indexerTiming{quiet: 10 * time.Minute, maxDelay: 20 * time.Minute}

// TestWaitAndRepoFile runs the daemon behind nginx with server.public_url set to nginx's address: the .repo file
// it writes sets dnf up, an upload with wait=visible&publish=now comes back once dnf can see the package (and a
// burst before it costs one index run), and an upload whose wait times out gets 202 and can be polled.
func TestWaitAndRepoFile(t *testing.T) {
	s := newStack(t)
	// The .repo file needs the URL clients use, which is nginx's port, known only now: restart with it.
	s.serverExtra = fmt.Sprintf("  public_url: %q", s.base)
	s.restartDaemon(t, patientTiming)

	reposDir := filepath.Join(s.dnfDir, "yum.repos.d")
	if err := os.MkdirAll(reposDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Run("RepoFileViaNginx", func(t *testing.T) { s.testRepoFile(t, reposDir) })
	t.Run("BurstThenPublishNow", func(t *testing.T) { s.testBurstPublishNow(t, reposDir) })
	t.Run("TimeoutThenVisible", s.testWaitTimeout)
}

// testRepoFile fetches /repo/rpm-ingestd.repo through nginx, as `curl -o /etc/yum.repos.d/...` would, and checks
// it names the tree by nginx's URL with dnf's variables.
func (s *stack) testRepoFile(t *testing.T, reposDir string) {
	r := s.do(t, http.MethodGet, "/repo/rpm-ingestd.repo", nil, nil, false)
	if r.code != http.StatusOK {
		t.Fatalf("GET /repo/rpm-ingestd.repo: %d %s", r.code, r.body)
	}
	for _, want := range []string{
		"[rpm-ingestd]\n",
		"baseurl=" + s.base + "/repo/$releasever/$basearch/\n",
		"[rpm-ingestd-source]\n",
		"baseurl=" + s.base + "/repo/$releasever/SRPMS/\n",
		"repo_gpgcheck=0\n",       // metadata signing is off in this stack
		"skip_if_unavailable=0\n", // a broken repository fails the client, whatever its distribution's default
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf(".repo file lacks %q:\n%s", want, r.body)
		}
	}
	writeFile(t, filepath.Join(reposDir, "rpm-ingestd.repo"), r.body)
}

// dnfWithRepoFile runs dnf with only the downloaded .repo file for repositories, as a client set up with it.
func (s *stack) dnfWithRepoFile(t *testing.T, reposDir, root string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	// --refresh: the package was published a moment ago; no cached metadata may hide it (see dnfCmd).
	argv := append([]string{"-y", "-q", "--refresh", "--noplugins", "--installroot=" + root, "--releasever=9",
		"--setopt=reposdir=" + reposDir, "--setopt=cachedir=" + filepath.Join(s.dnfDir, "repofile-cache"),
		"--setopt=install_weak_deps=False"}, args...)
	cmd := exec.CommandContext(ctx, s.tools["dnf"], argv...)
	// HOME in the test's tree, for Debian's rpm database (see dnfCmd).
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(s.dnfDir, "home"), "LC_ALL=C.UTF-8"}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("dnf %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// testBurstPublishNow uploads a burst without flags, then one more with wait=visible&publish=now: its 201 means
// dnf sees all of them at once, and the whole burst cost exactly one index run.
func (s *stack) testBurstPublishNow(t *testing.T, reposDir string) {
	const repo = "/repo/9/x86_64/"
	var want []string
	for i := range 5 {
		spec := testrpm.Spec{Name: fmt.Sprintf("waitburst-%d", i), Release: "1.el9", Arch: "x86_64"}
		want = append(want, nevraOf(spec.FileName()))
		if r := s.do(t, http.MethodPut, "/upload/", testrpm.Build(t, spec), nil, true); r.code != http.StatusCreated {
			t.Fatalf("upload %s: %d %s", spec.Name, r.code, r.body)
		}
	}
	last := testrpm.Spec{Name: "waitburst-last", Release: "1.el9", Arch: "x86_64"}
	want = append(want, nevraOf(last.FileName()))
	r := s.do(t, http.MethodPut, "/upload/?wait=visible&publish=now", testrpm.Build(t, last), nil, true)
	wantBody := "OK - Accessible as /repo/9/x86_64/Packages/" + last.FileName() + " (visible to dnf now)\n"
	if r.code != http.StatusCreated || r.body != wantBody {
		t.Fatalf("upload with wait=visible&publish=now: %d %q, want 201 %q", r.code, r.body, wantBody)
	}

	// At once, with nothing but the .repo file: every package of the burst is listed.
	got := lines(s.dnfWithRepoFile(t, reposDir, filepath.Join(s.dnfDir, "repofile-query"), "repoquery", "--qf", "%{name}-%{evr}.%{arch}", "waitburst-*"))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("dnf repoquery right after the 201:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// One run for the six uploads: the five without flags waited for the (ten-minute) quiet period, and the
	// publish=now run took them along.
	st := s.waitIndexed(t, map[string]int{repo: 1}, repo)
	if st[repo].Runs != 1 {
		t.Errorf("%d index runs for the burst, want exactly 1", st[repo].Runs)
	}

	// And installs with it.
	root := filepath.Join(s.dnfDir, "repofile-root")
	s.dnfWithRepoFile(t, reposDir, root, "install", "waitburst-last")
	if b, err := os.ReadFile(filepath.Join(root, "usr", "share", "waitburst-last", "waitburst-last.txt")); err != nil || string(b) != "waitburst-last-1.0-1.el9\n" {
		t.Errorf("dnf install waitburst-last with the .repo file: the package's file: %q, %v", b, err)
	}
}

// uploadState is GET /api/v1/uploads/{sha256}, decoded on the client side.
type uploadState struct {
	SHA256  string `json:"sha256"`
	Visible bool   `json:"visible"`
	Copies  []struct {
		Repo       string     `json:"repo"`
		URL        string     `json:"url"`
		Visible    bool       `json:"visible"`
		ExpectedAt *time.Time `json:"expected_at"`
	} `json:"copies"`
}

// uploadStatus asks the daemon, through nginx, where the package with sum is.
func (s *stack) uploadStatus(t *testing.T, sum string) uploadState {
	t.Helper()
	r, err := s.tryDo(s.web, s.base, http.MethodGet, "/api/v1/uploads/"+sum, nil, nil, false)
	if err != nil || r.code != http.StatusOK {
		t.Fatalf("GET /api/v1/uploads/%s: %v %d %s", sum, err, r.code, r.body)
	}
	var st uploadState
	if err := json.Unmarshal([]byte(r.body), &st); err != nil {
		t.Fatalf("GET /api/v1/uploads/%s: %v: %s", sum, err, r.body)
	}
	return st
}

// testWaitTimeout: a wait that times out is a 202 with the state; polling shows the package not visible, and
// visible once a later publish=now upload has had the repository indexed.
func (s *stack) testWaitTimeout(t *testing.T) {
	spec := testrpm.Spec{Name: "waitlate", Release: "1.el9", Arch: "noarch"}
	body := testrpm.Build(t, spec)
	r := s.do(t, http.MethodPut, "/upload/?wait=visible&timeout=1s", body, map[string]string{"Accept": "application/json"}, true)
	if r.code != http.StatusAccepted {
		t.Fatalf("upload with wait=visible&timeout=1s and a ten-minute quiet period: %d %s, want 202", r.code, r.body)
	}
	var resp struct {
		Visible   *bool  `json:"visible"`
		SHA256    string `json:"sha256"`
		StatusURL string `json:"status_url"`
	}
	if err := json.Unmarshal([]byte(r.body), &resp); err != nil || resp.Visible == nil || *resp.Visible ||
		resp.SHA256 != sha256Hex(body) || resp.StatusURL != "/api/v1/uploads/"+resp.SHA256 {
		t.Fatalf("202 body: %v %s", err, r.body)
	}
	st := s.uploadStatus(t, resp.SHA256)
	if st.Visible || len(st.Copies) != 2 || st.Copies[0].Visible || st.Copies[0].ExpectedAt == nil {
		t.Fatalf("status before any publish: %+v, want two copies (noarch), neither visible", st)
	}

	// An x86_64 upload with publish=now has x86_64 indexed, and so publishes that copy; aarch64 still waits.
	next := testrpm.Spec{Name: "waitnext", Release: "1.el9", Arch: "x86_64"}
	if r := s.do(t, http.MethodPut, "/upload/?wait=visible&publish=now", testrpm.Build(t, next), nil, true); r.code != http.StatusCreated {
		t.Fatalf("upload with publish=now: %d %s", r.code, r.body)
	}
	st = s.uploadStatus(t, resp.SHA256)
	byRepo := map[string]bool{}
	for _, c := range st.Copies {
		byRepo[c.Repo] = c.Visible
	}
	if st.Visible || !byRepo["/repo/9/x86_64/"] || byRepo["/repo/9/aarch64/"] {
		t.Errorf("status after x86_64 was published: %+v, want visible in x86_64 only", st)
	}
	// The same bytes again with publish=now: the aarch64 copy is published too, and the answer says so.
	if r := s.do(t, http.MethodPut, "/upload/?wait=visible&publish=now", body, nil, true); r.code != http.StatusOK || !strings.HasSuffix(r.body, "(visible to dnf now)\n") {
		t.Fatalf("re-upload with publish=now: %d %q, want 200 visible", r.code, r.body)
	}
	if st = s.uploadStatus(t, resp.SHA256); !st.Visible {
		t.Errorf("status after both were published: %+v, want visible", st)
	}
}

// TestRepoFileSigned: with metadata signing on, the .repo file turns on repo_gpgcheck with the key the daemon
// exported, and dnf set up with nothing but that file fetches the key, checks repomd.xml's signature and installs.
func TestRepoFileSigned(t *testing.T) {
	repoKey := testsign.NewKey(t, testsign.Ed25519)
	s := newStackWith(t, func(s *stack) {
		gnupg := filepath.Join(s.dir, "gnupg")
		// As in TestSignedRepository: the secret key in a home of the daemon's own, without the agent's sockets.
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
		s.indexerExtra = "  sign:\n    gpg_home: " + gnupg + "\n    key_id: " + repoKey.Fingerprint
	})
	defer killAgents(filepath.Join(s.dir, "gnupg"))
	s.serverExtra = fmt.Sprintf("  public_url: %q", s.base)
	s.restartDaemon(t, patientTiming)

	r := s.do(t, http.MethodGet, "/repo/rpm-ingestd.repo", nil, nil, false)
	if r.code != http.StatusOK {
		t.Fatalf("GET /repo/rpm-ingestd.repo: %d %s", r.code, r.body)
	}
	for _, want := range []string{"repo_gpgcheck=1\n", "gpgkey=" + s.base + "/repo/RPM-GPG-KEY-rpm-ingestd\n"} {
		if !strings.Contains(r.body, want) {
			t.Errorf(".repo file lacks %q:\n%s", want, r.body)
		}
	}
	reposDir := filepath.Join(s.dnfDir, "signed.repos.d")
	if err := os.MkdirAll(reposDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(reposDir, "rpm-ingestd.repo"), r.body)

	spec := testrpm.Spec{Name: "signedmeta", Release: "1.el9", Arch: "x86_64"}
	if r := s.do(t, http.MethodPut, "/upload/?wait=visible&publish=now", testrpm.Build(t, spec), nil, true); r.code != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.code, r.body)
	}
	root := filepath.Join(s.dnfDir, "signed-repofile-root")
	s.dnfWithRepoFile(t, reposDir, root, "install", "signedmeta")
	if b, err := os.ReadFile(filepath.Join(root, "usr", "share", "signedmeta", "signedmeta.txt")); err != nil || string(b) != "signedmeta-1.0-1.el9\n" {
		t.Errorf("dnf install signedmeta with the signed .repo file: %q, %v", b, err)
	}

	// The same client refuses the repository once repomd.xml no longer matches its signature: the file really
	// turned the check on.
	s.tamperRepomd(t, "9/x86_64")
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.tools["dnf"], "-y", "-q", "--refresh", "--noplugins", "--installroot="+filepath.Join(s.dnfDir, "signed-tampered"),
		"--releasever=9", "--setopt=reposdir="+reposDir, "--setopt=cachedir="+filepath.Join(s.dnfDir, "signed-tampered-cache"), "repoquery", "signedmeta")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(s.dnfDir, "home"), "LC_ALL=C.UTF-8"}
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("dnf with the .repo file accepted a repomd.xml altered after signing:\n%s", out)
	}
}
