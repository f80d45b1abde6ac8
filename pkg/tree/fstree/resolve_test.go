package fstree

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// TestFastStat: the one-call lookup answers only for a regular file reached through real directories inside the
// top, with the file's own size and mtime; for everything checkStored refuses or names (a symbolic link as the
// file or on the way, a link leading out, a file where a directory belongs, a missing name, a directory) it says
// it cannot decide, and Stat still gives the step-by-step answer.
func TestFastStat(t *testing.T) {
	top := t.TempDir()
	tr, err := New(Options{TopDir: top})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	pk := filepath.Join(top, "9", "x86_64", "Packages")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(pk, 0o755))
	must(os.WriteFile(filepath.Join(pk, "a-1-1.el9.x86_64.rpm"), []byte("twelve bytes"), 0o644))
	mt := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	must(os.Chtimes(filepath.Join(pk, "a-1-1.el9.x86_64.rpm"), mt, mt))
	must(os.Symlink("a-1-1.el9.x86_64.rpm", filepath.Join(pk, "link-1-1.el9.x86_64.rpm")))
	must(os.Symlink("x86_64", filepath.Join(top, "9", "alias")))
	outside := t.TempDir()
	must(os.MkdirAll(filepath.Join(outside, "Packages"), 0o755))
	must(os.WriteFile(filepath.Join(outside, "Packages", "a-1-1.el9.x86_64.rpm"), nil, 0o644))
	must(os.Symlink(outside, filepath.Join(top, "9", "out")))
	must(os.WriteFile(filepath.Join(top, "9", "file"), nil, 0o644))
	must(os.Mkdir(filepath.Join(pk, "d-1-1.el9.x86_64.rpm"), 0o755))

	st, ok := tr.fastStat("9/x86_64/Packages/a-1-1.el9.x86_64.rpm")
	if !ok || st.Size != 12 || !st.ModTime.Equal(mt) {
		t.Errorf("regular file: %+v, %v; want size 12, mtime %v", st, ok, mt)
	}
	if slow, err := tr.Stat(t.Context(), tree.Ref{Repo: "9/x86_64", Name: "a-1-1.el9.x86_64.rpm"}); err != nil || slow != st {
		t.Errorf("Stat: %+v, %v; want %+v", slow, err, st)
	}
	for _, rel := range []string{
		"9/x86_64/Packages/link-1-1.el9.x86_64.rpm", // a symbolic link as the file
		"9/alias/Packages/a-1-1.el9.x86_64.rpm",     // a symbolic link on the way
		"9/out/Packages/a-1-1.el9.x86_64.rpm",       // one leading out of the top
		"9/file/Packages/a-1-1.el9.x86_64.rpm",      // a file where a directory belongs
		"9/x86_64/Packages/missing-1-1.el9.x86_64.rpm",
		"9/x86_64/Packages/d-1-1.el9.x86_64.rpm", // a directory
	} {
		if st, ok := tr.fastStat(rel); ok {
			t.Errorf("%s: fast path answered %+v; want no answer", rel, st)
		}
	}
	tr.Close()
	if st, ok := tr.fastStat("9/x86_64/Packages/a-1-1.el9.x86_64.rpm"); ok {
		t.Errorf("closed tree: fast path answered %+v; want no answer", st)
	}
}

// TestSegOK: the loop accepts exactly what the pattern it replaced accepts.
func TestSegOK(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9_+][A-Za-z0-9._+~^-]*$`)
	cases := []string{"", ".", "..", "a", "9", "x86_64", "el9", "hello-1.0-1.el9.x86_64.rpm", ".hidden", "-x", "~x", "^x",
		"a~b^c", "a/b", "a b", "é", "a\x00", "+", "_", "a.", "SRPMS", "x\n"}
	for c := range 256 { // every byte, first and later
		cases = append(cases, string([]byte{byte(c)}), "a"+string([]byte{byte(c)}))
	}
	for _, s := range cases {
		if got, want := segOK(s), re.MatchString(s); got != want {
			t.Errorf("segOK(%q) = %v, want %v", s, got, want)
		}
	}
}
