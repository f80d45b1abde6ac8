package indexer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
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
	c := testCreaterepo(t, DefaultCommand())
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

// BenchmarkBeginToExec is the daemon's own work between taking a run and starting createrepo_c, on a repository of
// 1,000 packages with published metadata: the lock, the claim, Begin (the metadata mtimes, Output, the mark, the
// listing) and the --pkglist; then Close. Compare it across versions on the same machine; absolute times are noise.
func BenchmarkBeginToExec(b *testing.B) {
	top := b.TempDir()
	repo := filepath.Join(top, "r")
	pkgs := filepath.Join(repo, "Packages")
	if err := os.MkdirAll(filepath.Join(repo, "repodata"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(pkgs, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if err := os.WriteFile(filepath.Join(pkgs, fmt.Sprintf("pkg%05d-1.0-1.el9.x86_64.rpm", i)), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	repomd := `<?xml version="1.0" encoding="UTF-8"?><repomd xmlns="http://linux.duke.edu/metadata/repo">`
	for _, typ := range []string{"primary", "filelists", "other"} {
		repomd += fmt.Sprintf(`<data type="%s"><location href="repodata/%s.xml.gz"/></data>`, typ, typ)
		if err := os.WriteFile(filepath.Join(repo, "repodata", typ+".xml.gz"), []byte(typ), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(repo, "repodata", "repomd.xml"), []byte(repomd+"</repomd>"), 0o644); err != nil {
		b.Fatal(err)
	}
	tr, err := fstree.New(fstree.Options{TopDir: top})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	c := testCreaterepo(b, DefaultCommand())
	argv, retain, _ := c.retention()
	ctx := b.Context()
	b.ReportAllocs()
	// CPU of the process (all threads: the GC's work for this loop's allocations too) outside MarkDirty.
	var cpu time.Duration
	cpuNow := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
	}
	for b.Loop() {
		b.StopTimer()
		if err := MarkDirty(repo); err != nil { // the upload's, before the run: not measured
			b.Fatal(err)
		}
		b.StartTimer()
		c0 := cpuNow()
		l, err := tr.TryLock(ctx, "r")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tr.ClaimPending(ctx, "r"); err != nil {
			b.Fatal(err)
		}
		w, err := tr.BeginFromPublished(ctx, l, retain)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.pkglist(argv, w.Output(), w.Packages()); err != nil {
			b.Fatal(err)
		}
		w.Close()
		l.Release()
		cpu += cpuNow() - c0
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// TestPkglistSorted: the --pkglist is ascending whatever order the Work's Packages come in (a tree may list them
// in any order), and the Work's own slice is left as it was.
func TestPkglistSorted(t *testing.T) {
	tests := []struct {
		name string
		in   []string
	}{
		{"sorted", []string{"a.rpm", "b.rpm", "c.rpm"}},
		{"reversed", []string{"c.rpm", "b.rpm", "a.rpm"}},
		{"shuffled", []string{"b.rpm", "c.rpm", "a.rpm"}},
		{"empty", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pkgs := make([]tree.Entry, 0, len(tc.in))
			for _, n := range tc.in {
				pkgs = append(pkgs, tree.Entry{Name: n})
			}
			before := slices.Clone(pkgs)
			out := t.TempDir()
			args, err := NewCreaterepo(DefaultCommand()).pkglist(DefaultCommand(), out, pkgs)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"--pkglist", filepath.Join(out, "pkglist")}; !slices.Equal(args, want) {
				t.Fatalf("args %q, want %q", args, want)
			}
			b, err := os.ReadFile(filepath.Join(out, "pkglist"))
			if err != nil {
				t.Fatal(err)
			}
			want := ""
			for _, n := range slices.Sorted(slices.Values(tc.in)) {
				want += "Packages/" + n + "\n"
			}
			if string(b) != want {
				t.Errorf("pkglist %q, want %q", b, want)
			}
			if !slices.Equal(pkgs, before) {
				t.Errorf("the Work's Packages were reordered: %v, was %v", pkgs, before)
			}
		})
	}
}
