package indexer

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

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
	// now is the time source for the metadata mtime refresh (a test seam).
	now func() time.Time
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

// Run indexes repoDir. In order, while holding LockFile (non-blocking:
// ErrLocked if another process has it):
//   - removes a stale .repodata/ left by a killed createrepo_c (it is
//     createrepo_c's own lock and every later run fails while it exists; our
//     lock proves no run of ours owns it);
//   - claims the dirty marker (DirtyMarker → IndexingMarker);
//   - refreshes the mtime of the current metadata files (see DefaultCommand);
//   - runs the command with --outputdir <repoDir>/.rpm-ingestd-out, seeded with
//     hard links to the current repodata/ so --update and the retention of
//     old files work as in place; ctx cancellation sends SIGTERM (createrepo_c
//     then removes its work directory itself) and SIGKILL after KillDelay;
//   - drops the previous generation's repomd.xml.asc from the output and, with
//     a Signer, signs the new repomd.xml (a signing failure fails the run and
//     leaves the published metadata as it was);
//   - publishes the new repodata/ by exchanging it with the old one in one
//     atomic rename, so readers see the old or the new generation, never none;
//   - on success removes IndexingMarker, unless Packages/ changed during the
//     run: an upload that saw DirtyMarker already present and moved its file
//     in after the claim may have been missed by the scan, and the marker
//     must then survive until a run that surely saw it.
//
// A brand-new repoDir gets Packages/ created so it publishes valid, empty
// metadata.
func (c *Createrepo) Run(ctx context.Context, repoDir string) error {
	_, err := c.RunListing(ctx, repoDir)
	return err
}

// RunListing is Run that also returns, after a successful run, the packages it indexed: the *.rpm files of the
// listing of Packages/ taken after the marker was claimed (the --pkglist handed to createrepo_c), as listPackages
// would list them. The scheduler takes it as the new published set instead of listing Packages/ once more.
func (c *Createrepo) RunListing(ctx context.Context, repoDir string) (pkgSet, error) {
	before, err := c.run(ctx, repoDir)
	if err != nil {
		return nil, err
	}
	return publishedSet(repoDir, before)
}

func (c *Createrepo) run(ctx context.Context, repoDir string) (map[string]pkgEntry, error) {
	if len(c.Argv) == 0 {
		return nil, errors.New("createrepo: empty command")
	}
	// Creates Packages/ too: a brand-new repository publishes valid, empty metadata.
	release, err := fstree.LockRepoDir(repoDir)
	if err != nil {
		return nil, err
	}
	defer release()

	stale := filepath.Join(repoDir, tmpRepodata)
	if _, err := os.Lstat(stale); err == nil {
		if err := os.RemoveAll(stale); err != nil {
			return nil, fmt.Errorf("remove stale %s: %w", stale, err)
		}
		c.logger().Warn("removed stale createrepo lock directory", zap.String("repo", repoDir), zap.String("path", stale))
	}

	if err := claimMarker(repoDir); err != nil {
		return nil, err
	}
	before, err := snapshotPackages(repoDir)
	if err != nil {
		return nil, err
	}
	if err := c.refreshMetadataTimes(repoDir); err != nil {
		// Not fatal: the worst case is that old metadata is dropped at once,
		// which is createrepo_c's own default behaviour.
		c.logger().Warn("cannot refresh metadata mtimes, old metadata may vanish at once",
			zap.String("repo", repoDir), zap.Error(err))
	}

	out := filepath.Join(repoDir, outputDir)
	// With retention taken over (see retention), only the current generation is seeded: createrepo_c --update
	// reads it, and no other file is there for createrepo_c to copy; retainOld links the old ones afterwards.
	argv, retain, ownRetention := c.retention()
	var seed map[string]bool
	if ownRetention {
		if seed, err = currentGeneration(repoDir); err != nil {
			argv, ownRetention, seed = c.Argv, false, nil // unreadable repomd.xml: createrepo_c keeps what it keeps
		}
	}
	if err := prepareOutput(repoDir, out, seed); err != nil {
		return nil, err
	}
	extra, err := c.pkglist(out, before)
	if err != nil {
		return nil, err
	}
	if err := c.execArgv(ctx, argv, repoDir, out, extra...); err != nil {
		os.RemoveAll(out)
		return nil, err
	}
	if ownRetention {
		if err := c.retainOld(repoDir, out, retain); err != nil {
			os.RemoveAll(out)
			return nil, err
		}
	}
	if err := c.signOutput(ctx, out); err != nil {
		os.RemoveAll(out)
		return nil, err
	}
	if err := c.publish(repoDir, out); err != nil {
		return nil, err
	}

	after, err := snapshotPackages(repoDir)
	if err != nil {
		return nil, err
	}
	if !maps.EqualFunc(before, after, pkgEntry.equal) {
		// Keep IndexingMarker: the scheduler's Trigger for that upload runs
		// us again, and after a crash Recover does.
		return before, nil
	}
	if err := fstree.ConsumeMarker(repoDir); err != nil {
		return nil, err
	}
	// No directory fsync: if the removal is lost in a crash the only effect
	// is one extra run at the next start.
	return before, nil
}

func (c *Createrepo) logger() *zap.Logger {
	if c.Log == nil {
		return zap.NewNop()
	}
	return c.Log
}

// prepareOutput seeds out/repodata with hard links to the published generation (fstree.PrepareOutput).
func prepareOutput(repoDir, out string, only map[string]bool) error {
	return fstree.PrepareOutput(repoDir, out, only)
}

// publish swaps out/repodata in as repoDir/repodata atomically and removes out (fstree.Exchange).
func (c *Createrepo) publish(repoDir, out string) error {
	return fstree.Exchange(repoDir, out, c.logger())
}

// exec runs the command, writing into out, with extra arguments before the repository.
func (c *Createrepo) exec(ctx context.Context, repoDir, out string, extra ...string) error {
	return c.execArgv(ctx, c.Argv, repoDir, out, extra...)
}

// execArgv is exec with argv instead of c.Argv. createrepo_c --update runs get --keep-all-metadata when the
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

// currentGeneration returns the file names in repoDir/repodata that make up the published generation:
// repomd.xml and the files it names (plain repodata/<name> entries only). No repomd.xml: an empty set.
func currentGeneration(repoDir string) (map[string]bool, error) {
	b, err := os.ReadFile(filepath.Join(repoDir, "repodata", "repomd.xml"))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	var md repomd
	if err := xml.Unmarshal(b, &md); err != nil {
		return nil, fmt.Errorf("parse repomd.xml: %w", err)
	}
	names := map[string]bool{"repomd.xml": true}
	for _, d := range md.Data {
		href := d.Location.Href
		name := filepath.Base(href)
		if filepath.Clean(href) != "repodata/"+name || name == "." || name == ".." {
			return nil, fmt.Errorf("repomd.xml names %q outside repodata/", href)
		}
		names[name] = true
	}
	return names, nil
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

// retainOld does what --retain-old-md-by-age does, with hard links: every file of the published repodata/ that
// the new generation in out/repodata does not replace and whose mtime is at most age old is linked into
// out/repodata, so it stays fetchable after the swap. Like createrepo_c 0.17 (cleanup.c), the age is the
// file's mtime; refreshMetadataTimes has set the just-superseded generation's to now.
func (c *Createrepo) retainOld(repoDir, out string, age time.Duration) error {
	src, dst := filepath.Join(repoDir, "repodata"), filepath.Join(out, "repodata")
	entries, err := os.ReadDir(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("retain old metadata: %w", err)
	}
	now := time.Now()
	if c.now != nil {
		now = c.now()
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
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

// pkglist hands createrepo_c the packages it is to index, sorted, as --pkglist, instead of letting it walk the
// repository: createrepo_c 0.17 inserts each file its walk finds into a sorted linked list, which is quadratic,
// and at 50,000 packages that is most of a run (10.6 s against 1.4 s with the list; the metadata is the same,
// see BENCHMARKS.md). The list is what the walk would find, every *.rpm name in Packages/, taken from the
// snapshot the marker protocol already makes: a package linked after it gets the next run either way. Only
// for createrepo_c (another indexer.command may not know the flag); the file lives in out, removed with it.
func (c *Createrepo) pkglist(out string, pkgs map[string]pkgEntry) ([]string, error) {
	if filepath.Base(c.Argv[0]) != "createrepo_c" {
		return nil, nil
	}
	names := make([]string, 0, len(pkgs))
	for name := range pkgs {
		if strings.HasSuffix(name, ".rpm") {
			names = append(names, "Packages/"+name+"\n")
		}
	}
	slices.Sort(names) // ascending: the order createrepo_c's list insertion is fast for
	list := filepath.Join(out, "pkglist")
	if err := os.WriteFile(list, []byte(strings.Join(names, "")), 0o644); err != nil {
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

// claimMarker renames DirtyMarker onto IndexingMarker (fstree.ClaimMarker).
func claimMarker(repoDir string) error { return fstree.ClaimMarker(repoDir) }

// pkgEntry identifies a file in Packages/ well enough to notice an upload.
type pkgEntry struct {
	size    int64
	modTime time.Time
	mode    fs.FileMode // of the entry itself (a symlink is not followed)
}

// snapshotPackages lists Packages/ (name, size, mtime, type). Each entry is stat'ed relative to the open
// directory (fstatat), and a big directory on two goroutines: the listing is taken before createrepo_c starts,
// so at 50,000 packages it is most of the daemon's own part of a run.
func snapshotPackages(repoDir string) (map[string]pkgEntry, error) {
	dir := filepath.Join(repoDir, "Packages")
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	rc, err := d.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	entries := make([]pkgEntry, len(names))
	found := make([]bool, len(names))
	var statErr error
	cerr := rc.Control(func(fd uintptr) {
		stat := func(lo, hi int) error {
			for i := lo; i < hi; i++ {
				var st unix.Stat_t
				err := unix.Fstatat(int(fd), names[i], &st, unix.AT_SYMLINK_NOFOLLOW)
				for err == unix.EINTR {
					err = unix.Fstatat(int(fd), names[i], &st, unix.AT_SYMLINK_NOFOLLOW)
				}
				if err == unix.ENOENT {
					continue // removed meanwhile; the second snapshot sees the change
				}
				if err != nil {
					return &fs.PathError{Op: "lstat", Path: filepath.Join(dir, names[i]), Err: err}
				}
				entries[i], found[i] = pkgEntry{size: st.Size, modTime: time.Unix(st.Mtim.Unix()), mode: fileMode(st.Mode)}, true
			}
			return nil
		}
		if len(names) < parallelStatFrom {
			statErr = stat(0, len(names))
			return
		}
		half := len(names) / 2
		errc := make(chan error, 1)
		go func() { errc <- stat(half, len(names)) }()
		statErr = errors.Join(stat(0, half), <-errc)
	})
	if err := errors.Join(cerr, statErr); err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	m := make(map[string]pkgEntry, len(names))
	for i, name := range names {
		if found[i] {
			m[name] = entries[i]
		}
	}
	return m, nil
}

// parallelStatFrom is the directory size from which snapshotPackages stats on two goroutines.
const parallelStatFrom = 4096

// fileMode is the type part of an fs.FileMode for a stat mode: all snapshotPackages tells apart.
func fileMode(m uint32) fs.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFDIR:
		return fs.ModeDir
	}
	return fs.ModeIrregular
}

// publishedSet turns a snapshot of repoDir's Packages/ into the set listPackages gives: the *.rpm entries that
// are regular files, symlinks by their target (createrepo_c follows them), hidden ones included. Only symlinks
// cost a stat; everything else is in the snapshot already.
func publishedSet(repoDir string, snap map[string]pkgEntry) (pkgSet, error) {
	set := make(pkgSet, len(snap))
	for name, e := range snap {
		if !strings.HasSuffix(name, ".rpm") {
			continue
		}
		size, mtime, mode := e.size, e.modTime, e.mode
		if mode&fs.ModeSymlink != 0 {
			info, err := os.Stat(filepath.Join(repoDir, packagesDir, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue // dangling: createrepo_c skips it too
			}
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", filepath.Join(repoDir, packagesDir), err)
			}
			size, mtime, mode = info.Size(), info.ModTime(), info.Mode()
		}
		if !mode.IsRegular() {
			continue
		}
		set[packagesDir+"/"+name] = stamp{size: size, mtime: mtime.Unix()}
	}
	return set, nil
}

func (e pkgEntry) equal(o pkgEntry) bool {
	return e.size == o.size && e.modTime.Equal(o.modTime)
}

// repomd is the part of repodata/repomd.xml we need.
type repomd struct {
	Data []struct {
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
	} `xml:"data"`
}

// refreshMetadataTimes sets the mtime of every file named by the current repodata/repomd.xml to now
// (fstree.RefreshMetadataTimes), so that the retention of old metadata counts from the moment they are
// superseded (see DefaultCommand).
func (c *Createrepo) refreshMetadataTimes(repoDir string) error {
	now := time.Now()
	if c.now != nil {
		now = c.now()
	}
	return fstree.RefreshMetadataTimes(repoDir, now)
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
