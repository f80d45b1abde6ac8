package indexer

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestRealRetentionByLinks: with DefaultCommand the daemon keeps superseded metadata itself, by hard links, as
// --retain-old-md-by-age=10m would: a generation superseded a moment ago stays (the same inode: linked, not
// copied), one superseded more than 10 minutes ago goes, and the current generation is complete.
func TestRealRetentionByLinks(t *testing.T) {
	requireTools(t)
	repo := filepath.Join(t.TempDir(), "9", "x86_64")
	c := testCreaterepo(t, DefaultCommand())
	if argv, age, own := c.retention(); !own || age != 10*time.Minute || slices.ContainsFunc(argv, func(a string) bool { return a == "--retain-old-md-by-age=10m" }) {
		t.Fatalf("retention() = %v, %v, %t; want the flag taken over with 10m", argv, age, own)
	}
	run := func(name string) []string {
		t.Helper()
		addRPM(t, repo, name)
		if err := c.Run(t.Context(), repo); err != nil {
			t.Fatal(err)
		}
		return metadataFiles(t, repo)
	}
	gen1 := run("alpha")
	inodes := map[string]uint64{}
	for _, f := range gen1 {
		inodes[f] = inode(t, f)
	}
	gen2 := run("bravo")
	for _, f := range gen1 {
		if !exists(t, f) {
			t.Fatalf("%s, superseded a moment ago, is gone", filepath.Base(f))
		}
		if inode(t, f) != inodes[f] {
			t.Errorf("%s was copied, not linked", filepath.Base(f))
		}
	}
	// gen1 was superseded "more than 10 minutes ago"; gen2 just now (its mtimes are refreshed by the next run).
	age(t, gen1)
	gen3 := run("charlie")
	for _, f := range gen1 {
		if exists(t, f) && !slices.Contains(gen2, f) && !slices.Contains(gen3, f) {
			t.Errorf("%s kept although superseded more than 10 minutes ago", filepath.Base(f))
		}
	}
	for _, f := range append(gen2, gen3...) {
		if !exists(t, f) {
			t.Errorf("%s missing: the current and the just-superseded generation must both be there", filepath.Base(f))
		}
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fileIno(fi)
}

// TestParseAge: createrepo_c's age syntax; what it cannot read is left to createrepo_c.
func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{"10m": 10 * time.Minute, "30": 30 * time.Second, "45s": 45 * time.Second,
		"2h": 2 * time.Hour, "1d": 24 * time.Hour} {
		if got, err := parseAge(in); err != nil || got != want {
			t.Errorf("parseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "m", "10x", "-5m", "1.5h"} {
		if _, err := parseAge(in); err == nil {
			t.Errorf("parseAge(%q) accepted", in)
		}
	}
	c := testCreaterepo(t, []string{"createrepo_c", "--update", "--retain-old-md-by-age=soon"})
	if argv, _, own := c.retention(); own || len(argv) != 3 {
		t.Errorf("an unreadable age was taken over: %v", argv)
	}
	c = testCreaterepo(t, []string{"createrepo", "--update", "--retain-old-md-by-age=10m"})
	if _, _, own := c.retention(); own {
		t.Error("retention taken over for a program other than createrepo_c")
	}
}

func fileIno(fi os.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }
