package fstree

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

// TestListNamesManyCalls: a directory whose records take several getdents calls of listNames' buffer is listed
// completely, every name once, sorted, with its type; and a listing allocates about what it returns (the names
// and the entries), not a fresh getdents buffer each time.
func TestListNamesManyCalls(t *testing.T) {
	dir := t.TempDir()
	// ~60-byte names: 3,000 records are about 3 buffers' worth.
	n := 3 * direntBuf / 64
	var want []string
	for i := range n {
		name := fmt.Sprintf("package-with-a-rather-long-name-%05d-1.0-1.el9.x86_64.rpm", i)
		want = append(want, name)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(want[0], filepath.Join(dir, "link.rpm")); err != nil {
		t.Fatal(err)
	}
	want = append(want, "link.rpm", "sub")
	slices.Sort(want)
	l, err := listNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range l.entries {
		got = append(got, e.name)
		switch e.name {
		case "sub":
			if !e.kind.IsDir() {
				t.Errorf("sub: kind %v, want a directory", e.kind)
			}
		case "link.rpm":
			if e.kind&os.ModeSymlink == 0 {
				t.Errorf("link.rpm: kind %v, want a symlink", e.kind)
			}
		default:
			if !e.kind.IsRegular() {
				t.Errorf("%s: kind %v, want a regular file", e.name, e.kind)
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d names, want %d (first differences matter: got[:3] %q, want[:3] %q)", len(got), len(want), got[:min(3, len(got))], want[:3])
	}

	// What the listing returns is about 60 bytes of name plus 24 of entry per record; a 256 KB getdents buffer
	// per call, as before, is three times that again.
	const calls = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range calls {
		if _, err := listNames(dir); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	perCall := (after.TotalAlloc - before.TotalAlloc) / calls
	returned := uint64(n) * (64 + 24)
	if perCall > 2*returned {
		t.Errorf("a listing of %d entries allocates %d bytes, more than twice what it returns (%d)", n, perCall, returned)
	}
}
