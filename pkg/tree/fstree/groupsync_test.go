package fstree

import (
	"errors"
	"strings"
	"testing"
)

// TestGroupSyncError: a failed shared fsync fails every member of its batch, and the next batch tries again.
func TestGroupSyncError(t *testing.T) {
	fail := true
	g := newGroupSync(func(string) error {
		if fail {
			return errors.New("EIO")
		}
		return nil
	})
	if err := g.Sync("/d"); err == nil || !strings.Contains(err.Error(), "EIO") {
		t.Fatalf("Sync: %v, want EIO", err)
	}
	fail = false
	if err := g.Sync("/d"); err != nil {
		t.Fatalf("Sync after the failure: %v", err)
	}
}
