package auth

import (
	"os"
	"testing"
	"time"
)

// TestChangeTimeIsTheInodes: changeTime is the time of the inode's last change, by the system clock (the tests
// elsewhere set the racy clock from it), and a writer that sets the mtime does not move it there.
func TestChangeTimeIsTheInodes(t *testing.T) {
	before := time.Now()
	path := writeFile(t, t.TempDir(), "users", "x\n")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// The filesystem's clock is coarse (a tick, a few ms, behind the system clock): a second either way is slack.
	if c := changeTime(fi); c.Before(before.Add(-time.Second)) || c.After(after.Add(time.Second)) {
		t.Errorf("changeTime = %v, not between the write (%v) and the utimes after it (%v); mtime %v", c, before, after, fi.ModTime())
	}
}
