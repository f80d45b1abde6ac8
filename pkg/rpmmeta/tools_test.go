package rpmmeta

import (
	"os/exec"
	"testing"
)

// requireTool returns the path of a command the test needs, failing the test when it is missing: a test that
// skipped would pass on a machine that cannot check what it claims to check.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is required by this test: %v; install rpm (make deps)", name, err)
	}
	return p
}
