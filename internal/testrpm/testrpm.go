// Package testrpm builds small, valid RPM packages for tests with rpmpack: deterministic bytes for a given Spec,
// installable by dnf and indexable by createrepo_c. It is a test helper; production code must not import it.
package testrpm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/rpmpack"
)

// buildTime is the fixed build time and file mtime of every package: a fixed value makes Build deterministic.
var buildTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// Spec describes a package to build. Zero fields get defaults: Version "1.0", Release "1", Arch "noarch" (rpmpack's
// own default).
type Spec struct {
	Name, Version, Release, Arch string // Arch e.g. "x86_64", "aarch64", "noarch"
	// Epoch is nil for a package without an epoch tag.
	Epoch *uint32
	// Files maps absolute paths to contents. When nil, the package holds one file,
	// /usr/share/<name>/<name>.txt, containing a line with name-version-release. Paths under a bin or sbin
	// directory are installed 0755, everything else 0644.
	Files map[string]string
	// Salt is extra content so that two builds of the same NEVRA differ. It is appended to the default file, or
	// written to /usr/share/<name>/salt.txt when Files is set (so the given contents stay exactly as given).
	Salt string
}

// withDefaults returns s with its defaults filled in.
func (s Spec) withDefaults() Spec {
	if s.Version == "" {
		s.Version = "1.0"
	}
	if s.Release == "" {
		s.Release = "1"
	}
	if s.Arch == "" {
		s.Arch = "noarch"
	}
	return s
}

// FileName returns the canonical file name of the package Build makes from s: "<n>-<v>-<r>.<arch>.rpm".
func (s Spec) FileName() string {
	s = s.withDefaults()
	return fmt.Sprintf("%s-%s-%s.%s.rpm", s.Name, s.Version, s.Release, s.Arch)
}

// files returns the path → content map of the package, defaults and salt applied.
func (s Spec) files() map[string]string {
	if s.Files == nil {
		content := fmt.Sprintf("%s-%s-%s\n", s.Name, s.Version, s.Release)
		if s.Salt != "" {
			content += "salt: " + s.Salt + "\n"
		}
		return map[string]string{fmt.Sprintf("/usr/share/%[1]s/%[1]s.txt", s.Name): content}
	}
	files := make(map[string]string, len(s.Files)+1)
	for p, c := range s.Files {
		files[p] = c
	}
	if s.Salt != "" {
		files[fmt.Sprintf("/usr/share/%s/salt.txt", s.Name)] = s.Salt + "\n"
	}
	return files
}

// Build returns the bytes of the package described by s, failing the test on error. The same Spec always gives the
// same bytes: build time and mtimes are fixed and files are added in sorted order.
func Build(t testing.TB, s Spec) []byte {
	t.Helper()
	b, err := build(s)
	if err != nil {
		t.Fatalf("testrpm: build %s: %v", s.Name, err)
	}
	return b
}

// WriteFile writes Build(t, s) to dir/<n>-<v>-<r>.<arch>.rpm and returns the path.
func WriteFile(t testing.TB, dir string, s Spec) string {
	t.Helper()
	p := filepath.Join(dir, s.FileName())
	if err := os.WriteFile(p, Build(t, s), 0o644); err != nil {
		t.Fatalf("testrpm: %v", err)
	}
	return p
}

// build is Build without the testing.TB, so errors can be tested.
func build(s Spec) ([]byte, error) {
	s = s.withDefaults()
	if s.Name == "" {
		return nil, errors.New("empty Name")
	}
	epoch := rpmpack.NoEpoch
	if s.Epoch != nil {
		// rpmpack uses the maximum uint32 to mean "no epoch", so that one value cannot be requested.
		if *s.Epoch == rpmpack.NoEpoch {
			return nil, fmt.Errorf("epoch %d is reserved by rpmpack", *s.Epoch)
		}
		epoch = *s.Epoch
	}
	// Summary, Description and Licence are optional to rpm, but createrepo_c copies them into primary.xml and
	// empty ones make the metadata harder to read when a test fails.
	r, err := rpmpack.NewRPM(rpmpack.RPMMetaData{
		Name:        s.Name,
		Version:     s.Version,
		Release:     s.Release,
		Arch:        s.Arch,
		Epoch:       epoch,
		Summary:     "rpm-ingestd test package " + s.Name,
		Description: "Built by internal/testrpm for rpm-ingestd tests.",
		Licence:     "MIT",
		Group:       "Unspecified",
		BuildHost:   "testrpm.invalid",
		BuildTime:   buildTime,
		// gzip is what every rpm and dnf version reads; rpmpack's gzip output is deterministic.
		Compressor: "gzip",
	})
	if err != nil {
		return nil, err
	}
	files := s.files()
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths) // rpmpack sorts too, but a fixed order here keeps determinism independent of that
	for _, p := range paths {
		if !path.IsAbs(p) || path.Clean(p) != p {
			return nil, fmt.Errorf("file path %q must be absolute and clean", p)
		}
		// root:root because dnf installs as root and rpm warns about owners unknown in the target root.
		r.AddFile(rpmpack.RPMFile{
			Name:  p,
			Body:  []byte(files[p]),
			Mode:  fileMode(p),
			Owner: "root",
			Group: "root",
			MTime: uint32(buildTime.Unix()),
		})
	}
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// fileMode returns the regular-file mode for p: executable in bin and sbin directories, so a test can install a
// runnable script, read-only data elsewhere.
func fileMode(p string) uint {
	if d := path.Base(path.Dir(p)); d == "bin" || d == "sbin" {
		return 0o100755
	}
	return 0o100644
}
