package fstree

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
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

// TestMadeStampsOfCopies: the stamp Place reports for a created name (PlaceOptions.Made, which the package index
// takes instead of a stat) is the placed file's when the name is not the uploaded inode: the spool name removed
// before Place (copied from the descriptor into a staging name), Packages/ on another mount (EXDEV: copied beside
// it), and both at once across two repositories.
func TestMadeStampsOfCopies(t *testing.T) {
	for _, tc := range []struct {
		name           string
		removed, exdev bool
	}{{"linked", false, false}, {"spool name removed", true, false}, {"across mounts", false, true}, {"both", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newLazyEnv(t)
			if tc.exdev {
				e.tr.Link = func(oldname, newname string) error {
					if strings.Contains(newname, "/aarch64/Packages/") && !strings.Contains(oldname, ".rpm-ingestd-copy") {
						return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EXDEV}
					}
					return e.tr.link(oldname, newname)
				}
			}
			s, f, sum := e.stage(t, "upload", "stamped bytes")
			if tc.removed {
				if err := os.Remove(f.Name()); err != nil {
					t.Fatal(err)
				}
			}
			stamps := map[string]tree.Stamp{}
			res, err := e.tr.Place(context.Background(), []tree.Unit{{Staged: s, SHA256: sum, Name: "p-1-1.el9.noarch.rpm",
				Repos: []string{"9/x86_64", "9/aarch64"}}}, tree.PlaceOptions{Made: func(ref tree.Ref, st tree.Stamp) {
				stamps[ref.Path()] = st
			}})
			if err != nil || res.Status != tree.Created {
				t.Fatalf("%+v, %v", res, err)
			}
			if len(stamps) != 2 {
				t.Fatalf("stamps %v, want one per created name", stamps)
			}
			for p, st := range stamps {
				fi, err := os.Lstat(filepath.Join(e.tr.top, p))
				if err != nil {
					t.Fatal(err)
				}
				if st.Size != fi.Size() || !st.ModTime.Equal(fi.ModTime()) {
					t.Errorf("%s: stamp %d %v, the file has %d %v", p, st.Size, st.ModTime, fi.Size(), fi.ModTime())
				}
			}
			s.Close()
			e.assertStagingEmpty(t)
		})
	}
}
