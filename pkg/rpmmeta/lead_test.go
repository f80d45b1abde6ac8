package rpmmeta

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLeadVersionsAgreeWithRPM patches the lead version of a real package and asks rpm 4.18 itself: Inspect must
// accept exactly the versions rpm reads and verifies (`rpm -qp` and `rpm -K`), and refuse the others.
func TestLeadVersionsAgreeWithRPM(t *testing.T) {
	rpmBin := requireTool(t, "rpm")
	base, err := os.ReadFile(filepath.Join(fixtureDir, "hello-1.0-1.el9.x86_64.rpm"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		major, minor byte
		wantOK       bool
	}{
		{0, 0, false}, {1, 0, false}, {2, 0, false}, {2, 9, false},
		{3, 0, true}, {3, 1, true}, {3, 255, true},
		{4, 0, true}, {4, 1, true},
		{5, 0, false}, {6, 0, false}, {255, 255, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d.%d", tc.major, tc.minor), func(t *testing.T) {
			data := append([]byte{}, base...)
			data[4], data[5] = tc.major, tc.minor // the lead is covered by no digest or signature
			path := filepath.Join(dir, fmt.Sprintf("lead-%d.%d.rpm", tc.major, tc.minor))
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			// A private database: Debian's rpm otherwise creates ~/.rpmdb.
			db := []string{"--dbpath", filepath.Join(dir, "db")}
			query, qerr := exec.Command(rpmBin, append(db, "-qp", "--qf", "%{NAME}", path)...).CombinedOutput()
			check, kerr := exec.Command(rpmBin, append(db, "-K", "--nosignature", path)...).CombinedOutput()
			rpmOK := qerr == nil && string(query) == "hello" && kerr == nil && strings.Contains(string(check), "digests OK")
			if rpmOK != tc.wantOK {
				t.Fatalf("rpm reads it: %v, want %v (rpm -qp: %v %q; rpm -K: %v %q)", rpmOK, tc.wantOK, qerr, query,
					kerr, check)
			}

			p, err := inspectBytes(t, data)
			switch {
			case tc.wantOK && err != nil:
				t.Fatalf("rpm accepts it, Inspect: %v", err)
			case tc.wantOK && p.Name != "hello":
				t.Fatalf("Inspect name %q, want hello", p.Name)
			case !tc.wantOK && (!errors.Is(err, ErrInvalidPackage) || !strings.Contains(err.Error(), "lead version")):
				t.Fatalf("rpm refuses it (%s), Inspect error = %v, want an unsupported lead version", query, err)
			}
		})
	}
}
