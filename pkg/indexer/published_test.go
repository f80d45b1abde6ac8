package indexer

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// primaryXML renders a primary.xml listing set the way createrepo_c does
// (namespaces, <format> with nested elements, one <package> per href).
func primaryXML(set pkgSet) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="` +
		fmt.Sprint(len(set)) + `">` + "\n")
	for _, h := range set.hrefs() {
		st := set[h]
		fmt.Fprintf(&b, `<package type="rpm">
  <name>x</name><arch>x86_64</arch>
  <time file="%d" build="1700000000"/>
  <size package="%d" installed="10" archive="300"/>
  <location href="%s"/>
  <format><rpm:license>MIT</rpm:license><rpm:header-range start="1" end="2"/></format>
</package>
`, st.mtime, st.size, h)
	}
	b.WriteString("</metadata>\n")
	return []byte(b.String())
}

// writeRepodata writes repoDir/repodata/{repomd.xml, <name>} with primary as
// the content of the primary file; an empty name means "primary.xml.gz".
func writeRepodata(t *testing.T, repoDir, name string, primary []byte) {
	t.Helper()
	if name == "" {
		name = "abc-primary.xml.gz"
	}
	dir := filepath.Join(repoDir, "repodata")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	repomd := `<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1</revision>
  <data type="filelists"><location href="repodata/f-filelists.xml.gz"/></data>
  <data type="primary"><location href="repodata/` + name + `"/></data>
</repomd>
`
	if err := os.WriteFile(filepath.Join(dir, "repomd.xml"), []byte(repomd), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), primary, 0o644); err != nil {
		t.Fatal(err)
	}
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writePkg writes repoDir/Packages/name with size bytes and the given
// mtime, and returns its stamp.
func writePkg(t *testing.T, repoDir, name string, size int, mtime time.Time) stamp {
	t.Helper()
	dir := filepath.Join(repoDir, "Packages")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, bytes.Repeat([]byte{'x'}, size), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return stamp{size: int64(size), mtime: mtime.Unix()}
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestReadPublished(t *testing.T) {
	set := pkgSet{"Packages/a-1-1.x86_64.rpm": {100, 1700000001}, "Packages/.hidden-1-1.x86_64.rpm": {5, 1700000002}}
	// What the metadata may list beyond Packages/: not part of the set.
	withOthers := pkgSet{"Packages/a-1-1.x86_64.rpm": {100, 1700000001}, "Packages/.hidden-1-1.x86_64.rpm": {5, 1700000002},
		"other/b-1-1.x86_64.rpm": {1, 1}, "Packages/sub/c-1-1.x86_64.rpm": {1, 1}}
	// A <location> or <size> nested deeper (inside <format>) must not
	// override the package's own.
	nested := strings.Replace(string(primaryXML(set)), "<rpm:license>MIT</rpm:license>",
		`<rpm:license>MIT</rpm:license><rpm:x><location href="Packages/evil.rpm"/><size package="9"/></rpm:x>`, -1)

	tests := []struct {
		name    string
		file    string
		primary []byte
		want    pkgSet
		wantErr string
		errIs   error
	}{
		{name: "gzip", primary: gz(t, primaryXML(set)), want: set},
		{name: "plain", file: "p-primary.xml", primary: primaryXML(set), want: set},
		{name: "only direct Packages entries", primary: gz(t, primaryXML(withOthers)), want: set},
		{name: "nested elements ignored", primary: gz(t, []byte(nested)), want: set},
		{name: "empty", primary: gz(t, primaryXML(pkgSet{})), want: pkgSet{}},
		{name: "xz refused", file: "p-primary.xml.xz", primary: []byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2},
			errIs: errCompression, wantErr: "xz"},
		{name: "zstd refused", file: "p-primary.xml.zst", primary: []byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0},
			errIs: errCompression, wantErr: "zstd"},
		{name: "truncated gzip", primary: gz(t, primaryXML(set))[:40], wantErr: "unexpected EOF"},
		{name: "truncated xml", file: "p-primary.xml", primary: primaryXML(set)[:200], wantErr: "parse"},
		{name: "bad size", file: "p-primary.xml",
			primary: []byte(`<metadata><package><size package="x"/></package></metadata>`), wantErr: `package="x"`},
		{name: "bad time", file: "p-primary.xml",
			primary: []byte(`<metadata><package><time file="-"/></package></metadata>`), wantErr: `file="-"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := t.TempDir()
			writeRepodata(t, repo, tc.file, tc.primary)
			got, at, err := readPublished(repo)
			if tc.wantErr != "" || tc.errIs != nil {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if tc.errIs != nil && !errors.Is(err, tc.errIs) {
					t.Fatalf("err = %v, want errors.Is %v", err, tc.errIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.equal(tc.want) {
				t.Fatalf("set = %v, want %v", got, tc.want)
			}
			if at.IsZero() {
				t.Fatal("no publish time from repomd.xml")
			}
		})
	}
}

func TestReadPublishedRepomdProblems(t *testing.T) {
	tests := []struct {
		name    string
		repomd  string // "" = no repodata at all
		wantErr string
	}{
		{name: "no primary", repomd: `<repomd><data type="other"><location href="repodata/o.xml.gz"/></data></repomd>`,
			wantErr: "no primary metadata"},
		{name: "href outside repodata", repomd: `<repomd><data type="primary"><location href="../../etc/passwd"/></data></repomd>`,
			wantErr: "no primary metadata"},
		{name: "href in a subdirectory", repomd: `<repomd><data type="primary"><location href="repodata/x/../../p.xml"/></data></repomd>`,
			wantErr: "no primary metadata"},
		{name: "not xml", repomd: `{"json": true}`, wantErr: "parse"},
		{name: "primary missing", repomd: `<repomd><data type="primary"><location href="repodata/gone.xml.gz"/></data></repomd>`,
			wantErr: "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := t.TempDir()
			if err := os.MkdirAll(filepath.Join(repo, "repodata"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(repo, "repodata", "repomd.xml"), []byte(tc.repomd), 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := readPublished(repo)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	t.Run("no repodata is an empty set", func(t *testing.T) {
		got, at, err := readPublished(t.TempDir())
		if err != nil || len(got) != 0 || got == nil || !at.IsZero() {
			t.Fatalf("readPublished = %v, %v, %v; want an empty set, zero time, nil", got, at, err)
		}
	})
}

func TestListPackages(t *testing.T) {
	repo := t.TempDir()
	want := pkgSet{
		"Packages/a-1-1.x86_64.rpm":       writePkg(t, repo, "a-1-1.x86_64.rpm", 10, t0),
		"Packages/.hidden-1-1.x86_64.rpm": writePkg(t, repo, ".hidden-1-1.x86_64.rpm", 3, t0.Add(time.Second)),
	}
	target := writePkg(t, repo, "target.bin", 7, t0)
	writePkg(t, repo, "notes.txt", 1, t0)
	writePkg(t, repo, "a.rpm.tmp", 1, t0)
	pk := filepath.Join(repo, "Packages")
	if err := os.Symlink("target.bin", filepath.Join(pk, "link-1-1.noarch.rpm")); err != nil {
		t.Fatal(err)
	}
	want["Packages/link-1-1.noarch.rpm"] = target // a symlink counts by its target, as createrepo_c reads it
	if err := os.Symlink("nowhere", filepath.Join(pk, "dangling-1-1.noarch.rpm")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(pk, "dir.rpm"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := listPackages(repo)
	if err != nil {
		t.Fatal(err)
	}
	if !got.equal(want) {
		t.Fatalf("listPackages = %v, want %v", got, want)
	}

	empty, err := listPackages(t.TempDir())
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("without Packages/: %v, %v; want an empty set", empty, err)
	}
}

func TestDiffAndEqual(t *testing.T) {
	prev := pkgSet{"Packages/a.rpm": {1, 1}, "Packages/b.rpm": {1, 1}, "Packages/c.rpm": {1, 1}}
	next := pkgSet{"Packages/b.rpm": {2, 1}, "Packages/c.rpm": {1, 1}, "Packages/d.rpm": {1, 1}}
	added, removed := diff(prev, next)
	if !slices.Equal(added, []string{"Packages/d.rpm"}) || !slices.Equal(removed, []string{"Packages/a.rpm"}) {
		t.Fatalf("diff = %v, %v", added, removed)
	}
	tests := []struct {
		name string
		a, b pkgSet
		want bool
	}{
		{"same", prev, pkgSet{"Packages/a.rpm": {1, 1}, "Packages/b.rpm": {1, 1}, "Packages/c.rpm": {1, 1}}, true},
		{"size differs", pkgSet{"Packages/a.rpm": {1, 1}}, pkgSet{"Packages/a.rpm": {2, 1}}, false},
		{"mtime differs", pkgSet{"Packages/a.rpm": {1, 1}}, pkgSet{"Packages/a.rpm": {1, 2}}, false},
		{"name differs", pkgSet{"Packages/a.rpm": {1, 1}}, pkgSet{"Packages/b.rpm": {1, 1}}, false},
		{"one more", prev, next, false},
		{"both empty", pkgSet{}, pkgSet{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.equal(tc.b); got != tc.want {
				t.Fatalf("equal = %v, want %v", got, tc.want)
			}
		})
	}
	if n := countChanged(prev, next); n != 1 {
		t.Fatalf("countChanged = %d, want 1 (b.rpm)", n)
	}
}

func TestRepoLabel(t *testing.T) {
	tests := []struct{ top, dir, want string }{
		{"/srv/repo", "/srv/repo/9/x86_64", "9/x86_64"},
		{"/srv/repo/", "/srv/repo/stable/9/x86_64", "stable/9/x86_64"},
		{"/srv/repo", "/srv/repo", "."},
		{"/srv/repo", "/elsewhere/9/x86_64", "/elsewhere/9/x86_64"},
		{"/srv/repo", "/srv/repository/9", "/srv/repository/9"},
		{"", "/srv/repo/9/x86_64", "/srv/repo/9/x86_64"},
	}
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			if got := repoLabel(tc.top, tc.dir); got != tc.want {
				t.Fatalf("repoLabel(%q, %q) = %q, want %q", tc.top, tc.dir, got, tc.want)
			}
		})
	}
}
