// Package tree is the repository tree as operations, not paths: the one seam between what rpm-ingestd decides
// (ingest's checks and routing, the indexer's scheduling, retention, promotion, deletion, rescan, the registry)
// and where packages and metadata live. Everything above this package names a package by its repository and file
// name and a repository by its path relative to the top of the tree; nothing above it says os.Link, flock or S3.
//
// # Design
//
//   - A repository is named by its slash-separated path relative to the tree's top ("9/x86_64",
//     "stable/9/SRPMS"): the directory under repo.top_dir on fs, the key prefix under <prefix>/ on s3. Its
//     packages are the *.rpm files directly in <repo>/Packages/; its published metadata is <repo>/repodata/.
//   - Bytes enter the tree in two steps. Stage makes the checked upload (an open local file) into something the
//     backend can place cheaply and exactly (fs: a hard link to the same inode in a per-process staging
//     directory; s3: the local file, streamed with its sha256 at PUT time). Place then puts one or more staged
//     files into one or more repositories as one decision: every target is judged first (absent, same bytes,
//     different bytes), one refusal places nothing, new names appear whole or not at all, and a Commit callback
//     runs when nothing but replacements is left, so "what cannot be recorded is not kept" holds on every
//     backend. The 200/409 judgement is the caller's: Place reports Present for same bytes and an *ExistsError
//     carrying the stored sha256 for different bytes (unless Overwrite).
//   - Pending changes are the durable "this repository must be re-published" record (fs: the dirty marker; s3:
//     one pending object per change). Every mutation (Place, Remove) records them BEFORE it changes a package and
//     again after, so a crash anywhere loses no publish and a run that claimed the record mid-change is followed
//     by another. A publish Claims the records it will cover and Consumes them only after it published.
//   - Publishing is a Work: under the repository's publish Lock the backend gives createrepo_c a local
//     directory (fs: the repository itself, with an output directory seeded with the current repodata; s3: the
//     current repodata plus the packages that are new) and then publishes the output atomically (fs:
//     renameat2(RENAME_EXCHANGE); s3: the content-named data files, then repomd.xml.asc, then repomd.xml with
//     If-Match on the ETag the Work started from). Readers see the old generation or the new one, never a
//     repomd.xml naming a file they cannot fetch.
//
// # Errors
//
// Every error a Tree returns either wraps one of the sentinels below (match with errors.Is) or is an internal
// failure (a 500 for the HTTP layer). Errors wrap their cause (a *fs.PathError, an S3 response error), so
// logging an error says what failed where.
//
// # Concurrency
//
// A Tree is safe for concurrent use by many goroutines and, on the same storage, by many processes: every
// guarantee below holds against another daemon sharing the tree, not only inside one process. Each method
// documents what it serialises.
//
// # Durability
//
// A method that returns nil for a mutation has made it durable (fs: the file and its directory entry fsynced; s3:
// the PUT or DELETE acknowledged). A 2xx to an uploader may be sent once Place returned nil, never before.
package tree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Sentinels. Backends wrap them; callers match with errors.Is.
var (
	// ErrExists: a package of that name is stored with different bytes (Place without Overwrite), or the
	// object to create exists. Place returns it as an *ExistsError carrying the stored sha256.
	ErrExists = errors.New("package exists with different content")
	// ErrNotFound: no package (or metadata file, or repository) of that name.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: the storage cannot be reached or refused service for a while (S3 down, timed out, 5xx);
	// nothing was changed that the caller must undo, and retrying later may succeed. The HTTP answer is 503.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrNoSpace: the storage is full (fs: ENOSPC or EDQUOT); nothing was kept.
	ErrNoSpace = errors.New("no space left in the tree")
	// ErrLocked: another holder has the repository's publish lock; TryLock did nothing.
	ErrLocked = errors.New("repository locked by another publisher")
	// ErrLockLost: the lock expired or was taken over (s3) before Renew or Publish; the holder must stop: it
	// must not publish, and another holder redoes its work.
	ErrLockLost = errors.New("publish lock lost")
	// ErrConflict: a conditional change lost a race: the stored object is no longer the one the caller judged
	// (Remove with an expected stamp; Publish when another writer published since the Work began). Nothing was
	// changed; reload and redo, never overwrite.
	ErrConflict = errors.New("changed concurrently")
	// ErrAborted: Place's Commit callback failed; everything Place had created was removed again and nothing
	// was replaced. The error wraps the callback's too.
	ErrAborted = errors.New("placement aborted by its commit")
	// ErrInvalid: a repository path or file name that the tree refuses (empty, absolute, hidden or ".."
	// segments, a name that is not a plain *.rpm): a caller bug or a hostile path, never placed or read.
	ErrInvalid = errors.New("invalid tree path")
)

// ExistsError is Place's refusal of a target holding different bytes: Stored is the sha256 (lowercase hex) of
// what is there. errors.Is(err, ErrExists) holds.
type ExistsError struct {
	Ref    Ref
	Stored string
}

func (e *ExistsError) Error() string {
	return fmt.Sprintf("%s is stored with different content (sha256 %s)", e.Ref, e.Stored)
}

// Is makes errors.Is(err, ErrExists) true.
func (e *ExistsError) Is(target error) bool { return target == ErrExists }

// Ref names one stored package: its repository (relative, slash-separated) and its file name in Packages/.
type Ref struct {
	Repo string // "9/x86_64"
	Name string // "foo-1.0-1.el9.noarch.rpm"
}

// Path is the package's slash-separated path relative to the tree's top: <Repo>/Packages/<Name>.
func (r Ref) Path() string { return r.Repo + "/Packages/" + r.Name }

func (r Ref) String() string { return r.Path() }

// Stamp identifies one stored version of a file.
type Stamp struct {
	Size    int64
	ModTime time.Time // fs: mtime (createrepo_c --update compares it); s3: Last-Modified (1 s resolution)
	// ETag is the backend's version token for conditional changes: s3's ETag; "" on fs, where Remove and
	// Publish are guarded by locks instead.
	ETag string
	// SHA256 is the content's lowercase hex sha256 when the backend knows it without reading the bytes (s3:
	// object metadata written at placement); "" when unknown (fs List and Stat: hashing costs a read).
	SHA256 string
}

// Entry is one package of a repository listing.
type Entry struct {
	Name string // file name in Packages/
	Stamp
}

// Status is what a successful Place did, over all its targets.
type Status string

const (
	Created  Status = "created"  // at least one target was absent and now holds the bytes
	Present  Status = "present"  // every target already held the same bytes: a safe retry
	Replaced Status = "replaced" // different bytes were replaced (Overwrite)
)

// Staged is a file's bytes ready to be placed (Tree.Stage, Tree.StageStored). It is read through ReaderAt or
// File, so the caller inspects exactly the bytes that will be placed. Close forgets it; placed copies stay. A
// Staged is used by one goroutine at a time.
type Staged interface {
	io.ReaderAt
	Size() int64
	// File is a local open file holding exactly the staged bytes, for readers that need an *os.File
	// (rpmmeta.Inspect): Stage's f itself; for StageStored, the stored file (fs) or a local copy (s3). It is
	// closed by Close (StageStored) or stays the caller's (Stage).
	File() *os.File
	Close() error
}

// Unit is one file to place: its staged bytes, their sha256 (lowercase hex, computed by the caller from the
// same bytes), the file name, and the repositories it goes to (a noarch upload: one per arch).
type Unit struct {
	Staged Staged
	SHA256 string
	Name   string
	Repos  []string
}

// PlaceOptions tune one Place.
type PlaceOptions struct {
	// Overwrite replaces different bytes instead of refusing them with an *ExistsError.
	Overwrite bool
	// Commit, when set, is called once every new name is durable and before the first replacement, with the
	// Status the placement will end with. Its error undoes every name Place created (and only those: a name
	// someone else created meanwhile is kept) and fails Place with ErrAborted.
	Commit func(Status) error
	// Made, when set, is told before Commit about each name this Place created (not the ones found present or
	// to be replaced), with the stamp that name has, as far as the backend knows it without asking the storage
	// again (fs: the staged inode's size and mtime, which its new names share). A backend that does not know
	// it (s3) does not call it; the caller then stats the name as before. Issue 20: the package index describes
	// a new upload from this instead of a stat of the file just placed.
	Made func(ref Ref, st Stamp)
}

// Placed is what Place did.
type Placed struct {
	Status Status
	// Pending lists the repositories Place recorded pending changes for, also when Place failed after
	// recording them: the caller must schedule a publish of each.
	Pending []string
}

// StatStager is implemented by a Tree whose Stage can take the caller's stat of f instead of making its own (fs:
// one fstat less per upload, issue 20). fi must come from f's open descriptor (f.Stat), made after the file was
// written, and f must stay unchanged as Stage requires; StageStat is then Stage.
type StatStager interface {
	StageStat(ctx context.Context, f *os.File, fi os.FileInfo) (Staged, error)
}

// Tree is the repository tree. See the package documentation for the contracts every method shares.
type Tree interface {
	// Stage makes the bytes of f, a regular local file the caller has checked, placeable. f must stay unchanged
	// (the caller owns it) until the Staged is closed; fs links f's inode, so later writes to f would show.
	// The Staged is durable only once placed.
	Stage(ctx context.Context, f *os.File) (Staged, error)
	// StageStored stages a stored package (for promotion): the bytes are those of ref at the moment of the
	// call, whatever happens to ref later. ErrNotFound when absent; on fs a symlink or non-regular file is
	// refused as ErrNotFound too, and a symlink may never lead outside the tree.
	StageStored(ctx context.Context, ref Ref) (Staged, error)

	// Place puts every unit into every one of its repositories as one decision (see the package
	// documentation). In order: it takes the placement locks of every unit's name (held against other
	// processes too: two Places sharing a name run one after the other); judges every target (absent, same
	// sha256, different sha256 → *ExistsError unless Overwrite) before touching any; records pending changes
	// for every target repository; creates the absent names (if-absent: a name that appears meanwhile is judged
	// again, never blindly replaced), undoing all of them if one fails; calls Commit; replaces the different
	// ones (Overwrite; on fs their mtime is pushed past the old file's so createrepo_c --update re-reads
	// them); records pending changes again. Placed.Pending is filled as far as it got, also on error.
	// Concurrent Places of the same name with different bytes: exactly one creates it, the others get
	// ErrExists (or Replace, with Overwrite); with the same bytes, one Created and the rest Present.
	Place(ctx context.Context, units []Unit, opts PlaceOptions) (Placed, error)

	// Stat returns the stamp of a stored package; ErrNotFound when there is none, ErrInvalid when something
	// that is not a stored package holds its name (fs: a directory, a device, or a path through a symbolic
	// link: what Remove would refuse; List, which shows what createrepo_c indexes, follows symlinked files).
	Stat(ctx context.Context, ref Ref) (Stamp, error)
	// Open opens a stored package for reading; ErrNotFound when there is none. The reader sees one version.
	Open(ctx context.Context, ref Ref) (Object, error)
	// List returns the packages of repo (the *.rpm files directly in Packages/) with their stamps, in no
	// particular order. A repository without packages, or that does not exist, lists empty with no error.
	List(ctx context.Context, repo string) ([]Entry, error)
	// Remove removes the packages refs (of one or more repositories) under the placement locks of their
	// names, recording pending changes for their repositories before the first removal and after the last.
	// Every ref is checked first: one that is absent (ErrNotFound) or refused (ErrInvalid, as Stat) fails the
	// call with nothing removed and nothing recorded. A failure after that returns the repositories recorded
	// as pending, which the caller must publish.
	Remove(ctx context.Context, refs []Ref) (pending []string, err error)
	// Repos lists every repository of the tree (a directory with a Packages/ on fs; a prefix with a Packages/
	// or repodata/ key on s3). Unreadable parts are skipped and reported in the joined error alongside what
	// was found.
	Repos(ctx context.Context) ([]string, error)

	// RecordPending durably records that repo has changes to publish (creating the repository if needed).
	RecordPending(ctx context.Context, repo string) error
	// HasPending reports whether repo has pending changes, claimed or not.
	HasPending(ctx context.Context, repo string) (bool, error)
	// ClaimPending takes the pending records that exist now, to be covered by the publish that follows; a
	// record made after the claim stays pending. The claimed records stay durable (HasPending is still true)
	// until ConsumePending. Call it under the repository's publish Lock.
	ClaimPending(ctx context.Context, repo string) (Claim, error)
	// ConsumePending removes the records c claimed, after a successful publish that covered them.
	ConsumePending(ctx context.Context, c Claim) error

	// TryLock takes repo's publish lock without waiting; ErrLocked if another holder has it (another process
	// or another goroutine). Only a holder may Begin a Work for repo.
	TryLock(ctx context.Context, repo string) (Lock, error)

	// OpenMetadata opens a file of repo's published metadata: name is "repomd.xml" or a file name that the
	// current repomd.xml names under repodata/ (s3 keeps every file a recent repomd.xml named; fs keeps them for
	// createrepo_c's --retain-old-md-by-age). ErrNotFound when absent, ErrInvalid for a name with a slash.
	OpenMetadata(ctx context.Context, repo, name string) (Object, error)

	// Begin prepares a publish of repo under lock: a local directory for createrepo_c (see Work). The caller
	// must Close the Work whatever happens.
	Begin(ctx context.Context, lock Lock) (Work, error)

	// Cleanup removes what processes that are gone left half-done (fs: staging directories whose owner's
	// flock is gone; s3: expired leases are taken over, not cleaned). It never touches a live process's work,
	// so it may run at any time, and returns how many leftovers went.
	Cleanup(ctx context.Context) (int, error)
}

// Object is a stored file open for reading: one version of it.
type Object interface {
	io.Reader
	io.ReaderAt
	io.Closer
	Stamp() Stamp
}

// Claim is a set of pending records ClaimPending took; only its backend reads it.
type Claim interface {
	Repo() string
}

// Lock is a held per-repository publish lock (fs: flock(2) on <repo>/.rpm-ingestd.lock, dropped by the kernel
// when the process dies; s3: a lease object with holder and expiry, taken with If-None-Match and renewed or taken
// over with If-Match).
type Lock interface {
	Repo() string
	// Renew extends the lock; ErrLockLost when it expired or another holder took it over. fs never loses it.
	Renew(ctx context.Context) error
	// Release gives the lock up; releasing a lost lock is not an error.
	Release() error
}

// Work is one publish of a repository in a local directory, under its Lock.
type Work interface {
	// Dir is the local repository directory createrepo_c indexes: Packages/ holds every package createrepo_c
	// must read (fs: all of them, the live repository; s3: only those new or changed since the published
	// metadata, which --update --skip-stat reuses for the rest).
	Dir() string
	// Packages lists the repository's packages as this publish covers them (the full --pkglist, sorted). Their
	// names are known from Begin on; their stamps only once Publish returned (fs lists names alone before
	// createrepo_c and takes the stamps after the exchange).
	Packages() []Entry
	// Incremental tells the caller how to run createrepo_c on Dir. false (fs): Dir()/Packages holds every package
	// of Packages(), and a plain run (--update, which re-reads a file whose size or mtime changed) is right.
	// true (s3): Dir()/Packages holds only the packages that are new or changed since the seeded metadata; the
	// caller must add --update --skip-stat (reuse every seeded entry whose file is not in Dir without looking at
	// it) to the sorted full --pkglist of Packages(), and a command that cannot do that must fail the publish.
	Incremental() bool
	// Output is the directory createrepo_c writes into (--outputdir); its repodata/ is seeded with the current
	// published generation (repomd.xml and the files it names; fs seeds every file of repodata/) so --update
	// works as in place. (fstree's BeginFromPublished may leave it empty instead and name, in its Work's
	// PreviousMetadata, the directory createrepo_c --update-md-path reads that generation from.) Keeping superseded generations fetchable for readers is the backend's job, not the
	// caller's (fs: the files createrepo_c --retain-old-md-by-age keeps, or, with fstree's BeginRetaining, those
	// Publish links into Output; s3: old data files are deleted only after the retention age). Signatures
	// (repomd.xml.asc) are written there before Publish; the caller may keep its own files (the --pkglist) in
	// Output outside repodata/, which Publish ignores and Close removes. The seeded files may be the published ones (fs: hard
	// links): replace them by writing a new file and renaming it, never by writing into them.
	Output() string
	// Publish makes Output()/repodata the published metadata atomically: readers see the previous generation
	// or this one, never a repomd.xml naming a file they cannot fetch. ErrConflict when another writer
	// published since Begin (s3: If-Match failed): nothing was published, redo from Begin. ErrLockLost when
	// the lock was lost first.
	Publish(ctx context.Context) error
	// Close removes the local work files (never the published tree, and on fs never Packages/).
	Close() error
}

// Finder is implemented by a backend that several daemons share and that can find stored packages by their
// sha256 without reading them (s3: one small marker object per placed copy, named by the sha256, listed with one
// request). GET /api/v1/uploads/{sha256} asks it when the daemon's own memory does not know the sha256, so every
// daemon answers for an upload another daemon took. fs does not implement it: one daemon owns an fs tree, and
// its registry knows every upload it took.
type Finder interface {
	// FindSHA256 returns the packages placed with this sha256 (lowercase hex). Its answer may name copies that
	// were deleted or replaced since (the markers are a hint): the caller checks each with Stat. It costs a
	// bounded number of requests whatever the size of the tree.
	FindSHA256(ctx context.Context, sha256 string) ([]Ref, error)
}
