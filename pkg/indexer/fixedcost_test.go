package indexer

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// spyCreaterepo puts, first on PATH, a "createrepo_c" that records its arguments and what its --outputdir holds
// when it starts, then runs the real one with an "rm" of its own first on PATH, which records each call and runs
// the real rm. It returns the file both write to.
func spyCreaterepo(t *testing.T) (log string) {
	t.Helper()
	real, err := exec.LookPath("createrepo_c")
	if err != nil {
		t.Fatalf("createrepo_c not on PATH: %v", err)
	}
	realRm, err := exec.LookPath("rm")
	if err != nil {
		t.Fatalf("rm not on PATH: %v", err)
	}
	bin, rmBin := t.TempDir(), t.TempDir()
	log = filepath.Join(t.TempDir(), "spy.log")
	crc := `#!/bin/sh
out=
prev=
for a in "$@"; do
	[ "$prev" = --outputdir ] && out=$a
	prev=$a
done
echo "args: $*" >>` + log + `
echo "output: $(ls -A "$out" | tr '\n' ' ')" >>` + log + `
PATH=` + rmBin + `:$PATH exec ` + real + ` "$@"
`
	rm := "#!/bin/sh\necho \"rm: $*\" >>" + log + "\nexec " + realRm + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "createrepo_c"), []byte(crc), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rmBin, "rm"), []byte(rm), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

// TestRealRunForksNoRm (the fixed cost of a run): createrepo_c --update reads the previous generation from the
// published repodata/ (--update-md-path) instead of a seeded Output/repodata, so it has no old directory of its own
// to remove at its end: it forks no "rm -r" (a fork, an exec and a wait per run before the new metadata can be
// published). The published metadata is the same: every package, the new one included.
func TestRealRunForksNoRm(t *testing.T) {
	requireTools(t)
	log := spyCreaterepo(t)
	repo := filepath.Join(t.TempDir(), "9", "x86_64")
	c := NewCreaterepo(DefaultCommand())
	addRPM(t, repo, "alpha")
	if err := c.Run(t.Context(), repo); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(log); err != nil {
		t.Fatalf("the spy createrepo_c did not run: %v", err)
	}
	addRPM(t, repo, "bravo")
	if err := c.Run(t.Context(), repo); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "rm: ") {
			t.Errorf("createrepo_c forked %q: it had an old repodata/ of its own to remove", l)
		}
		if out, ok := strings.CutPrefix(l, "output: "); ok && strings.TrimSpace(out) != "pkglist" {
			t.Errorf("--outputdir held %q when createrepo_c started; want only the pkglist (nothing seeded)", out)
		}
		if args, ok := strings.CutPrefix(l, "args: "); ok && !strings.Contains(args, "--update-md-path "+repo+" ") {
			t.Errorf("createrepo_c %s: no --update-md-path %s", args, repo)
		}
	}
	if got, want := repoquery(t, repo), []string{"alpha", "bravo"}; !slices.Equal(got, want) {
		t.Errorf("published packages %v, want %v", got, want)
	}
}
