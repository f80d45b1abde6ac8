package s3tree

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadPrimary: the primary.xml reader gives the sha256 of every package in Packages/, and refuses (nil: a
// full run) what it cannot compare with the objects' sha256.
func TestReadPrimary(t *testing.T) {
	doc := func(pkgs ...string) string {
		return `<?xml version="1.0"?><metadata xmlns="http://linux.duke.edu/metadata/common">` +
			strings.Join(pkgs, "") + `</metadata>`
	}
	a := `<package type="rpm"><checksum type="sha256" pkgid="YES">ABC</checksum><location href="Packages/a.rpm"/></package>`
	elsewhere := `<package type="rpm"><checksum type="sha1" pkgid="YES">x</checksum><location href="other/b.rpm"/></package>`
	sha1 := `<package type="rpm"><checksum type="sha1" pkgid="YES">def</checksum><location href="Packages/c.rpm"/></package>`
	dir := t.TempDir()
	write := func(name, text string, gz bool) string {
		p := filepath.Join(dir, name)
		var b bytes.Buffer
		if gz {
			w := gzip.NewWriter(&b)
			w.Write([]byte(text))
			w.Close()
		} else {
			b.WriteString(text)
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if m := readPrimary(write("p-primary.xml.gz", doc(a, elsewhere), true)); len(m) != 1 || m["a.rpm"] != "abc" {
		t.Errorf("gz: %v", m)
	}
	if m := readPrimary(write("p-primary.xml", doc(a), false)); len(m) != 1 || m["a.rpm"] != "abc" {
		t.Errorf("plain: %v", m)
	}
	if m := readPrimary(write("s-primary.xml.gz", doc(a, sha1), true)); m != nil {
		t.Errorf("sha1 checksums: %v, want nil (a full run)", m)
	}
	if m := readPrimary(write("z-primary.xml.zck", doc(a), false)); m != nil {
		t.Errorf("zchunk: %v, want nil", m)
	}
	if m := readPrimary(write("t-primary.xml.gz", doc(a)[:60], true)); m != nil {
		t.Errorf("truncated: %v, want nil", m)
	}
	if m := readPrimary(filepath.Join(dir, "missing.xml.gz")); m != nil {
		t.Errorf("missing: %v", m)
	}
}
