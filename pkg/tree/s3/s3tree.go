// Package s3tree is the S3 backend of tree.Tree (issue 21): the repository tree as keys in one bucket under one
// prefix, shared by any number of daemons.
//
// Layout (keys relative to the store's prefix):
//
//	<repo>/Packages/<name>.rpm                 a package; user metadata sha256=<hex>
//	<repo>/repodata/repomd.xml, <data files>   the published metadata (content-named data files)
//	<repo>/.rpm-ingestd/pending/<time>-<rand>  one pending change (empty object)
//	<repo>/.rpm-ingestd/lease.json             the publish lease (pkg/lease)
//	.rpm-ingestd/sha256/<sha256>/<repo>/Packages/<name>.rpm
//	                                           a copy placed with that sha256 (empty object), for FindSHA256:
//	                                           written before the package, deleted after it by Remove
//	<repo>/.rpm-ingestd/generations/<time>-<rand>.xml
//	                                           a superseded repomd.xml, kept for the retention age so that the
//	                                           files it names are not deleted while readers may still hold it
//
// Local files (staged copies of stored packages, publish work directories, spooled reads) live in a
// per-process directory under Options.WorkDir that the process holds an flock on; Cleanup removes those of
// processes that are gone.
package s3tree

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/lease"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// Options configures a Tree.
type Options struct {
	// Store is the bucket and prefix (pkg/objstore); required.
	Store *objstore.Store
	// WorkDir is the local work directory (repo.top_dir); required. The tree keeps its local files in
	// <WorkDir>/.s3tree/<process>/.
	WorkDir string
	// Holder names this daemon in leases (default "<hostname>:<pid>").
	Holder string
	// LeaseTTL is how long a publish lease lasts without renewal (default 2m).
	LeaseTTL time.Duration
	// Retention is how long metadata files that a superseded repomd.xml named are kept after it was
	// superseded (default 10m), so that a reader holding the old repomd.xml can fetch every file it names.
	Retention time.Duration
	// Transfers bounds the parallel downloads and uploads of one Begin or Publish (default 8).
	Transfers int
	// Now is the clock for leases and retention (nil: time.Now). A test seam.
	Now func() time.Time
	// Logger (nil: none).
	Logger *zap.Logger
}

// Tree is the S3 tree. It is safe for concurrent use, and several processes may share one bucket and prefix.
type Tree struct {
	st        *objstore.Store
	top       string // WorkDir/.s3tree
	dir       string // this process's directory under top
	lockf     *os.File
	leases    *lease.Manager
	retention time.Duration
	transfers int
	now       func() time.Time
	log       *zap.Logger

	names nameLocks

	// beforeRepomd, when set, is called by Publish between its last lease renewal and the conditional PUT of
	// repomd.xml: a test seam for the race the If-Match exists for (a holder stalled there past its lease).
	beforeRepomd func(repo string)

	cache caches // the publish cache (cache.go)
}

var _ tree.Tree = (*Tree)(nil)

// New returns a Tree. It creates its local directory and sends no request.
func New(opts Options) (*Tree, error) {
	if opts.Store == nil || opts.WorkDir == "" {
		return nil, errors.New("s3tree: a store and a work directory are required")
	}
	if opts.Holder == "" {
		host, _ := os.Hostname()
		opts.Holder = host + ":" + strconv.Itoa(os.Getpid())
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = 2 * time.Minute
	}
	if opts.Retention == 0 {
		opts.Retention = 10 * time.Minute
	}
	if opts.Transfers <= 0 {
		opts.Transfers = 8
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.LeaseTTL < 0 || opts.Retention < 0 {
		return nil, errors.New("s3tree: lease TTL and retention must not be negative")
	}
	m, err := lease.New(opts.Store, lease.Options{Holder: opts.Holder, TTL: opts.LeaseTTL, Now: opts.Now})
	if err != nil {
		return nil, fmt.Errorf("s3tree: %w", err)
	}
	top := filepath.Join(opts.WorkDir, ".s3tree")
	if err := os.MkdirAll(top, 0o700); err != nil {
		return nil, fmt.Errorf("s3tree: %w", err)
	}
	dir, err := os.MkdirTemp(top, strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, fmt.Errorf("s3tree: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, "owner.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		err = syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("s3tree: lock work directory: %w", err)
	}
	return &Tree{st: opts.Store, top: top, dir: dir, lockf: lf, leases: m, retention: opts.Retention,
		transfers: opts.Transfers, now: opts.Now, log: opts.Logger, names: nameLocks{m: map[string]*nameLock{}}}, nil
}

// Close removes this process's local directory. Staged files and Works must be closed first.
func (t *Tree) Close() error {
	err := os.RemoveAll(t.dir)
	t.lockf.Close()
	return err
}

// Cleanup removes the local directories of processes that are gone (their flock is free). Nothing in the bucket
// is left half-done in a way that needs cleaning: a pending object without a change only costs one publish, an
// expired lease is taken over, and old metadata generations are pruned by the next publish.
func (t *Tree) Cleanup(ctx context.Context) (int, error) {
	ents, err := os.ReadDir(t.top)
	if err != nil {
		return 0, fmt.Errorf("s3tree: cleanup: %w", err)
	}
	n := 0
	var errs []error
	for _, e := range ents {
		p := filepath.Join(t.top, e.Name())
		if p == t.dir || !e.IsDir() {
			continue
		}
		f, err := os.Open(filepath.Join(p, "owner.lock"))
		if err != nil {
			continue // being created, or not ours
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close() // a live process holds it
			continue
		}
		err = os.RemoveAll(p)
		f.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// segRe is one path segment the tree accepts (as on fs): no hidden names, no "..", nothing a shell or URL treats
// specially.
var segRe = regexp.MustCompile(`^[A-Za-z0-9_+][A-Za-z0-9._+~^-]*$`)

// checkRepo refuses repository paths that are not relative slash-separated plain segments. "." (a repository
// at the prefix itself), which fs accepts, is refused: its keys would have no repository part.
func checkRepo(repo string) error {
	if repo == "" || len(repo) > 512 {
		return fmt.Errorf("%w: repository %.200q", tree.ErrInvalid, repo)
	}
	for _, s := range strings.Split(repo, "/") {
		if !segRe.MatchString(s) || s == "." || s == ".." {
			return fmt.Errorf("%w: repository %.200q", tree.ErrInvalid, repo)
		}
	}
	return nil
}

func checkRef(r tree.Ref) error {
	if err := checkRepo(r.Repo); err != nil {
		return err
	}
	if !segRe.MatchString(r.Name) || !strings.HasSuffix(r.Name, ".rpm") || len(r.Name) > 255 {
		return fmt.Errorf("%w: package file name %.200q", tree.ErrInvalid, r.Name)
	}
	return nil
}

func pkgKey(r tree.Ref) string             { return r.Repo + "/Packages/" + r.Name }
func mdKey(repo, name string) string       { return repo + "/repodata/" + name }
func pendingPrefix(repo string) string     { return repo + "/.rpm-ingestd/pending/" }
func shaPrefix(sum string) string          { return ".rpm-ingestd/sha256/" + sum + "/" }
func shaKey(sum string, r tree.Ref) string { return shaPrefix(sum) + pkgKey(r) }
func generationPrefix(repo string) string  { return repo + "/.rpm-ingestd/generations/" }

// mapErr turns an objstore error into the tree's sentinels, keeping the cause.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, objstore.ErrNotFound):
		return fmt.Errorf("%w: %w", tree.ErrNotFound, err)
	case errors.Is(err, objstore.ErrUnavailable):
		return fmt.Errorf("%w: %w", tree.ErrUnavailable, err)
	case errors.Is(err, objstore.ErrInvalidKey):
		return fmt.Errorf("%w: %w", tree.ErrInvalid, err)
	case errors.Is(err, objstore.ErrConflict):
		return fmt.Errorf("%w: %w", tree.ErrConflict, err)
	}
	return err
}

func stampOf(i objstore.Info) tree.Stamp {
	s := tree.Stamp{Size: i.Size, ModTime: i.LastModified, ETag: i.ETag}
	if validSHA(i.Metadata["sha256"]) {
		s.SHA256 = i.Metadata["sha256"]
	}
	return s
}

func validSHA(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Stat returns the stamp of a stored package, with its sha256 from the object metadata when it has one.
func (t *Tree) Stat(ctx context.Context, ref tree.Ref) (tree.Stamp, error) {
	if err := checkRef(ref); err != nil {
		return tree.Stamp{}, err
	}
	i, err := t.st.Head(ctx, pkgKey(ref))
	if err != nil {
		return tree.Stamp{}, mapErr(err)
	}
	return stampOf(i), nil
}

// object is a stored file spooled to an unlinked local file: one version, with ReadAt.
type object struct {
	*os.File
	st tree.Stamp
}

func (o *object) Stamp() tree.Stamp { return o.st }

// LocalFile is the spooled local file, for readers that need an *os.File (rpmmeta), as fstree's objects offer; it
// is closed with the object.
func (o *object) LocalFile() *os.File { return o.File }

// spool downloads key into an unlinked local file. The whole object is read before the first byte is returned:
// S3 bodies are not seekable, and ReadAt must see the same version as Read.
func (t *Tree) spool(ctx context.Context, key string) (*object, error) {
	body, info, err := t.st.Get(ctx, key)
	if err != nil {
		return nil, mapErr(err)
	}
	defer body.Close()
	f, err := os.CreateTemp(t.dir, "get-")
	if err != nil {
		return nil, fmt.Errorf("s3tree: %w", err)
	}
	os.Remove(f.Name())
	n, err := io.Copy(f, body)
	if err == nil && n != info.Size {
		err = fmt.Errorf("short read: %d of %d bytes", n, info.Size)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: s3tree: get %s: %w", tree.ErrUnavailable, key, err)
	}
	st := stampOf(info)
	st.Size = n
	return &object{File: f, st: st}, nil
}

// Open spools a stored package to a local file and returns it.
func (t *Tree) Open(ctx context.Context, ref tree.Ref) (tree.Object, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	return t.spool(ctx, pkgKey(ref))
}

// OpenMetadata spools a published metadata file of repo. Every file a recent repomd.xml named is kept for the
// retention age after it stopped being current.
func (t *Tree) OpenMetadata(ctx context.Context, repo, name string) (tree.Object, error) {
	if err := checkRepo(repo); err != nil {
		return nil, err
	}
	if !segRe.MatchString(name) {
		return nil, fmt.Errorf("%w: metadata file name %.200q", tree.ErrInvalid, name)
	}
	return t.spool(ctx, mdKey(repo, name))
}

// List lists repo's packages from one listing. Listings carry no user metadata, so Stamp.SHA256 is "" here (Stat
// has it); ETag, size and Last-Modified are filled.
func (t *Tree) List(ctx context.Context, repo string) ([]tree.Entry, error) {
	if err := checkRepo(repo); err != nil {
		return nil, err
	}
	prefix := repo + "/Packages/"
	var out []tree.Entry
	err := t.st.Walk(ctx, prefix, func(i objstore.Info) error {
		n := strings.TrimPrefix(i.Key, prefix)
		if checkRef(tree.Ref{Repo: repo, Name: n}) == nil {
			out = append(out, tree.Entry{Name: n, Stamp: stampOf(i)})
		}
		return nil
	})
	if err != nil {
		return nil, mapErr(err)
	}
	return out, nil
}

// Repos lists every prefix that holds a package, published metadata, or a pending change (so that a repository
// whose only record is RecordPending is found by the periodic pending scan too). It reads one listing of the
// whole prefix.
func (t *Tree) Repos(ctx context.Context) ([]string, error) {
	found := map[string]bool{}
	err := t.st.Walk(ctx, "", func(i objstore.Info) error {
		if r := repoOfKey(i.Key); r != "" {
			found[r] = true
		}
		return nil
	})
	repos := make([]string, 0, len(found))
	for r := range found {
		repos = append(repos, r)
	}
	slices.Sort(repos)
	return repos, mapErr(err)
}

// repoOfKey returns the repository a key belongs to as a package, metadata file or pending change ("" if none).
func repoOfKey(k string) string {
	for _, mark := range []string{"/Packages/", "/repodata/", "/.rpm-ingestd/pending/"} {
		i := strings.LastIndex(k, mark)
		if i <= 0 || strings.Contains(k[i+len(mark):], "/") || k[i+len(mark):] == "" {
			continue
		}
		repo := k[:i]
		if checkRepo(repo) != nil {
			continue
		}
		if mark == "/Packages/" && checkRef(tree.Ref{Repo: repo, Name: k[i+len(mark):]}) != nil {
			continue
		}
		return repo
	}
	return ""
}

// nameLocks serialise, inside one process, the Places and Removes of one file name. Across processes the
// conditional writes decide (If-None-Match, If-Match): there is no cross-process placement lock on S3.
type nameLocks struct {
	mu sync.Mutex
	m  map[string]*nameLock
}

type nameLock struct {
	mu   sync.Mutex
	refs int
}

// lock takes the locks of names (sorted, deduplicated) and returns the function that releases them.
func (n *nameLocks) lock(names []string) func() {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	held := make([]*nameLock, 0, len(names))
	for _, name := range names {
		n.mu.Lock()
		l := n.m[name]
		if l == nil {
			l = &nameLock{}
			n.m[name] = l
		}
		l.refs++
		n.mu.Unlock()
		l.mu.Lock()
		held = append(held, l)
	}
	return func() {
		for i, l := range held {
			l.mu.Unlock()
			n.mu.Lock()
			if l.refs--; l.refs == 0 {
				delete(n.m, names[i])
			}
			n.mu.Unlock()
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// timeKey is a name that sorts by time (of the tree's clock) and is unique.
func (t *Tree) timeKey() string {
	return fmt.Sprintf("%020d-%s", t.now().UnixNano(), randHex(6))
}

// hashStored reads a stored object and returns its sha256: for packages stored without the sha256 metadata (by
// another tool).
func (t *Tree) hashStored(ctx context.Context, key string) (string, error) {
	body, _, err := t.st.Get(ctx, key)
	if err != nil {
		return "", mapErr(err)
	}
	defer body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, body); err != nil {
		return "", fmt.Errorf("%w: s3tree: read %s: %w", tree.ErrUnavailable, key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// storedSHA is the sha256 of the object i describes: from its metadata, else by reading it.
func (t *Tree) storedSHA(ctx context.Context, i objstore.Info) (string, error) {
	if s := i.Metadata["sha256"]; validSHA(s) {
		return s, nil
	}
	return t.hashStored(ctx, i.Key)
}

var _ tree.Finder = (*Tree)(nil)

// FindSHA256 lists the markers Place wrote for sum: one listing request under .rpm-ingestd/sha256/<sum>/ (one
// page per 1,000 copies of the same bytes), whatever the size of the bucket. A marker outlives a replacement
// with other bytes, and a Remove that failed halfway; the caller checks each copy with Stat.
func (t *Tree) FindSHA256(ctx context.Context, sum string) ([]tree.Ref, error) {
	if !validSHA(sum) {
		return nil, fmt.Errorf("%w: sha256 %.80q", tree.ErrInvalid, sum)
	}
	var out []tree.Ref
	err := t.st.Walk(ctx, shaPrefix(sum), func(i objstore.Info) error {
		repo, name, ok := strings.Cut(strings.TrimPrefix(i.Key, shaPrefix(sum)), "/Packages/")
		if r := (tree.Ref{Repo: repo, Name: name}); ok && checkRef(r) == nil {
			out = append(out, r)
		}
		return nil
	})
	return out, mapErr(err)
}
