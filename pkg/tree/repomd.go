package tree

import (
	"encoding/xml"
	"strings"
)

// MetadataFile is one <data> entry of a published repodata/repomd.xml: its type ("primary", "filelists", an
// updateinfo added with modifyrepo_c, ...) and its location href relative to the repository
// ("repodata/<checksum>-primary.xml.gz").
type MetadataFile struct {
	Type string
	Href string
}

// ParseRepomd returns the data entries of a repomd.xml, in file order. It is the one reader of repomd.xml for
// the backends, the indexer and migrate; what an href may name is RepodataName's business.
func ParseRepomd(b []byte) ([]MetadataFile, error) {
	var md struct {
		Data []struct {
			Type     string `xml:"type,attr"`
			Location struct {
				Href string `xml:"href,attr"`
			} `xml:"location"`
		} `xml:"data"`
	}
	if err := xml.Unmarshal(b, &md); err != nil {
		return nil, err
	}
	out := make([]MetadataFile, 0, len(md.Data))
	for _, d := range md.Data {
		out = append(out, MetadataFile{Type: d.Type, Href: d.Location.Href})
	}
	return out, nil
}

// RepodataName returns the file name an href of the exact form "repodata/<name>" names, and false for any other
// href: a crafted repomd.xml must never make a reader or a publisher touch a file outside repodata/. Hidden names
// and ones with a separator are refused too; createrepo_c writes none.
func RepodataName(href string) (string, bool) {
	name, ok := strings.CutPrefix(href, "repodata/")
	if !ok || name == "" || name == "." || name == ".." || strings.HasPrefix(name, ".") || strings.ContainsAny(name, `/\`) {
		return "", false
	}
	return name, true
}
