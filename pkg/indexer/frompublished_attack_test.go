package indexer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
)

// TestFromPublishedKeepsOldGenerations: with Output left empty (createrepo_c --update-md-path), the files of the
// generations a client may still hold a cached repomd.xml of stay fetchable in repodata/ after the next runs, as
// they did with a seeded Output (the retention age is 10 minutes).
func TestFromPublishedKeepsOldGenerations(t *testing.T) {
	requireTools(t)
	log := spyCreaterepo(t)
	repo := filepath.Join(t.TempDir(), "9", "x86_64")
	c := testCreaterepo(t, DefaultCommand())
	var gens [][]string
	for _, name := range []string{"alpha", "bravo", "charlie"} {
		addRPM(t, repo, name)
		if err := c.Run(t.Context(), repo); err != nil {
			t.Fatal(err)
		}
		gens = append(gens, metadataFiles(t, repo))
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "--update-md-path "+repo+" "); n != 2 {
		t.Fatalf("%d of the 2 runs after the first read the published generation (--update-md-path): the test is not about the unseeded Output\n%s", n, b)
	}
	if slices.Equal(gens[0], gens[1]) || slices.Equal(gens[1], gens[2]) {
		t.Fatalf("generations do not differ: %v", gens)
	}
	for i, g := range gens {
		for _, f := range g {
			if _, err := os.Stat(f); err != nil {
				t.Errorf("generation %d's %s is gone: a client with that repomd.xml cached gets a 404", i+1, f)
			}
		}
	}
	if got, want := repoquery(t, repo), []string{"alpha", "bravo", "charlie"}; !slices.Equal(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}
}

// TestFromPublishedHandEdits: what an operator or a killed run leaves does not stop the unseeded runs: a
// metadata file the published repomd.xml names removed by hand (createrepo_c --update-md-path then has less to
// reuse, not nothing to publish), and a killed run's Output (createrepo_c's own .repodata lock, a half-made
// repodata/).
func TestFromPublishedHandEdits(t *testing.T) {
	requireTools(t)
	repo := filepath.Join(t.TempDir(), "9", "x86_64")
	c := testCreaterepo(t, DefaultCommand())
	addRPM(t, repo, "alpha")
	if err := c.Run(t.Context(), repo); err != nil {
		t.Fatal(err)
	}
	for _, f := range metadataFiles(t, repo) {
		if filepath.Base(f) != "repomd.xml" {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	addRPM(t, repo, "bravo")
	if err := c.Run(t.Context(), repo); err != nil {
		t.Fatalf("a run after the published metadata files were removed by hand: %v", err)
	}
	if got, want := repoquery(t, repo), []string{"alpha", "bravo"}; !slices.Equal(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}
	out := filepath.Join(repo, fstree.OutputDir)
	for _, d := range []string{".repodata", "repodata"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, d, "repomd.xml"), []byte("<repomd"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	addRPM(t, repo, "charlie")
	if err := c.Run(t.Context(), repo); err != nil {
		t.Fatalf("a run after a killed one: %v", err)
	}
	if got, want := repoquery(t, repo), []string{"alpha", "bravo", "charlie"}; !slices.Equal(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("Output left after the run: %v", err)
	}
}
