package fstree

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// lazyEnv is a tree and a spool directory on the same filesystem, as the daemon has them.
type lazyEnv struct {
	tr    *Tree
	spool string
}

func newLazyEnv(t *testing.T) *lazyEnv {
	t.Helper()
	dir := t.TempDir()
	top := filepath.Join(dir, "top")
	if err := os.Mkdir(top, 0o755); err != nil {
		t.Fatal(err)
	}
	tr, err := New(Options{TopDir: top})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return &lazyEnv{tr: tr, spool: dir}
}

// stage writes content to a spool file, opens it and stages it; the file is closed with the test.
func (e *lazyEnv) stage(t *testing.T, name, content string) (*staged, *os.File, string) {
	t.Helper()
	p := filepath.Join(e.spool, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	s, err := e.tr.Stage(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(content))
	return s.(*staged), f, hex.EncodeToString(h[:])
}

func (e *lazyEnv) place(t *testing.T, s *staged, sum string, overwrite bool) (tree.Placed, error) {
	t.Helper()
	return e.tr.Place(context.Background(), []tree.Unit{{Staged: s, SHA256: sum, Name: "p-1-1.el9.x86_64.rpm",
		Repos: []string{"9/x86_64"}}}, tree.PlaceOptions{Overwrite: overwrite})
}

func (e *lazyEnv) dst() string {
	return filepath.Join(e.tr.top, "9/x86_64/Packages/p-1-1.el9.x86_64.rpm")
}

// assertStagingEmpty fails when this process's staging directory holds anything but its lock.
func (e *lazyEnv) assertStagingEmpty(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir(e.tr.StagingDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if ent.Name() != StagingLock {
			t.Errorf("left in staging: %s", ent.Name())
		}
	}
}

func assertContent(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != want {
		t.Fatalf("%s holds %q (%v), want %q", path, b, err, want)
	}
}

// TestStageIsLazy: an upload that only creates names gets no staging name at all (no link into the staging
// directory and no unlink of it, issue 20): the new name is the uploaded inode itself, linked from its descriptor.
func TestStageIsLazy(t *testing.T) {
	e := newLazyEnv(t)
	s, f, sum := e.stage(t, "upload", "one")
	if s.Name() != "" {
		t.Fatalf("Stage made the staging name %s", s.Name())
	}
	e.assertStagingEmpty(t)
	res, err := e.place(t, s, sum, false)
	if err != nil || res.Status != tree.Created {
		t.Fatalf("%+v, %v", res, err)
	}
	if s.Name() != "" {
		t.Errorf("Place made the staging name %s", s.Name())
	}
	a, _ := f.Stat()
	b, err := os.Stat(e.dst())
	if err != nil || !os.SameFile(a, b) || b.Mode().Perm() != 0o644 {
		t.Fatalf("placed %v (%v): want the uploaded inode, 0644", b, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	e.assertStagingEmpty(t)
}

// TestLazyReplacement: a replacement under overwrite still works without a staging name made by Stage: Place makes
// the one it renames over the old file, the mtime is pushed past the old file's, and nothing is left behind.
func TestLazyReplacement(t *testing.T) {
	e := newLazyEnv(t)
	s1, _, sum1 := e.stage(t, "u1", "old")
	if _, err := e.place(t, s1, sum1, false); err != nil {
		t.Fatal(err)
	}
	s1.Close()
	old, _ := os.Stat(e.dst())
	s2, f2, sum2 := e.stage(t, "u2", "new")
	if res, err := e.place(t, s2, sum2, false); err == nil {
		t.Fatalf("overwrite off: %+v, want a conflict", res)
	}
	res, err := e.place(t, s2, sum2, true)
	if err != nil || res.Status != tree.Replaced {
		t.Fatalf("%+v, %v", res, err)
	}
	assertContent(t, e.dst(), "new")
	a, _ := f2.Stat()
	b, _ := os.Stat(e.dst())
	if !os.SameFile(a, b) || !b.ModTime().After(old.ModTime()) {
		t.Errorf("replacement: same inode %v, mtime %v after %v", os.SameFile(a, b), b.ModTime(), old.ModTime())
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	e.assertStagingEmpty(t)
}

// TestLazyStagedFileRemoved: the spool name removed between Stage and Place (the inode has no name left, and a
// descriptor of such a file cannot be linked): the bytes are copied from the descriptor, whole, and placed.
func TestLazyStagedFileRemoved(t *testing.T) {
	e := newLazyEnv(t)
	s, f, sum := e.stage(t, "upload", "orphan")
	if err := os.Remove(f.Name()); err != nil {
		t.Fatal(err)
	}
	res, err := e.place(t, s, sum, false)
	if err != nil || res.Status != tree.Created {
		t.Fatalf("%+v, %v", res, err)
	}
	assertContent(t, e.dst(), "orphan")
	if fi, _ := os.Stat(e.dst()); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	s.Close()
	e.assertStagingEmpty(t)
}

// TestLazyAcrossMounts: where a link from the descriptor fails with EXDEV (Packages/ on another mount than the
// upload, as a bind mount has it), the bytes go through a staging name and, where that cannot be linked either, a
// copy beside Packages/; the name appears whole and nothing temporary is left.
func TestLazyAcrossMounts(t *testing.T) {
	e := newLazyEnv(t)
	var fromFD, fromStaged int
	e.tr.Link = func(oldname, newname string) error {
		if strings.Contains(newname, "/Packages/") {
			switch {
			case strings.HasPrefix(oldname, procFDPrefix):
				fromFD++
				return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EXDEV}
			case strings.HasPrefix(oldname, e.tr.StagingDir()):
				fromStaged++
				return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EXDEV}
			}
		}
		return e.tr.link(oldname, newname)
	}
	s, f, sum := e.stage(t, "upload", "across")
	res, err := e.place(t, s, sum, false)
	if err != nil || res.Status != tree.Created || fromFD != 1 || fromStaged != 1 {
		t.Fatalf("%+v, %v; links from the descriptor %d, from the staging name %d", res, err, fromFD, fromStaged)
	}
	assertContent(t, e.dst(), "across")
	a, _ := f.Stat()
	b, _ := os.Stat(e.dst())
	if os.SameFile(a, b) || b.Mode().Perm() != 0o644 {
		t.Errorf("want a 0644 copy, got same inode %v, mode %v", os.SameFile(a, b), b.Mode())
	}
	ents, _ := os.ReadDir(filepath.Dir(filepath.Dir(e.dst())))
	for _, ent := range ents {
		if strings.HasPrefix(ent.Name(), ".rpm-ingestd-copy") {
			t.Errorf("left: %s", ent.Name())
		}
	}
	s.Close()
	e.assertStagingEmpty(t)
}

// TestLinkFollowsOnlyDescriptors: Tree.Link's default links a /proc/self/fd name's open file (with AT_EMPTY_PATH
// or through /proc), and any other old name as itself: a symbolic link planted as a staged or copied name is never
// followed.
func TestLinkFollowsOnlyDescriptors(t *testing.T) {
	e := newLazyEnv(t)
	for _, emptyPath := range []bool{true, false} {
		e.tr.emptyPath = emptyPath
		dir := t.TempDir()
		target := filepath.Join(dir, "secret")
		if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		sym := filepath.Join(dir, "sym")
		if err := os.Symlink(target, sym); err != nil {
			t.Fatal(err)
		}
		if err := e.tr.link(sym, filepath.Join(dir, "a")); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(filepath.Join(dir, "a")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("a plain name was followed: %v, %v", fi, err)
		}
		f, err := os.Open(target)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := e.tr.link(fdPath(f), filepath.Join(dir, "b")); err != nil {
			t.Fatal(err)
		}
		a, _ := os.Stat(target)
		b, err := os.Lstat(filepath.Join(dir, "b"))
		if err != nil || !os.SameFile(a, b) {
			t.Errorf("emptyPath %v: the descriptor's name was not followed to its file: %v, %v", emptyPath, b, err)
		}
		// The errors a caller acts on come through either way: EEXIST, and ENOENT for a missing directory.
		if err := e.tr.link(fdPath(f), filepath.Join(dir, "b")); !errors.Is(err, os.ErrExist) {
			t.Errorf("emptyPath %v: existing name: %v", emptyPath, err)
		}
		if err := e.tr.link(fdPath(f), filepath.Join(dir, "nodir", "c")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("emptyPath %v: missing directory: %v", emptyPath, err)
		}
	}
}

// TestPlaceMarkedRepoJudgesByLink: into a repository whose dirty marker exists, one file is not looked at before
// its link (issue 20); the link's EEXIST judges it instead, with the same answers: a conflict (nothing changed,
// nothing reported pending, as a refusal records nothing), the same bytes (Present), overwrite (Replaced).
func TestPlaceMarkedRepoJudgesByLink(t *testing.T) {
	e := newLazyEnv(t)
	s1, _, sum1 := e.stage(t, "u1", "first")
	if res, err := e.place(t, s1, sum1, false); err != nil || res.Status != tree.Created {
		t.Fatalf("%+v, %v", res, err)
	}
	if !e.tr.markedAlready("9/x86_64") {
		t.Fatal("the placement left no dirty marker: the test does not reach the fast path")
	}
	s2, _, sum2 := e.stage(t, "u2", "second")
	res, err := e.place(t, s2, sum2, false)
	var ee *tree.ExistsError
	if !errors.As(err, &ee) || ee.Stored != sum1 || len(res.Pending) != 0 || res.Status != "" {
		t.Fatalf("%+v, %v: want an *ExistsError naming the stored sha256 and nothing pending", res, err)
	}
	assertContent(t, e.dst(), "first")
	s3, _, sum3 := e.stage(t, "u3", "first")
	if res, err := e.place(t, s3, sum3, false); err != nil || res.Status != tree.Present {
		t.Fatalf("same bytes: %+v, %v", res, err)
	}
	if res, err := e.place(t, s2, sum2, true); err != nil || res.Status != tree.Replaced || len(res.Pending) != 1 {
		t.Fatalf("overwrite: %+v, %v", res, err)
	}
	assertContent(t, e.dst(), "second")
	for _, s := range []*staged{s1, s2, s3} {
		s.Close()
	}
	e.assertStagingEmpty(t)
}
