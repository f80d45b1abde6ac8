package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Set once by TestMain, read-only afterwards (the standard TestMain pattern; nothing swaps them).
var (
	// daemonBin is the rpm-ingestd binary built from ../cmd/rpm-ingestd for this run.
	daemonBin string
	// workRoot holds every stack's directories. It is world-traversable (0755), unlike t.TempDir(), whose
	// 0700 parents would keep nginx's workers and the daemon, which run as an unprivileged user, out.
	workRoot string
)

// daemonVersion is stamped into the binary under test; the dogfood test packages it under this version.
const daemonVersion = "v0.9.0"

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "rpmi-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	workRoot = dir

	// Built once, without -race or -trimpath: this is the binary under test, not a release.
	daemonBin = filepath.Join(dir, "bin", "rpm-ingestd")
	build := exec.Command(goTool(), "build", "-ldflags", "-X main.version="+daemonVersion, "-o", daemonBin, "../cmd/rpm-ingestd")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ../cmd/rpm-ingestd: %v\n%s", err, out)
		return 1
	}
	if err := os.Chmod(filepath.Dir(daemonBin), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer stopSharedSeaweed() // before the work directory it lives in goes
	return m.Run()
}

// goTool finds the go command: PATH first, then the GOROOT that `go test` exports to the test binary.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	for _, root := range []string{os.Getenv("GOROOT"), "/usr/local/go"} {
		if p := filepath.Join(root, "bin", "go"); root != "" && fileExists(p) {
			return p
		}
	}
	return "go"
}

// tools are the programs the suite drives; nginx lives in /usr/sbin, which a non-root PATH may lack.
var tools = []string{"nginx", "createrepo_c", "dnf", "curl", "htpasswd"}

// requireTools resolves every tool to a path or fails the test: the suite must never skip in CI.
func requireTools(t testing.TB) map[string]string {
	t.Helper()
	paths := map[string]string{}
	var missing []string
	for _, name := range tools {
		p, err := exec.LookPath(name)
		if err != nil {
			for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
				if cand := filepath.Join(dir, name); fileExists(cand) {
					p, err = cand, nil
					break
				}
			}
		}
		if err != nil {
			missing = append(missing, name)
			continue
		}
		paths[name] = p
	}
	if len(missing) > 0 {
		t.Fatalf("e2e needs %v, not found on PATH: run `make deps` (as root)", missing)
	}
	return paths
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
