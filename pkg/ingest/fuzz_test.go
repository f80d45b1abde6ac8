package ingest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
)

// junkName is the one regular file inside the spool: naming it is the only way a fuzzed path gets past the
// confinement, and it is not a package, so it can only end as ErrInvalidPackage (and be consumed).
const junkName = "junk"

// FuzzSpoolPath feeds arbitrary spool paths, as a hostile proxy header would, to Ingest. Resolution must never
// panic, never open or remove anything outside spool_dir, and never place anything: the only valid package
// reachable is a victim outside the spool, through an absolute path, "..", or symlinks to it and to its directory.
// Every outcome must be a documented one:
//   - ErrForbidden (an *Error), and then nothing at all was touched, inside the spool or out;
//   - rpmmeta.ErrInvalidPackage, only when the path resolved to the junk file inside the spool, which is consumed;
//   - ErrBadUpload, only for the empty path (then Ingest expects a body and there is none).
//
// Inputs use two placeholders, so that the seed corpus in testdata/fuzz/FuzzSpoolPath is independent of the
// temporary directories: "{spool}" becomes spool_dir and "{base}" its parent, where the victims live. The spool
// holds a symlink to a victim ("link.rpm"), one to the victims' directory ("outdir"), one to its parent ("up"), a
// subdirectory ("sub") and the junk file.
func FuzzSpoolPath(f *testing.F) {
	e := newEnv(f, nil)
	base := filepath.Dir(e.spool)
	victimDir := filepath.Join(base, "victims")
	if err := os.Mkdir(victimDir, 0o700); err != nil {
		f.Fatal(err)
	}
	pkg := testrpm.Build(f, testrpm.Spec{Name: "victim", Release: "1.el9", Arch: "x86_64"})
	victims := []string{filepath.Join(base, "victim.rpm"), filepath.Join(victimDir, "victim.rpm")}
	for _, v := range victims {
		if err := os.WriteFile(v, pkg, 0o600); err != nil {
			f.Fatal(err)
		}
	}
	for name, target := range map[string]string{"link.rpm": victims[0], "outdir": victimDir, "up": ".."} {
		if err := os.Symlink(target, filepath.Join(e.spool, name)); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(e.spool, "sub"), 0o700); err != nil {
		f.Fatal(err)
	}
	junk := filepath.Join(e.spool, junkName)
	// The outside is base (victim.rpm, the spool and tree directories themselves) and the victims' directory.
	outside := func(t testing.TB) string { return snapshot(t, base, "") + snapshot(t, victimDir, "") }
	spoolBefore, outsideBefore := snapshot(f, e.spool, junkName), outside(f)

	// The seeds are the files in testdata/fuzz/FuzzSpoolPath (one per route out of the spool, and the ways of
	// naming the junk file), which go test replays as sub-tests; there is no f.Add list to keep in step with them.
	f.Fuzz(func(t *testing.T, in string) {
		// The junk file is consumed whenever a path reaches it; put it back so every input starts alike.
		if err := os.WriteFile(junk, []byte("<html>not a package</html>"), 0o600); err != nil {
			t.Fatal(err)
		}
		path := strings.ReplaceAll(strings.ReplaceAll(in, "{spool}", e.spool), "{base}", base)
		res, err := e.in.Ingest(context.Background(), Request{SpoolPath: path})

		// Outside the spool nothing changes whatever the outcome, and nothing is ever placed.
		if got := outside(t); got != outsideBefore {
			t.Fatalf("path %q touched files outside the spool:\nbefore %s\nafter  %s", path, outsideBefore, got)
		}
		if files := e.treeFiles(t); len(files) != 0 {
			t.Fatalf("path %q placed %v", path, files)
		}
		if res != nil && len(res.Dirty) != 0 {
			t.Fatalf("path %q marked %v dirty", path, res.Dirty)
		}
		_, junkErr := os.Lstat(junk)
		var ie *Error
		switch {
		case err == nil:
			t.Fatalf("path %q was accepted: only a file outside the spool holds a package", path)
		case errors.Is(err, ErrForbidden):
			if !errors.As(err, &ie) {
				t.Fatalf("path %q: ErrForbidden is not an *Error: %T %v", path, err, err)
			}
			// A refused path touches nothing at all, not even inside the spool.
			if junkErr != nil {
				t.Fatalf("path %q refused as forbidden, yet the spooled junk file is gone: %v", path, junkErr)
			}
		case errors.Is(err, rpmmeta.ErrInvalidPackage):
			if junkErr == nil {
				t.Fatalf("path %q: invalid package, but not the junk file (which is still there): %v", path, err)
			}
		case errors.Is(err, ErrBadUpload) && path == "":
			if !errors.As(err, &ie) {
				t.Fatalf("empty path: ErrBadUpload is not an *Error: %T %v", err, err)
			}
		default:
			t.Fatalf("path %q: undocumented error %T: %v", path, err, err)
		}
		// The spool holds exactly what it held before, apart from the junk file this input may have consumed.
		if got := snapshot(t, e.spool, junkName); got != spoolBefore {
			t.Fatalf("path %q changed the spool:\nbefore %s\nafter  %s", path, spoolBefore, got)
		}
		e.assertStagingEmpty(t)
	})
}

// snapshot describes dir's entries except skip: name, mode, symlink target and, for regular files, a digest of
// the content, in name order (os.ReadDir sorts), so a removal, chmod, truncation or new entry shows.
func snapshot(t testing.TB, dir, skip string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, ent := range entries {
		if ent.Name() == skip {
			continue
		}
		p := filepath.Join(dir, ent.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		target, _ := os.Readlink(p) // "" for anything but a symlink
		fmt.Fprintf(&sb, "%s %s %s\n", ent.Name(), fi.Mode(), target)
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&sb, "  sha256 %x\n", sha256.Sum256(b))
		}
	}
	return sb.String()
}

// assertStagingEmpty checks that the staging directory holds nothing; assertSpoolEmpty would also demand an
// empty spool, which this fuzz target populates on purpose.
func (e *env) assertStagingEmpty(t testing.TB) {
	t.Helper()
	entries, err := os.ReadDir(e.tree.StagingDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range entries {
		if ent.Name() != fstree.StagingLock {
			t.Fatalf("left in staging: %s", ent.Name())
		}
	}
}
