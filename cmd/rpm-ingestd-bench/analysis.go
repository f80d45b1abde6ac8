package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// variant is one createrepo_c invocation of the big-repository analysis.
type variant struct {
	flags string
	res   crResult
	safe  string
	ok    bool // safe for the daemon as it is (repo.overwrite: false, the default)
}

// bigRepoAnalysis is where createrepo_c's time goes at the largest repository size.
type bigRepoAnalysis struct {
	n        int
	variants []variant
	perfDSO  string // perf report by shared object for our flags
	straceC  string // strace -c summary for our flags
}

// analyse measures createrepo_c's options on the tree with one package added, and profiles our flags.
func (b *bench) analyse(t *tree, ours crResult) (*bigRepoAnalysis, error) {
	a := &bigRepoAnalysis{n: t.n}
	fmt.Fprintf(b.out, "  where the time goes at %d packages:\n", t.n)
	base := "--update --no-database"
	a.variants = append(a.variants, variant{flags: base + " (ours)", res: ours, ok: true, safe: "baseline: what the daemon runs (plus --error-exit-val --retain-old-md-by-age=10m --outputdir)"})
	for _, v := range []struct {
		flags, safe string
		ok          bool
	}{
		{base + " --skip-stat", "only with repo.overwrite: false (the default): with overwrite a replaced package keeps its name and createrepo_c would keep the old entry's checksum without a stat; removed files still drop out (they vanish from the directory listing)", true},
		{base + " --workers 1", "safe: only the number of threads reading new packages", true},
		{base + " --workers 4", "safe", true},
		{base + " --general-compress-type=xz", "safe for dnf (and yum on EL7)", true},
		{base + " --general-compress-type=bz2", "safe for dnf", true},
		{"--no-database", "safe, but re-reads every package: what --update avoids", true},
	} {
		r, err := b.createrepo(t, 1, strings.Fields(v.flags)...)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(b.out, "    %-60s %s (%.2f CPU-s)\n", v.flags, ms(r.wall), r.cpu)
		a.variants = append(a.variants, variant{flags: v.flags, res: r, safe: v.safe, ok: v.ok})
	}
	r, err := b.pkglistRun(t)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(b.out, "    %-60s %s (%.2f CPU-s)\n", "--pkglist new --recycle-pkglist (only the new package present)", ms(r.wall), r.cpu)
	a.variants = append(a.variants, variant{flags: base + " --skip-stat --recycle-pkglist --pkglist <new> (directory with only the new package)", res: r,
		safe: "not with the current design: createrepo_c must run on a directory that holds only the new packages; it would need a staging directory per run and a list of removals, which the daemon does not keep"})

	// Profiles of our flags: by shared object (perf) and by system call (strace -c).
	if err := t.reset(); err != nil {
		return nil, err
	}
	if err := t.addPackage(); err != nil {
		return nil, err
	}
	perfData := filepath.Join(b.var_, "run", "perf.data")
	if out, err := exec.Command("perf", "record", "-q", "-o", perfData, "--", "createrepo_c", "--update", "--no-database", t.repo).CombinedOutput(); err != nil {
		a.perfDSO = fmt.Sprintf("perf record failed: %v: %s", err, tail(string(out), 300))
	} else {
		out, _ := exec.Command("perf", "report", "-i", perfData, "--stdio", "--sort", "dso", "--percent-limit", "1").Output()
		a.perfDSO = keepLines(string(out), func(l string) bool { return strings.Contains(l, "%") && !strings.HasPrefix(l, "#") })
		out, _ = exec.Command("perf", "report", "-i", perfData, "--stdio", "--sort", "dso,sym", "--percent-limit", "1.5").Output()
		a.perfDSO += "\n\nby symbol (≥ 1.5 %):\n" + keepLines(string(out), func(l string) bool { return strings.Contains(l, "%") && !strings.HasPrefix(l, "#") })
	}
	if err := t.reset(); err != nil {
		return nil, err
	}
	if err := t.addPackage(); err != nil {
		return nil, err
	}
	var errb bytes.Buffer
	cmd := exec.Command("strace", "-c", "-f", "-o", "/dev/stderr", "createrepo_c", "--update", "--no-database", t.repo)
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		a.straceC = fmt.Sprintf("strace failed: %v", err)
	} else {
		lines := strings.Split(errb.String(), "\n")
		a.straceC = strings.Join(lines[:min(len(lines), 14)], "\n")
	}
	return a, t.reset()
}

// pkglistRun measures createrepo_c on a directory that holds the old metadata and only the new package, with
// --recycle-pkglist taking the old entries from the old metadata.
func (b *bench) pkglistRun(t *tree) (crResult, error) {
	dir := filepath.Join(b.var_, "run", "s5-pkglist")
	os.RemoveAll(dir)
	repo := filepath.Join(dir, "repo")
	if err := os.MkdirAll(filepath.Join(repo, "Packages"), 0o755); err != nil {
		return crResult{}, err
	}
	if err := os.Link(t.addP, filepath.Join(repo, "Packages", t.add.fileName())); err != nil {
		return crResult{}, err
	}
	if out, err := exec.Command("cp", "-al", t.base, filepath.Join(repo, "repodata")).CombinedOutput(); err != nil {
		return crResult{}, fmt.Errorf("cp: %w: %s", err, out)
	}
	list := filepath.Join(dir, "new.txt")
	if err := os.WriteFile(list, []byte("Packages/"+t.add.fileName()+"\n"), 0o644); err != nil {
		return crResult{}, err
	}
	w, c, err := timedRun("", "createrepo_c", "--update", "--no-database", "--skip-stat", "--recycle-pkglist", "--pkglist", list, repo)
	if err != nil {
		return crResult{}, err
	}
	count, listed, err := primaryCount(repo, t.add.name)
	if err != nil {
		return crResult{}, err
	}
	if !listed || count != t.n+1 {
		return crResult{}, fmt.Errorf("--recycle-pkglist: primary.xml lists %d packages (want %d), the new one: %t", count, t.n+1, listed)
	}
	defer os.RemoveAll(dir)
	return crResult{wall: w, cpu: c}, nil
}

func keepLines(s string, keep func(string) bool) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if keep(l) {
			out = append(out, strings.TrimRight(l, " "))
		}
	}
	return strings.Join(out, "\n")
}

// markdown renders the analysis section.
func (a *bigRepoAnalysis) markdown() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n## Where the time goes in big repositories\n\nAt %d packages, one package added, each run from the same "+
		"state (the tree reset to the old metadata between runs). Ratios are against our flags.\n\n"+
		"| createrepo_c flags | wall | CPU | wall ÷ ours | safe for us? | verdict |\n|---|---|---|---|---|---|\n", a.n)
	base := a.variants[0].res.wall
	for i, v := range a.variants {
		r := v.res.wall.Seconds() / base.Seconds()
		verdict := "keep ours"
		switch {
		case i == 0:
			verdict = "current"
		case !v.ok:
			verdict = "not adoptable"
		case r < 0.9:
			verdict = "**adopt** (saves " + fmt.Sprintf("%.0f", 100*(1-r)) + " %)"
		case r < 1.1:
			verdict = "no measurable gain"
		}
		fmt.Fprintf(&sb, "| `%s` | %s | %.2f s | %s | %s | %s |\n", v.flags, ms(v.res.wall), v.res.cpu, x(r), v.safe, verdict)
	}
	sb.WriteString("\n\"adopt\" means: faster by more than the noise (10 %) on this run and safe for the daemon as configured by " +
		"default. The daemon's command is indexer.command, so an operator can adopt a flag today; changing " +
		"indexer.DefaultCommand is the daemon's decision, not this tool's (one run at one size is evidence, not proof: " +
		"re-run `make bench` before changing a default).\n")
	fmt.Fprintf(&sb, "\nperf record of `createrepo_c --update --no-database` (share of samples by shared object; libxml2 parses the "+
		"old metadata and writes the new, libz decompresses the old and compresses the new, the kernel share is file "+
		"I/O, stat and directory reads, librpm reads only the new package):\n\n```\n%s\n```\n\nstrace -c -f of the same run (system "+
		"calls by time):\n\n```\n%s\n```\n", a.perfDSO, a.straceC)
	return sb.String()
}

var _ = time.Second
