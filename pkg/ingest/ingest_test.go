package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
)

// env is one ingester over a temporary spool and tree.
type env struct {
	in    *Ingester
	tree  *fstree.Tree
	top   string
	spool string
	dirty []string // repositories passed to MarkDirty, in order
	mu    sync.Mutex
}

func newEnv(t testing.TB, mod func(*Options)) *env {
	t.Helper()
	return newEnvMark(t, mod, nil)
}

// newEnvMark is newEnv whose tree also calls mark (when not nil) for every pending change it records, after
// recording it in e.dirty; mark's error is the tree's.
func newEnvMark(t testing.TB, mod func(*Options), mark func(repoDir string) error) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{top: filepath.Join(base, "storage"), spool: filepath.Join(base, "incoming")}
	for _, d := range []string{e.top, e.spool} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := Options{
		TopDir: e.top, SpoolDir: e.spool,
		Layout: func(_, _, release, arch string) (string, error) { return filepath.Join(release, arch), nil },
		Arches: []string{"x86_64", "aarch64"}, DistTags: []string{"el", "fc", "amzn"},
		MaxSize: 1 << 20,
	}
	if mod != nil {
		mod(&opts)
	}
	e.tree = newTree(t, opts.TopDir, func(dir string) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.dirty = append(e.dirty, dir)
		if mark != nil {
			return mark(dir)
		}
		return nil
	})
	opts.Tree = e.tree
	in, err := New(opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	e.in = in
	return e
}

// newTree opens the fs tree on top for a test, with markDirty recording pending changes (nil: the real markers),
// and closes it when the test ends.
func newTree(t testing.TB, top string, markDirty func(string) error) *fstree.Tree {
	t.Helper()
	tr, err := fstree.New(fstree.Options{TopDir: top, MarkDirty: markDirty})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// fileSHA256 returns the hex SHA-256 and mtime of the file at path.
func fileSHA256(path string) (string, time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", time.Time{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", time.Time{}, err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), fi.ModTime(), nil
}

// spoolFile writes data into the spool as nginx would and returns its absolute path.
func (e *env) spoolFile(t *testing.T, data []byte) string {
	t.Helper()
	f, err := os.CreateTemp(e.spool, "0000*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Chmod(0o600); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// upload ingests data, through the spool header path when viaSpool, else as a streamed body.
func (e *env) upload(t *testing.T, data []byte, viaSpool bool, osRelease string) (*Result, error) {
	t.Helper()
	req := Request{Body: bytes.NewReader(data), OSRelease: osRelease}
	if viaSpool {
		req = Request{SpoolPath: e.spoolFile(t, data), OSRelease: osRelease}
	}
	return e.in.Ingest(context.Background(), req)
}

// assertSpoolEmpty checks that an upload left nothing in the spool or the staging directory.
func (e *env) assertSpoolEmpty(t *testing.T) {
	t.Helper()
	for _, dir := range []string{e.spool, e.tree.StagingDir()} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range entries {
			if dir == e.tree.StagingDir() && ent.Name() == fstree.StagingLock {
				continue // this process's ownership of its staging directory
			}
			t.Errorf("left behind: %s", filepath.Join(dir, ent.Name()))
		}
	}
}

// treeFiles lists the regular files under top_dir, relative, excluding our staging and lock directories.
func (e *env) treeFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(e.top, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == fstree.StagingName || d.Name() == fstree.LocksName) {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(e.top, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "rpms", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPlacement(t *testing.T) {
	tests := []struct {
		name      string
		data      func(t *testing.T) []byte
		osRelease string
		want      []string // paths relative to top_dir
	}{
		{"x86_64", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"})
		}, "", []string{"9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"}},
		{"aarch64", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el8_10", Arch: "aarch64"})
		}, "", []string{"8/aarch64/Packages/hello-1.0-1.el8_10.aarch64.rpm"}},
		{"noarch fans out to every arch", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: "data", Release: "2.fc39", Arch: "noarch"})
		}, "", []string{"39/x86_64/Packages/data-1.0-2.fc39.noarch.rpm", "39/aarch64/Packages/data-1.0-2.fc39.noarch.rpm"}},
		{"source package goes to SRPMS", func(t *testing.T) []byte { return fixture(t, "hello-1.0-1.el9.src.rpm") },
			"", []string{"9/SRPMS/Packages/hello-1.0-1.el9.src.rpm"}},
		{"real rpmbuild aarch64", func(t *testing.T) []byte { return fixture(t, "hello-1.0-1.el9.aarch64.rpm") },
			"", []string{"9/aarch64/Packages/hello-1.0-1.el9.aarch64.rpm"}},
		{"override wins over dist tag", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"})
		}, "10", []string{"10/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"}},
		{"override routes a package without dist tag", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: "plain", Release: "1", Arch: "x86_64"})
		}, "9", []string{"9/x86_64/Packages/plain-1.0-1.x86_64.rpm"}},
	}
	for _, tc := range tests {
		for _, viaSpool := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/spool=%v", tc.name, viaSpool), func(t *testing.T) {
				e := newEnv(t, nil)
				data := tc.data(t)
				res, err := e.upload(t, data, viaSpool, tc.osRelease)
				if err != nil {
					t.Fatal(err)
				}
				if res.Status != Created {
					t.Errorf("status %q, want created", res.Status)
				}
				if got := strings.Join(res.Paths, " "); got != strings.Join(tc.want, " ") {
					t.Errorf("paths %v, want %v", res.Paths, tc.want)
				}
				for i, p := range tc.want {
					full := filepath.Join(e.top, p)
					got, err := os.ReadFile(full)
					if err != nil || !bytes.Equal(got, data) {
						t.Fatalf("%s: content differs or missing: %v", p, err)
					}
					fi, _ := os.Stat(full)
					if fi.Mode().Perm() != 0o644 {
						t.Errorf("%s: mode %v, want 0644", p, fi.Mode().Perm())
					}
					if want := filepath.Dir(filepath.Dir(full)); res.Repos[i] != want || e.dirty[i] != want {
						t.Errorf("repo %q, marked dirty %q, want %q", res.Repos[i], e.dirty[i], want)
					}
				}
				if got := e.treeFiles(t); len(got) != len(tc.want) {
					t.Errorf("tree holds %v, want only %v", got, tc.want)
				}
				e.assertSpoolEmpty(t)
			})
		}
	}
}

// TestRouting checks the dist-tag routing end to end, through the ingester, for every release form we promise.
func TestRouting(t *testing.T) {
	tests := []struct{ release, dir string }{
		{"1.el7", "7"}, {"3.el7_9", "7"}, {"1.el8_10", "8"}, {"1.module+el8.9.0+20000+abcdef12", "8"},
		{"1.fc39", "39"}, {"1.amzn2023", "2023"}, {"2.el9.1", "9"},
	}
	e := newEnv(t, nil)
	for _, tc := range tests {
		t.Run(tc.release, func(t *testing.T) {
			res, err := e.upload(t, testrpm.Build(t, testrpm.Spec{Name: "r", Release: tc.release, Arch: "x86_64"}), false, "")
			if err != nil {
				t.Fatal(err)
			}
			want := tc.dir + "/x86_64/Packages/r-1.0-" + tc.release + ".x86_64.rpm"
			if res.OSRelease != tc.dir || res.Paths[0] != want {
				t.Errorf("os_release %q path %q, want %q %q", res.OSRelease, res.Paths[0], tc.dir, want)
			}
		})
	}
}

// TestRejections covers every way a package is refused: the error kind, the message, and that nothing is left.
func TestRejections(t *testing.T) {
	good := func(t *testing.T) []byte {
		return testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"})
	}
	tests := []struct {
		name      string
		data      func(t *testing.T) []byte
		osRelease string
		kind      error
		msg       string
	}{
		{"not an rpm", func(*testing.T) []byte { return []byte("<html>not a package</html>") }, "", rpmmeta.ErrInvalidPackage, "invalid rpm package"},
		{"empty", func(*testing.T) []byte { return nil }, "", rpmmeta.ErrInvalidPackage, "invalid rpm package"},
		{"truncated", func(t *testing.T) []byte { b := good(t); return b[:len(b)-100] }, "", rpmmeta.ErrInvalidPackage, "invalid rpm package"},
		{"corrupted payload", func(t *testing.T) []byte { b := good(t); b[len(b)-50] ^= 0xff; return b }, "", rpmmeta.ErrInvalidPackage, "invalid rpm package"},
		{"no dist tag", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1", Arch: "x86_64"})
		}, "", ErrRejected, "?os_release=9"},
		{"real rpmbuild package without dist tag", func(t *testing.T) []byte { return fixture(t, "hello-1.0-1.x86_64.rpm") }, "", ErrRejected, "has no dist tag"},
		{"arch not accepted", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "ppc64le"})
		}, "", ErrRejected, `package arch "ppc64le" is not accepted`},
		{"bad name", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: "hello%{x}", Release: "1.el9", Arch: "x86_64"})
		}, "", ErrRejected, `package name "hello%{x}" is not allowed`},
		{"name starting with a dot", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: ".hidden", Release: "1.el9", Arch: "x86_64"})
		}, "", ErrRejected, `package name ".hidden" is not allowed`},
		{"bad version", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: "hello", Version: "1.0%{v}", Release: "1.el9", Arch: "x86_64"})
		}, "", ErrRejected, "package version"},
		{"bad release", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9%{x}", Arch: "x86_64"})
		}, "", ErrRejected, "package release"},
		{"path in name", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: "../../etc/evil", Release: "1.el9", Arch: "x86_64", Files: map[string]string{"/x": "x"}})
		}, "", ErrRejected, `package name "../../etc/evil" is not allowed`},
		{"tab in name", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: "a\tb", Release: "1.el9", Arch: "x86_64", Files: map[string]string{"/x": "x"}})
		}, "", ErrRejected, `package name "a\tb" is not allowed`},
		{"dash in version", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: "a", Version: "1-2", Release: "1.el9", Arch: "x86_64"})
		}, "", ErrRejected, `package version "1-2" is not allowed`},
		{"newline in release", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: "a", Release: "1.el9\n", Arch: "x86_64"})
		}, "", ErrRejected, "package release"},
		{"slash in arch", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: "a", Release: "1.el9", Arch: "x86/64"})
		}, "", ErrRejected, `package arch "x86/64" is not accepted`},
		{"file name too long", func(t *testing.T) []byte {
			return testrpm.Build(t, testrpm.Spec{Name: strings.Repeat("n", 250), Release: "1.el9", Arch: "x86_64"})
		}, "", ErrRejected, "more than the 255 a filesystem allows"},
		{"bad os_release override", good, "../9", ErrRejected, `os_release "../9" is not allowed`},
		{"too large", func(t *testing.T) []byte { return bytes.Repeat([]byte{0xed}, 1<<20+1) }, "", ErrTooLarge, "max_upload_size"},
	}
	for _, tc := range tests {
		for _, viaSpool := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/spool=%v", tc.name, viaSpool), func(t *testing.T) {
				e := newEnv(t, nil)
				_, err := e.upload(t, tc.data(t), viaSpool, tc.osRelease)
				if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("err = %v, want kind %v containing %q", err, tc.kind, tc.msg)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				if files := e.treeFiles(t); len(files) != 0 {
					t.Errorf("tree not empty: %v", files)
				}
				e.assertSpoolEmpty(t)
			})
		}
	}
}

func TestDuplicates(t *testing.T) {
	spec := testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "noarch"}
	first, other := testrpm.Build(t, spec), testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "noarch", Salt: "rebuild"})

	t.Run("identical bytes are a safe retry", func(t *testing.T) {
		e := newEnv(t, nil)
		if _, err := e.upload(t, first, true, ""); err != nil {
			t.Fatal(err)
		}
		res, err := e.upload(t, first, true, "")
		if err != nil || res.Status != Present {
			t.Fatalf("second upload: %v %v, want present", res, err)
		}
		e.assertSpoolEmpty(t)
	})
	t.Run("different bytes conflict and leave the stored file alone", func(t *testing.T) {
		e := newEnv(t, nil)
		if _, err := e.upload(t, first, true, ""); err != nil {
			t.Fatal(err)
		}
		_, err := e.upload(t, other, true, "")
		if !errors.Is(err, ErrExists) {
			t.Fatalf("err = %v, want ErrExists", err)
		}
		sum := func(b []byte) string { p, _ := inspectBytes(t, b); return p.SHA256 }
		if !strings.Contains(err.Error(), sum(first)) || !strings.Contains(err.Error(), sum(other)) {
			t.Errorf("error does not name both sha256 values: %v", err)
		}
		for _, arch := range []string{"x86_64", "aarch64"} {
			got, _ := os.ReadFile(filepath.Join(e.top, "9", arch, "Packages", "hello-1.0-1.el9.noarch.rpm"))
			if !bytes.Equal(got, first) {
				t.Errorf("%s: stored package changed", arch)
			}
		}
		e.assertSpoolEmpty(t)
	})
	t.Run("noarch conflicting in one arch is placed in none", func(t *testing.T) {
		e := newEnv(t, nil)
		dst := filepath.Join(e.top, "9", "aarch64", "Packages")
		os.MkdirAll(dst, 0o755)
		os.WriteFile(filepath.Join(dst, "hello-1.0-1.el9.noarch.rpm"), other, 0o644)
		if _, err := e.upload(t, first, false, ""); !errors.Is(err, ErrExists) {
			t.Fatalf("err = %v, want ErrExists", err)
		}
		if _, err := os.Stat(filepath.Join(e.top, "9", "x86_64", "Packages", "hello-1.0-1.el9.noarch.rpm")); err == nil {
			t.Error("placed in x86_64 although aarch64 conflicts")
		}
	})
	t.Run("overwrite replaces and moves mtime forward", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.Overwrite = true })
		if _, err := e.upload(t, first, true, ""); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(e.top, "9", "x86_64", "Packages", "hello-1.0-1.el9.noarch.rpm")
		before, _ := os.Stat(dst)
		e.tree.Now = before.ModTime // a clock that has not moved: the mtime must still change
		res, err := e.upload(t, other, true, "")
		if err != nil || res.Status != Replaced {
			t.Fatalf("overwrite: %v %v, want replaced", res, err)
		}
		got, _ := os.ReadFile(dst)
		after, _ := os.Stat(dst)
		if !bytes.Equal(got, other) {
			t.Error("content not replaced")
		}
		if !after.ModTime().After(before.ModTime()) {
			t.Errorf("mtime %v not after %v: createrepo_c --update would keep the old entry", after.ModTime(), before.ModTime())
		}
		e.assertSpoolEmpty(t)
	})
}

func inspectBytes(t *testing.T, b []byte) (*rpmmeta.Package, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.rpm")
	os.WriteFile(p, b, 0o644)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return rpmmeta.Inspect(f)
}

// TestConcurrentSameNEVRA races uploads of one package name: exactly one creates it, and the file is always whole.
func TestConcurrentSameNEVRA(t *testing.T) {
	const n = 8
	tests := []struct {
		name      string
		identical bool
	}{{"identical", true}, {"conflicting", false}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			datas := make([][]byte, n)
			for i := range datas {
				spec := testrpm.Spec{Name: "race", Release: "1.el9", Arch: "x86_64"}
				if !tc.identical {
					spec.Salt = fmt.Sprint(i)
				}
				datas[i] = testrpm.Build(t, spec)
			}
			paths := make([]string, n)
			for i := range paths {
				paths[i] = e.spoolFile(t, datas[i])
			}
			var wg sync.WaitGroup
			results := make([]*Result, n)
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i], errs[i] = e.in.Ingest(context.Background(), Request{SpoolPath: paths[i]})
				}()
			}
			wg.Wait()
			var created, present, conflicts int
			winner := -1
			for i := range n {
				switch {
				case errs[i] == nil && results[i].Status == Created:
					created++
					winner = i
				case errs[i] == nil && results[i].Status == Present:
					present++
				case errors.Is(errs[i], ErrExists):
					conflicts++
				default:
					t.Errorf("upload %d: %v", i, errs[i])
				}
			}
			if created != 1 {
				t.Fatalf("%d uploads created the package, want exactly 1 (present %d, conflicts %d)", created, present, conflicts)
			}
			if tc.identical && present != n-1 || !tc.identical && conflicts != n-1 {
				t.Errorf("present %d, conflicts %d", present, conflicts)
			}
			got, _ := os.ReadFile(filepath.Join(e.top, "9", "x86_64", "Packages", "race-1.0-1.el9.x86_64.rpm"))
			if !bytes.Equal(got, datas[winner]) {
				t.Error("stored file is not the winner's bytes")
			}
			e.assertSpoolEmpty(t)
		})
	}
}

// TestSpoolConfinement sends header paths that must be refused without touching anything, looked up with openat2
// and with the os.Root fallback for kernels and seccomp filters without it.
func TestSpoolConfinement(t *testing.T) {
	forEachSpoolLookup(t, testSpoolConfinement)
}

// forEachSpoolLookup runs test on an env whose spool is looked up with openat2, then on one using the os.Root
// fallback (Ingester.useSpoolRoot).
func forEachSpoolLookup(t *testing.T, test func(*testing.T, *env)) {
	t.Run("openat2", func(t *testing.T) { test(t, newEnv(t, nil)) })
	t.Run("os.Root", func(t *testing.T) {
		e := newEnv(t, nil)
		if err := e.in.useSpoolRoot(); err != nil {
			t.Fatal(err)
		}
		test(t, e)
	})
}

func testSpoolConfinement(t *testing.T, e *env) {
	outside := filepath.Join(filepath.Dir(e.spool), "victim.rpm")
	data := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"})
	if err := os.WriteFile(outside, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(e.spool, "link.rpm")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(e.spool, "sub"), 0o700)
	if err := syscall.Mkfifo(filepath.Join(e.spool, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, path string }{
		{"absolute path outside spool", outside},
		{"relative path", "victim.rpm"},
		{"dot-dot out of spool", filepath.Join(e.spool, "..", "victim.rpm")},
		{"dot-dot spelled inside the path", e.spool + "/sub/../../victim.rpm"},
		{"symlink out of spool", filepath.Join(e.spool, "link.rpm")},
		{"the spool itself", e.spool},
		{"a directory", filepath.Join(e.spool, "sub")},
		{"missing file", filepath.Join(e.spool, "nope")},
		{"a FIFO (would block the open)", filepath.Join(e.spool, "fifo")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.in.Ingest(context.Background(), Request{SpoolPath: tc.path})
			if !errors.Is(err, ErrForbidden) {
				t.Fatalf("err = %v, want ErrForbidden", err)
			}
			fi, statErr := os.Stat(outside)
			if statErr != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("victim file touched: %v %v", fi, statErr)
			}
			if files := e.treeFiles(t); len(files) != 0 {
				t.Errorf("tree not empty: %v", files)
			}
		})
	}
	if _, err := os.Lstat(filepath.Join(e.spool, "link.rpm")); err != nil {
		t.Error("refused symlink was removed; forbidden requests must touch nothing")
	}
}

func TestBodyErrors(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.in.Ingest(context.Background(), Request{Body: iotestErrReader{}})
	if !errors.Is(err, ErrBadUpload) || !strings.Contains(err.Error(), "reading the upload body") {
		t.Fatalf("err = %v, want ErrBadUpload", err)
	}
	_, err = e.in.Ingest(context.Background(), Request{})
	if !errors.Is(err, ErrBadUpload) {
		t.Fatalf("no body: err = %v, want ErrBadUpload", err)
	}
	e.assertSpoolEmpty(t)
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

func TestCleanupRemovesLeftovers(t *testing.T) {
	e := newEnv(t, nil)
	dead := filepath.Join(e.top, fstree.StagingName, "p999999-1") // a staging directory whose process is gone
	os.Mkdir(dead, 0o700)
	os.WriteFile(filepath.Join(dead, fstree.StagingLock), nil, 0o600)
	leftovers := []string{
		filepath.Join(e.spool, ".rpm-ingestd-123.part"),
		filepath.Join(dead, "stage-999999-1"),
		filepath.Join(e.top, fstree.StagingName, "copy-1"), // staged by a version before per-process directories
	}
	for _, p := range leftovers {
		os.WriteFile(p, []byte("half"), 0o600)
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(leftovers[2], old, old)
	young := filepath.Join(e.top, fstree.StagingName, "copy-2") // may belong to an older daemon still running
	os.WriteFile(young, []byte("half"), 0o600)
	own := filepath.Join(e.tree.StagingDir(), "stage-own") // this process's own staged file
	os.WriteFile(own, []byte("half"), 0o600)
	nginxFile := e.spoolFile(t, []byte("not ours")) // nginx's own temp files are nginx's business
	n, err := e.in.Cleanup()
	if err != nil || n != len(leftovers) {
		t.Fatalf("Cleanup = %d, %v; want %d", n, err, len(leftovers))
	}
	if _, err := os.Stat(nginxFile); err != nil {
		t.Error("removed a file that is not ours")
	}
	for _, p := range []string{young, own} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("removed %s: %v", p, err)
		}
	}
	if _, err := os.Stat(dead); err == nil {
		t.Error("the dead process's staging directory is still there")
	}
}

// mountTmpfs mounts a tmpfs with the given options (like "size=4m") on a new directory and returns it. It needs
// root, which make test has (it installs packages): without it the test fails rather than skip.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Fatal("needs root to mount a tmpfs: run make test as root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	return dir
}

// TestSpoolOnOtherFilesystem: when linking from the spool fails (EXDEV), the package is copied once into the
// staging directory on the tree's filesystem, fsynced and linked from there, and the staging copy is gone after.
func TestSpoolOnOtherFilesystem(t *testing.T) {
	spool := filepath.Join(mountTmpfs(t, "size=4m"), "incoming")
	os.Mkdir(spool, 0o755)
	e := newEnv(t, func(o *Options) { o.SpoolDir = spool })
	e.spool = spool
	data := testrpm.Build(t, testrpm.Spec{Name: "data", Release: "1.el9", Arch: "noarch"})
	for _, viaSpool := range []bool{true, false} {
		res, err := e.upload(t, data, viaSpool, "")
		if err != nil {
			t.Fatal(err)
		}
		if viaSpool && res.Status != Created || !viaSpool && res.Status != Present {
			t.Errorf("spool=%v: status %q", viaSpool, res.Status)
		}
	}
	var inodes []uint64
	for _, arch := range []string{"x86_64", "aarch64"} {
		p := filepath.Join(e.top, "9", arch, "Packages", "data-1.0-1.el9.noarch.rpm")
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %v", p, err)
		}
		fi, _ := os.Stat(p)
		inodes = append(inodes, fi.Sys().(*syscall.Stat_t).Ino)
	}
	if inodes[0] != inodes[1] {
		t.Error("noarch copies are separate files: the staged copy should be linked into every arch")
	}
	e.assertSpoolEmpty(t)
}

// TestDiskFull runs the ingester on a tiny tmpfs: ENOSPC must become ErrNoSpace and leave nothing behind.
func TestDiskFull(t *testing.T) {
	base := mountTmpfs(t, "size=256k")
	top, spool := filepath.Join(base, "storage"), filepath.Join(base, "incoming")
	os.Mkdir(top, 0o755)
	os.Mkdir(spool, 0o755)
	tr := newTree(t, top, nil)
	in, err := New(Options{TopDir: top, SpoolDir: spool, MaxSize: 1 << 20, Arches: []string{"x86_64"}, DistTags: []string{"el"},
		Layout: func(_, _, r, a string) (string, error) { return filepath.Join(r, a), nil }, Tree: tr}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	big := bytes.Repeat([]byte("x"), 512<<10) // larger than the filesystem
	_, err = in.Ingest(context.Background(), Request{Body: bytes.NewReader(big)})
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("err = %v, want ErrNoSpace", err)
	}
	e := &env{top: top, spool: spool, in: in, tree: tr}
	e.assertSpoolEmpty(t)
}
