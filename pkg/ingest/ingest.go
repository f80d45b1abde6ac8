// Package ingest turns one uploaded file into packages in the repository tree: it takes the file from the spool
// (named by the proxy, or streamed from a request body), checks it with rpmmeta, routes it to its repositories and
// places it there atomically, never replacing different bytes unless told to. It knows nothing of HTTP or of the
// indexer; the caller learns which repositories changed from the Result.
package ingest

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
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
)

// Sentinel kinds of failure; every error Ingest returns because of its input is an *Error whose Kind is one of
// these (or rpmmeta.ErrInvalidPackage), so the HTTP layer maps them with errors.Is.
var (
	ErrForbidden = errors.New("forbidden spool path")     // the proxy header names a file outside spool_dir
	ErrRejected  = errors.New("package rejected")         // a valid RPM we will not store: bad field, arch, release
	ErrExists    = errors.New("different package stored") // same file name, different bytes, overwrite off
	ErrTooLarge  = errors.New("upload too large")         // larger than MaxSize
	ErrNoSpace   = errors.New("no space left on device")  // ENOSPC while spooling or placing
	ErrBadUpload = errors.New("bad upload")               // the body could not be read, or there was none
)

// Error is an input problem: Msg is one line for the uploader, Kind one of the sentinels above.
type Error struct {
	Kind  error
	Msg   string
	cause error // the underlying error, when there is one
}

func (e *Error) Error() string { return e.Msg }

// Unwrap exposes both the kind and the cause, so callers can match either (e.g. *http.MaxBytesError).
func (e *Error) Unwrap() []error {
	if e.cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.cause}
}

func fail(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Status says what a successful Ingest did.
type Status string

// The outcomes of a successful Ingest.
const (
	Created  Status = "created"  // stored in at least one repository where it was missing
	Present  Status = "present"  // identical bytes were already stored everywhere: a safe retry
	Replaced Status = "replaced" // different bytes were replaced, because Overwrite is on
)

// Result describes what Ingest did with a package. On an error it may still carry the parsed Package (and its
// routing) so that the caller can log what was refused.
type Result struct {
	Package   *rpmmeta.Package
	OSRelease string
	Repos     []string // absolute repository directories (each holds Packages/), one per placement
	Paths     []string // slash-separated package paths relative to TopDir, parallel to Repos
	Status    Status
}

// LayoutFunc maps a package's distribution and arch ("SRPMS" for sources) to its repository directory, relative
// to TopDir. Config.RenderLayout is the production one.
type LayoutFunc func(osAbbr, osRelease, arch string) (string, error)

// Options configure an Ingester. All directories are absolute.
type Options struct {
	TopDir    string
	SpoolDir  string
	Layout    LayoutFunc
	Arches    []string // accepted binary arches; noarch fans out to each
	DistTags  []string // dist tag abbreviations that route a release, like "el"
	Overwrite bool
	MaxSize   int64 // bytes; larger uploads are refused with ErrTooLarge
	// MarkDirty is called with a repository directory before a package enters it, so that a crash right
	// after the move cannot lose the pending index (indexer.MarkDirty). Nil skips it.
	MarkDirty func(repoDir string) error
}

// Request is one upload: either SpoolPath (the proxy already wrote the body there) or Body (streamed here).
type Request struct {
	SpoolPath string
	Body      io.Reader
	// OSRelease overrides the release read from the dist tag, for packages built without one.
	OSRelease string
}

// Ingester places uploads. It is safe for concurrent use: the filesystem (link(2) fails on an existing name,
// rename(2) replaces atomically) arbitrates between uploads of one package, not a lock.
type Ingester struct {
	opts    Options
	spool   *os.Root
	staging string // temp dir on TopDir's filesystem, outside every repository createrepo scans
	log     *zap.Logger
	now     func() time.Time
}

const (
	spoolPattern = ".rpm-ingestd-*.part" // direct uploads being received, in SpoolDir
	stagingName  = ".rpm-ingestd-tmp"    // under TopDir; the leading dot keeps nginx from serving it
)

// New opens the spool directory and creates the staging directory. Close releases the spool handle.
func New(opts Options, log *zap.Logger) (*Ingester, error) {
	root, err := os.OpenRoot(opts.SpoolDir)
	if err != nil {
		return nil, fmt.Errorf("open spool_dir: %w", err)
	}
	staging := filepath.Join(opts.TopDir, stagingName)
	if err := os.MkdirAll(staging, 0o700); err != nil {
		root.Close()
		return nil, fmt.Errorf("create staging dir: %w", err)
	}
	return &Ingester{opts: opts, spool: root, staging: staging, log: log, now: time.Now}, nil
}

// Close releases the spool directory handle.
func (in *Ingester) Close() error { return in.spool.Close() }

// Cleanup removes what a previous process left half-done: direct uploads it was still receiving and staged
// copies it had not yet moved. Only call it before serving, when nothing of ours can be in flight.
func (in *Ingester) Cleanup() (int, error) {
	var n int
	var errs []error
	for _, pattern := range []string{filepath.Join(in.opts.SpoolDir, spoolPattern), filepath.Join(in.staging, "*")} {
		names, _ := filepath.Glob(pattern) // the patterns are constant and valid
		for _, name := range names {
			if err := os.Remove(name); err != nil {
				errs = append(errs, err)
				continue
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}

// Ingest checks the upload and places it. The spooled file is gone afterwards whatever happens, except when
// SpoolPath is refused as forbidden: then nothing at all is touched.
func (in *Ingester) Ingest(ctx context.Context, req Request) (*Result, error) {
	f, remove, err := in.open(req)
	if err != nil {
		return nil, err
	}
	defer func() {
		f.Close()
		if err := remove(); err != nil && !errors.Is(err, fs.ErrNotExist) {
			in.log.Warn("remove spool file", zap.String("file", f.Name()), zap.Error(err))
		}
	}()

	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > in.opts.MaxSize {
		return nil, fail(ErrTooLarge, "upload is %d bytes, more than server.max_upload_size (%d bytes)", fi.Size(), in.opts.MaxSize)
	}
	pkg, err := rpmmeta.Inspect(f)
	if err != nil {
		return nil, err
	}
	res := &Result{Package: pkg}
	if err := validate(pkg, in.opts.Arches); err != nil {
		return res, err
	}
	if err := in.route(res, req.OSRelease); err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, in.place(f, res)
}

// open returns the upload as a file in the spool and a function that removes it from the spool.
func (in *Ingester) open(req Request) (*os.File, func() error, error) {
	if req.SpoolPath != "" {
		return in.openSpooled(req.SpoolPath)
	}
	if req.Body == nil {
		return nil, nil, fail(ErrBadUpload, "no upload: send the package as the request body")
	}
	f, err := os.CreateTemp(in.opts.SpoolDir, spoolPattern)
	if err != nil {
		return nil, nil, classifyIO(err, "create spool file")
	}
	remove := func() error { return os.Remove(f.Name()) }
	// Limit what we take even if the caller did not, one byte past the cap so "too large" is detectable.
	n, err := io.Copy(f, bodyReader{io.LimitReader(req.Body, in.opts.MaxSize+1)})
	if err == nil && n > in.opts.MaxSize {
		err = fail(ErrTooLarge, "upload is larger than server.max_upload_size (%d bytes)", in.opts.MaxSize)
	}
	if err != nil {
		f.Close()
		remove()
		return nil, nil, classifyIO(err, "receive upload")
	}
	return f, remove, nil
}

// bodyReader marks read errors as the uploader's (a dropped connection, a cap set by the caller), so they are
// not mistaken for our own write errors.
type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = &Error{Kind: ErrBadUpload, Msg: "reading the upload body: " + err.Error(), cause: err}
	}
	return n, err
}

// openSpooled opens a file that the proxy wrote, refusing anything that does not resolve to a regular file
// inside SpoolDir. os.Root makes ".." and symlinks that leave the directory fail instead of being followed.
func (in *Ingester) openSpooled(name string) (*os.File, func() error, error) {
	forbid := func(why string) (*os.File, func() error, error) {
		return nil, nil, fail(ErrForbidden, "spooled file %q %s", name, why)
	}
	if !filepath.IsAbs(name) {
		return forbid("is not an absolute path")
	}
	rel, err := filepath.Rel(in.opts.SpoolDir, filepath.Clean(name))
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return forbid("is outside server.spool_dir")
	}
	f, err := in.spool.Open(rel)
	if errors.Is(err, fs.ErrPermission) {
		// Not the uploader's doing: nginx writes its temp files 0600 for its worker user, so this daemon runs
		// as another user. A 500 with this in the log, not a 403 the operator would never see.
		return nil, nil, fmt.Errorf("open spooled file %s: %w: run rpm-ingestd as nginx's worker user (the unit's User= must equal nginx's user)", name, err)
	}
	if err != nil {
		reason := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			reason = pe.Err.Error() // without the path, which the message already names
		}
		return forbid("cannot be opened inside server.spool_dir: " + reason)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return forbid("is not a regular file")
	}
	return f, func() error { return in.spool.Remove(rel) }, nil
}

// maxFileName is the longest file name common Linux filesystems accept.
const maxFileName = 255

var (
	nameRe    = regexp.MustCompile(`^[A-Za-z0-9_+][A-Za-z0-9._+-]*$`)
	versionRe = regexp.MustCompile(`^[A-Za-z0-9._+~^]+$`)
	osRelRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._]*$`)
)

// validate checks every header field that becomes part of a path, before any path is built from it.
func validate(p *rpmmeta.Package, arches []string) error {
	for _, f := range []struct {
		field, value string
		re           *regexp.Regexp
		want         string
	}{
		{"name", p.Name, nameRe, "letters, digits and ._+- (not starting with . or -)"},
		{"version", p.Version, versionRe, "letters, digits and ._+~^"},
		{"release", p.Release, versionRe, "letters, digits and ._+~^"},
	} {
		if !f.re.MatchString(f.value) || f.value == "." || f.value == ".." {
			return fail(ErrRejected, "package %s %.80q is not allowed: use %s", f.field, f.value, f.want)
		}
	}
	if n := len(p.FileName()); n > maxFileName {
		return fail(ErrRejected, "package file name %s… is %d bytes, more than the %d a filesystem allows", p.FileName()[:40], n, maxFileName)
	}
	if p.Source || p.Arch == "noarch" || slices.Contains(arches, p.Arch) {
		return nil
	}
	return fail(ErrRejected, "package arch %.40q is not accepted here: repo.arches lists %s (plus noarch and sources)", p.Arch, strings.Join(arches, ", "))
}

// route fills res.OSRelease, res.Repos and res.Paths.
func (in *Ingester) route(res *Result, override string) error {
	p := res.Package
	dist, ok := rpmmeta.ParseDist(p.Release, in.opts.DistTags)
	switch {
	case override != "":
		if !osRelRe.MatchString(override) {
			return fail(ErrRejected, "os_release %q is not allowed: use letters, digits, . and _, like 9", override)
		}
		res.OSRelease = override
	case ok:
		res.OSRelease = dist.Major
	default:
		return fail(ErrRejected, "release %q of %s has no dist tag (like el9 or fc40; known: %s): rebuild with one, or choose the OS release with ?os_release=9 or the header X-OS-Release: 9",
			p.Release, p.NEVRA(), strings.Join(in.opts.DistTags, ", "))
	}
	var arches []string
	switch {
	case p.Source:
		arches = []string{"SRPMS"}
	case p.Arch == "noarch":
		arches = in.opts.Arches
	default:
		arches = []string{p.Arch}
	}
	for _, arch := range arches {
		rel, err := in.opts.Layout(dist.Abbr, res.OSRelease, arch)
		if err != nil {
			return fmt.Errorf("layout: %w", err)
		}
		res.Repos = append(res.Repos, filepath.Join(in.opts.TopDir, rel))
		res.Paths = append(res.Paths, filepath.ToSlash(filepath.Join(rel, "Packages", p.FileName())))
	}
	return nil
}

// place puts f into every repository of res. It checks all of them for conflicts first, so a refused noarch
// package is placed nowhere.
func (in *Ingester) place(f *os.File, res *Result) error {
	if err := f.Chmod(0o644); err != nil { // the proxy spools 0600; clients read through the web server
		return fmt.Errorf("chmod spool file: %w", err)
	}
	// Neither nginx nor our own spooling fsyncs: do it once here, so the package survives a power loss once
	// it has a name in the tree (and we have answered 201).
	if err := f.Sync(); err != nil {
		return classifyIO(err, "sync upload")
	}
	// Judge every target before touching any, so a refused noarch package is placed nowhere; each stored file
	// is hashed once, here, and the placement below reuses the result.
	targets := make([]target, len(res.Repos))
	for i, repo := range res.Repos {
		t, err := stored(repo, filepath.Join(in.opts.TopDir, filepath.FromSlash(res.Paths[i])))
		if err != nil {
			return err
		}
		if err := in.judge(t, res.Package); err != nil {
			return err
		}
		targets[i] = t
	}
	src := &source{f: f, staging: in.staging}
	defer src.close()
	res.Status = Present
	for _, t := range targets {
		st, err := in.placeOne(src, t, res.Package)
		if err != nil {
			return err
		}
		if st != Present && res.Status != Replaced {
			res.Status = st
		}
	}
	return nil
}

// target is one destination of an upload and what is stored there now.
type target struct {
	repo, dst string
	exists    bool
	sum       string    // hex SHA-256 of the stored file, when it exists
	mtime     time.Time // of the stored file
}

// stored looks at dst: whether a file is there, and its SHA-256 and mtime.
func stored(repo, dst string) (target, error) {
	t := target{repo: repo, dst: dst}
	sum, mtime, err := fileSHA256(dst)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return t, nil
	case err != nil:
		return t, err
	}
	t.exists, t.sum, t.mtime = true, sum, mtime
	return t, nil
}

// judge fails with ErrExists when t holds different bytes and overwriting is off.
func (in *Ingester) judge(t target, p *rpmmeta.Package) error {
	if t.exists && t.sum != p.SHA256 && !in.opts.Overwrite {
		return conflict(p, t.sum)
	}
	return nil
}

// placeOne makes t.dst show the upload. New names are created with link(2), which fails rather than replace,
// so two racing uploads of one name resolve to one winner; the loser looks again and is judged against it.
func (in *Ingester) placeOne(src *source, t target, p *rpmmeta.Package) (Status, error) {
	if t.exists && t.sum == p.SHA256 {
		return Present, nil
	}
	if err := in.judge(t, p); err != nil {
		return "", err
	}
	pkgDir := filepath.Dir(t.dst)
	if err := os.MkdirAll(pkgDir, 0o755); err != nil {
		return "", classifyIO(err, "create repository directory")
	}
	if in.opts.MarkDirty != nil {
		if err := in.opts.MarkDirty(t.repo); err != nil {
			return "", classifyIO(err, "mark repository dirty")
		}
	}
	if t.exists {
		return Replaced, in.replace(src, t.dst, t.mtime)
	}
	if err := src.linkTo(t.dst); errors.Is(err, fs.ErrExist) {
		// Lost a race with a concurrent upload of the same name: judge against what won.
		if t, err = stored(t.repo, t.dst); err != nil {
			return "", err
		}
		return in.placeOne(src, t, p)
	} else if err != nil {
		return "", classifyIO(err, "place package")
	}
	return Created, syncDir(pkgDir)
}

// replace swaps dst for the upload with rename(2), so readers see the old or the new file, never a mix. The new
// file's mtime is pushed past the old one: createrepo_c --update re-reads a package only when its size or
// mtime changed, and a rebuild can have the same size.
func (in *Ingester) replace(src *source, dst string, oldMtime time.Time) error {
	tmp, err := src.stage()
	if err != nil {
		return classifyIO(err, "stage package")
	}
	mtime := in.now()
	if !mtime.After(oldMtime.Add(time.Second)) {
		mtime = oldMtime.Add(time.Second)
	}
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return classifyIO(err, "replace package")
	}
	src.staged = "" // consumed by the rename
	return syncDir(filepath.Dir(dst))
}

// source hands out names for the upload's bytes on TopDir's filesystem: hard links to the spooled inode where
// the spool shares that filesystem (no copy), else one fsynced copy in the staging directory.
type source struct {
	f       *os.File
	staging string
	staged  string // the staged copy, if one was made
}

// linkTo creates dst as a new name for the upload; it fails with fs.ErrExist if dst exists.
func (s *source) linkTo(dst string) error {
	if s.staged == "" {
		// Link the open file itself, not its path, so what lands is exactly what was checked. Linking through
		// /proc/self/fd needs no privilege (AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
		err := unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", s.f.Fd()), unix.AT_FDCWD, dst, unix.AT_SYMLINK_FOLLOW)
		if err == nil || errors.Is(err, fs.ErrExist) {
			return wrapLink(err, s.f.Name(), dst)
		}
		// EXDEV (spool on another filesystem), or no /proc: fall back to a copy.
		if _, err := s.copy(); err != nil {
			return err
		}
	}
	return os.Link(s.staged, dst)
}

// stage returns a fresh name in the staging directory for the upload's bytes, for rename over an existing file.
func (s *source) stage() (string, error) {
	name := filepath.Join(s.staging, fmt.Sprintf("stage-%d-%d", os.Getpid(), time.Now().UnixNano()))
	err := unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", s.f.Fd()), unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW)
	if err == nil {
		s.staged = name
		return name, nil
	}
	return s.copy()
}

// copy writes the upload to a new file in the staging directory and fsyncs it.
func (s *source) copy() (string, error) {
	fi, err := s.f.Stat()
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(s.staging, "copy-*")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(tmp, io.NewSectionReader(s.f, 0, fi.Size()))
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	s.staged = tmp.Name()
	return s.staged, nil
}

// close removes the staged name; the placed links keep the bytes.
func (s *source) close() {
	if s.staged != "" {
		os.Remove(s.staged)
	}
}

func conflict(p *rpmmeta.Package, storedSum string) error {
	return fail(ErrExists, "%s is already stored with different content (stored sha256 %s, uploaded sha256 %s): bump the release, or set repo.overwrite: true",
		p.FileName(), storedSum, p.SHA256)
}

func wrapLink(err error, src, dst string) error {
	if err == nil {
		return nil
	}
	return &os.LinkError{Op: "link", Old: src, New: dst, Err: err}
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

// syncDir makes a new or renamed directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// classifyIO turns ENOSPC and EDQUOT into ErrNoSpace and leaves input errors (already *Error, or a body read
// error passed through by the caller) alone.
func classifyIO(err error, what string) error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return err
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		return &Error{Kind: ErrNoSpace, Msg: what + ": no space left on the repository host; free disk space and upload again"}
	}
	return fmt.Errorf("%s: %w", what, err)
}
