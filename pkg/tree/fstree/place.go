package fstree

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rpm-ingestd/rpm-ingestd/internal/durable"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// unit is one file to place: its staged name (on the top's filesystem, outside every repository), its sha256,
// and where it goes.
type unit struct {
	staged *staged // its name, or only its open file (lazy staging); its identity: a new name linked to it is this inode
	sum    string
	refs   []tree.Ref
}

// outcome is what placeUnits did: the Status, and the repositories (relative) it recorded pending changes for,
// which the caller must publish also when placeUnits fails.
type outcome struct {
	status tree.Status
	dirty  []string
}

// Place places every unit, all or nothing as far as the filesystem allows. In order:
//  1. under the locks of all their file names, every target is judged (one conflict refuses everything) and
//     every repository is prepared: Packages/ created durably and marked dirty. A failure here places nothing;
//  2. new names are linked in; if one fails (no space, no inodes), every link this call made is removed again;
//  3. the new links are made durable, and only then are existing files replaced (overwrite), by renames of
//     staged names that cannot run out of space;
//  4. every marker is re-asserted, because an index run may have claimed and cleared it between 1 and 2.
func (t *Tree) Place(ctx context.Context, units []tree.Unit, opts tree.PlaceOptions) (tree.Placed, error) {
	us := make([]unit, len(units))
	names := make([]string, len(units))
	for i, u := range units {
		s, ok := u.Staged.(*staged)
		if !ok || s.t != t {
			return tree.Placed{}, fmt.Errorf("%w: %T was not staged by this tree", tree.ErrInvalid, u.Staged)
		}
		us[i] = unit{staged: s, sum: u.SHA256}
		for _, repo := range u.Repos {
			ref := tree.Ref{Repo: repo, Name: u.Name}
			if err := checkRef(ref); err != nil {
				return tree.Placed{}, err
			}
			us[i].refs = append(us[i].refs, ref)
		}
		names[i] = u.Name
	}
	if err := ctx.Err(); err != nil {
		return tree.Placed{}, err
	}
	var out outcome
	err := t.placeUnits(us, names, &out, opts)
	return tree.Placed{Status: out.status, Pending: out.dirty}, err
}

func (t *Tree) placeUnits(units []unit, names []string, out *outcome, opts tree.PlaceOptions) error {
	unlock, err := t.locks.lockAll(names)
	if err != nil {
		return classify(err, "lock package name")
	}
	defer unlock()

	// Judge every target before touching any, so a refused noarch package (or one refused file of a promoted
	// build) is placed nowhere; each stored file is hashed once, here.
	//
	// Except for the commonest placement, one file into one repository whose dirty marker exists already
	// (markedAlready; issue 20): there the target is not looked at first (an open that fails with ENOENT for
	// every new upload). Its link (if-absent) judges it instead: EEXIST makes link() look at and judge the
	// stored file exactly as the pre-check would have, and nothing else has been touched yet. There is nothing to
	// keep all-or-nothing with one target, and prepare has nothing to write: the marker is there, as durable as
	// MarkDirty leaves it, before the link, which is all MarkDirty's no-op asks. A marker absent (the first upload
	// after a publish) or any other placement takes the judged path, unchanged. A conflict on the fast path
	// reports no pending repository, as the judged path's refusal does: it recorded nothing.
	fast := len(units) == 1 && len(units[0].refs) == 1 && t.markedAlready(units[0].refs[0].Repo)
	targets := make([][]target, len(units))
	var repos, dsts []string
	for i, u := range units {
		for _, ref := range u.refs {
			tg := target{ref: ref, dst: t.pkgPath(ref)}
			if !fast {
				if tg, err = stored(ref, tg.dst); err != nil {
					return err
				}
				if err := judge(tg, u.sum, opts.Overwrite); err != nil {
					return err
				}
			}
			targets[i] = append(targets[i], tg)
			repos, dsts = append(repos, ref.Repo), append(dsts, tg.dst)
		}
	}
	if err := t.prepare(repos, dsts, out, fast); err != nil {
		return err
	}
	pls := make([]*placement, len(units))
	for i, u := range units {
		pls[i] = &placement{t: t, s: u.staged, sum: u.sum, overwrite: opts.Overwrite}
	}
	defer func() {
		for _, pl := range pls {
			pl.removeTmps()
		}
	}()
	undo := func() {
		for _, pl := range pls {
			pl.undo()
		}
	}
	for i, pl := range pls {
		for _, tg := range targets[i] {
			if tg.exists && tg.sum != pl.sum { // judged above: overwrite is on
				if err := pl.addReplacement(tg); err != nil {
					return err
				}
			}
		}
	}
	out.status = tree.Present
	for i, pl := range pls {
		for _, tg := range targets[i] {
			if !tg.exists {
				if err := pl.link(tg, out); err != nil {
					undo()
					if ee := (*tree.ExistsError)(nil); fast && errors.As(err, &ee) {
						out.status, out.dirty = "", nil // refused before anything was done, as by the judged path
					}
					return err
				}
			}
		}
	}
	// Every new link durable and every replacement's mtime set before the first rename: up to here all of it
	// can still be undone.
	for _, pl := range pls {
		if err := pl.syncMade(); err != nil {
			undo()
			return err
		}
	}
	for _, pl := range pls {
		if err := pl.retime(); err != nil {
			undo()
			return err
		}
	}
	if opts.Made != nil {
		// Each made name is the staged inode (a link: Stage took its identity after its last change, the fsync)
		// or the copy that link looked at after making it. A unit that also replaces files is left out: retime
		// set a new mtime on its staged inode, which its links share.
		for _, pl := range pls {
			if len(pl.olds) > 0 {
				continue
			}
			for _, m := range pl.made {
				opts.Made(m.ref, stampOf(m.fi))
			}
		}
	}
	if opts.Commit != nil {
		status := out.status
		for _, pl := range pls {
			if len(pl.olds) > 0 {
				status = tree.Replaced
			}
		}
		if err := opts.Commit(status); err != nil {
			undo()
			out.status = "" // nothing was kept
			return fmt.Errorf("%w: %w", tree.ErrAborted, err)
		}
	}
	for _, pl := range pls {
		if err := pl.replace(out); err != nil {
			return err
		}
	}
	// Re-assert the markers: a run that claimed one after prepare may have scanned Packages/ before our links
	// and cleared it. A marker seen now is claimed only by a later run, whose scan then sees the package.
	return t.markRepos(out.dirty)
}

// prepare creates each target's Packages/ durably and marks its repository dirty (unless marked: the caller saw
// the marker), recording it in out.dirty. A Packages/ this tree has already made sure of is not looked at again
// (t.ready): link recreates one removed since when the link fails for want of it.
func (t *Tree) prepare(repos, dsts []string, out *outcome, marked bool) error {
	for _, dst := range dsts {
		if err := t.ensurePackages(filepath.Dir(dst)); err != nil {
			return err
		}
	}
	for _, repo := range repos {
		if !slices.Contains(out.dirty, repo) {
			out.dirty = append(out.dirty, repo)
		}
	}
	if marked {
		return nil
	}
	return t.markRepos(out.dirty)
}

// markedAlready reports whether repo's dirty marker exists, where marking is MarkDirty's (which then does nothing
// but this very lstat).
func (t *Tree) markedAlready(repo string) bool {
	if !t.plainMarker {
		return false
	}
	var st unix.Stat_t // unix.Lstat: os.Lstat would allocate the FileInfo
	return unix.Lstat(t.RepoDir(repo)+string(filepath.Separator)+DirtyMarker, &st) == nil
}

// ensurePackages creates the Packages/ directory dir durably (durable.MkdirAll), once per directory for the life
// of the tree: every later call returns at once, without the stat each upload would otherwise pay.
func (t *Tree) ensurePackages(dir string) error {
	if _, ok := t.ready.Load(dir); ok {
		return nil
	}
	if err := durable.MkdirAll(dir, t.SyncDir); err != nil {
		return classify(err, "create repository directory")
	}
	t.ready.Store(dir, struct{}{})
	return nil
}

// markRepos records a pending change for every repository of repos.
func (t *Tree) markRepos(repos []string) error {
	for _, repo := range repos {
		if err := t.markDirty(t.RepoDir(repo)); err != nil {
			return classify(err, "mark repository dirty")
		}
	}
	return nil
}

// placement is the filesystem work of one unit after its targets are judged: the steps that need space (new
// links, staged names for replacements) come first and are undone together if one fails; the renames that
// replace existing files come last and need none.
type placement struct {
	t         *Tree
	s         *staged // its fi is the staged file's identity (nil: look at each new name)
	sum       string
	overwrite bool
	made      []madeLink // new names linked into the tree by this unit
	olds      []target   // files to replace (overwrite), parallel to tmps
	tmps      []string   // staged names, each renamed over its old file
}

// madeLink is a name placement created, with the identity of the file it created, so undo removes only that.
type madeLink struct {
	ref tree.Ref
	dst string
	fi  os.FileInfo
}

// addReplacement stages a name for replacing tg. A lazily staged file gets its staging name here (ensureName):
// retime and the copy fallback work on that name.
func (pl *placement) addReplacement(tg target) error {
	if err := pl.t.ensureName(pl.s); err != nil {
		return err
	}
	tmp := pl.t.stagingName("replace")
	if err := pl.t.Link(pl.s.name, tmp); err != nil {
		return classify(err, "stage package")
	}
	pl.olds, pl.tmps = append(pl.olds, tg), append(pl.tmps, tmp)
	return nil
}

// link creates tg.dst as a new name for the unit's bytes. A name that appeared meanwhile (another process sharing
// the tree, or an admin) is judged like any stored file, and replaced if it differs and overwrite is on.
func (pl *placement) link(tg target, out *outcome) error {
	copied, err := pl.linkNew(tg.dst)
	if errors.Is(err, fs.ErrNotExist) {
		// Packages/ was removed since prepare last made sure of it (t.ready): make it again, durably, and retry.
		pl.t.ready.Delete(filepath.Dir(tg.dst))
		if err = pl.t.ensurePackages(filepath.Dir(tg.dst)); err != nil {
			return err
		}
		copied, err = pl.linkNew(tg.dst)
	}
	if errors.Is(err, fs.ErrExist) {
		if tg, err = stored(tg.ref, tg.dst); err != nil {
			return err
		}
		if err := judge(tg, pl.sum, pl.overwrite); err != nil {
			return err
		}
		if tg.sum == pl.sum {
			return nil
		}
		return pl.addReplacement(tg)
	}
	if err != nil {
		return classify(err, "place package")
	}
	// A link is the staged inode, whose identity Stage took; a copy is a new one.
	fi := pl.s.fi
	if copied || fi == nil {
		if fi, err = os.Lstat(tg.dst); err != nil {
			return err
		}
	}
	pl.made = append(pl.made, madeLink{ref: tg.ref, dst: tg.dst, fi: fi})
	out.status = tree.Created
	return nil
}

// linkNew links dst, which must not exist, to the unit's bytes: from the staged name (linkOrCopy), or, for a file
// staged lazily, straight from its descriptor. There only EXDEV (dst on another mount) and ENOENT with the file
// left without any name (nlink 0: a descriptor of a removed file cannot be linked) fall back to a staging name
// (a copy where needed) and linkOrCopy from it; any other error, like EEXIST, ENOSPC or ENOENT for a missing
// Packages/, is the caller's, exactly as for a staged name.
func (pl *placement) linkNew(dst string) (copied bool, err error) {
	s := pl.s
	if s.name == "" {
		err = pl.t.Link(fdPath(s.file), dst)
		switch {
		case errors.Is(err, syscall.EXDEV):
		case errors.Is(err, fs.ErrNotExist) && unlinked(s.file):
		default:
			return false, err
		}
		if err := pl.t.ensureName(s); err != nil {
			return false, err
		}
	}
	return pl.t.linkOrCopy(s.name, dst, s.size)
}

// unlinked reports whether f's file has no name left.
func unlinked(f *os.File) bool {
	var st unix.Stat_t
	return unix.Fstat(int(f.Fd()), &st) == nil && st.Nlink == 0
}

// linkOrCopy links staged to dst, which must not exist. Where dst is on another filesystem than the staging
// directory (a channel or repository mounted on its own), it copies the bytes into a hidden name beside dst's
// Packages/ (createrepo_c indexes only *.rpm names there), fsyncs them, and links that in: the name still
// appears whole or not at all, and an existing one is never replaced.
func (t *Tree) linkOrCopy(staged, dst string, size int64) (copied bool, err error) {
	err = t.Link(staged, dst)
	if !errors.Is(err, syscall.EXDEV) {
		return false, err
	}
	tmp := filepath.Join(filepath.Dir(filepath.Dir(dst)), fmt.Sprintf(".rpm-ingestd-copy-%d-%d", os.Getpid(), t.seq.Add(1)))
	if err := copyFile(staged, tmp, size); err != nil {
		return true, err
	}
	defer os.Remove(tmp)
	return true, t.Link(tmp, dst)
}

// undo removes the links this unit made; each is checked to still be ours, never what someone put there since.
func (pl *placement) undo() {
	for _, m := range pl.made {
		if fi, err := os.Lstat(m.dst); err == nil && os.SameFile(fi, m.fi) {
			os.Remove(m.dst)
			pl.t.SyncDir(filepath.Dir(m.dst))
		}
	}
	pl.made = nil
}

// syncMade makes the new links durable. The fsync of each directory may be shared with concurrent uploads
// (groupSync), but it always starts after this call, so it covers these links.
func (pl *placement) syncMade() error {
	for _, m := range pl.made {
		if err := pl.t.dirSync.Sync(filepath.Dir(m.dst)); err != nil {
			return err
		}
	}
	return nil
}

// retime pushes the staged file's mtime past every file it replaces: createrepo_c --update re-reads a package
// only when its size or mtime changed, and a rebuild can have the same size. One inode: every staged name and
// new link of this unit (for a promotion, the source file's too, which only makes its repository re-read it).
func (pl *placement) retime() error {
	if len(pl.olds) == 0 {
		return nil
	}
	mtime := pl.t.Now()
	for _, tg := range pl.olds {
		if !mtime.After(tg.mtime.Add(time.Second)) {
			mtime = tg.mtime.Add(time.Second)
		}
	}
	return os.Chtimes(pl.s.name, mtime, mtime) // named by addReplacement
}

// replace renames the staged names over the files they replace. A rename that fails leaves a partial
// replacement; the error says so, and out.dirty still makes every repository re-index.
func (pl *placement) replace(out *outcome) error {
	for i, tg := range pl.olds {
		if err := os.Rename(pl.tmps[i], tg.dst); err != nil {
			return fmt.Errorf("replace %s (%d of %d files already replaced): %w", tg.dst, i, len(pl.olds), err)
		}
		pl.tmps[i] = "" // consumed
		out.status = tree.Replaced
		if err := pl.t.SyncDir(filepath.Dir(tg.dst)); err != nil {
			return err
		}
	}
	return nil
}

// removeTmps removes the staged names no rename consumed.
func (pl *placement) removeTmps() {
	for _, tmp := range pl.tmps {
		if tmp != "" {
			os.Remove(tmp)
		}
	}
}

// target is one destination of a placement and what is stored there now.
type target struct {
	ref    tree.Ref
	dst    string
	exists bool
	sum    string    // hex SHA-256 of the stored file, when it exists
	mtime  time.Time // of the stored file
}

// stored looks at dst: whether a file is there, and its SHA-256 and mtime.
func stored(ref tree.Ref, dst string) (target, error) {
	tg := target{ref: ref, dst: dst}
	sum, mtime, err := fileSHA256(dst)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return tg, nil
	case err != nil:
		return tg, err
	}
	tg.exists, tg.sum, tg.mtime = true, sum, mtime
	return tg, nil
}

// judge fails with an *tree.ExistsError when tg holds different bytes and overwriting is off.
func judge(tg target, sum string, overwrite bool) error {
	if tg.exists && tg.sum != sum && !overwrite {
		return &tree.ExistsError{Ref: tg.ref, Stored: tg.sum}
	}
	return nil
}

// fileSHA256 returns the hex SHA-256 and mtime of the file at path.
func fileSHA256(path string) (string, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", time.Time{}, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", time.Time{}, err
	}
	return hex.EncodeToString(h.Sum(nil)), fi.ModTime(), nil
}
