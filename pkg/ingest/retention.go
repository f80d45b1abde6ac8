package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// Retention: after an upload is created, older builds of its name and arch in its repositories are removed by the
// repository's rule, and PlanRetention shows what the rules would remove now (the dry run). Builds are ordered by
// rpm's own comparison of epoch, version and release, read from the headers of the stored files; their age is
// the file's mtime, which is the upload time (placement never sets it back).

// Retention is the rule of one repository: a build goes only when it is beyond the newest KeepVersions builds of
// its name and arch AND its file is older than KeepDays days. Zero puts no limit on that axis, so with one key set
// only that one applies, and the zero Retention keeps every build. The newest build always stays.
type Retention struct {
	KeepVersions int
	KeepDays     int
}

// Active reports whether the rule can remove anything.
func (r Retention) Active() bool { return r.KeepVersions > 0 || r.KeepDays > 0 }

// RetentionOptions configure retention (Options.Retention). The zero value keeps every build.
type RetentionOptions struct {
	// Policy returns the rule of a repository, given its path relative to TopDir, slash-separated ("9/x86_64",
	// "stable/9/x86_64"). Nil keeps every build everywhere. It must be safe for concurrent use.
	Policy func(repoRel string) Retention
}

// Retention also uses Options.Locate: the dry run filters with it, and a noarch package's copies in the sibling
// arches of one channel and OS release are judged together. Without it, a filter value must equal one of the
// path's segments, and each repository is judged on its own.

// RetentionFilter selects repositories for PlanRetention; an empty field matches every repository.
type RetentionFilter struct {
	Channel, OSRelease, Arch string
}

// RetentionPlan is what the rule of one repository would remove now.
type RetentionPlan struct {
	Repo         string           `json:"repo"` // relative to TopDir, slash-separated
	KeepVersions int              `json:"keep_versions"`
	KeepDays     int              `json:"keep_days"`
	Prune        []PruneCandidate `json:"prune"`             // oldest builds last; empty when nothing would go
	Skipped      []string         `json:"skipped,omitempty"` // files that could not be read, never removed: "path: why"
}

// PruneCandidate is one file a retention rule would remove, and why.
type PruneCandidate struct {
	Path       string    `json:"path"` // relative to TopDir, slash-separated
	NEVRA      string    `json:"nevra"`
	Rank       int       `json:"rank"`        // 1 is the newest build of its name and arch
	UploadedAt time.Time `json:"uploaded_at"` // the file's mtime (the newest of a noarch build's copies)
	Reasons    []string  `json:"reasons"`     // one per limit it is past
}

// storedFile is one package file in a repository, identified from its headers.
type storedFile struct {
	repo  string // absolute repository directory
	path  string // absolute file path
	pkg   *rpmmeta.Package
	mtime time.Time
}

// build is one version of a name and arch across a group of repositories: the files rpm considers the same
// epoch, version and release (a noarch build has one copy per arch).
type build struct {
	pkg   *rpmmeta.Package // the identity of its first file
	files []storedFile
	mtime time.Time // the newest of its files: a copy that is still young keeps the build
}

// verdict is a build the rule removes, with its rank (1 = newest) and the reasons.
type verdict struct {
	b       *build
	rank    int
	reasons []string
}

// nameArch keys the builds of one package name and arch.
type nameArch struct{ name, arch string }

// compareEVR orders two packages as rpm does.
func compareEVR(a, b *rpmmeta.Package) int {
	return rpmmeta.CompareEVR(epochText(a.Epoch), a.Version, a.Release, epochText(b.Epoch), b.Version, b.Release)
}

// epochText is the epoch as CompareEVR takes it: "" when the header has none.
func epochText(e *uint32) string {
	if e == nil {
		return ""
	}
	return strconv.FormatUint(uint64(*e), 10)
}

// readRepo identifies the packages in repo's Packages/ whose file names start with prefix ("" for all), by name and
// arch, through the tree (List, Stat, Open). Only stored packages named *.rpm are read, never dot-files (ours, or
// half-written ones) or what Stat refuses (fs: symbolic links, non-regular files). A file that cannot be read is
// reported in skipped and never removed: without its version it cannot be ordered.
func (in *Ingester) readRepo(ctx context.Context, repo, prefix string) (stock map[nameArch][]storedFile, skipped []string, err error) {
	rel := in.rel(repo)
	entries, err := in.tree.List(ctx, rel)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", rel, err)
	}
	stock = map[nameArch][]storedFile{}
	for _, e := range entries {
		name := e.Name
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".rpm") || !strings.HasPrefix(name, prefix) {
			continue
		}
		sf, err := in.identify(ctx, repo, tree.Ref{Repo: rel, Name: name})
		if errors.Is(err, tree.ErrNotFound) || errors.Is(err, tree.ErrInvalid) {
			continue // removed meanwhile (another upload's retention, a delete), or not a stored package
		}
		if err != nil {
			skipped = append(skipped, name+": "+err.Error())
			continue
		}
		k := nameArch{sf.pkg.Name, sf.pkg.FileArch()}
		stock[k] = append(stock[k], sf)
	}
	return stock, skipped, nil
}

// localFile is an Object backed by a local open file (fstree's): its headers are read in place.
type localFile interface{ LocalFile() *os.File }

// identify reads one stored package's identity and mtime. rpmmeta reads headers from an *os.File only: an Object
// that is not a local file is copied to a temporary file first.
func (in *Ingester) identify(ctx context.Context, repo string, ref tree.Ref) (storedFile, error) {
	if _, err := in.tree.Stat(ctx, ref); err != nil {
		return storedFile{}, err
	}
	obj, err := in.tree.Open(ctx, ref)
	if err != nil {
		return storedFile{}, err
	}
	defer obj.Close()
	var f *os.File
	if lf, ok := obj.(localFile); ok {
		f = lf.LocalFile()
	} else {
		tmp, err := os.CreateTemp("", "rpm-ingestd-retention-*.rpm")
		if err != nil {
			return storedFile{}, err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		if _, err := io.Copy(tmp, obj); err != nil {
			return storedFile{}, fmt.Errorf("read %s: %w", ref, err)
		}
		f = tmp
	}
	pkg, err := rpmmeta.Identify(f)
	if err != nil {
		return storedFile{}, err
	}
	return storedFile{repo: repo, path: filepath.Join(repo, "Packages", ref.Name), pkg: pkg, mtime: obj.Stamp().ModTime}, nil
}

// builds groups files into builds, newest first. Files that rpm orders as equal are one build, even if their
// names differ (a copy made by hand, "1.0" against "1.00"): keep_versions counts versions, not files.
func builds(files []storedFile) []*build {
	files = slices.Clone(files)
	slices.SortStableFunc(files, func(a, b storedFile) int { return -compareEVR(a.pkg, b.pkg) })
	var out []*build
	for _, f := range files {
		if n := len(out); n > 0 && compareEVR(out[n-1].pkg, f.pkg) == 0 {
			b := out[n-1]
			b.files = append(b.files, f)
			if f.mtime.After(b.mtime) {
				b.mtime = f.mtime
			}
			continue
		}
		out = append(out, &build{pkg: f.pkg, files: []storedFile{f}, mtime: f.mtime})
	}
	return out
}

// decide applies rule to builds (newest first) at now and returns the builds it removes, oldest last. The newest
// build is never removed, whatever its age.
func decide(bs []*build, rule Retention, now time.Time) []verdict {
	if !rule.Active() {
		return nil
	}
	maxAge := time.Duration(rule.KeepDays) * 24 * time.Hour
	var out []verdict
	for i, b := range bs {
		if i == 0 {
			continue
		}
		rank := i + 1
		beyond := rule.KeepVersions == 0 || rank > rule.KeepVersions
		old := rule.KeepDays == 0 || now.Sub(b.mtime) > maxAge
		if !beyond || !old {
			continue
		}
		var reasons []string
		if rule.KeepVersions > 0 {
			reasons = append(reasons, fmt.Sprintf("beyond keep_versions %d: build %d from the newest", rule.KeepVersions, rank))
		}
		if rule.KeepDays > 0 {
			reasons = append(reasons, fmt.Sprintf("older than keep_days %d: uploaded %s, %d days ago", rule.KeepDays,
				b.mtime.UTC().Format(time.RFC3339), int(now.Sub(b.mtime)/(24*time.Hour))))
		}
		out = append(out, verdict{b: b, rank: rank, reasons: reasons})
	}
	return out
}

// rel returns p relative to TopDir, slash-separated.
func (in *Ingester) rel(p string) string {
	r, err := filepath.Rel(in.opts.TopDir, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}

// rule returns the retention rule of the repository directory repo.
func (in *Ingester) rule(repo string) Retention {
	if in.opts.Retention.Policy == nil {
		return Retention{}
	}
	return in.opts.Retention.Policy(in.rel(repo))
}

// prune applies retention after res was created: in res.Repos (one repository, or every arch of a noarch
// package, judged together so that each arch keeps the same set), the builds of the package's name and arch that
// the rule removes and that are older than the upload are removed. The upload itself, and builds newer than it
// (an older build uploaded late), are never removed by it. Each removal marks its repository dirty, is logged, and
// is listed in res.Pruned; res.Dirty gains its repository. Failures are logged, not returned: the upload is
// placed and stays answered as such, and the next upload of the name tries again.
func (in *Ingester) prune(res *Result) {
	acc := pruneAcc{dirty: res.Dirty, pruned: res.Pruned}
	in.pruneOlder(res.Package, res.Repos, &acc)
	res.Dirty, res.Pruned = acc.dirty, acc.pruned
}

// pruneAcc collects what retention did: the repositories it marked dirty (starting with those already marked)
// and the files it removed, relative to TopDir.
type pruneAcc struct {
	dirty, pruned []string
}

// pruneOlder applies the retention rule of repos (which share channel and OS release) to the builds of p's name
// and file arch older than p, across all of repos together, and reports into acc. Failures are logged.
func (in *Ingester) pruneOlder(p *rpmmeta.Package, repos []string, acc *pruneAcc) {
	rule := in.rule(repos[0]) // the repositories of one upload share channel and OS release, so their rule
	if !rule.Active() {
		return
	}
	log := in.log.With(zap.String("nevra", p.NEVRA()))
	var files []storedFile
	for _, repo := range repos {
		stock, skipped, err := in.readRepo(context.Background(), repo, p.Name+"-")
		if err != nil {
			log.Error("retention: cannot read repository", zap.String("repo", in.rel(repo)), zap.Error(err))
			return // judging noarch copies from only some arches could split their sets
		}
		for _, s := range skipped {
			log.Warn("retention: unreadable package kept", zap.String("repo", in.rel(repo)), zap.String("file", s))
		}
		files = append(files, stock[nameArch{p.Name, p.FileArch()}]...)
	}
	for _, v := range decide(builds(files), rule, in.now()) {
		if compareEVR(v.b.pkg, p) >= 0 {
			continue
		}
		for _, f := range v.b.files {
			if err := in.removeStored(acc, f); err != nil {
				log.Error("retention: remove failed", zap.String("path", in.rel(f.path)), zap.Error(err))
				continue
			}
			log.Info("package pruned", zap.String("path", in.rel(f.path)), zap.String("pruned", f.pkg.NEVRA()),
				zap.Int("rank", v.rank), zap.Strings("reasons", v.reasons))
		}
	}
}

// removeStored removes one stored file through the tree, under the lock of its name as placement holds it: the
// repository is marked dirty before the file goes and again after, because an index run may claim the marker in
// between and scan the directory before the removal. A file already gone is not an error and is not listed.
func (in *Ingester) removeStored(acc *pruneAcc, f storedFile) error {
	ref := tree.Ref{Repo: in.rel(f.repo), Name: filepath.Base(f.path)}
	pending, err := in.tree.Remove(context.Background(), []tree.Ref{ref})
	if len(pending) > 0 && !slices.Contains(acc.dirty, f.repo) {
		// Clip: dirty may share its array with the result's Repos, which must not change.
		acc.dirty = append(slices.Clip(acc.dirty), f.repo)
	}
	if errors.Is(err, tree.ErrNotFound) && len(pending) == 0 {
		return nil
	}
	if err != nil {
		return err
	}
	acc.pruned = append(acc.pruned, in.rel(f.path))
	return nil
}

// PlanRetention is the dry run: for every repository under TopDir that f selects, what its rule would remove now
// and why, without removing anything. Repositories are found by walking TopDir for directories holding
// Packages/ (dot-directories are skipped); the result is sorted by repository. Every package's headers are read,
// so it costs a read of a few KiB per package; it stops early when ctx is done. It is safe to call concurrently
// with uploads; what it lists may be gone (or not yet due) by the time an upload prunes.
func (in *Ingester) PlanRetention(ctx context.Context, f RetentionFilter) ([]RetentionPlan, error) {
	repos, err := in.repositories(ctx)
	if err != nil {
		return nil, err
	}
	// Read each repository once; sibling arches are read even when the filter leaves them out, since a noarch
	// build is judged over all of its copies.
	type contents struct {
		stock   map[nameArch][]storedFile
		skipped []string
	}
	read := map[string]*contents{}
	get := func(repo string) (*contents, error) {
		if c, ok := read[repo]; ok {
			return c, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		stock, skipped, err := in.readRepo(ctx, repo, "")
		if err != nil {
			return nil, err
		}
		c := &contents{stock, skipped}
		read[repo] = c
		return c, nil
	}
	now := in.now()
	plans := []RetentionPlan{}
	for _, repo := range repos {
		rel := in.rel(repo)
		if !in.selects(rel, f) {
			continue
		}
		rule := in.rule(repo)
		plan := RetentionPlan{Repo: rel, KeepVersions: rule.KeepVersions, KeepDays: rule.KeepDays, Prune: []PruneCandidate{}}
		c, err := get(repo)
		if err != nil {
			return nil, err
		}
		plan.Skipped = c.skipped
		for _, k := range sortedKeys(c.stock) {
			files := c.stock[k]
			if k.arch == "noarch" {
				files = nil
				for _, sib := range in.siblings(repo, repos) {
					sc, err := get(sib)
					if err != nil {
						return nil, err
					}
					files = append(files, sc.stock[k]...)
				}
			}
			for _, v := range decide(builds(files), rule, now) {
				for _, sf := range v.b.files {
					if sf.repo != repo {
						continue // listed under its own repository
					}
					plan.Prune = append(plan.Prune, PruneCandidate{Path: in.rel(sf.path), NEVRA: sf.pkg.NEVRA(),
						Rank: v.rank, UploadedAt: v.b.mtime.UTC(), Reasons: v.reasons})
				}
			}
		}
		plans = append(plans, plan)
	}
	return plans, nil
}

// sortedKeys returns the keys of m by name, then arch, so the dry run's output is stable.
func sortedKeys(m map[nameArch][]storedFile) []nameArch {
	keys := make([]nameArch, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b nameArch) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.arch, b.arch)
	})
	return keys
}

// selects reports whether the repository at rel matches f: through Locate when set, else by f's values each being
// one of rel's path segments.
func (in *Ingester) selects(rel string, f RetentionFilter) bool {
	if f == (RetentionFilter{}) {
		return true
	}
	if loc := in.opts.Locate; loc != nil {
		ch, osRel, arch, ok := loc(rel)
		return ok && (f.Channel == "" || f.Channel == ch) && (f.OSRelease == "" || f.OSRelease == osRel) &&
			(f.Arch == "" || f.Arch == arch)
	}
	segs := strings.Split(rel, "/")
	for _, want := range []string{f.Channel, f.OSRelease, f.Arch} {
		if want != "" && !slices.Contains(segs, want) {
			return false
		}
	}
	return true
}

// siblings returns the repositories among all whose noarch copies are judged together with repo's: those of the
// same channel and OS release (not SRPMS), repo included. Without Locate, or for a repository it cannot place,
// only repo itself.
func (in *Ingester) siblings(repo string, all []string) []string {
	loc := in.opts.Locate
	if loc == nil {
		return []string{repo}
	}
	ch, osRel, _, ok := loc(in.rel(repo))
	if !ok {
		return []string{repo}
	}
	var out []string
	for _, r := range all {
		c, o, a, ok := loc(in.rel(r))
		if r == repo || (ok && c == ch && o == osRel && a != "SRPMS") {
			out = append(out, r)
		}
	}
	return out
}

// repositories lists the tree's repositories (tree.Tree.Repos; on fs the directories holding Packages/, without
// descending into dot-directories, Packages/ or repodata/) as absolute directories, sorted.
func (in *Ingester) repositories(ctx context.Context) ([]string, error) {
	rels, err := in.tree.Repos(ctx)
	if err != nil {
		return nil, fmt.Errorf("find repositories: %w", err)
	}
	repos := make([]string, 0, len(rels))
	for _, rel := range rels {
		repos = append(repos, in.abs(rel))
	}
	slices.Sort(repos)
	return repos, nil
}
