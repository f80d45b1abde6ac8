package indexer

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// primaryOf returns the decompressed primary.xml of repo's published metadata.
func primaryOf(t testing.TB, repo string) []byte {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(repo, "repodata", "*-primary.xml.gz"))
	if len(matches) != 1 {
		t.Fatalf("primary files in %s: %v", repo, matches)
	}
	f, err := os.Open(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkScanAgrees holds scanPrimary to parsePrimary on doc: when the scanner answers, the reference answers the
// same (set and sums) and does not fail; when the scanner punts, that is allowed; any other scanner error is a bug.
// It reports whether the scanner answered.
func checkScanAgrees(t testing.TB, doc []byte) bool {
	t.Helper()
	set, sums, err := scanPrimary(bytes.NewReader(doc))
	rset, rsums, rerr := parsePrimary(bytes.NewReader(doc))
	if errors.Is(err, errScanPunt) {
		return false
	}
	if err != nil {
		t.Fatalf("scanPrimary failed without punting: %v (reference: %v)\n%q", err, rerr, doc)
	}
	if rerr != nil {
		t.Fatalf("scanPrimary accepted what encoding/xml rejects (%v): %v %v\n%q", rerr, set, sums, doc)
	}
	if !reflect.DeepEqual(set, rset) || !reflect.DeepEqual(sums, rsums) {
		t.Fatalf("scanPrimary = %v %v; encoding/xml = %v %v\n%q", set, sums, rset, rsums, doc)
	}
	return true
}

// TestRealScanPrimaryMatchesEncodingXML reads real createrepo_c output, with XML escapes in hrefs (a file name
// holding & ' < > "), non-ASCII text and escaped file paths, with both parsers: the scanner must answer (no
// fallback on what createrepo_c writes) and agree with encoding/xml.
func TestRealScanPrimaryMatchesEncodingXML(t *testing.T) {
	requireTools(t)
	repo := filepath.Join(t.TempDir(), "9", "x86_64")
	pkgs := filepath.Join(repo, "Packages")
	if err := os.MkdirAll(pkgs, 0o755); err != nil {
		t.Fatal(err)
	}
	testrpm.WriteFile(t, pkgs, testrpm.Spec{Name: "plain", Release: "1.el9", Arch: "x86_64"})
	odd := testrpm.WriteFile(t, pkgs, testrpm.Spec{Name: "odd", Arch: "noarch", Files: map[string]string{
		"/usr/bin/a&b<c>\"d'e-ü-日本": "x", "/etc/odd/]]>&amp;.conf": "y",
	}})
	data, err := os.ReadFile(odd)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`q&a'<x>"y".rpm`, "ü日本-1.0-1.noarch.rpm", "sp ace&#.rpm"} {
		if err := os.WriteFile(filepath.Join(pkgs, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	createrepo(t, repo)
	doc := primaryOf(t, repo)
	for _, want := range []string{"&amp;", "&lt;", "&gt;", "ü"} {
		if !bytes.Contains(doc, []byte(want)) {
			t.Fatalf("createrepo_c output lacks %q; the test no longer covers it:\n%s", want, doc)
		}
	}
	if !checkScanAgrees(t, doc) {
		t.Fatalf("scanPrimary punted on createrepo_c output:\n%s", doc)
	}
	set, sums, err := scanPrimary(bytes.NewReader(doc))
	if err != nil || len(set) != 5 || len(sums) != 5 {
		t.Fatalf("scanPrimary = %d packages, %d sums, %v; want 5, 5", len(set), len(sums), err)
	}
	if _, ok := set[`Packages/q&a'<x>"y".rpm`]; !ok {
		t.Fatalf("escaped href not decoded: %v", set)
	}
	// And through readPublished, which takes the scanner's answer.
	got, _, err := readPublished(repo)
	if err != nil || !reflect.DeepEqual(got, set) {
		t.Fatalf("readPublished = %v, %v; want %v", got, err, set)
	}
}

// TestScanPrimaryPuntsOrAgrees covers, by hand, inputs the scanner must punt on or read like encoding/xml.
func TestScanPrimaryPuntsOrAgrees(t *testing.T) {
	pkg := func(inner string) string {
		return `<?xml version="1.0" encoding="UTF-8"?>` + "\n<metadata>\n<package type=\"rpm\">" + inner + "</package>\n</metadata>\n"
	}
	good := `<location href="Packages/a.rpm"/><size package="10"/><time file="5"/><checksum type="sha256" pkgid="YES">ABC&#100;ef</checksum>`
	tests := []struct {
		name   string
		doc    string
		answer bool // the scanner must answer (not punt)
	}{
		{"plain", pkg(good), true},
		{"single quotes and spaces", pkg(`<location  href = 'Packages/b.rpm' /><checksum type='sha256'> x </checksum>`), false},
		{"single quotes", pkg(`<location href='Packages/b&amp;.rpm'/><checksum type='sha256'> x </checksum>`), true},
		{"comment", pkg(`<!-- c -->` + good), false},
		{"cdata sum", pkg(`<location href="Packages/a.rpm"/><checksum type="sha256"><![CDATA[ab]]></checksum>`), false},
		{"prefixed location", pkg(`<x:location href="Packages/a.rpm"/>`), false},
		{"prefixed href", pkg(`<location x:href="Packages/a.rpm"/>`), false},
		{"mismatched end", pkg(`<location href="Packages/a.rpm"></locatio>`), false},
		{"truncated", pkg(good)[:60], false},
		{"unknown entity", pkg(`<location href="Packages/&nbsp;.rpm"/>`), false},
		{"bare ampersand in text", pkg(`<name>a & b</name>` + good), false},
		{"lt in value", pkg(`<location href="Packages/<.rpm"/>`), false},
		{"cdata end in text", pkg(`<name>a]]>b</name>` + good), false},
		{"gt in text and value", pkg(`<name>a->b</name><location href="Packages/a>b.rpm"/>`), true},
		{"cr in href", pkg("<location href=\"Packages/a\r.rpm\"/>"), false},
		{"control char", pkg("<name>\x01</name>" + good), false},
		{"bad utf8", pkg("<name>\xff</name>" + good), false},
		{"bad size", pkg(`<size package="x"/>`), false},
		{"text at top", "junk" + pkg(good), false},
		{"doctype", `<!DOCTYPE x>` + pkg(good), false},
		{"nested checksum text", pkg(`<location href="Packages/a.rpm"/><checksum type="sha256">ab<x>cd</x>ef</checksum>`), true},
		{"sha1", pkg(`<location href="Packages/a.rpm"/><checksum type="sha1">ab</checksum>`), true},
		{"duplicate attribute", pkg(`<location href="Packages/a.rpm" href="Packages/b.rpm"/>`), false},
		{"no space between attributes", pkg(`<size package="1"installed="2"/><location href="Packages/a.rpm"/>`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if answered := checkScanAgrees(t, []byte(tt.doc)); tt.answer && !answered {
				t.Fatalf("scanPrimary punted on %q", tt.doc)
			}
		})
	}
}

// FuzzScanPrimary: whatever the input, the scanner answers like encoding/xml or punts.
//
//	go test -run '^$' -fuzz FuzzScanPrimary -fuzztime 60s ./pkg/indexer/
func FuzzScanPrimary(f *testing.F) {
	f.Add([]byte(primaryXML(pkgSet{"Packages/a.rpm": {1, 2}, "Packages/b&c.rpm": {3, 4}})))
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?><metadata><package><location href="Packages/&#x61;.rpm"/>` +
		`<checksum type="sha256">A&amp;B</checksum><format><rpm:entry name="x&lt;"/></format></package></metadata>`))
	f.Add([]byte("<m><package><checksum type='sha256'>]]</checksum></package></m>"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		checkScanAgrees(t, doc)
		// Small reads must not change the answer (buffer refills inside tags, entities and runes).
		set, sums, err := scanPrimary(bytes.NewReader(doc))
		oset, osums, oerr := scanPrimary(&oneByte{doc})
		if (err == nil) != (oerr == nil) || !reflect.DeepEqual(set, oset) || !reflect.DeepEqual(sums, osums) {
			t.Fatalf("one byte at a time: %v %v %v; whole: %v %v %v", oset, osums, oerr, set, sums, err)
		}
	})
}

// oneByte reads one byte per Read.
type oneByte struct{ b []byte }

func (r *oneByte) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}

// TestReadPublishedFallsBack: what the scanner punts on, readPublished still reads (through encoding/xml), and
// what encoding/xml rejects is still an error naming the file.
func TestReadPublishedFallsBack(t *testing.T) {
	want := pkgSet{"Packages/a.rpm": {size: 10, mtime: 5}}
	doc := primaryXML(want)
	commented := bytes.Replace(doc, []byte("<package "), []byte("<!-- a comment --><package "), 1)
	if _, _, err := scanPrimary(bytes.NewReader(commented)); !errors.Is(err, errScanPunt) {
		t.Fatalf("scanPrimary on a comment = %v; want a punt (the test needs one)", err)
	}
	repo := t.TempDir()
	writeRepodata(t, repo, "c-primary.xml", commented)
	got, _, err := readPublished(repo)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("readPublished = %v, %v; want %v", got, err, want)
	}
	broken := t.TempDir()
	writeRepodata(t, broken, "b-primary.xml", bytes.Replace(doc, []byte("</package>"), []byte("</pkg>"), 1))
	if _, _, err := readPublished(broken); err == nil || !strings.Contains(err.Error(), "parse repodata/b-primary.xml") ||
		errors.Is(err, errScanPunt) {
		t.Fatalf("readPublished on a mismatched end tag = %v; want encoding/xml's error", err)
	}
}
