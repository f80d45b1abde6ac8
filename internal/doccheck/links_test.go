package doccheck

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is the checkout's top directory, two levels above this package.
const repoRoot = "../.."

// docFiles lists the Markdown files whose links must resolve: README.md, CONTRIBUTING.md and everything under
// docs/, found on disk so a new page is checked without touching this test.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "CONTRIBUTING.md"}
	err := filepath.WalkDir(filepath.Join(repoRoot, "docs"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, _ := filepath.Rel(repoRoot, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk docs/: %v", err)
	}
	slices.Sort(files)
	return files
}

// brokenLinks checks every relative link of the named files (relative to root): the target file or directory must
// exist, and a #fragment must be an anchor of the target Markdown file (or of the file itself). Links with a scheme
// (https:, mailto:) are not followed: no network.
func brokenLinks(root string, files []string) ([]string, error) {
	anchors := map[string]map[string]bool{}
	anchorsOf := func(rel string) (map[string]bool, error) {
		if a, ok := anchors[rel]; ok {
			return a, nil
		}
		data, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			return nil, err
		}
		anchors[rel] = Anchors(string(data))
		return anchors[rel], nil
	}
	var bad []string
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return nil, err
		}
		for _, l := range Links(string(data)) {
			target := l.Target
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			where := f + ":" + strconv.Itoa(l.Line) + ": " + target
			path, frag, _ := strings.Cut(target, "#")
			rel := f
			if path != "" {
				if strings.HasPrefix(path, "/") {
					bad = append(bad, where+": absolute path; use a path relative to "+f)
					continue
				}
				rel = filepath.ToSlash(filepath.Join(filepath.Dir(f), path))
				if strings.HasPrefix(rel, "../") {
					bad = append(bad, where+": points outside the repository")
					continue
				}
				if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
					bad = append(bad, where+": no such file "+rel)
					continue
				}
			}
			if frag == "" {
				continue
			}
			if !strings.HasSuffix(rel, ".md") {
				bad = append(bad, where+": a #fragment on a file that is not Markdown")
				continue
			}
			a, err := anchorsOf(rel)
			if err != nil {
				return nil, err
			}
			if !a[frag] {
				bad = append(bad, where+": no heading with anchor #"+frag+" in "+rel)
			}
		}
	}
	return bad, nil
}

// TestLinks: every relative link and #anchor across README.md, CONTRIBUTING.md and docs/ resolves.
func TestLinks(t *testing.T) {
	files := docFiles(t)
	if !slices.Contains(files, "docs/configuration.md") {
		t.Fatalf("docs/ holds %v: the docs checks expect docs/configuration.md and docs/api.md", files)
	}
	bad, err := brokenLinks(repoRoot, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("%d broken link(s):\n  %s", len(bad), strings.Join(bad, "\n  "))
	}
}

// TestBrokenLinksFindsEachKind builds a small tree with one link of each broken kind, and checks that each is
// reported and that the good ones are not: the link checker itself must be able to fail.
func TestBrokenLinksFindsEachKind(t *testing.T) {
	root := t.TempDir()
	write := func(rel, body string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README.md", "# Top\n\n## Quick start: `make run`\n\n"+
		"[ok](docs/a.md#the-rpm-ingestdrepo-file) [ok2](#quick-start-make-run) [ok3](deploy/x.yml) [web](https://example.com/#x)\n"+
		"[gone](docs/missing.md) [badfrag](docs/a.md#nope) [selfbad](#nope-here) [abs](/etc/passwd) [out](../x.md)\n"+
		"`[code](docs/missing2.md)`\n```\n[fenced](docs/missing3.md)\n```\n")
	write("docs/a.md", "# A\n\n## The rpm-ingestd.repo file\n\n## Dup\n\n## Dup\n\n[dup](#dup-1) [up](../README.md#top) [frag on yml](../deploy/x.yml#L3)\n")
	write("deploy/x.yml", "x: 1\n")
	bad, err := brokenLinks(root, []string{"README.md", "docs/a.md"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"README.md:6: docs/missing.md: no such file docs/missing.md",
		"README.md:6: docs/a.md#nope: no heading with anchor #nope in docs/a.md",
		"README.md:6: #nope-here: no heading with anchor #nope-here in README.md",
		"README.md:6: /etc/passwd: absolute path; use a path relative to README.md",
		"README.md:6: ../x.md: points outside the repository",
		"docs/a.md:9: ../deploy/x.yml#L3: a #fragment on a file that is not Markdown",
	}
	if !slices.Equal(bad, want) {
		t.Errorf("brokenLinks:\n got %q\nwant %q", bad, want)
	}
}

func TestSlug(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Step by step (RHEL 9 family)", "step-by-step-rhel-9-family"},
		{"The --pkglist story", "the---pkglist-story"},
		{"Why the daemon runs as nginx's user", "why-the-daemon-runs-as-nginxs-user"},
		{"GET /api/v1/uploads/{sha256}", "get-apiv1uploadssha256"},
		{"Upload registry (audit trail)", "upload-registry-audit-trail"},
		{"Why these createrepo_c flags", "why-these-createrepo_c-flags"},
		{"`server.listen` and [the link](x.md)", "serverlisten-and-the-link"},
		{"5. SELinux", "5-selinux"},
		{"Routing: the OS release", "routing-the-os-release"},
	} {
		if got := Slug(c.in); got != c.want {
			t.Errorf("Slug(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
