package indexer

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// packagesDir is the directory, relative to a repository directory, whose
// *.rpm files make up the published set (hrefs are "Packages/<name>").
const packagesDir = "Packages"

// maxRepomd caps how much of repodata/repomd.xml is read: ours are about
// 1-3 KiB, so 1 MiB is generous and keeps a corrupt file from being buffered
// without bound.
const maxRepomd = 1 << 20

// stamp is what identifies a file version well enough to tell whether the
// published metadata still describes it: createrepo_c's --update makes the
// same judgement from path, size and mtime. The mtime has whole seconds,
// because primary.xml's <time file> does.
type stamp struct {
	size  int64
	mtime int64
}

// pkgSet maps hrefs ("Packages/x.rpm", relative to the repository
// directory) to their stamps. A pkgSet stored in a repoState is never
// modified again (a publish replaces it whole), so it may be read without
// the Scheduler's mutex once obtained.
type pkgSet map[string]stamp

// hrefs returns the set's hrefs, sorted.
func (p pkgSet) hrefs() []string {
	out := make([]string, 0, len(p))
	for h := range p {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// equal reports whether both sets name the same files with the same stamps.
func (p pkgSet) equal(o pkgSet) bool {
	if len(p) != len(o) {
		return false
	}
	for h, st := range p {
		if ost, ok := o[h]; !ok || ost != st {
			return false
		}
	}
	return true
}

// diff returns the hrefs in next but not in prev (added) and in prev but not
// in next (removed), each sorted. A file replaced under the same name is
// neither: its href was and stays visible.
func diff(prev, next pkgSet) (added, removed []string) {
	for h := range next {
		if _, ok := prev[h]; !ok {
			added = append(added, h)
		}
	}
	for h := range prev {
		if _, ok := next[h]; !ok {
			removed = append(removed, h)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}

// listPackages lists the *.rpm files directly in repoDir/Packages with their
// size and mtime: what createrepo_c will index when it scans now. Hidden
// ".x.rpm" files count (createrepo_c indexes them), and symlinks count by
// their target (createrepo_c follows them). A missing Packages/ is an empty
// set: Createrepo.Run creates it and publishes empty metadata.
//
// Subdirectories of Packages/ are not descended into: the daemon never
// writes there, and comparing them with the metadata would need the same
// recursion on both sides for no user.
func listPackages(repoDir string) (pkgSet, error) {
	dir := filepath.Join(repoDir, packagesDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return pkgSet{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	set := make(pkgSet, len(entries))
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".rpm") || e.IsDir() {
			continue
		}
		var info fs.FileInfo
		if e.Type()&fs.ModeSymlink != 0 {
			info, err = os.Stat(filepath.Join(dir, e.Name()))
		} else {
			info, err = e.Info()
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile, or a dangling symlink createrepo_c skips too
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, err)
		}
		if !info.Mode().IsRegular() {
			continue
		}
		set[packagesDir+"/"+e.Name()] = stamp{size: info.Size(), mtime: info.ModTime().Unix()}
	}
	return set, nil
}

// errCompression is returned for a primary metadata file compressed in a way
// the standard library cannot read (xz, zstd): createrepo_c 0.17 writes gzip
// unless told otherwise with --compress-type.
var errCompression = errors.New("unsupported compression")

// readPublished returns the set of packages repoDir's published metadata
// lists, read from repodata/repomd.xml → its primary → <package> entries,
// and repomd.xml's mtime (when that metadata was published). No
// repodata/repomd.xml at all means nothing is published: an empty set, a
// zero time and no error. Only hrefs of the form "Packages/<name>" are kept,
// matching listPackages.
//
// The primary file may be gzip (createrepo_c's default), bzip2 or plain XML,
// detected by its magic bytes; xz and zstd fail with errCompression. It is
// parsed as a token stream, so a 50,000-package primary.xml costs CPU time
// but no memory beyond the set itself.
func readPublished(repoDir string) (pkgSet, time.Time, error) {
	set, _, mtime, err := readPublishedSums(repoDir)
	return set, mtime, err
}

// pkgSums maps hrefs to the lowercase hex SHA-256 that the published
// primary.xml gives as the package's checksum (its pkgid). A package whose
// checksum has another type (createrepo_c -s sha1) has no entry.
type pkgSums map[string]string

// metaOpener opens a file of one repository's published metadata by name: "repomd.xml" or a file name it
// names in repodata/. A missing file is an error wrapping fs.ErrNotExist or tree.ErrNotFound.
type metaOpener func(name string) (tree.Object, error)

// dirMetadata opens repoDir/repodata/<name> (a repository directory outside any tree).
func dirMetadata(repoDir string) metaOpener {
	return func(name string) (tree.Object, error) {
		f, err := os.Open(filepath.Join(repoDir, "repodata", name))
		if err != nil {
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		return fileObject{File: f, st: tree.Stamp{Size: fi.Size(), ModTime: fi.ModTime()}}, nil
	}
}

// fileObject is an open local file as a tree.Object.
type fileObject struct {
	*os.File
	st tree.Stamp
}

func (o fileObject) Stamp() tree.Stamp { return o.st }

// readPublishedSums is readPublished that also returns each package's
// published SHA-256, from the same single parse.
func readPublishedSums(repoDir string) (pkgSet, pkgSums, time.Time, error) {
	return readPublishedFrom(dirMetadata(repoDir))
}

// readPublishedFrom is readPublishedSums through open: repomd.xml, then the primary file it names, both as the
// tree publishes them (tree.OpenMetadata), so it works on every backend.
func readPublishedFrom(open metaOpener) (pkgSet, pkgSums, time.Time, error) {
	f, err := open("repomd.xml")
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, tree.ErrNotFound) {
		return pkgSet{}, pkgSums{}, time.Time{}, nil
	}
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("read published metadata: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRepomd))
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("read published metadata: %w", err)
	}
	files, err := tree.ParseRepomd(b)
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("parse repodata/repomd.xml: %w", err)
	}
	href := ""
	for _, d := range files {
		if d.Type == "primary" {
			href = d.Href
			break
		}
	}
	// Only "repodata/<name>": a crafted href must not make us read files elsewhere.
	name, ok := tree.RepodataName(href)
	if !ok {
		return nil, nil, time.Time{}, fmt.Errorf("parse repodata/repomd.xml: no primary metadata in repodata/ (location %q)", href)
	}
	// The byte-level scanner first; what it does not read (errScanPunt) goes to encoding/xml, from a second open.
	set, sums, err := openPrimary(open, name, scanPrimary)
	if errors.Is(err, errScanPunt) {
		set, sums, err = openPrimary(open, name, parsePrimary)
	}
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	return set, sums, f.Stamp().ModTime, nil
}

// openPrimary opens repodata/<name> and reads it with parse.
func openPrimary(open metaOpener, name string, parse primaryParser) (pkgSet, pkgSums, error) {
	pf, err := open(name)
	if err != nil {
		return nil, nil, fmt.Errorf("read primary metadata: %w", err)
	}
	defer pf.Close()
	return readPrimary(pf, "repodata/"+name, parse)
}

// primaryParser reads the <package> entries of a decompressed primary.xml: parsePrimary (encoding/xml, the
// reference) or scanPrimary (bytes, or errScanPunt).
type primaryParser func(io.Reader) (pkgSet, pkgSums, error)

// readPrimary decompresses one primary metadata file and reads it with parse (path names it in errors; an
// errScanPunt stays recognisable).
func readPrimary(f io.Reader, path string, parse primaryParser) (pkgSet, pkgSums, error) {
	br := bufio.NewReader(f)
	magic, _ := br.Peek(6) // shorter only for a tiny (broken) file; the parser then says so
	var r io.Reader
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	case bytes.HasPrefix(magic, []byte("BZh")):
		r = bzip2.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return nil, nil, fmt.Errorf("read %s: %w: xz (run createrepo_c with --compress-type gz)", path, errCompression)
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return nil, nil, fmt.Errorf("read %s: %w: zstd (run createrepo_c with --compress-type gz)", path, errCompression)
	default:
		r = br // plain XML (createrepo_c --compress-type none is not possible, but a hand-made repo may be)
	}
	set, sums, err := parse(r)
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return set, sums, nil
}

// parsePrimary stream-parses primary.xml, taking from each <package> its
// <location href>, <size package>, <time file> and <checksum type="sha256">.
// These are direct children of <package>; the depth check keeps anything of
// the same local name deeper inside (in <format>) from being mistaken for
// them.
func parsePrimary(r io.Reader) (pkgSet, pkgSums, error) {
	dec := xml.NewDecoder(r)
	set, sums := pkgSet{}, pkgSums{}
	depth := 0     // element depth: <metadata> is 1, <package> 2
	inPkg := false // inside a <package> at depth 2
	var href string
	var st stamp
	var sum []byte // the text of a sha256 <checksum>, while inside one
	inSum := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if depth != 0 {
				return nil, nil, io.ErrUnexpectedEOF
			}
			return set, sums, nil
		}
		if err != nil {
			return nil, nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2 && t.Name.Local == "package":
				inPkg, href, st, sum = true, "", stamp{}, nil
			case inPkg && depth == 3:
				if err := readPkgField(t, &href, &st); err != nil {
					return nil, nil, err
				}
				inSum = t.Name.Local == "checksum" && slices.ContainsFunc(t.Attr, func(a xml.Attr) bool {
					return a.Name.Local == "type" && a.Value == "sha256"
				})
			}
		case xml.CharData:
			if inSum && len(sum) < 128 {
				sum = append(sum, t...)
			}
		case xml.EndElement:
			if depth == 3 {
				inSum = false
			}
			if depth == 2 && inPkg {
				inPkg = false
				addPackage(set, sums, href, st, sum)
			}
			depth--
		}
	}
}

// readPkgField fills href or st from one direct child of <package>.
func readPkgField(t xml.StartElement, href *string, st *stamp) error {
	var err error
	for _, a := range t.Attr {
		switch {
		case t.Name.Local == "location" && a.Name.Local == "href":
			*href = a.Value
		case t.Name.Local == "size" && a.Name.Local == "package":
			st.size, err = strconv.ParseInt(a.Value, 10, 64)
		case t.Name.Local == "time" && a.Name.Local == "file":
			st.mtime, err = strconv.ParseInt(a.Value, 10, 64)
		}
		if err != nil {
			return fmt.Errorf("<%s %s=%q>: %w", t.Name.Local, a.Name.Local, a.Value, err)
		}
	}
	return nil
}

// addPackage records a <package> of primary.xml that ended: its stamp in set and its sha256 (as found in its
// <checksum type="sha256">) in sums, when href is one the published set tracks.
func addPackage(set pkgSet, sums pkgSums, href string, st stamp, sum []byte) {
	if !keepHref(href) {
		return
	}
	set[href] = st
	if v := strings.ToLower(strings.TrimSpace(string(sum))); v != "" {
		sums[href] = v
	}
}

// keepHref reports whether href is a package directly in Packages/, the part
// of the metadata the published set tracks (see listPackages).
func keepHref(href string) bool {
	name, ok := strings.CutPrefix(href, packagesDir+"/")
	return ok && name != "" && !strings.Contains(name, "/") && strings.HasSuffix(name, ".rpm")
}
