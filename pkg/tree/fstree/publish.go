package fstree

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/rpm-ingestd/rpm-ingestd/internal/durable"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

const (
	// TmpRepodata is createrepo_c's own lock and work directory.
	TmpRepodata = ".repodata"
	// OutputDir is where createrepo_c writes the next generation (--outputdir), to be exchanged with
	// repodata/ in one renameat2(RENAME_EXCHANGE). createrepo_c's own publishing is two renames (repodata →
	// repodata.old.*, then .repodata → repodata) with a moment between them in which a client fetching
	// repomd.xml gets 404.
	OutputDir = ".rpm-ingestd-out"
)

// fsLock is a held flock on <repo>/.rpm-ingestd.lock.
type fsLock struct {
	t    *Tree
	repo string
	fl   *flock.Flock
}

func (l *fsLock) Repo() string                { return l.repo }
func (l *fsLock) Renew(context.Context) error { return nil } // the kernel holds it until Release or death
func (l *fsLock) Release() error {
	// Unlock's error is ignored: it also closes the fd, which releases the lock in any case.
	_ = l.fl.Unlock()
	return nil
}

// TryLock creates the repository's Packages/ if needed (a brand-new repository publishes valid, empty metadata)
// and takes its LockFile without waiting: tree.ErrLocked when another process, or another goroutine of this
// one, holds it.
func (t *Tree) TryLock(_ context.Context, repo string) (tree.Lock, error) {
	if err := checkRepo(repo); err != nil {
		return nil, err
	}
	fl, err := lockRepoDir(t.RepoDir(repo))
	if err != nil {
		return nil, err
	}
	return &fsLock{t: t, repo: repo, fl: fl}, nil
}

// LockRepoDir is TryLock for a repository directory: it returns the function that releases the lock.
func LockRepoDir(repoDir string) (release func(), err error) {
	fl, err := lockRepoDir(repoDir)
	if err != nil {
		return nil, err
	}
	// Unlock's error is ignored: it also closes the fd, which releases the lock in any case.
	return func() { _ = fl.Unlock() }, nil
}

func lockRepoDir(dir string) (*flock.Flock, error) {
	if err := os.MkdirAll(filepath.Join(dir, packagesDir), 0o755); err != nil {
		return nil, fmt.Errorf("create packages dir: %w", err)
	}
	lockPath := filepath.Join(dir, LockFile)
	fl := flock.New(lockPath, flock.SetPermissions(0o644))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s is held", tree.ErrLocked, lockPath)
	}
	return fl, nil
}

// OpenMetadata opens <repo>/repodata/<name>.
func (t *Tree) OpenMetadata(_ context.Context, repo, name string) (tree.Object, error) {
	if err := checkRepo(repo); err != nil {
		return nil, err
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\") {
		return nil, fmt.Errorf("%w: metadata file name %.200q", tree.ErrInvalid, name)
	}
	return openObject(filepath.Join(t.RepoDir(repo), "repodata", name))
}

// work is a publish in the repository directory itself.
type work struct {
	t      *Tree
	lock   *fsLock
	dir    string
	out    string
	listed names     // Packages/ by name and type, as Begin listed it
	mark   time.Time // a change time the filesystem of Packages/ gave after that listing (see BeginRetaining)
	// before is Packages/ with stamps, taken by Begin only when it has no mark (Output on another filesystem).
	before map[string]snapEntry
	pkgs   []tree.Entry
	retain time.Duration // > 0: Publish links superseded metadata younger than this into Output (BeginRetaining)
	// previous is the directory whose repodata/ holds the generation this publish updates when Output was left
	// empty for createrepo_c --update-md-path (BeginFromPublished); "" when Output/repodata is seeded with it.
	previous string
}

func (w *work) Dir() string            { return w.dir }
func (w *work) Output() string         { return w.out }
func (w *work) Packages() []tree.Entry { return w.pkgs }
func (w *work) Incremental() bool      { return false } // Dir is the live repository: every package is there
func (w *work) Close() error           { return os.RemoveAll(w.out) }

// PreviousMetadata names the directory whose repodata/ holds the published generation when BeginFromPublished left
// Output empty: createrepo_c --update must read the previous entries from there (--update-md-path). "" when
// Output/repodata was seeded (or there is no previous generation).
func (w *work) PreviousMetadata() string { return w.previous }

// Publish links the superseded metadata files still within the retention age into Output (BeginRetaining),
// exchanges Output/repodata with the published repodata/ (RENAME_EXCHANGE) and then, with readers already on the
// new generation, lists Packages/ once with a stat of every entry: when it changed since Begin's listing (an
// entry appeared, vanished, or has a change time at or after Begin's mark: a package copied in or replaced by
// hand, or one whose placement found the dirty marker present before the claim and linked its file after Begin
// listed), it records a pending change, so the next publish covers it whatever ConsumePending then removes. The
// same listing gives the Packages' stamps.
func (w *work) Publish(context.Context) error {
	if w.retain > 0 {
		if err := retainOld(w.dir, w.out, w.retain, w.t.Now()); err != nil {
			return err
		}
	}
	if err := Exchange(w.dir, w.out, w.t.log); err != nil {
		return err
	}
	pkgDir := filepath.Join(w.dir, packagesDir)
	after, err := snapshot(pkgDir)
	if err != nil {
		return err
	}
	var changed bool
	if w.before != nil {
		changed = !snapshotsEqual(w.before, after)
		w.fillStamps(w.before)
	} else {
		if changed, err = changedSince(pkgDir, w.listed, after, w.mark); err != nil {
			return err
		}
		w.fillStamps(after)
	}
	if changed {
		return classify(w.t.markDirty(w.dir), "mark repository dirty")
	}
	return nil
}

// fillStamps gives the regular files among the Packages the size and mtime snap has for them (symlinked ones got
// their target's at Begin). A package gone from snap keeps a zero stamp: its metadata is published, its file is
// not there any more, and the change is pending.
func (w *work) fillStamps(snap map[string]snapEntry) {
	for i := range w.pkgs {
		e := &w.pkgs[i]
		if s, ok := snap[e.Name]; ok && s.mode.IsRegular() && e.ModTime.IsZero() {
			e.Size, e.ModTime = s.size, s.modTime
		}
	}
}

// Begin prepares a publish in the repository directory (BeginRetaining with no retention: createrepo_c keeps
// superseded metadata itself, if told to).
func (t *Tree) Begin(ctx context.Context, l tree.Lock) (tree.Work, error) {
	return t.BeginRetaining(ctx, l, 0)
}

// BeginRetaining prepares a publish in the repository directory: it removes a stale .repodata/ left by a killed
// createrepo_c (the lock proves no run of ours owns it), refreshes the mtime of the files the current repomd.xml
// names (so a retention age counts from the moment they are superseded), seeds <repo>/.rpm-ingestd-out/repodata
// with hard links to the current repodata/ and takes that directory's change time as the mark Publish judges
// changes by, then lists Packages/ by name only (the Work's Packages, and the "before" its Publish compares with:
// getdents, no stat per package, which at 50,000 packages was most of the daemon's own part of a publish). The
// Packages' stamps (size, mtime) are known once Publish has run.
//
// With retain > 0 the Work keeps superseded metadata itself, as createrepo_c's --retain-old-md-by-age=<retain>
// would but with hard links (createrepo_c 0.17 runs "cp -r --preserve=all" per retained file, a fork and a full
// copy each: with a generation every half minute, 60 processes per run): only the current generation
// (repomd.xml and the files it names) is seeded, the caller runs createrepo_c without the flag, and Publish links
// every file of the published repodata/ that the new generation does not replace and whose mtime is at most
// retain old into Output first. A repomd.xml that cannot be read seeds every file, as without retention.
func (t *Tree) BeginRetaining(ctx context.Context, l tree.Lock, retain time.Duration) (tree.Work, error) {
	return t.begin(ctx, l, retain, false)
}

// BeginFromPublished is BeginRetaining (retain > 0) for a createrepo_c --update that can read the previous generation
// from the published repodata/ itself (--update-md-path <PreviousMetadata>): Output is left empty instead of seeded.
// createrepo_c then finds no Output/repodata of its own, so at its end it has none to rename aside and remove with
// a forked "rm -r" (createrepo_c 0.17 spawns rm for that: a fork, an exec and a wait per run, a few milliseconds
// on the path to the new metadata), and Begin makes no hard links. The entries it reuses, and so the metadata, are
// the same. Output is seeded as BeginRetaining does when the published repomd.xml names anything but primary,
// filelists and other (and their _db/_zck forms): --keep-all-metadata carries additional metadata (an updateinfo, a
// comps file, modules) only from Output/repodata. Likewise when repomd.xml cannot be read.
func (t *Tree) BeginFromPublished(ctx context.Context, l tree.Lock, retain time.Duration) (tree.Work, error) {
	return t.begin(ctx, l, retain, true)
}

// onlyPackageMetadata reports whether every entry of a repomd.xml is package metadata that createrepo_c --update
// loads through --update-md-path (primary, filelists, other, and the types that start with them, as createrepo_c
// 0.17's cr_locate_metadata sorts them) at a plain repodata/<name>; anything else is what --keep-all-metadata
// keeps, from Output only, and an href elsewhere is left to the seeding's own checks.
func onlyPackageMetadata(files []tree.MetadataFile) bool {
	for _, f := range files {
		if !strings.HasPrefix(f.Type, "primary") && !strings.HasPrefix(f.Type, "filelists") && !strings.HasPrefix(f.Type, "other") {
			return false
		}
		if _, ok := tree.RepodataName(f.Href); !ok {
			return false
		}
	}
	return true
}

func (t *Tree) begin(ctx context.Context, l tree.Lock, retain time.Duration, fromPublished bool) (tree.Work, error) {
	lock, ok := l.(*fsLock)
	if !ok || lock.t != t {
		return nil, fmt.Errorf("%w: lock %T is not this tree's", tree.ErrInvalid, l)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := t.RepoDir(lock.repo)
	stale := filepath.Join(dir, TmpRepodata)
	if _, err := os.Lstat(stale); err == nil {
		if err := os.RemoveAll(stale); err != nil {
			return nil, fmt.Errorf("remove stale %s: %w", stale, err)
		}
		t.log.Warn("removed stale createrepo lock directory", zap.String("repo", dir), zap.String("path", stale))
	}
	// The published repomd.xml, read once for the mtime refresh and the seeding.
	files, readErr := readRepomd(dir)
	mdErr := readErr
	if readErr == nil {
		mdErr = refreshTimes(dir, files, t.Now())
	}
	if mdErr != nil {
		// Not fatal: the worst case is that old metadata is dropped at once, which is createrepo_c's own
		// default behaviour.
		t.log.Warn("cannot refresh metadata mtimes, old metadata may vanish at once", zap.String("repo", dir), zap.Error(mdErr))
	}
	var seed map[string]bool
	var err error
	if retain > 0 {
		seed, err = currentGeneration(files, files != nil) // files is nil only without a repomd.xml
		if readErr != nil {
			err = readErr
		}
		if err != nil {
			t.log.Warn("cannot read the published repomd.xml; seeding every metadata file", zap.String("repo", dir), zap.Error(err))
			seed = nil
		}
	}
	out := filepath.Join(dir, OutputDir)
	// Unseeded: createrepo_c reads the published generation itself (see BeginFromPublished).
	unseeded := fromPublished && retain > 0 && readErr == nil && onlyPackageMetadata(files)
	markDir := filepath.Join(out, "repodata")
	var previous string
	if unseeded {
		if err := os.RemoveAll(out); err != nil {
			return nil, fmt.Errorf("clear %s: %w", out, err)
		}
		if err := os.Mkdir(out, 0o755); err != nil {
			return nil, err
		}
		markDir = out
		if files != nil { // a repomd.xml to load; a repository never published has none
			previous = dir
		}
	} else if err := PrepareOutput(dir, out, seed); err != nil {
		return nil, err
	}
	// The mark: the change time of the directory just made (Output/repodata, or Output when unseeded), before the
	// listing, on the filesystem's own clock. A file of Packages/ changed after the mark (during the listing or
	// later) has a change time at or after it; one changed between the mark and the listing only costs one more run.
	var st unix.Stat_t
	markErr := unix.Stat(markDir, &st)
	pkgDir := filepath.Join(dir, packagesDir)
	if markErr == nil {
		markErr = fineMark(markDir, &st)
	}
	// Names only: createrepo_c needs the --pkglist, not the stamps, and they are taken after the exchange (see
	// Publish), off the time readers wait for the new metadata.
	listed, err := listNames(pkgDir)
	if err != nil {
		return nil, err
	}
	pkgs, err := packageNames(pkgDir, listed)
	if err != nil {
		return nil, err
	}
	w := &work{t: t, lock: lock, dir: dir, out: out, listed: listed, pkgs: pkgs, retain: retain, previous: previous}
	// When Output is on another filesystem than Packages/ (a mount point), the clocks may differ: stat every
	// package now instead, and compare sizes and mtimes after the exchange, as before there was a mark.
	if markErr == nil && st.Dev == listed.dev {
		w.mark = time.Unix(st.Ctim.Unix())
	} else if w.before, err = snapshot(pkgDir); err != nil {
		return nil, err
	}
	return w, nil
}

// fineMark takes the mark, markDir's change time, as a precise one where the filesystem keeps multigrain
// timestamps (Linux 6.13 and later, ext4, xfs, btrfs, tmpfs): it reads markDir's change time, so that the next
// change to it is stamped with the precise clock rather than the clock tick (4 ms here), touches it, and reads it
// again. Every change after that is stamped at least that late (the filesystem never hands out a coarse stamp
// older than a precise one it gave), and a change before it, in the same tick, earlier. With the coarse stamp, a
// package placed in the tick the mark was taken in (an upload answered just before its publish=now run: the
// placement's last step, the unlink of its staging name, sets the file's change time) had the mark's very change
// time, counted as changed since the listing, and left a pending change: a whole second run, or after a restart a
// repository shown dirty that was not. Where timestamps are coarse only, the touch changes nothing: the mark is the
// tick, as before.
func fineMark(markDir string, st *unix.Stat_t) error {
	now := time.Now()
	if err := os.Chtimes(markDir, now, now); err != nil {
		return err
	}
	return unix.Stat(markDir, st)
}

// currentGeneration returns the file names in repodata/ that make up the published generation: repomd.xml and
// the files its entries name (plain repodata/<name> entries only). No repomd.xml (no entries): an empty set.
func currentGeneration(files []tree.MetadataFile, hasRepomd bool) (map[string]bool, error) {
	names := map[string]bool{}
	if hasRepomd {
		names["repomd.xml"] = true
	}
	for _, d := range files {
		name, ok := tree.RepodataName(d.Href)
		if !ok {
			return nil, fmt.Errorf("repomd.xml names %q outside repodata/", d.Href)
		}
		names[name] = true
	}
	return names, nil
}

// retainOld does what --retain-old-md-by-age does, with hard links: every file of the published repodata/ that
// the new generation in out/repodata does not replace and whose mtime is at most age old is linked into
// out/repodata, so it stays fetchable after the exchange. Like createrepo_c 0.17 (cleanup.c), the age is the
// file's mtime; Begin has set the just-superseded generation's to now. repomd.xml and its signature and key are
// never carried: they belong to one generation, and an old signature next to a new repomd.xml breaks clients.
func retainOld(repoDir, out string, age time.Duration, now time.Time) error {
	src, dst := filepath.Join(repoDir, "repodata"), filepath.Join(out, "repodata")
	entries, err := os.ReadDir(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("retain old metadata: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), "repomd.xml") {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("retain old metadata: %w", err)
		}
		if now.Sub(info.ModTime()) > age {
			continue // older than the age: dropped, as createrepo_c drops it
		}
		err = os.Link(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
		if err != nil && !errors.Is(err, fs.ErrExist) { // an existing name is the new generation's own file
			return fmt.Errorf("retain old metadata: %w", err)
		}
	}
	return nil
}

// PrepareOutput makes out/repodata a copy, by hard links, of repoDir/repodata (if any): createrepo_c --update
// reads the previous generation from its output directory, and retains old files from there. Whatever a
// previous, interrupted run left in out is discarded first; the publish lock makes that safe.
//
// With only set, just the files it names are seeded.
func PrepareOutput(repoDir, out string, only map[string]bool) error {
	if err := os.RemoveAll(out); err != nil {
		return fmt.Errorf("clear %s: %w", out, err)
	}
	dst := filepath.Join(out, "repodata")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	src := filepath.Join(repoDir, "repodata")
	entries, err := os.ReadDir(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || only != nil && !only[e.Name()] {
			continue
		}
		if err := os.Link(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return fmt.Errorf("seed %s: %w", out, err)
		}
	}
	return nil
}

// Exchange swaps out/repodata in as repoDir/repodata atomically (renameat2(RENAME_EXCHANGE)), makes that durable
// and removes out, which then holds the old directory (its files that must stay readable were retained, by
// createrepo_c or the indexer, in the new one).
func Exchange(repoDir, out string, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	src, dst := filepath.Join(out, "repodata"), filepath.Join(repoDir, "repodata")
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	switch {
	case errors.Is(err, unix.ENOENT):
		// No repodata/ yet: a plain rename is atomic too.
		err = os.Rename(src, dst)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		// A filesystem without RENAME_EXCHANGE (NFS, old kernels): fall back to createrepo_c's own two
		// renames, with the short window that implies.
		log.Warn("filesystem cannot exchange directories atomically; publishing with two renames",
			zap.String("repo", repoDir), zap.Error(err))
		old := filepath.Join(out, "old")
		if err = os.Rename(dst, old); err == nil || errors.Is(err, fs.ErrNotExist) {
			err = os.Rename(src, dst)
		}
	}
	if err != nil {
		return fmt.Errorf("publish %s: %w", dst, err)
	}
	if err := durable.SyncDir(repoDir); err != nil {
		return err
	}
	return os.RemoveAll(out)
}

// RefreshMetadataTimes sets the mtime of every file named by the current repodata/repomd.xml to now, so that
// --retain-old-md-by-age counts from the moment they are superseded. Contents are untouched; only files inside
// repodata/ are considered. A missing repomd.xml is fine.
func RefreshMetadataTimes(repoDir string, now time.Time) error {
	files, err := readRepomd(repoDir)
	if err != nil {
		return err
	}
	return refreshTimes(repoDir, files, now)
}

// readRepomd returns the data entries of repoDir/repodata/repomd.xml; none when there is no repomd.xml.
func readRepomd(repoDir string) ([]tree.MetadataFile, error) {
	b, err := os.ReadFile(filepath.Join(repoDir, "repodata", "repomd.xml"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	files, err := tree.ParseRepomd(b)
	if err != nil {
		return nil, fmt.Errorf("parse repomd.xml: %w", err)
	}
	return files, nil
}

// refreshTimes is RefreshMetadataTimes for the entries files of the current repomd.xml.
func refreshTimes(repoDir string, files []tree.MetadataFile, now time.Time) error {
	repodata := filepath.Join(repoDir, "repodata")
	var errs []error
	for _, d := range files {
		// Only plain "repodata/<name>" entries: never touch anything a crafted href could point at outside
		// repodata/.
		name, ok := tree.RepodataName(d.Href)
		if !ok {
			continue
		}
		err := os.Chtimes(filepath.Join(repodata, name), now, now)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
