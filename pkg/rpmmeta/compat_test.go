package rpmmeta_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testsign"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
)

// TestAcceptsWhatRPMReads is the compatibility test: every package from several real producers is read by both
// `rpm -qp` and Inspect, and they must agree on whether it is a package and on its name, version and release.
// Producers: rpmbuild (the committed fixtures: binary, noarch, source, module and minor-stream releases, aarch64
// cross builds), rpmbuild packages of CentOS 2.1 to 7 and EPEL 7 that the rpm library ships as test data (old
// leads, v3 signatures, MD5-only payloads), rpmpack (with a 20,000-file list), and rpmsign (RSA and Ed25519).
func TestAcceptsWhatRPMReads(t *testing.T) {
	rpmTool, err := exec.LookPath("rpm")
	if err != nil {
		t.Fatal("rpm is required by this test: install rpm (make deps)")
	}
	var files []string
	add := func(pattern string) {
		t.Helper()
		m, err := filepath.Glob(pattern)
		if err != nil || len(m) == 0 {
			t.Fatalf("no packages match %s", pattern)
		}
		files = append(files, m...)
	}
	add(filepath.Join("..", "..", "testdata", "rpms", "*.rpm"))
	gomodcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	add(filepath.Join(strings.TrimSpace(string(gomodcache)), "github.com", "cavaliergopher", "rpm@v1.3.0", "testdata", "*.rpm"))

	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
		return p
	}
	big := map[string]string{}
	for i := range 20000 {
		big[fmt.Sprintf("/usr/share/big/%05d", i)] = ""
	}
	write("big-1.0-1.el9.x86_64.rpm", testrpm.Build(t, testrpm.Spec{Name: "big", Release: "1.el9", Arch: "x86_64", Files: big}))
	write("plain-1.0-1.el9.noarch.rpm", testrpm.Build(t, testrpm.Spec{Name: "plain", Release: "1.el9", Arch: "noarch"}))
	for _, algo := range []string{testsign.RSA2048, testsign.Ed25519} {
		p := write("signed-"+algo+"-1.0-1.el9.x86_64.rpm", testrpm.Build(t, testrpm.Spec{Name: "signed-" + algo, Release: "1.el9", Arch: "x86_64"}))
		testsign.NewKey(t, algo).SignRPM(t, p)
	}

	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			out, rpmErr := exec.Command(rpmTool, "-qp", "--nosignature", "--nodigest", "--qf", "%{NAME} %{VERSION} %{RELEASE}", file).Output()
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			p, err := rpmmeta.Inspect(f)
			switch {
			case rpmErr != nil && err != nil:
				return // both refuse
			case rpmErr != nil:
				t.Fatalf("rpm -qp refuses it (%v) but Inspect accepts it", rpmErr)
			case err != nil:
				t.Fatalf("rpm -qp reads it as %q but Inspect refuses it: %v", out, err)
			}
			if got := p.Name + " " + p.Version + " " + p.Release; got != string(out) {
				t.Errorf("Inspect reads %q, rpm reads %q", got, out)
			}
		})
	}
}
