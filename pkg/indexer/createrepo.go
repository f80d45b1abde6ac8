package indexer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
)

// Names of the files the fs tree keeps in a repository directory (pkg/tree/fstree owns them). None ends in
// ".rpm": createrepo_c indexes hidden *.rpm files too.
const (
	// LockFile is the advisory flock(2) held for a whole run. Anything else
	// that runs createrepo_c on our repositories should take it too.
	LockFile = fstree.LockFile
	// DirtyMarker exists while changes have not been claimed by a run.
	DirtyMarker = fstree.DirtyMarker
	// IndexingMarker is the claimed DirtyMarker; it is removed only after a
	// successful run.
	IndexingMarker = fstree.IndexingMarker
	// tmpRepodata is createrepo_c's own lock and work directory.
	tmpRepodata = fstree.TmpRepodata
	// outputDir is where createrepo_c writes the next generation (--outputdir), to be exchanged with
	// repodata/ in one renameat2(RENAME_EXCHANGE) (fstree.Exchange).
	outputDir = fstree.OutputDir
)

// DefaultKillDelay is how long a cancelled run gets after SIGTERM before it
// is killed; createrepo_c only needs to remove .repodata/.
const DefaultKillDelay = 10 * time.Second

// outputTail is how much of a failed run's combined output is kept.
const outputTail = 2048

// ErrLocked means another process holds the repository's LockFile; the run
// did nothing and is retried.
var ErrLocked = tree.ErrLocked

// DefaultCommand returns the default argv (the repository directory is
// appended at run time). It prefers createrepo_c and falls back to createrepo
// when only that is on PATH (on EL8+ that is createrepo_c under its old name;
// the Python createrepo of EL7 rejects --retain-old-md-by-age and
// --error-exit-val, and the run then fails with that message in the status).
//
// --update reuses the entries of packages whose path, size and mtime did not
// change, so a run costs mostly the new packages.
//
// --error-exit-val makes createrepo_c exit 2 instead of 0 when it skipped an
// unreadable package, so a broken upload shows up as a failed run.
//
// --no-database: measured with createrepo_c 0.17.3 on this 2-core machine,
// 500 tiny rpmpack packages, median of 10 runs (`createrepo_c -q --update
// [--no-database] DIR`, the full case after `rm -rf DIR/repodata`):
//
//	                  full     --update   repodata size
//	with sqlite       0.109 s  0.091 s    204 KiB (3 xml.gz + 3 sqlite.bz2)
//	--no-database     0.058 s  0.044 s     84 KiB (3 xml.gz)
//
// so the databases double the run time and the bytes published, and dnf
// (libsolv) never reads them. EL7 yum still works without them: yum 3.4.3's
// YumPackageSack.populate uses primary_db only when repomd.xml lists it
// (_check_db_version) and otherwise downloads primary.xml and builds the same
// sqlite cache locally with yum-metadata-parser, once per metadata change.
//
// --retain-old-md-by-age=10m: by default createrepo_c deletes the files named
// by the previous repomd.xml at once, so a client that has just read that
// repomd.xml gets 404s. Verified on 0.17.3 with --update (and in its
// cleanup.c, cr_repodata_excludelist_by_age): the option keeps an old file
// only if its *mtime* is at most the age old. So it works when the previous
// generation is recent (all old files were still there after a second run a
// few seconds later), but protects nothing when that generation was written
// more than 10 minutes ago, the usual case for a quiet repository: with the
// old files' mtimes set 1 h back, all of them were gone after the next run
// (TestRealRetainByAgeNeedsFreshMtimes keeps checking this). Createrepo.Run
// therefore resets the mtime of the files named by the current repomd.xml
// just before running, which turns the age into "time since superseded":
// every generation stays fetchable for 10 minutes after the next one is
// published (TestRealCreaterepo: files named by an hour-old repomd.xml
// survive the next run). Alternatives rejected: --retain-old-md=N without
// --compatibility keeps every old file forever; --retain-old-md=1
// --compatibility keeps exactly one old generation (tested), too little when
// two runs happen within one client's download.
func DefaultCommand() []string {
	name := "createrepo_c"
	if _, err := exec.LookPath(name); err != nil {
		if _, err := exec.LookPath("createrepo"); err == nil {
			name = "createrepo"
		}
	}
	return []string{name, "--update", "--no-database", "--error-exit-val", "--retain-old-md-by-age=10m", keepAllMetadata}
}

// keepAllMetadata makes createrepo_c --update carry the previous repomd.xml's additional metadata (an updateinfo,
// a comps group file, modules, added with modifyrepo_c) into the new generation; without it every run drops them.
// Createrepo adds it to any createrepo_c --update command that lacks it, so a configuration written before it
// was in DefaultCommand keeps hand-added metadata too. createrepo_c 0.17 loads the previous metadata only when
// the repository has at least one package: a run that publishes an empty repository drops it.
const keepAllMetadata = "--keep-all-metadata"

// Createrepo is the production Runner: it runs Argv plus the repository
// directory as a child process. It is safe for concurrent use on different
// directories; for one directory the LockFile makes concurrent calls (from
// this or another process) fail with ErrLocked instead of racing.
type Createrepo struct {
	// Argv is the command; the repository directory is appended.
	Argv []string
	// KillDelay is the exec.Cmd.WaitDelay after SIGTERM on cancellation;
	// zero means DefaultKillDelay.
	KillDelay time.Duration
	// Log receives warnings the run recovers from (stale .repodata/ removed,
	// metadata mtimes not refreshed); nil means no logging.
	Log *zap.Logger
	// Signer, if set, signs the new repodata/repomd.xml into repomd.xml.asc
	// before the swap, so both become visible together; nil publishes
	// unsigned metadata (and never an old generation's signature).
	Signer Signer
	// Tree is the repository tree runs publish through, and TopDir the directory its repositories are named
	// relative to: Run(repoDir) publishes the repository filepath.Rel(TopDir, repoDir). A nil Tree means the fs
	// backend on repoDir's parent, one per parent, made on first use (tests, and createrepo runs outside a
	// daemon's tree).
	Tree   tree.Tree
	TopDir string
	// Conflicts, if set, counts (by the "repo" label) each publish that lost to another writer: Publish said
	// tree.ErrConflict (s3: repomd.xml's If-Match failed), and the run redid it from Begin or, after
	// maxConflicts, failed. NewPublishConflicts makes it.
	Conflicts *prometheus.CounterVec
	// now is the time source for the metadata mtime refresh and retention of the fs trees Createrepo makes
	// itself (a test seam).
	now func() time.Time

	ownMu    sync.Mutex
	ownTrees map[string]*fstree.Tree // the fs trees made for a nil Tree, by top directory
}

// maxConflicts bounds how often one run redoes its publish after tree.ErrConflict (another writer published
// since the Work began); after that the run fails and the scheduler retries it with backoff.
const maxConflicts = 3

// retainingTree is a backend whose Work can keep superseded metadata itself (fstree.Tree.BeginRetaining, with hard
// links), so createrepo_c need not copy each retained file.
type retainingTree interface {
	BeginRetaining(ctx context.Context, l tree.Lock, retain time.Duration) (tree.Work, error)
}

// publishedMetadataTree is a backend that can leave Output empty and let createrepo_c --update read the previous
// generation from the published repodata/ (fstree.Tree.BeginFromPublished): no seeding, and createrepo_c then has
// no old Output/repodata to rename aside and remove with a forked "rm -r" at the end of each run. The Work tells,
// through previousMetadataWork, where that generation is; "" means Output was seeded after all.
type publishedMetadataTree interface {
	BeginFromPublished(ctx context.Context, l tree.Lock, retain time.Duration) (tree.Work, error)
}

type previousMetadataWork interface {
	PreviousMetadata() string
}

// readsPrevious tells whether argv is a createrepo_c --update, which takes the previous generation from
// --update-md-path as well as from its output directory.
func readsPrevious(argv []string) bool {
	return filepath.Base(argv[0]) == "createrepo_c" && slices.Contains(argv, "--update")
}

// treeFor returns the tree and repository name that repoDir is.
func (c *Createrepo) treeFor(repoDir string) (tree.Tree, string, error) {
	dir := filepath.Clean(repoDir)
	if c.Tree != nil {
		rel, err := filepath.Rel(filepath.Clean(c.TopDir), dir)
		if err != nil || c.TopDir == "" || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
			return nil, "", fmt.Errorf("%w: repository directory %s is outside the tree %s", tree.ErrInvalid, repoDir, c.TopDir)
		}
		return c.Tree, filepath.ToSlash(rel), nil
	}
	top := filepath.Dir(dir)
	c.ownMu.Lock()
	defer c.ownMu.Unlock()
	if t, ok := c.ownTrees[top]; ok {
		return t, filepath.Base(dir), nil
	}
	if err := os.MkdirAll(top, 0o755); err != nil {
		return nil, "", err
	}
	t, err := fstree.New(fstree.Options{TopDir: top, Log: c.Log})
	if err != nil {
		return nil, "", err
	}
	if c.now != nil {
		t.Now = c.now
	}
	if c.ownTrees == nil {
		c.ownTrees = map[string]*fstree.Tree{}
	}
	c.ownTrees[top] = t
	return t, filepath.Base(dir), nil
}

var _ Runner = (*Createrepo)(nil)

// NewCreaterepo returns a Createrepo running argv (DefaultCommand() if argv
// is empty) with the default kill delay.
func NewCreaterepo(argv []string) *Createrepo {
	if len(argv) == 0 {
		argv = DefaultCommand()
	}
	return &Createrepo{Argv: slices.Clone(argv), KillDelay: DefaultKillDelay}
}

// RunError is a failed command: its exit code (-1 if it was killed by a
// signal or never started) and the tail of its combined output. It is a type
// rather than a string so callers (status pages, metrics, tests) can read
// the exit code without parsing.
type RunError struct {
	Argv     []string
	ExitCode int
	Output   string // last ~2 KiB of stdout+stderr
	Err      error  // *exec.ExitError, a start error, or the ctx cause
}

// Error returns the command line, exit code, cause and output tail in one
// line group, so the scheduler's log entry and status carry everything an
// operator needs.
func (e *RunError) Error() string {
	out := strings.TrimSpace(e.Output)
	if out == "" {
		return fmt.Sprintf("%s: exit code %d: %v", strings.Join(e.Argv, " "), e.ExitCode, e.Err)
	}
	return fmt.Sprintf("%s: exit code %d: %v; output: %s", strings.Join(e.Argv, " "), e.ExitCode, e.Err, out)
}

// Unwrap exposes Err, so errors.Is(err, context.Canceled) and
// errors.As(err, **exec.ExitError) work through a RunError.
func (e *RunError) Unwrap() error { return e.Err }

// Run publishes the repository repoDir is, through the tree (see run). On the fs tree, in order, while holding
// LockFile (non-blocking: ErrLocked if another process has it):
//   - claims the dirty marker (DirtyMarker → IndexingMarker);
//   - Begin: removes a stale .repodata/ left by a killed createrepo_c (it is createrepo_c's own lock and every
//     later run fails while it exists; our lock proves no run of ours owns it), refreshes the mtime of the
//     current metadata files (see DefaultCommand), lists Packages/ by name only (no stat per package) and makes
//     <repoDir>/.rpm-ingestd-out: empty for a createrepo_c --update whose published generation is package
//     metadata alone (it reads that from repodata/ through --update-md-path, see fstree.Tree.BeginFromPublished),
//     otherwise seeded with hard links to the current repodata/ so --update, --keep-all-metadata and the
//     retention of old files work as in place;
//   - runs the command with --outputdir <repoDir>/.rpm-ingestd-out and the --pkglist of that listing; ctx
//     cancellation sends SIGTERM (createrepo_c then removes its work directory itself) and SIGKILL after
//     KillDelay;
//   - drops the previous generation's repomd.xml.asc from the output and, with a Signer, signs the new
//     repomd.xml (a signing failure fails the run and leaves the published metadata as it was);
//   - Publish: links the retained old metadata in, exchanges the new repodata/ with the old one in one atomic
//     rename, so readers see the old or the new generation, never none, and only then stats every package: if
//     Packages/ changed during the run (a file copied in or replaced by hand: an entry appeared or vanished, or its
//     change time is not older than Begin's listing), a new dirty marker keeps the change pending;
//   - on success removes IndexingMarker.
//
// A brand-new repoDir gets Packages/ created so it publishes valid, empty metadata.
func (c *Createrepo) Run(ctx context.Context, repoDir string) error {
	_, err := c.RunListing(ctx, repoDir)
	return err
}

// RunListing is Run that also returns, after a successful run, the packages it indexed: the Work's Packages (the
// --pkglist handed to createrepo_c), as listPackages would list them. The scheduler takes it as the new published
// set instead of listing Packages/ once more.
func (c *Createrepo) RunListing(ctx context.Context, repoDir string) (pkgSet, error) {
	pkgs, err := c.run(ctx, repoDir)
	if err != nil {
		return nil, err
	}
	set := make(pkgSet, len(pkgs))
	for _, e := range pkgs {
		set[packagesDir+"/"+e.Name] = stamp{size: e.Size, mtime: e.ModTime.Unix()}
	}
	return set, nil
}

// run publishes repoDir through the tree: TryLock (tree.ErrLocked: another publisher has it, retried later),
// ClaimPending, then Begin, createrepo_c, sign and Publish, redone from Begin on tree.ErrConflict (at most
// maxConflicts times), and ConsumePending only after a publish. Any failure, tree.ErrLockLost included, leaves
// the claimed changes pending. It returns the packages the publish covered.
func (c *Createrepo) run(ctx context.Context, repoDir string) ([]tree.Entry, error) {
	if len(c.Argv) == 0 {
		return nil, errors.New("createrepo: empty command")
	}
	tr, repo, err := c.treeFor(repoDir)
	if err != nil {
		return nil, err
	}
	// On fs this creates Packages/ too: a brand-new repository publishes valid, empty metadata.
	lock, err := tr.TryLock(ctx, repo)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	claim, err := tr.ClaimPending(ctx, repo)
	if err != nil {
		return nil, err
	}
	if c.Conflicts != nil {
		c.Conflicts.WithLabelValues(repo) // the series exists at 0 from the first run: increase() sees the first conflict
	}
	for conflicts := 0; ; conflicts++ {
		pkgs, err := c.publishOnce(ctx, tr, lock)
		if errors.Is(err, tree.ErrConflict) && c.Conflicts != nil {
			c.Conflicts.WithLabelValues(repo).Inc()
		}
		if errors.Is(err, tree.ErrConflict) && conflicts < maxConflicts {
			c.logger().Warn("another writer published meanwhile; publishing again", zap.String("repo", repoDir),
				zap.String("holder", holderOf(lock)), zap.Int("redo", conflicts+1), zap.Error(err))
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := tr.ConsumePending(ctx, claim); err != nil {
			return nil, err
		}
		return pkgs, nil
	}
}

// publishOnce is one Begin … Publish: createrepo_c on the Work's directory with --outputdir Output and the sorted
// full --pkglist, the signature in Output, then Publish under a renewed lock.
func (c *Createrepo) publishOnce(ctx context.Context, tr tree.Tree, lock tree.Lock) ([]tree.Entry, error) {
	// With retention taken over by the backend, createrepo_c runs without its --retain-old-md-by-age.
	argv, retain, own := c.retention()
	began := time.Now() // before the Work lists Packages/: every package placed by then is in this run
	rt, canRetain := tr.(retainingTree)
	var w tree.Work
	var err error
	pt, fromPublished := tr.(publishedMetadataTree)
	switch {
	case own && fromPublished && readsPrevious(argv):
		w, err = pt.BeginFromPublished(ctx, lock, retain)
	case own && canRetain:
		w, err = rt.BeginRetaining(ctx, lock, retain)
	default:
		argv = c.Argv
		w, err = tr.Begin(ctx, lock)
	}
	if err != nil {
		return nil, err
	}
	defer w.Close()
	if w.Incremental() {
		if argv, err = incrementalArgv(argv); err != nil {
			return nil, err
		}
	}
	extra, err := c.pkglist(argv, w.Output(), w.Packages())
	if err != nil {
		return nil, err
	}
	if pw, ok := w.(previousMetadataWork); ok && pw.PreviousMetadata() != "" {
		extra = append(extra, "--update-md-path", pw.PreviousMetadata())
	}
	if err := c.underLease(ctx, lock, began, func(ctx context.Context) error {
		if err := c.execArgv(ctx, argv, w.Dir(), w.Output(), extra...); err != nil {
			return err
		}
		return c.signOutput(ctx, w.Output())
	}); err != nil {
		return nil, err
	}
	if err := lock.Renew(ctx); err != nil {
		return nil, err
	}
	if err := w.Publish(ctx); err != nil {
		return nil, err
	}
	return w.Packages(), nil
}

// expiringLock is a lock that expires unless renewed (the s3 lease): Remaining is the time left as of the last
// renewal, Holder names this daemon in it.
type expiringLock interface {
	Remaining() time.Duration
	Holder() string
}

func holderOf(l tree.Lock) string {
	if el, ok := l.(expiringLock); ok {
		return el.Holder()
	}
	return ""
}

// underLease runs fn, the createrepo_c run and the signing, logging its start and end with the repository and the
// lock's holder ("createrepo_c run started" / "createrepo_c run ended": the multi-daemon tests check from these
// that no two runs for one repository overlap). The start also says when the run's Work began (began, logged as
// work_began): every package placed before then is in the run's --pkglist. The multi-daemon tests need that too,
// as the run starts only after the Work's listing and downloads. On an expiring lock it renews the lock every
// third of its remaining time meanwhile, so a run longer than the lease TTL keeps it; when a renewal finds the
// lock lost (or the store refuses renewals until less than a quarter is left) fn's context is cancelled,
// createrepo_c gets SIGTERM, and the error is tree.ErrLockLost.
func (c *Createrepo) underLease(ctx context.Context, lock tree.Lock, began time.Time, fn func(context.Context) error) error {
	log := c.logger().With(zap.String("repo", lock.Repo()), zap.String("holder", holderOf(lock)))
	log.Info("createrepo_c run started", zap.Time("work_began", began))
	start := time.Now()
	err := c.keepAlive(ctx, lock, fn)
	log.Info("createrepo_c run ended", zap.Duration("took", time.Since(start)), zap.Error(err))
	return err
}

func (c *Createrepo) keepAlive(ctx context.Context, lock tree.Lock, fn func(context.Context) error) error {
	el, ok := lock.(expiringLock)
	if !ok {
		return fn(ctx)
	}
	// Renewed first: Begin's downloads may have taken a good part of the lease (or all of it: then this finds
	// it lost before createrepo_c runs), and the remaining time right after a renewal is the TTL.
	if err := lock.Renew(ctx); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := make(chan struct{})
	done := make(chan struct{})
	full := el.Remaining()
	go func() {
		defer close(done)
		wait := full / 3
		for {
			select {
			case <-stop:
				return
			case <-runCtx.Done():
				return
			case <-time.After(max(wait, 10*time.Millisecond)):
			}
			err := lock.Renew(runCtx)
			switch {
			case err == nil:
				full = max(full, el.Remaining())
				wait = full / 3
			case errors.Is(err, tree.ErrLockLost):
				cancel(err)
				return
			case el.Remaining() < full/4:
				// The store refuses renewals (down?) and the lease runs out: stop before another holder may
				// take it over.
				cancel(fmt.Errorf("%w: cannot renew the lease: %w", tree.ErrLockLost, err))
				return
			default:
				c.logger().Warn("renew publish lease", zap.String("repo", lock.Repo()), zap.Error(err))
				wait = full / 6
			}
		}
	}()
	err := fn(runCtx)
	close(stop)
	<-done
	if cause := context.Cause(runCtx); err != nil && errors.Is(cause, tree.ErrLockLost) {
		return cause
	}
	return err
}

// errIncremental: the configured command cannot publish a Work that holds only the new packages.
var errIncremental = errors.New("this tree keeps only the new packages locally, which needs createrepo_c --update --skip-stat")

// incrementalArgv is argv for a Work whose directory holds only the new packages: createrepo_c with --update
// --skip-stat, which takes every other entry of the --pkglist from the seeded metadata. Another command cannot.
func incrementalArgv(argv []string) ([]string, error) {
	if filepath.Base(argv[0]) != "createrepo_c" {
		return nil, fmt.Errorf("%w: indexer.command %s", errIncremental, argv[0])
	}
	argv = slices.Clone(argv)
	for _, f := range []string{"--update", "--skip-stat"} {
		if !slices.Contains(argv, f) {
			argv = append(argv, f)
		}
	}
	return argv, nil
}

func (c *Createrepo) logger() *zap.Logger {
	if c.Log == nil {
		return zap.NewNop()
	}
	return c.Log
}

// execArgv runs argv on repoDir, writing into out, with extra arguments before the repository. createrepo_c --update runs get --keep-all-metadata when the
// command lacks it, so errata and groups added with modifyrepo_c survive (see keepAllMetadata).
func (c *Createrepo) execArgv(ctx context.Context, argv []string, repoDir, out string, extra ...string) error {
	update := filepath.Base(argv[0]) == "createrepo_c" && slices.Contains(argv, "--update") && !slices.Contains(argv, keepAllMetadata)
	argv = append(slices.Clone(argv), "--outputdir", out)
	if update {
		argv = append(argv, keepAllMetadata)
	}
	return startTool(ctx, append(append(argv, extra...), repoDir), c.KillDelay, nil)
}

// retentionFlag is createrepo_c's option that keeps superseded metadata files younger than its value.
const retentionFlag = "--retain-old-md-by-age="

// retention decides who keeps the superseded metadata files. createrepo_c 0.17 keeps each one by running
// "cp -r --preserve=all" on it, a fork, an exec and a full copy per file: with a generation published every
// half minute, 20 generations of 3 files are young at once, 60 processes per run. So for createrepo_c with
// --retain-old-md-by-age=<age> (DefaultCommand), the flag is left out and retainOld does the same with hard
// links. It returns the command to run, the age, and whether retainOld must run; an age it cannot read leaves
// the flag to createrepo_c.
func (c *Createrepo) retention() (argv []string, age time.Duration, own bool) {
	if filepath.Base(c.Argv[0]) != "createrepo_c" {
		return c.Argv, 0, false
	}
	for i, a := range c.Argv {
		v, ok := strings.CutPrefix(a, retentionFlag)
		if !ok {
			continue
		}
		age, err := parseAge(v)
		if err != nil {
			return c.Argv, 0, false
		}
		return slices.Delete(slices.Clone(c.Argv), i, i+1), age, true
	}
	return c.Argv, 0, false
}

// parseAge reads createrepo_c's age syntax: a number with an optional unit s, m, h or d (seconds without one).
func parseAge(v string) (time.Duration, error) {
	unit := time.Second
	num := v
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 's':
			num = v[:n-1]
		case 'm':
			unit, num = time.Minute, v[:n-1]
		case 'h':
			unit, num = time.Hour, v[:n-1]
		case 'd':
			unit, num = 24*time.Hour, v[:n-1]
		}
	}
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("age %q: %w", v, err)
	}
	return time.Duration(n) * unit, nil
}

// pkglist hands createrepo_c the packages it is to index, sorted, as --pkglist, instead of letting it walk the
// repository: createrepo_c 0.17 inserts each file its walk finds into a sorted linked list, which is quadratic,
// and at 50,000 packages that is most of a run (10.6 s against 1.4 s with the list; the metadata is the same,
// see BENCHMARKS.md). The list is the Work's Packages, taken once the pending changes were claimed: a package
// placed after that gets the next run either way. Only for createrepo_c (another indexer.command may not know the
// flag); the file lives in out, removed with it.
func (c *Createrepo) pkglist(argv []string, out string, pkgs []tree.Entry) ([]string, error) {
	if filepath.Base(argv[0]) != "createrepo_c" {
		return nil, nil
	}
	size := 0
	for _, e := range pkgs {
		size += len(packagesDir) + len(e.Name) + 2
	}
	// Ascending: the order createrepo_c's list insertion is fast for. Packages is sorted already, and checking
	// that costs a tenth of sorting again (and no copy of the names).
	byName := func(a, b tree.Entry) int { return strings.Compare(a.Name, b.Name) }
	if !slices.IsSortedFunc(pkgs, byName) {
		pkgs = slices.SortedFunc(slices.Values(pkgs), byName)
	}
	b := make([]byte, 0, size)
	for _, e := range pkgs {
		b = append(b, packagesDir+"/"...)
		b = append(b, e.Name...)
		b = append(b, '\n')
	}
	list := filepath.Join(out, "pkglist")
	if err := os.WriteFile(list, b, 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", list, err)
	}
	return []string{"--pkglist", list}, nil
}

// startTool runs argv to its end and turns a failure into a *RunError carrying the tail of its output. Its stdout
// goes to stdout, or with stderr into that tail when stdout is nil. ctx cancellation sends SIGTERM (createrepo_c
// then removes its work directory itself) and SIGKILL killDelay later (DefaultKillDelay if zero).
func startTool(ctx context.Context, argv []string, killDelay time.Duration, stdout io.Writer) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = killDelay
	if cmd.WaitDelay <= 0 {
		cmd.WaitDelay = DefaultKillDelay
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a Ctrl-C meant for the daemon must not abort
		// the run the shutdown flush is waiting for.
		Setpgid: true,
		// If the daemon dies (kill -9), createrepo_c gets SIGTERM and removes
		// its .repodata/ instead of running on unlocked. (Linux delivers it
		// when the forking OS thread exits; Go keeps its threads unless a
		// locked goroutine exits, so that means process death in practice.)
		Pdeathsig: syscall.SIGTERM,
	}
	tail := &tailBuffer{max: outputTail}
	cmd.Stdout, cmd.Stderr = tail, tail
	if stdout != nil {
		cmd.Stdout = stdout
	}
	err := cmd.Run()
	if err == nil {
		return nil
	}
	re := &RunError{Argv: argv, ExitCode: -1, Output: tail.String(), Err: err}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		re.ExitCode = exitErr.ExitCode()
	}
	if cause := context.Cause(ctx); cause != nil {
		re.Err = fmt.Errorf("%w (%w)", cause, err)
	}
	return re
}

// tailBuffer is an io.Writer keeping only the last max bytes written.
type tailBuffer struct {
	max     int
	buf     []byte
	cut     bool // something was dropped
	atStart bool // what was dropped ended with a newline
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	t.buf = append(t.buf, p...)
	if drop := len(t.buf) - t.max; drop > 0 {
		t.atStart = t.buf[drop-1] == '\n'
		t.buf = append(t.buf[:0], t.buf[drop:]...)
		t.cut = true
	}
	return n, nil
}

// String returns the kept bytes, starting at a line boundary when the head
// was cut so the first line is not a fragment.
func (t *tailBuffer) String() string {
	b := t.buf
	if !t.cut {
		return string(b)
	}
	if !t.atStart {
		if i := bytes.IndexByte(b, '\n'); i >= 0 && i < len(b)-1 {
			b = b[i+1:]
		}
	}
	return "..." + string(b)
}
