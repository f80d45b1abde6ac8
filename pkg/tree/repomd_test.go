package tree

import (
	"slices"
	"testing"
)

func TestParseRepomd(t *testing.T) {
	b := []byte(`<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo">
  <revision>1</revision>
  <data type="primary"><location href="repodata/abc-primary.xml.gz"/></data>
  <data type="updateinfo"><location href="repodata/def-updateinfo.xml.gz"/></data>
</repomd>`)
	got, err := ParseRepomd(b)
	want := []MetadataFile{{"primary", "repodata/abc-primary.xml.gz"}, {"updateinfo", "repodata/def-updateinfo.xml.gz"}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("ParseRepomd = %v, %v; want %v", got, err, want)
	}
	if _, err := ParseRepomd([]byte("<repomd><data")); err == nil {
		t.Error("a truncated repomd.xml parsed")
	}
}

func TestRepodataName(t *testing.T) {
	tests := []struct {
		href, want string
		ok         bool
	}{
		{"repodata/abc-primary.xml.gz", "abc-primary.xml.gz", true},
		{"repodata/../Packages/x.rpm", "", false},
		{"repodata/..", "", false},
		{"repodata/", "", false},
		{"repodata/.hidden", "", false},
		{"repodata/a/b", "", false},
		{`repodata/a\b`, "", false},
		{"/etc/passwd", "", false},
		{"../repodata/x", "", false},
		{"Packages/x.rpm", "", false},
	}
	for _, tc := range tests {
		got, ok := RepodataName(tc.href)
		if got != tc.want || ok != tc.ok {
			t.Errorf("RepodataName(%q) = %q, %v; want %q, %v", tc.href, got, ok, tc.want, tc.ok)
		}
	}
}
