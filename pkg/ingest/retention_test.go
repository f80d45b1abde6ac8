package ingest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
)

// retainEnv is an env whose every repository has rule and whose clock is fixed at now.
func retainEnv(t *testing.T, rule Retention, now time.Time) *env {
	t.Helper()
	e := newEnv(t, func(o *Options) {
		o.Retention.Policy = func(string) Retention { return rule }
	})
	e.in.now = func() time.Time { return now }
	return e
}

// evr is a build's epoch ("" for none), version and release.
type evr struct{ e, v, r string }

func (x evr) String() string {
	s := x.v + "-" + x.r
	if x.e != "" {
		s = x.e + ":" + s
	}
	return s
}

// spec returns the package spec of build x of name and arch.
func (x evr) spec(name, arch string) testrpm.Spec {
	s := testrpm.Spec{Name: name, Version: x.v, Release: x.r, Arch: arch}
	if x.e != "" {
		n, _ := strconv.ParseUint(x.e, 10, 32) // the test tables hold decimal epochs
		e := uint32(n)
		s.Epoch = &e
	}
	return s
}

// putBuild writes build x of name and arch into repo rel's Packages/ as an admin would copy it in, with mtime mt.
func (e *env) putBuild(t *testing.T, rel, name, arch string, x evr, mt time.Time) string {
	t.Helper()
	dir := filepath.Join(e.top, rel, "Packages")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := testrpm.WriteFile(t, dir, x.spec(name, arch))
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
	return p
}

// pkgFiles lists the package files in repo rel, sorted.
func (e *env) pkgFiles(t *testing.T, rel string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.top, rel, "Packages"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ent := range entries {
		out = append(out, ent.Name())
	}
	return out
}

// fileNames returns the canonical file names of builds xs of name and arch, sorted.
func fileNames(name, arch string, xs ...evr) []string {
	var out []string
	for _, x := range xs {
		out = append(out, x.spec(name, arch).FileName())
	}
	slices.Sort(out)
	return out
}

// rpmOrder sorts builds newest first with the real rpm's EVR comparison (rpm.vercmp in its Lua), in one process.
func rpmOrder(t *testing.T, xs []evr) []evr {
	t.Helper()
	rpm, err := exec.LookPath("rpm")
	if err != nil {
		t.Fatalf("rpm is required by this test: %v; install rpm (make deps)", err)
	}
	var lua strings.Builder
	lua.WriteString("%{lua:\nlocal t = {")
	for i, x := range xs {
		fmt.Fprintf(&lua, "{[[%s]], %d},", x, i)
	}
	lua.WriteString("}\ntable.sort(t, function(a, b) return rpm.vercmp(a[1], b[1]) > 0 end)\n")
	lua.WriteString("local r = {}\nfor _, v in ipairs(t) do r[#r+1] = v[2] end\nprint(table.concat(r, ' '))\n}")
	out, err := exec.Command(rpm, "--eval", lua.String()).Output()
	if err != nil {
		t.Fatalf("rpm --eval: %v", err)
	}
	var sorted []evr
	for _, f := range strings.Fields(string(out)) {
		i, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("rpm printed %q", out)
		}
		sorted = append(sorted, xs[i])
	}
	if len(sorted) != len(xs) {
		t.Fatalf("rpm sorted %d of %d builds: %s", len(sorted), len(xs), out)
	}
	return sorted
}

// orderingBuilds are builds whose order turns on every rpmvercmp rule: tilde, caret, numeric against alphabetic,
// leading zeros, multi-digit numbers, epochs and releases. No two are equal to rpm.
var orderingBuilds = []evr{
	{"", "1.0~rc1", "1.el9"}, {"", "1.0~rc2", "1.el9"}, {"", "1.0", "1.el9"}, {"", "1.0", "2.el9"},
	{"", "1.0", "10.el9"}, {"", "1.0^git1", "1.el9"}, {"", "1.0^git2", "1.el9"}, {"", "1.0.1", "1.el9"},
	{"", "1.0a", "1.el9"}, {"", "1.1", "1.el9"}, {"", "1.9", "1.el9"}, {"", "1.10", "1.el9"},
	{"", "1.010.1", "1.el9"}, {"", "2.0b", "1.el9"}, {"", "2.0.0", "1.el9"}, {"", "10", "1.el9"},
	{"1", "0.1", "1.el9"}, {"1", "0.1", "1.1.el9"}, {"2", "0.0.1", "1~beta.el9"}, {"0", "3", "1.el9"},
	{"", "3", "1~pre.el9"}, {"", "20240101", "1.el9"},
}

// TestRetentionOrderingMatchesRPM puts every build but the newest (by the real rpm's order) into the repository
// in random order, uploads the newest, and checks that what remains is exactly the newest keep_versions builds
// by rpm's order, and that the dry run before the upload named exactly the builds rpm ranks beyond them.
func TestRetentionOrderingMatchesRPM(t *testing.T) {
	want := rpmOrder(t, orderingBuilds)
	for _, keep := range []int{1, 3, 7} {
		t.Run(fmt.Sprintf("keep_versions=%d", keep), func(t *testing.T) {
			now := time.Now()
			e := retainEnv(t, Retention{KeepVersions: keep}, now)
			rest := slices.Clone(want[1:])
			rand.New(rand.NewPCG(uint64(keep), 1)).Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
			for _, x := range rest {
				e.putBuild(t, "9/x86_64", "hello", "x86_64", x, now.Add(-time.Hour))
			}

			plans, err := e.in.PlanRetention(context.Background(), RetentionFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(plans) != 1 || plans[0].Repo != "9/x86_64" {
				t.Fatalf("plans = %+v, want one for 9/x86_64", plans)
			}
			var planned []string
			for i, c := range plans[0].Prune {
				planned = append(planned, filepath.Base(c.Path))
				if wantRank := keep + 1 + i; c.Rank != wantRank { // rest[0] (rpm's second) is now the newest
					t.Errorf("candidate %s has rank %d, want %d", c.Path, c.Rank, wantRank)
				}
			}
			if wantPlanned := fileNames("hello", "x86_64", want[1+keep:]...); !equalSorted(planned, wantPlanned) {
				t.Errorf("dry run names %v,\nwant %v", planned, wantPlanned)
			}

			res, err := e.upload(t, testrpm.Build(t, want[0].spec("hello", "x86_64")), false, "")
			if err != nil {
				t.Fatal(err)
			}
			if got, wantLeft := e.pkgFiles(t, "9/x86_64"), fileNames("hello", "x86_64", want[:keep]...); !slices.Equal(got, wantLeft) {
				t.Errorf("left %v,\nwant %v (rpm's order: %v)", got, wantLeft, want)
			}
			if len(res.Pruned) != len(want)-keep {
				t.Errorf("Pruned lists %d files, want %d: %v", len(res.Pruned), len(want)-keep, res.Pruned)
			}
		})
	}
}

func equalSorted(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestRetentionKeepDays runs each combination of the two limits against builds of known ages, with a fake clock.
func TestRetentionKeepDays(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	v1, v2, v3, v4 := evr{"", "1", "1.el9"}, evr{"", "2", "1.el9"}, evr{"", "3", "1.el9"}, evr{"", "4", "1.el9"}
	ages := map[evr]time.Duration{v1: 40 * 24 * time.Hour, v2: 20 * 24 * time.Hour, v3: 5 * 24 * time.Hour}
	tests := []struct {
		name string
		rule Retention
		left []evr
	}{
		{"neither keeps all", Retention{}, []evr{v1, v2, v3, v4}},
		{"keep_versions only", Retention{KeepVersions: 2}, []evr{v3, v4}},
		{"keep_days only", Retention{KeepDays: 10}, []evr{v3, v4}},
		{"both: beyond 2 and older than 30 days", Retention{KeepVersions: 2, KeepDays: 30}, []evr{v2, v3, v4}},
		{"both: beyond 1 and older than 10 days", Retention{KeepVersions: 1, KeepDays: 10}, []evr{v3, v4}},
		{"both: keep_versions protects the old", Retention{KeepVersions: 4, KeepDays: 1}, []evr{v1, v2, v3, v4}},
		{"exactly keep_days old stays", Retention{KeepDays: 20}, []evr{v2, v3, v4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := retainEnv(t, tc.rule, now)
			for x, age := range ages {
				e.putBuild(t, "9/x86_64", "hello", "x86_64", x, now.Add(-age))
			}
			// The upload's own mtime is the real time, after the fake now: it is young by any rule.
			if _, err := e.upload(t, testrpm.Build(t, v4.spec("hello", "x86_64")), false, ""); err != nil {
				t.Fatal(err)
			}
			if got, want := e.pkgFiles(t, "9/x86_64"), fileNames("hello", "x86_64", tc.left...); !slices.Equal(got, want) {
				t.Errorf("left %v, want %v", got, want)
			}
		})
	}
}

// TestRetentionNoarchTogether: a noarch package's copies in every arch are judged as one build, so every arch
// keeps the same set, even when one arch's copy was replaced by hand with a younger file.
func TestRetentionNoarchTogether(t *testing.T) {
	now := time.Now()
	e := retainEnv(t, Retention{KeepVersions: 1, KeepDays: 10}, now)
	old := now.Add(-30 * 24 * time.Hour)
	v1, v2, v3 := evr{"", "1", "1.el9"}, evr{"", "2", "1.el9"}, evr{"", "3", "1.el9"}
	for _, arch := range []string{"x86_64", "aarch64"} {
		e.putBuild(t, "9/"+arch, "data", "noarch", v1, old)
	}
	e.putBuild(t, "9/x86_64", "data", "noarch", v2, old)
	e.putBuild(t, "9/aarch64", "data", "noarch", v2, now.Add(-time.Hour)) // young in one arch: the build is young

	res, err := e.upload(t, testrpm.Build(t, v3.spec("data", "noarch")), false, "")
	if err != nil {
		t.Fatal(err)
	}
	want := fileNames("data", "noarch", v2, v3)
	for _, arch := range []string{"x86_64", "aarch64"} {
		if got := e.pkgFiles(t, "9/"+arch); !slices.Equal(got, want) {
			t.Errorf("9/%s holds %v, want %v", arch, got, want)
		}
	}
	wantPruned := []string{"9/aarch64/Packages/data-1-1.el9.noarch.rpm", "9/x86_64/Packages/data-1-1.el9.noarch.rpm"}
	if !equalSorted(res.Pruned, wantPruned) {
		t.Errorf("Pruned = %v, want %v", res.Pruned, wantPruned)
	}
}

// TestRetentionNeverNewest: the newest build stays however old it is, and a late upload of an older build
// removes only builds older than itself, never itself or the newer ones.
func TestRetentionNeverNewest(t *testing.T) {
	now := time.Now()
	ancient := now.Add(-365 * 24 * time.Hour)
	v1, v2, v3, v5 := evr{"", "1", "1.el9"}, evr{"", "2", "1.el9"}, evr{"", "3", "1.el9"}, evr{"", "5", "1.el9"}
	e := retainEnv(t, Retention{KeepDays: 1}, now)
	for _, x := range []evr{v1, v2, v5} {
		e.putBuild(t, "9/x86_64", "hello", "x86_64", x, ancient)
	}
	// The dry run: everything but the newest is old enough.
	plans, err := e.in.PlanRetention(context.Background(), RetentionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var planned []string
	for _, c := range plans[0].Prune {
		planned = append(planned, filepath.Base(c.Path))
	}
	if want := fileNames("hello", "x86_64", v1, v2); !equalSorted(planned, want) {
		t.Errorf("dry run names %v, want %v (never the newest)", planned, want)
	}

	res, err := e.upload(t, testrpm.Build(t, v3.spec("hello", "x86_64")), false, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.pkgFiles(t, "9/x86_64"), fileNames("hello", "x86_64", v3, v5); !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
	if want := []string{"9/x86_64/Packages/hello-1-1.el9.x86_64.rpm", "9/x86_64/Packages/hello-2-1.el9.x86_64.rpm"}; !equalSorted(res.Pruned, want) {
		t.Errorf("Pruned = %v, want %v", res.Pruned, want)
	}
}

// TestRetentionScope: only the uploaded name and arch are judged: a name sharing the prefix, another arch, the
// SRPM, another OS release and an unreadable file are left alone; the removals mark the repository dirty after
// the files are gone; an upload that was already present prunes nothing.
func TestRetentionScope(t *testing.T) {
	now := time.Now()
	old := now.Add(-time.Hour)
	e := retainEnv(t, Retention{KeepVersions: 1}, now)
	v1, v2 := evr{"", "1", "1.el9"}, evr{"", "2", "1.el9"}
	e.putBuild(t, "9/x86_64", "hello", "x86_64", v1, old)
	e.putBuild(t, "9/x86_64", "hello-libs", "x86_64", v1, old)
	e.putBuild(t, "9/x86_64", "hello-libs", "x86_64", evr{"", "0.1", "1.el9"}, old)
	e.putBuild(t, "9/x86_64", "hello", "noarch", v1, old)
	e.putBuild(t, "8/x86_64", "hello", "x86_64", evr{"", "1", "1.el8"}, old)
	e.putBuild(t, "9/aarch64", "hello", "aarch64", v1, old)
	garbage := filepath.Join(e.top, "9/x86_64/Packages/hello-0.5-1.el9.x86_64.rpm")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not an rpm "), 50), 0o644); err != nil {
		t.Fatal(err)
	}
	before := e.pkgFiles(t, "9/x86_64")

	data := testrpm.Build(t, v2.spec("hello", "x86_64"))
	res, err := e.upload(t, data, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"9/x86_64/Packages/hello-1-1.el9.x86_64.rpm"}; !slices.Equal(res.Pruned, want) {
		t.Errorf("Pruned = %v, want %v", res.Pruned, want)
	}
	wantLeft := slices.DeleteFunc(append(before, "hello-2-1.el9.x86_64.rpm"), func(s string) bool { return s == "hello-1-1.el9.x86_64.rpm" })
	slices.Sort(wantLeft)
	if got := e.pkgFiles(t, "9/x86_64"); !slices.Equal(got, wantLeft) {
		t.Errorf("9/x86_64 holds %v, want %v", got, wantLeft)
	}
	for _, rel := range []string{"8/x86_64", "9/aarch64"} {
		if got := e.pkgFiles(t, rel); len(got) != 1 {
			t.Errorf("%s holds %v, want its one file untouched", rel, got)
		}
	}
	repo := filepath.Join(e.top, "9/x86_64")
	if !slices.Equal(res.Dirty, []string{repo}) {
		t.Errorf("Dirty = %v, want [%s]", res.Dirty, repo)
	}
	e.mu.Lock()
	last := e.dirty[len(e.dirty)-1]
	e.mu.Unlock()
	if last != repo {
		t.Errorf("last MarkDirty was %s, want %s (re-marked after the removal)", last, repo)
	}

	// The same upload again is Present: nothing more to prune, even though the rule would allow it.
	e.putBuild(t, "9/x86_64", "hello", "x86_64", v1, old)
	res, err = e.upload(t, data, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != Present || len(res.Pruned) != 0 {
		t.Errorf("repeat upload: status %s, pruned %v; want present and nothing pruned", res.Status, res.Pruned)
	}
}

// TestRetentionMarkDirtyFails: when the repository cannot be marked dirty, nothing is removed (the index would
// not learn of it) and the upload still succeeds.
func TestRetentionMarkDirtyFails(t *testing.T) {
	now := time.Now()
	calls := 0
	e := newEnvMark(t, func(o *Options) {
		o.Retention.Policy = func(string) Retention { return Retention{KeepVersions: 1} }
	}, func(string) error {
		calls++
		if calls > 2 { // placement marks twice; retention's marks fail
			return fmt.Errorf("disk full")
		}
		return nil
	})
	e.in.now = func() time.Time { return now }
	v1, v2 := evr{"", "1", "1.el9"}, evr{"", "2", "1.el9"}
	e.putBuild(t, "9/x86_64", "hello", "x86_64", v1, now.Add(-time.Hour))
	res, err := e.upload(t, testrpm.Build(t, v2.spec("hello", "x86_64")), false, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pruned) != 0 {
		t.Errorf("Pruned = %v after MarkDirty failed, want nothing", res.Pruned)
	}
	if got, want := e.pkgFiles(t, "9/x86_64"), fileNames("hello", "x86_64", v1, v2); !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
}

// TestPlanRetention checks the dry run's output: per repository, its rule, the candidates with rank, age and
// reasons, unreadable files, the filters, and that it removes nothing.
func TestPlanRetention(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	e := newEnv(t, func(o *Options) {
		o.Retention.Policy = func(rel string) Retention {
			if strings.HasPrefix(rel, "testing/") {
				return Retention{KeepVersions: 1}
			}
			return Retention{KeepVersions: 2, KeepDays: 7}
		}
		o.Locate = func(rel string) (string, string, string, bool) {
			parts := strings.Split(rel, "/")
			if len(parts) != 3 {
				return "", "", "", false
			}
			return parts[0], parts[1], parts[2], true
		}
	})
	e.in.now = func() time.Time { return now }
	v1, v2, v3 := evr{"", "1", "1.el9"}, evr{"", "2", "1.el9"}, evr{"", "3", "1.el9"}
	for i, x := range []evr{v1, v2, v3} {
		e.putBuild(t, "stable/9/x86_64", "hello", "x86_64", x, now.Add(-time.Duration(30-i)*day))
		e.putBuild(t, "testing/9/x86_64", "hello", "x86_64", x, now.Add(-time.Duration(30-i)*day))
	}
	// noarch: v1 young in aarch64, so it stays in both arches of stable/9.
	e.putBuild(t, "stable/9/x86_64", "data", "noarch", v1, now.Add(-30*day))
	e.putBuild(t, "stable/9/aarch64", "data", "noarch", v1, now.Add(-1*day))
	for _, arch := range []string{"x86_64", "aarch64"} {
		e.putBuild(t, "stable/9/"+arch, "data", "noarch", v2, now.Add(-20*day))
		e.putBuild(t, "stable/9/"+arch, "data", "noarch", v3, now.Add(-10*day))
	}
	if err := os.WriteFile(filepath.Join(e.top, "stable/9/x86_64/Packages/broken-1-1.el9.x86_64.rpm"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := e.treeFiles(t)

	plans, err := e.in.PlanRetention(context.Background(), RetentionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]RetentionPlan{}
	var order []string
	for _, p := range plans {
		got[p.Repo] = p
		order = append(order, p.Repo)
	}
	if want := []string{"stable/9/aarch64", "stable/9/x86_64", "testing/9/x86_64"}; !slices.Equal(order, want) {
		t.Fatalf("repositories %v, want %v", order, want)
	}
	if p := got["stable/9/aarch64"]; len(p.Prune) != 0 || p.KeepVersions != 2 || p.KeepDays != 7 {
		t.Errorf("stable/9/aarch64: %+v, want rule 2/7 and nothing to prune", p)
	}
	sx := got["stable/9/x86_64"]
	if len(sx.Prune) != 1 {
		t.Fatalf("stable/9/x86_64 prunes %+v, want only hello-1", sx.Prune)
	}
	c := sx.Prune[0]
	wantReasons := []string{"beyond keep_versions 2: build 3 from the newest",
		"older than keep_days 7: uploaded 2026-10-31T12:00:00Z, 30 days ago"}
	if c.Path != "stable/9/x86_64/Packages/hello-1-1.el9.x86_64.rpm" || c.NEVRA != "hello-1-1.el9.x86_64" || c.Rank != 3 ||
		!c.UploadedAt.Equal(now.Add(-30*day)) || !slices.Equal(c.Reasons, wantReasons) {
		t.Errorf("candidate %+v, want hello-1 rank 3 with reasons %q", c, wantReasons)
	}
	if len(sx.Skipped) != 1 || !strings.HasPrefix(sx.Skipped[0], "broken-1-1.el9.x86_64.rpm: ") {
		t.Errorf("Skipped = %q, want the broken file", sx.Skipped)
	}
	tx := got["testing/9/x86_64"]
	var names []string
	for _, c := range tx.Prune {
		names = append(names, c.NEVRA)
		if want := []string{"beyond keep_versions 1: build " + strconv.Itoa(c.Rank) + " from the newest"}; !slices.Equal(c.Reasons, want) {
			t.Errorf("%s reasons %q, want %q", c.NEVRA, c.Reasons, want)
		}
	}
	if want := []string{"hello-2-1.el9.x86_64", "hello-1-1.el9.x86_64"}; !slices.Equal(names, want) {
		t.Errorf("testing/9/x86_64 prunes %v, want %v (newest first)", names, want)
	}
	if after := e.treeFiles(t); !slices.Equal(before, after) {
		t.Errorf("the dry run changed the tree:\nbefore %v\nafter  %v", before, after)
	}

	for _, tc := range []struct {
		f    RetentionFilter
		want []string
	}{
		{RetentionFilter{Channel: "testing"}, []string{"testing/9/x86_64"}},
		{RetentionFilter{Arch: "aarch64"}, []string{"stable/9/aarch64"}},
		{RetentionFilter{Channel: "stable", OSRelease: "9", Arch: "x86_64"}, []string{"stable/9/x86_64"}},
		{RetentionFilter{OSRelease: "8"}, nil},
	} {
		plans, err := e.in.PlanRetention(context.Background(), tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var repos []string
		for _, p := range plans {
			repos = append(repos, p.Repo)
		}
		if !slices.Equal(repos, tc.want) {
			t.Errorf("filter %+v: %v, want %v", tc.f, repos, tc.want)
		}
	}
	// A noarch build's copies are judged together also when the filter shows one arch only.
	plans, err = e.in.PlanRetention(context.Background(), RetentionFilter{Arch: "x86_64", Channel: "stable"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range plans[0].Prune {
		if strings.Contains(c.Path, "data-") {
			t.Errorf("%s listed, but its aarch64 copy is young", c.Path)
		}
	}
}

// TestPlanRetentionWithoutLocate: without Locate a filter value must be one of the path's segments, and noarch
// copies are judged per repository.
func TestPlanRetentionWithoutLocate(t *testing.T) {
	now := time.Now()
	e := retainEnv(t, Retention{KeepVersions: 1}, now)
	for _, rel := range []string{"9/x86_64", "9/aarch64", "8/x86_64"} {
		e.putBuild(t, rel, "hello", "noarch", evr{"", "1", "1.el9"}, now)
		e.putBuild(t, rel, "hello", "noarch", evr{"", "2", "1.el9"}, now)
	}
	tests := []struct {
		f    RetentionFilter
		want []string
	}{
		{RetentionFilter{}, []string{"8/x86_64", "9/aarch64", "9/x86_64"}},
		{RetentionFilter{Arch: "x86_64"}, []string{"8/x86_64", "9/x86_64"}},
		{RetentionFilter{OSRelease: "9", Arch: "aarch64"}, []string{"9/aarch64"}},
		{RetentionFilter{Channel: "stable"}, nil},
	}
	for _, tc := range tests {
		plans, err := e.in.PlanRetention(context.Background(), tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var repos []string
		for _, p := range plans {
			repos = append(repos, p.Repo)
			if len(p.Prune) != 1 || p.Prune[0].NEVRA != "hello-1-1.el9.noarch" {
				t.Errorf("%s prunes %+v, want hello-1", p.Repo, p.Prune)
			}
		}
		if !slices.Equal(repos, tc.want) {
			t.Errorf("filter %+v: %v, want %v", tc.f, repos, tc.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.in.PlanRetention(ctx, RetentionFilter{}); err == nil {
		t.Error("PlanRetention with a cancelled context succeeded")
	}
}

// TestBuildsMergesEqual: files rpm orders as equal are one build (keep_versions counts versions), with the newest
// mtime of its files.
func TestBuildsMergesEqual(t *testing.T) {
	t0 := time.Now()
	pkg := func(v string) *rpmmeta.Package {
		return &rpmmeta.Package{Name: "a", Version: v, Release: "1", Arch: "x86_64"}
	}
	files := []storedFile{
		{path: "a", pkg: pkg("1.0"), mtime: t0},
		{path: "b", pkg: pkg("2"), mtime: t0},
		{path: "c", pkg: pkg("1.00"), mtime: t0.Add(time.Hour)},
		{path: "d", pkg: pkg("1_0"), mtime: t0.Add(-time.Hour)},
	}
	bs := builds(files)
	if len(bs) != 2 || len(bs[1].files) != 3 || !bs[1].mtime.Equal(t0.Add(time.Hour)) || bs[0].pkg.Version != "2" {
		t.Fatalf("builds = %d, want [2] and [1.0 1.00 1_0] with the newest mtime", len(bs))
	}
	if v := decide(bs, Retention{KeepDays: 1}, t0.Add(100*24*time.Hour)); len(v) != 1 || v[0].rank != 2 {
		t.Errorf("decide = %+v, want the merged build at rank 2", v)
	}
}

// TestRetentionOnlyOlderThanUpload: an upload removes only builds older than itself. A late upload of an old
// build (a backport) is not removed by its own upload, nor are the newer builds the rule would also allow.
func TestRetentionOnlyOlderThanUpload(t *testing.T) {
	now := time.Now()
	old := now.Add(-time.Hour)
	v := func(n string) evr { return evr{"", n, "1.el9"} }
	tests := []struct {
		name     string
		keep     int
		stored   []evr
		upload   evr
		left     []evr
		numPrune int
	}{
		{"late old upload stays", 2, []evr{v("5"), v("4")}, v("1"), []evr{v("1"), v("4"), v("5")}, 0},
		{"newer beyond the limit stay", 2, []evr{v("5"), v("4"), v("3")}, v("1"), []evr{v("1"), v("3"), v("4"), v("5")}, 0},
		{"older ones go", 1, []evr{v("5"), v("3"), v("2")}, v("4"), []evr{v("4"), v("5")}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := retainEnv(t, Retention{KeepVersions: tc.keep}, now)
			for _, x := range tc.stored {
				e.putBuild(t, "9/x86_64", "hello", "x86_64", x, old)
			}
			res, err := e.upload(t, testrpm.Build(t, tc.upload.spec("hello", "x86_64")), false, "")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := e.pkgFiles(t, "9/x86_64"), fileNames("hello", "x86_64", tc.left...); !slices.Equal(got, want) {
				t.Errorf("left %v, want %v", got, want)
			}
			if len(res.Pruned) != tc.numPrune {
				t.Errorf("Pruned = %v, want %d files", res.Pruned, tc.numPrune)
			}
		})
	}
}

// TestRetentionMarksAroundRemoval: the repository is marked dirty while the pruned file is still there and again
// once it is gone, so an index run that claimed the first mark and scanned before the removal is followed by
// another.
func TestRetentionMarksAroundRemoval(t *testing.T) {
	now := time.Now()
	var victim string
	var seen []bool // whether victim existed at each MarkDirty call
	e := newEnvMark(t, func(o *Options) {
		o.Retention.Policy = func(string) Retention { return Retention{KeepVersions: 1} }
	}, func(string) error {
		if victim != "" {
			_, err := os.Stat(victim)
			seen = append(seen, err == nil)
		}
		return nil
	})
	e.in.now = func() time.Time { return now }
	victim = e.putBuild(t, "9/x86_64", "hello", "x86_64", evr{"", "1", "1.el9"}, now.Add(-time.Hour))
	if _, err := e.upload(t, testrpm.Build(t, evr{"", "2", "1.el9"}.spec("hello", "x86_64")), false, ""); err != nil {
		t.Fatal(err)
	}
	if len(seen) < 2 || !seen[len(seen)-2] || seen[len(seen)-1] {
		t.Errorf("victim present at each MarkDirty: %v; want ..., true (before removing), false (after)", seen)
	}
}
