package main

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	pkgtree "github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// treePool holds the small packages the big repositories of scenario 5 are made of (3 KiB payload: the metadata
// cost does not depend on the payload, and 50,000 of them stay under 250 MB).
func (b *bench) treePool() pool {
	return pool{dir: filepath.Join(b.var_, "fixtures", "tree"), prefix: "btree", size: 3 << 10}
}

// tree is a cached repository of n packages at <top>/9/x86_64 with metadata: Packages/ holds hard links to
// the pool's first n packages, base/ the metadata createrepo_c made for exactly them. warmBase/ is the
// metadata for those plus one more package (warm): the state after the warm-up upload that every daemon
// measurement starts with, so the measured run is not the daemon's first (which also reads the published
// metadata once). Comparisons run from that warm state.
type tree struct {
	n        int
	top      string
	repo     string
	base     string
	warmBase string
	add      pkgSpec // the package scenario 5 adds: the pool's n-th, not in the tree
	addP     string  // its file in the pool
	warm     pkgSpec // the warm-up package: the pool's (n+1)-th
	warmP    string
}

// ensureTree builds (or re-uses) the tree of n packages.
func (b *bench) ensureTree(n int) (*tree, error) {
	p := b.treePool()
	if err := p.ensure(b.out, n+2); err != nil {
		return nil, err
	}
	top := filepath.Join(b.var_, "trees", fmt.Sprint(n))
	t := &tree{n: n, top: top, repo: filepath.Join(top, "9", "x86_64"), base: filepath.Join(b.var_, "trees", fmt.Sprint(n)+"-base"),
		warmBase: filepath.Join(b.var_, "trees", fmt.Sprint(n)+"-warm"),
		add:      p.spec(n), addP: p.path(n), warm: p.spec(n + 1), warmP: p.path(n + 1)}
	done := filepath.Join(b.var_, "trees", fmt.Sprint(n)+".complete2")
	if fileExists(done) {
		return t, t.reset()
	}
	os.RemoveAll(top)
	os.RemoveAll(t.base)
	os.RemoveAll(t.warmBase)
	pkgs := filepath.Join(t.repo, "Packages")
	if err := os.MkdirAll(pkgs, 0o755); err != nil {
		return nil, err
	}
	for i := range n {
		if err := os.Link(p.path(i), filepath.Join(pkgs, p.spec(i).fileName())); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(b.out, "  indexing the %d-package tree once with createrepo_c (cached in %s) ...\n", n, t.base)
	w, _, err := timedRun("", "createrepo_c", "--no-database", "--workers", fmt.Sprint(workers()), t.repo)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(b.out, "    done in %s\n", ms(w))
	if err := os.Rename(filepath.Join(t.repo, "repodata"), t.base); err != nil {
		return nil, err
	}
	// The warm state's metadata: base plus the warm-up package, as an --update run makes it.
	if err := t.resetCold(); err != nil {
		return nil, err
	}
	if err := os.Link(t.warmP, filepath.Join(pkgs, t.warm.fileName())); err != nil {
		return nil, err
	}
	if _, _, err := timedRun("", "createrepo_c", "--update", "--no-database", t.repo); err != nil {
		return nil, err
	}
	if err := os.Rename(filepath.Join(t.repo, "repodata"), t.warmBase); err != nil {
		return nil, err
	}
	if err := t.reset(); err != nil {
		return nil, err
	}
	return t, os.WriteFile(done, nil, 0o644)
}

// reset puts the tree in the warm state: n packages plus the warm-up one, with their metadata.
func (t *tree) reset() error {
	if err := t.resetTo(t.warmBase); err != nil {
		return err
	}
	return os.Link(t.warmP, filepath.Join(t.repo, "Packages", t.warm.fileName()))
}

// resetCold puts the tree in its first state: n packages and their metadata, for a fresh daemon that then
// uploads the warm-up package itself.
func (t *tree) resetCold() error { return t.resetTo(t.base) }

// resetTo puts the tree back to n packages with the metadata in base: the added and warm-up packages, the
// daemon's state files and any other generation are removed. The metadata files are hard links to base:
// createrepo_c writes new files and renames, never changes one in place.
func (t *tree) resetTo(base string) error {
	entries, err := os.ReadDir(t.repo)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != "Packages" {
			if err := os.RemoveAll(filepath.Join(t.repo, e.Name())); err != nil {
				return err
			}
		}
	}
	for _, extra := range []pkgSpec{t.add, t.warm} {
		if err := os.Remove(filepath.Join(t.repo, "Packages", extra.fileName())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	md := filepath.Join(t.repo, "repodata")
	if err := os.MkdirAll(md, 0o755); err != nil {
		return err
	}
	files, err := os.ReadDir(base)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := os.Link(filepath.Join(base, f.Name()), filepath.Join(md, f.Name())); err != nil {
			return err
		}
	}
	return nil
}

// addPackage links the added package into Packages/, as an upload would have placed it.
func (t *tree) addPackage() error {
	return os.Link(t.addP, filepath.Join(t.repo, "Packages", t.add.fileName()))
}

// primaryCount returns how many packages the primary metadata of repoDir lists, and whether name is one.
func primaryCount(repoDir, name string) (int, bool, error) {
	b, err := os.ReadFile(filepath.Join(repoDir, "repodata", "repomd.xml"))
	if err != nil {
		return 0, false, err
	}
	files, err := pkgtree.ParseRepomd(b)
	if err != nil {
		return 0, false, fmt.Errorf("repomd.xml: %w", err)
	}
	for _, d := range files {
		if d.Type != "primary" {
			continue
		}
		f, err := os.Open(filepath.Join(repoDir, d.Href))
		if err != nil {
			return 0, false, err
		}
		defer f.Close()
		var r io.Reader = f
		if strings.HasSuffix(d.Href, ".gz") {
			z, err := gzip.NewReader(f)
			if err != nil {
				return 0, false, err
			}
			r = z
		}
		body, err := io.ReadAll(r)
		if err != nil {
			return 0, false, err
		}
		s := string(body)
		return strings.Count(s, "<package type="), strings.Contains(s, "<name>"+name+"</name>"), nil
	}
	return 0, false, errors.New("repomd.xml lists no primary")
}
