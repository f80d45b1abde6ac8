package fstree

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestLazyCopyOfTruncatedFile: the spool name removed after Stage (nlink 0: the bytes must be copied from the
// descriptor) and the file cut short meanwhile by a writer still holding it: Place must not land the short
// bytes under the package's name (the eager staging link would have shared the cut too, but the copy is made
// from the size Stage took, and a shorter file is caught for free). Nothing is placed and nothing is left.
func TestLazyCopyOfTruncatedFile(t *testing.T) {
	e := newLazyEnv(t)
	s, f, sum := e.stage(t, "upload", "the whole package")
	w, err := os.OpenFile(f.Name(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := os.Remove(f.Name()); err != nil {
		t.Fatal(err)
	}
	if err := w.Truncate(4); err != nil {
		t.Fatal(err)
	}
	res, err := e.place(t, s, sum, false)
	if err == nil {
		b, _ := os.ReadFile(e.dst())
		t.Fatalf("placed %+v holding %q: a file cut short after Stage was copied as it is", res, b)
	}
	if _, serr := os.Lstat(e.dst()); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("the package name exists after a failed placement: %v", serr)
	}
	if !strings.Contains(err.Error(), "changed after it was checked") {
		t.Errorf("error %q does not say the file changed", err)
	}
	s.Close()
	e.assertStagingEmpty(t)
}

// TestLazyDescriptorClosed: the caller closed the staged file before Place (against the contract): its
// descriptor number may already belong to another file, and Place must not link whatever that is. os.File
// reports -1 once closed, so the link fails; nothing is placed.
func TestLazyDescriptorClosed(t *testing.T) {
	for _, emptyPath := range []bool{true, false} {
		e := newLazyEnv(t)
		e.tr.emptyPath = emptyPath
		s, f, sum := e.stage(t, "upload", "closed")
		f.Close()
		other, err := os.Open(e.tr.StagingDir() + "/" + StagingLock) // likely takes the freed number
		if err != nil {
			t.Fatal(err)
		}
		res, err := e.place(t, s, sum, false)
		other.Close()
		if err == nil {
			t.Fatalf("emptyPath %v: placed %+v from a closed descriptor", emptyPath, res)
		}
		if _, serr := os.Lstat(e.dst()); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("emptyPath %v: the package name exists: %v", emptyPath, serr)
		}
		s.Close()
	}
}
