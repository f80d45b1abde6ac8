package e2e

import (
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// TestIndexedTreeAfterRestart (issue 18 item 16): a restarted daemon lists every repository that has metadata
// at once, before any run or rescan, with its package count, and does not re-index it.
func TestIndexedTreeAfterRestart(t *testing.T) {
	s := newStack(t)
	const repo = "/repo/9/x86_64/"
	spec := testrpm.Spec{Name: "restarted", Release: "1.el9", Arch: "x86_64"}
	if r := s.do(t, http.MethodPut, "/upload/?wait=visible&publish=now", testrpm.Build(t, spec), nil, true); r.code != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.code, r.body)
	}
	s.waitIndexed(t, map[string]int{repo: 1}, repo)

	s.restartDaemon(t, defaultTiming)
	m, err := s.statuses()
	if err != nil {
		t.Fatal(err)
	}
	st, ok := m[repo]
	if !ok {
		t.Fatalf("GET /api/v1/repos right after a restart: %v, want %s listed", m, repo)
	}
	if st.Packages != 1 || st.Runs != 0 || st.DirtySince != nil || st.Running {
		t.Errorf("%s after a restart: %+v, want 1 package, known without a run", repo, st)
	}
}

// TestVisibleMeansNewBytes (issue 18 item 9): upload, DELETE, upload another build under the same file name with
// wait=visible&publish=now. The answer "visible to dnf now" must mean that primary.xml lists the new checksum,
// and GET /api/v1/uploads/{sha256} must agree: the old build's checksum under that name is not the new upload.
func TestVisibleMeansNewBytes(t *testing.T) {
	s := newStack(t)
	s.restartDaemon(t, patientTiming) // nothing is published unless an upload asks for publish=now
	const repo = "9/x86_64"
	spec := testrpm.Spec{Name: "rebuilt", Release: "1.el9", Arch: "x86_64", Salt: "first"}
	first := testrpm.Build(t, spec)
	spec.Salt = "second, a longer salt" // another size: createrepo_c --update re-reads it whatever the mtime
	second := testrpm.Build(t, spec)
	const wait = "/upload/?wait=visible&publish=now"
	if r := s.do(t, http.MethodPut, wait, first, nil, true); r.code != http.StatusCreated {
		t.Fatalf("first upload: %d %s", r.code, r.body)
	}
	if !strings.Contains(s.primaryXML(t, repo), sha256Hex(first)) {
		t.Fatal("first upload answered visible, but primary.xml lacks its checksum")
	}
	if r := s.do(t, http.MethodDelete, "/api/v1/packages/"+repo+"/Packages/"+spec.FileName(), nil, nil, true); r.code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", r.code, r.body)
	}
	r := s.do(t, http.MethodPut, wait, second, nil, true)
	if r.code != http.StatusCreated || !strings.HasSuffix(r.body, "(visible to dnf now)\n") {
		t.Fatalf("second upload: %d %q, want 201 visible", r.code, r.body)
	}
	primary := s.primaryXML(t, repo)
	if !strings.Contains(primary, sha256Hex(second)) || strings.Contains(primary, sha256Hex(first)) {
		t.Fatalf("the second upload answered visible, but primary.xml lists the first build's checksum")
	}
	if st := s.uploadStatus(t, sha256Hex(second)); !st.Visible {
		t.Errorf("GET /api/v1/uploads/{second}: %+v, want visible", st)
	}
}

// primaryXML returns the published primary.xml of the repository rel (under the tree), decompressed.
func (s *stack) primaryXML(t *testing.T, rel string) string {
	t.Helper()
	repodata := filepath.Join(s.top, filepath.FromSlash(rel), "repodata")
	names, _ := filepath.Glob(filepath.Join(repodata, "*-primary.xml.gz"))
	md := readFile(filepath.Join(repodata, "repomd.xml"))
	for _, n := range names {
		if !strings.Contains(md, "repodata/"+filepath.Base(n)) {
			continue // an older generation kept for clients mid-download
		}
		f, err := os.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Fatalf("no primary.xml.gz named by %s/repomd.xml", repodata)
	return ""
}

// TestHandAddedMetadataSurvives (issue 18 item 10): the documented way to add errata and groups. As the daemon's
// user, under the repository's lock: modifyrepo_c an updateinfo and a comps file into repodata/, touch the dirty
// marker, SIGHUP the daemon. Its runs (that one, and the next upload's) keep both, and dnf through nginx sees them.
func TestHandAddedMetadataSurvives(t *testing.T) {
	s := newStack(t)
	const url = "/repo/9/x86_64/"
	repo := filepath.Join(s.top, "9", "x86_64")
	first := testrpm.Spec{Name: "errata-target", Release: "1.el9", Arch: "x86_64"}
	if r := s.do(t, http.MethodPut, "/upload/?wait=visible&publish=now", testrpm.Build(t, first), nil, true); r.code != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.code, r.body)
	}
	writeFile(t, filepath.Join(s.dir, "updateinfo.xml"), `<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update from="security@example.invalid" status="stable" type="security" version="1">
    <id>E2E-2026-0001</id>
    <title>errata-target: security fix</title>
    <issued date="2026-01-01 00:00:00"/>
    <description>Fixes a flaw.</description>
    <pkglist><collection short="e2e"><name>e2e</name>
      <package name="errata-target" version="1.0" release="1.el9" epoch="0" arch="x86_64"><filename>errata-target-1.0-1.el9.x86_64.rpm</filename></package>
    </collection></pkglist>
  </update>
</updates>
`)
	writeFile(t, filepath.Join(s.dir, "comps.xml"), `<?xml version="1.0" encoding="UTF-8"?>
<comps>
  <group>
    <id>e2e-tools</id>
    <name>E2E Tools</name>
    <description>Tools</description>
    <default>false</default>
    <uservisible>true</uservisible>
    <packagelist><packagereq type="mandatory">errata-target</packagereq></packagelist>
  </group>
</comps>
`)
	script := `set -e
cd "$1"
modifyrepo_c --mdtype=updateinfo "$2/updateinfo.xml" repodata
modifyrepo_c --mdtype=group "$2/comps.xml" repodata
touch .rpm-ingestd-dirty`
	cmd := exec.Command("flock", filepath.Join(repo, ".rpm-ingestd.lock"), "sh", "-c", script, "sh", repo, s.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.acct.cred} // as the daemon's user
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("modifyrepo_c under the repository lock: %v\n%s", err, out)
	}
	runs := s.runsOf(t, url)
	if err := s.daemon.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.waitIndexed(t, map[string]int{url: runs + 1}, url)
	second := testrpm.Spec{Name: "errata-later", Release: "1.el9", Arch: "x86_64"}
	if r := s.do(t, http.MethodPut, "/upload/?wait=visible&publish=now", testrpm.Build(t, second), nil, true); r.code != http.StatusCreated {
		t.Fatalf("second upload: %d %s", r.code, r.body)
	}
	md := readFile(filepath.Join(repo, "repodata", "repomd.xml"))
	for _, typ := range []string{`type="updateinfo"`, `type="group"`} {
		if !strings.Contains(md, typ) {
			t.Errorf("repomd.xml lost %s after the daemon's runs:\n%s", typ, md)
		}
	}
	root := filepath.Join(s.dnfDir, "errata-root")
	if out := s.dnf(t, root, []string{url}, "group", "list", "--hidden"); !strings.Contains(out, "E2E Tools") {
		t.Errorf("dnf group list through nginx lacks the group:\n%s", out)
	}
	if got := lines(s.dnf(t, root, []string{url}, "repoquery", "--advisory=E2E-2026-0001", "--qf", "%{name}")); !slices.Equal(got, []string{"errata-target"}) {
		t.Errorf("dnf repoquery --advisory=E2E-2026-0001 through nginx = %v, want [errata-target]", got)
	}
}
