package s3tree

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestScanPrimaryNames: the check of a freshly written primary.xml names every package in Packages/, and fails
// (the publish cache is dropped) on whatever it cannot account for.
func TestScanPrimaryNames(t *testing.T) {
	pkg := func(loc string) string {
		return "<package type=\"rpm\">\n  <name>x</name>\n  " + loc + "\n</package>\n"
	}
	a, b := `<location href="Packages/a-1-1.x86_64.rpm"/>`, `<location href="Packages/b-1-1.noarch.rpm"/>`
	tests := []struct {
		name, body string
		want       []string
		wantErr    string
	}{
		{name: "two packages", body: pkg(a) + pkg(b), want: []string{"a-1-1.x86_64.rpm", "b-1-1.noarch.rpm"}},
		{name: "empty repository", body: "", want: nil},
		{name: "a package outside Packages/", body: pkg(a) + pkg(`<location href="other/c.rpm"/>`), wantErr: "2 packages and 1 locations"},
		{name: "xml:base before href", body: pkg(`<location xml:base="http://x/" href="Packages/a.rpm"/>`), wantErr: "1 packages and 0 locations"},
		{name: "an escaped name", body: pkg(`<location href="Packages/a&amp;b.rpm"/>`), wantErr: "primary lists"},
		{name: "a path below Packages/", body: pkg(`<location href="Packages/sub/a.rpm"/>`), wantErr: "primary lists"},
		{name: "unterminated", body: "<package type=\"rpm\">\n<location href=\"Packages/a.rpm\n", wantErr: "unterminated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := "<?xml version=\"1.0\"?>\n<metadata packages=\"0\">\n" + tc.body + "</metadata>\n"
			var gz bytes.Buffer
			w := gzip.NewWriter(&gz)
			w.Write([]byte(doc))
			w.Close()
			p := filepath.Join(t.TempDir(), "x-primary.xml.gz")
			if err := os.WriteFile(p, gz.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := scanPrimaryNames(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("scanPrimaryNames = %v, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("scanPrimaryNames = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestPendingNames: a pending object's body round-trips its package names (sorted, once each); anything else in
// a pending object is not trusted, and the publish lists Packages/ instead.
func TestPendingNames(t *testing.T) {
	got, err := parsePendingNames(pendingBody([]string{"b-1-1.noarch.rpm", "a-1-1.x86_64.rpm", "b-1-1.noarch.rpm"}))
	if err != nil || !slices.Equal(got, []string{"a-1-1.x86_64.rpm", "b-1-1.noarch.rpm"}) {
		t.Fatalf("round trip = %v, %v", got, err)
	}
	for _, body := range []string{"", "\n", "a.rpm\n\n", "../x.rpm\n", "a.rpm\nnot-a-package\n", ".hidden.rpm\n", "a/b.rpm\n"} {
		if names, err := parsePendingNames([]byte(body)); err == nil {
			t.Errorf("parsePendingNames(%q) = %v, want an error", body, names)
		}
	}
}
