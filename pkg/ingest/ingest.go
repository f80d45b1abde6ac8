// Package ingest turns one uploaded file into packages in the repository tree: it takes the file from the spool
// (named by the proxy, or streamed from a request body), checks it with rpmmeta, routes it to its repositories and
// places it there atomically, never replacing different bytes unless told to. It knows nothing of HTTP or of the
// indexer; the caller learns which repositories changed from the Result.
package ingest

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
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
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
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
	// ErrUnavailable: the tree's storage could not be reached (tree.ErrUnavailable: S3 down or timing out);
	// nothing was kept, and the same upload may succeed later. A 503 with Retry-After.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrNotRecorded: Request.Commit failed (the audit trail could not be written), so nothing was kept. Not the
	// uploader's fault: a 500.
	ErrNotRecorded = errors.New("upload not recorded")
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
	Channel   string // "" without channels
	OSRelease string
	Repos     []string // absolute repository directories (each holds Packages/), one per placement
	Paths     []string // slash-separated package paths relative to TopDir, parallel to Repos
	Status    Status
	// SignedBy is the 16-hex key id of a signer verified against repo.keyring; "" when no signature verified.
	SignedBy string
	// ClaimedKeyID is, when SignedBy is "", the key id the package's signature names without being verified (a
	// key not in the keyring, a signature that does not verify, or no keyring); "" when unsigned.
	ClaimedKeyID string
	// Dirty lists the repositories this upload marked dirty, also when Ingest failed after marking them (a
	// partial or undone placement): the caller must Trigger each, so no marker waits for a restart.
	Dirty []string
	// Pruned lists the files retention removed after this upload was created (slash-separated, relative to
	// TopDir); their repositories are in Dirty.
	Pruned []string
	// Stamps is parallel to Paths once the package is placed (by the time Request.Commit is called): the size
	// and mtime of each name this upload created, as the tree knew them without a stat (tree.PlaceOptions.Made);
	// a zero Stamp where the tree did not say (a name found present or replaced, or a backend that does not
	// know). The package index describes the new files from it.
	Stamps []tree.Stamp
}

// LayoutFunc maps a channel ("" without channels), a package's distribution and arch ("SRPMS" for sources) to
// its repository directory, relative to TopDir. Config.RenderLayout is the production one.
type LayoutFunc func(channel, osAbbr, osRelease, arch string) (string, error)

// Options configure an Ingester. All directories are absolute.
type Options struct {
	TopDir    string
	SpoolDir  string
	Layout    LayoutFunc
	Arches    []string // accepted binary arches; noarch fans out to each
	DistTags  []string // dist tag abbreviations that route a release, like "el"
	Overwrite bool
	MaxSize   int64 // bytes; larger uploads are refused with ErrTooLarge
	// Signatures judges each package's header signatures before anything is placed: a refusal is a 422 that
	// names the key. Nil accepts every package and records no signer.
	Signatures SignaturePolicy
	// Tree is where packages live (pkg/tree): placement, removal and pending changes go through it. Required;
	// its top is TopDir (repositories are named relative to it).
	Tree tree.Tree
	// Retention removes older builds after an upload is created (see RetentionOptions); zero keeps every build.
	Retention RetentionOptions
	// Channels are repo.channels; empty means no channels, and then Request.Channel is ignored as the upload
	// path's extra segment always was. DefaultChannel receives uploads that name none.
	Channels       []string
	DefaultChannel string
	// Locate inverts Layout (config.LocateRepo): a repository directory relative to TopDir → its channel, OS
	// release and arch. Delete needs it to find a noarch package's copies; nil refuses AllArches.
	Locate func(repoRel string) (channel, osRelease, arch string, ok bool)
	// OSReleases are repo.os_releases: when listed, the only OS releases an upload or a promotion may be routed
	// to (anything else is ErrRejected, before a directory is made); empty allows any.
	OSReleases []string
}

// SignaturePolicy decides whether a package's signatures are acceptable; signature.Policy implements it. Judge
// gets the inspected package (its header bytes and raw signature packets) and its file, from which a signature of
// header and payload is read, and returns the key id of a signer it verified, or else the key id the package only
// claims, or why the package is refused. It must be safe for concurrent use.
type SignaturePolicy interface {
	Judge(p *rpmmeta.Package, file io.ReaderAt) (signedBy, claimed string, err error)
}

// Request is one upload: either SpoolPath (the proxy already wrote the body there) or Body (streamed here).
type Request struct {
	SpoolPath string
	Body      io.Reader
	// OSRelease overrides the release read from the dist tag, for packages built without one.
	OSRelease string
	// Checksums the client sent for the body, by algorithm ("sha256", "sha1" or "md5") as hex: a mismatch
	// refuses the upload as changed in transit.
	Checksums map[string]string
	// Channel is the channel named in the upload path; "" means Options.DefaultChannel.
	Channel string
	// Spooled, when set, is told the size of the file SpoolPath names once it is open and known to be a regular
	// file inside SpoolDir (the received-bytes metric), from the stat the upload makes anyway.
	Spooled func(size int64)
	// Commit, when set, records the decision before it becomes final: Ingest calls it once the package is linked
	// into every repository (or found there already), under the lock for its file name, before existing files are
	// replaced and before the dirty markers are re-asserted; res.Status is then Created, Present or Replaced as
	// it will be. If it fails, the links this upload made are removed and Ingest fails with ErrNotRecorded:
	// what cannot be recorded is not kept. It is not called when the upload is refused.
	Commit func(res *Result) error
	// Allow, when set, is asked once the upload is routed and before anything is placed, with one Target per
	// repository it would go to; an error refuses the upload as it is, and nothing is placed (server.permissions).
	Allow func(targets []Target) error
}

// Target is one repository an upload, promotion or deletion would change, as Request.Allow,
// PromoteRequest.Allow and DeleteRequest.Allow see it.
type Target struct {
	Channel   string // "" without channels
	OSRelease string
	Arch      string // the repository's arch: x86_64, aarch64 or SRPMS
}

// allow asks allow (if set) about the repositories repos (absolute directories) as Targets. They are located only
// when allow is set: Options.Locate inverts the layout with regexps, which an upload without server.permissions
// would otherwise pay for every time.
func (in *Ingester) allow(allow func([]Target) error, repos []string) error {
	if allow == nil {
		return nil
	}
	return allow(in.targets(repos))
}

// Ingester checks and routes uploads and places them through the tree. It is safe for concurrent use: the tree
// places uploads of one file name one at a time, also against other processes sharing it (tree.Tree.Place).
type Ingester struct {
	opts     Options
	tree     tree.Tree
	spoolDir *os.File // SpoolDir, where the lookups of spooled files start (spoolfile.go)
	// spoolRoot is SpoolDir as an os.Root, used instead of openat2 where the kernel has none (before 5.6) or a
	// seccomp filter refuses it; nil when openat2 works (spoolfile.go).
	spoolRoot *os.Root
	log       *zap.Logger
	now       func() time.Time
}

const spoolPattern = ".rpm-ingestd-*.part" // direct uploads being received, in SpoolDir

// New opens the spool directory. Close releases it. opts.Tree is the repository tree; it stays the caller's.
func New(opts Options, log *zap.Logger) (*Ingester, error) {
	if opts.Tree == nil {
		return nil, errors.New("ingest: Options.Tree is required")
	}
	dir, err := openSpoolDir(opts.SpoolDir)
	if err != nil {
		return nil, fmt.Errorf("open spool_dir: %w", err)
	}
	in := &Ingester{opts: opts, tree: opts.Tree, spoolDir: dir, log: log, now: time.Now}
	if !openat2Works(dir) {
		if err := in.useSpoolRoot(); err != nil {
			dir.Close()
			return nil, fmt.Errorf("open spool_dir: %w", err)
		}
	}
	return in, nil
}

// Close releases the spool directory handle. Call it when no upload is in flight any more.
func (in *Ingester) Close() error {
	if in.spoolRoot != nil {
		in.spoolRoot.Close()
	}
	return in.spoolDir.Close()
}

// Cleanup removes what processes that are gone left half-done: direct uploads they were still receiving and
// what the tree has of theirs (staged copies). Another live daemon's files on the same tree or spool are kept,
// and so are this process's own, so it may be called at any time.
func (in *Ingester) Cleanup() (int, error) {
	n1, err1 := cleanSpool(filepath.Join(in.opts.SpoolDir, spoolPattern))
	n2, err2 := in.tree.Cleanup(context.Background())
	return n1 + n2, errors.Join(err1, err2)
}

// Ingest checks the upload and places it. The spooled file is gone afterwards whatever happens, except when
// SpoolPath is refused as forbidden: then nothing at all is touched.
func (in *Ingester) Ingest(ctx context.Context, req Request) (*Result, error) {
	f, remove, sp, err := in.open(req)
	if err != nil {
		return nil, err
	}
	defer func() {
		f.Close()
		if err := remove(); err != nil && !errors.Is(err, fs.ErrNotExist) {
			in.log.Warn("remove spool file", zap.String("file", f.Name()), zap.Error(err))
		}
	}()

	// The channel comes from the URL: refuse a typo before the package is read, and still remove the file.
	channel, err := in.channel(req.Channel)
	if err != nil {
		return nil, err
	}
	if sp.size > in.opts.MaxSize {
		return nil, fail(ErrTooLarge, "upload is %d bytes, more than server.max_upload_size (%d bytes)", sp.size, in.opts.MaxSize)
	}
	if err := checkSums(f, req.Checksums, sp.digests); err != nil {
		return nil, err
	}
	pkg, err := rpmmeta.InspectStat(f, sp.fi, sp.digests)
	if err != nil {
		return nil, err
	}
	res := &Result{Package: pkg, Channel: channel}
	if err := validate(pkg, in.opts.Arches); err != nil {
		return res, err
	}
	if res.SignedBy, res.ClaimedKeyID, err = in.judgeSignature(pkg, f); err != nil {
		return res, err
	}
	if err := in.route(res, req.OSRelease); err != nil {
		return res, err
	}
	if err := in.allow(req.Allow, res.Repos); err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if err := in.place(ctx, f, sp.fi, res, req.Commit); err != nil {
		return res, err
	}
	if res.Status != Present { // new bytes were placed (created, or replaced with overwrite on)
		in.prune(res) // failures are logged: the upload is placed whatever retention does
	}
	return res, nil
}

// spooled is what open learned about the upload's file: its size, and for a body streamed here, the digests
// computed while it was written (nil for a file the proxy spooled).
type spooled struct {
	size    int64
	digests *rpmmeta.Digests
	// fi is the file's stat, when open made one (a file the proxy spooled): rpmmeta then does not stat it again.
	fi os.FileInfo
}

// open returns the upload as a file in the spool, a function that removes it from the spool, and its size.
func (in *Ingester) open(req Request) (*os.File, func() error, spooled, error) {
	if req.SpoolPath != "" {
		f, remove, sp, err := in.openSpooled(req.SpoolPath)
		if err == nil && req.Spooled != nil {
			req.Spooled(sp.size)
		}
		return f, remove, sp, err
	}
	if req.Body == nil {
		return nil, nil, spooled{}, fail(ErrBadUpload, "no upload: send the package as the request body")
	}
	f, err := in.createSpoolFile()
	if err != nil {
		return nil, nil, spooled{}, classifyIO(err, "create spool file")
	}
	remove := func() error { return os.Remove(f.Name()) }
	// Limit what we take even if the caller did not, one byte past the cap so "too large" is detectable.
	sp, err := receive(f, bodyReader{io.LimitReader(req.Body, in.opts.MaxSize+1)})
	if err == nil && sp.size > in.opts.MaxSize {
		err = fail(ErrTooLarge, "upload is larger than server.max_upload_size (%d bytes)", in.opts.MaxSize)
	}
	if err != nil {
		f.Close()
		remove()
		return nil, nil, spooled{}, classifyIO(err, "receive upload")
	}
	return f, remove, sp, nil
}

// writebackEvery is how many bytes receive writes before it asks the kernel to start writing them back, so that
// the fsync before placement finds most of a large body already on disk instead of all of it: at most the last
// writebackEvery bytes, whose writeback starts when the body ends. 2 MiB keeps that wait, which the upload's
// answer waits for, under a millisecond on the build machine's disk (8 MiB left about 3 ms), for a system call per
// 2 MiB. writebackFrom is the smallest upload whose writeback is started before the checks (see openSpooled and
// receive): below it, the fsync alone costs less than the extra system call saves.
const (
	writebackEvery = 2 << 20
	writebackFrom  = 1 << 20
)

// startWriteback asks the kernel to start writing f's dirty pages in [off, off+n) to disk (n 0: to the end of
// the file) without waiting for the writes to finish: sync_file_range(SYNC_FILE_RANGE_WRITE) only submits them.
// It makes nothing durable (no metadata, no disk cache flush), so the fsync before placement stays and finds
// little left to write. Best effort: an error (a filesystem without it) only means that fsync does all the work.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// receive writes the body to f and hashes it in the same pass (rpmmeta.Digester), so the package is not read back
// for its digests: each piece is read into the Digester's own buffer, written to f from there and handed to the
// hashing without a copy. Writeback of what is written starts early (sync_file_range, which only starts it:
// durability still comes from the fsync before the package is placed).
func receive(f *os.File, body io.Reader) (spooled, error) {
	d := rpmmeta.NewDigester()
	var n, started int64
	for {
		buf := d.Buffer()
		k, rerr := io.ReadFull(body, buf)
		if k > 0 {
			if _, err := f.Write(buf[:k]); err != nil {
				d.Sum() // ends its goroutines
				return spooled{}, err
			}
			d.Commit(k)
			n += int64(k)
			if n-started >= writebackEvery {
				startWriteback(f, started, n-started)
				started = n
			}
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			if n >= writebackFrom && n > started {
				startWriteback(f, started, 0) // the tail, while the package is checked
			}
			return spooled{size: n, digests: d.Sum()}, nil
		case rerr != nil:
			d.Sum()
			return spooled{}, rerr
		}
	}
}

// createSpoolFile creates a direct upload's file in the spool, locked for as long as f is open so that another
// daemon's Cleanup leaves it alone (see staging.go). A Cleanup that removed the file between its creation and
// the lock makes a new one.
func (in *Ingester) createSpoolFile() (*os.File, error) {
	var err error
	for range 10 {
		var f *os.File
		if f, err = os.CreateTemp(in.opts.SpoolDir, spoolPattern); err != nil {
			return nil, err
		}
		if err = lockFile(f); err == nil {
			return f, nil
		}
		f.Close()
		if !errors.Is(err, errNotOwned) {
			os.Remove(f.Name())
		}
	}
	return nil, err
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
// inside SpoolDir. openat2's RESOLVE_BENEATH makes ".." and symlinks that leave the directory fail instead of
// being followed (spoolfile.go).
func (in *Ingester) openSpooled(name string) (*os.File, func() error, spooled, error) {
	forbid := func(why string) (*os.File, func() error, spooled, error) {
		return nil, nil, spooled{}, fail(ErrForbidden, "spooled file %q %s", name, why)
	}
	if !filepath.IsAbs(name) {
		return forbid("is not an absolute path")
	}
	rel, err := filepath.Rel(in.opts.SpoolDir, filepath.Clean(name))
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return forbid("is outside server.spool_dir")
	}
	// O_NONBLOCK: opening a FIFO planted in the spool would otherwise block the request forever; the regular-file
	// check below then refuses it. It changes nothing for regular files.
	f, spooledName, err := in.openInSpool(rel, name)
	if errors.Is(err, fs.ErrPermission) {
		// Not the uploader's doing: nginx writes its temp files 0600 for its worker user, so this daemon runs
		// as another user. A 500 with this in the log, not a 403 the operator would never see.
		return nil, nil, spooled{}, fmt.Errorf("open spooled file %s: %w: run rpm-ingestd as nginx's worker user (the unit's User= must equal nginx's user)", name, err)
	}
	if err != nil {
		reason := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			reason = pe.Err.Error() // without the path, which the message already names
		}
		return forbid("cannot be opened inside server.spool_dir: " + reason)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		spooledName.release() // refused: its name stays
		return forbid("is not a regular file")
	}
	// The proxy wrote the file without an fsync, so all of it is still dirty: start its writeback now, and the disk
	// writes it while the checks below read and hash it, instead of all of it waiting for the fsync before
	// placement. A small file has no hashing time to hide the write behind and is left to that fsync; one over
	// the size cap is refused next, unread.
	if fi.Size() >= writebackFrom && fi.Size() <= in.opts.MaxSize {
		startWriteback(f, 0, 0)
	}
	return f, spooledName.remove, spooled{size: fi.Size(), fi: fi}, nil
}

// checkSums compares the checksums the client claimed with the file, in one pass over it (none when only SHA-256
// is claimed and the body was hashed while it arrived: d). It runs before the parse, so a body damaged in transit
// is reported as such and not as an invalid package.
func checkSums(f *os.File, want map[string]string, d *rpmmeta.Digests) error {
	if len(want) == 0 {
		return nil
	}
	got := map[string]string{}
	hashes := map[string]hash.Hash{}
	var ws []io.Writer
	for algo := range want {
		var h hash.Hash
		switch algo {
		case "sha256":
			if d != nil {
				got[algo] = hex.EncodeToString(d.SHA256())
				continue
			}
			h = sha256.New()
		case "sha1":
			h = sha1.New()
		case "md5":
			h = md5.New()
		default:
			return fail(ErrBadUpload, "checksum algorithm %q is not supported: send sha256, sha1 or md5", algo)
		}
		hashes[algo] = h
		ws = append(ws, h)
	}
	if len(ws) > 0 {
		if _, err := io.Copy(io.MultiWriter(ws...), io.NewSectionReader(f, 0, 1<<62)); err != nil {
			return fmt.Errorf("read upload: %w", err)
		}
	}
	for algo, h := range hashes {
		got[algo] = hex.EncodeToString(h.Sum(nil))
	}
	for _, algo := range slices.Sorted(maps.Keys(want)) {
		if claimed := strings.ToLower(strings.TrimSpace(want[algo])); got[algo] != claimed {
			return fail(ErrBadUpload, "checksum mismatch: the upload's %s is %s, the client sent %.64q; the body was damaged in transit, upload again", algo, got[algo], claimed)
		}
	}
	return nil
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
	// The name's length without building it: every upload passes here.
	if n := len(p.Name) + len(p.Version) + len(p.Release) + len(p.FileArch()) + len("--..rpm"); n > maxFileName {
		return fail(ErrRejected, "package file name %s… is %d bytes, more than the %d a filesystem allows", p.FileName()[:40], n, maxFileName)
	}
	if p.Source || p.Arch == "noarch" || slices.Contains(arches, p.Arch) {
		return nil
	}
	return fail(ErrRejected, "package arch %.40q is not accepted here: repo.arches lists %s (plus noarch and sources)", p.Arch, strings.Join(arches, ", "))
}

// judgeSignature applies the signature policy to the package in f (inspected as p) and returns its verified signer
// and its claimed one. A refusal is ErrRejected; a failure to read f is ours, not the package's.
func (in *Ingester) judgeSignature(p *rpmmeta.Package, f io.ReaderAt) (signedBy, claimed string, err error) {
	if in.opts.Signatures == nil {
		return "", "", nil
	}
	r := &readRecorder{r: f}
	signedBy, claimed, err = in.opts.Signatures.Judge(p, r)
	switch {
	case r.err != nil:
		return "", "", fmt.Errorf("read %s for its signature: %w", p.NEVRA(), r.err)
	case err != nil:
		return "", "", &Error{Kind: ErrRejected, Msg: p.NEVRA() + ": " + err.Error() + " (repo.require_signature is on; repo.keyring lists the accepted keys)", cause: err}
	}
	return signedBy, claimed, nil
}

// readRecorder remembers the first read error other than io.EOF, so a failure to read the file is told apart
// from a verdict on the package.
type readRecorder struct {
	r   io.ReaderAt
	err error
}

func (rr *readRecorder) ReadAt(b []byte, off int64) (int, error) {
	n, err := rr.r.ReadAt(b, off)
	if err != nil && err != io.EOF && rr.err == nil {
		rr.err = err
	}
	return n, err
}

// route fills res.OSRelease, res.Repos and res.Paths. A release named by the uploader (override) is either a
// dist tag ("el9": it gives the layout its OSAbbr too) or a bare release ("9", with the package's own dist tag, if
// any, for OSAbbr).
func (in *Ingester) route(res *Result, override string) error {
	p := res.Package
	dist, ok := rpmmeta.ParseDist(p.Release, in.opts.DistTags)
	switch {
	case override != "":
		if !osRelRe.MatchString(override) {
			return fail(ErrRejected, "os_release %q is not allowed: use letters, digits, . and _, like 9 or el9", override)
		}
		res.OSRelease = override
		if d, ok := rpmmeta.ParseDist(override, in.opts.DistTags); ok {
			dist, res.OSRelease = d, d.Major
		}
	case ok:
		res.OSRelease = dist.Major
	default:
		return fail(ErrRejected, "release %q of %s has no dist tag (like el9 or fc40; known: %s): rebuild with one, or choose the OS release with ?os_release=9 or the header X-OS-Release: 9",
			p.Release, p.NEVRA(), strings.Join(in.opts.DistTags, ", "))
	}
	if len(in.opts.OSReleases) > 0 { // checked here so that the NEVRA for the message is made only when needed
		if err := in.checkOSRelease(res.OSRelease, p.NEVRA()); err != nil {
			return err
		}
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
	fileName := p.FileName()
	for _, arch := range arches {
		rel, err := in.opts.Layout(res.Channel, dist.Abbr, res.OSRelease, arch)
		if err != nil {
			// The layout is validated at start for every dist tag, so only what the uploader chose can fail
			// here, such as a bare os_release where the layout needs the dist tag's abbreviation.
			return &Error{Kind: ErrRejected, Msg: "cannot route " + p.NEVRA() + ": " + err.Error(), cause: err}
		}
		res.Repos = append(res.Repos, filepath.Join(in.opts.TopDir, rel))
		res.Paths = append(res.Paths, filepath.ToSlash(filepath.Join(rel, "Packages", fileName)))
	}
	return nil
}

// checkOSRelease refuses an OS release that repo.os_releases does not list (when it lists any), naming the list,
// so a typo such as os_release=nine or EL9 cannot create a permanent repository.
func (in *Ingester) checkOSRelease(release, what string) error {
	if len(in.opts.OSReleases) == 0 || slices.Contains(in.opts.OSReleases, release) {
		return nil
	}
	return fail(ErrRejected, "%s: OS release %.64q is not one of repo.os_releases (%s): fix the dist tag or os_release, or add the release to repo.os_releases",
		what, release, strings.Join(in.opts.OSReleases, ", "))
}

// place puts the upload f into every repository of res, all or nothing as far as the tree allows: the tree stages
// the checked file (readable and durable) and places it, the same placement promotion uses (see tree.Tree.Place).
func (in *Ingester) place(ctx context.Context, f *os.File, fi os.FileInfo, res *Result, record func(*Result) error) error {
	var staged tree.Staged
	var err error
	if ss, ok := in.tree.(tree.StatStager); ok && fi != nil {
		staged, err = ss.StageStat(ctx, f, fi) // the open's fstat: not a second one (fi: open's, nil for a direct upload)
	} else {
		staged, err = in.tree.Stage(ctx, f)
	}
	if err != nil {
		return classifyIO(err, "stage package")
	}
	defer staged.Close()
	var commit func(status Status) error
	if record != nil {
		commit = func(status Status) error {
			res.Status = status
			return record(res)
		}
	}
	var made func(tree.Ref, tree.Stamp)
	if record != nil {
		made = func(ref tree.Ref, st tree.Stamp) {
			p := ref.Path()
			for i, rp := range res.Paths {
				if rp == p {
					if res.Stamps == nil {
						res.Stamps = make([]tree.Stamp, len(res.Paths))
					}
					res.Stamps[i] = st
				}
			}
		}
	}
	status, dirty, err := in.placeUnits(ctx, []unit{{staged: staged, pkg: res.Package, repos: res.Repos}}, commit, made)
	res.Status, res.Dirty = status, dirty
	return err
}

// unit is one file to place: its staged bytes, the package they hold, and the repositories (absolute directories)
// it goes to. A noarch upload is one unit with a repository per arch; a promotion is one unit per file of the
// build.
type unit struct {
	staged tree.Staged
	pkg    *rpmmeta.Package
	repos  []string
}

// placeUnits places every unit through the tree (all or nothing, see tree.Tree.Place) and translates what the
// tree says into ingest's terms: the Status, the repositories it recorded pending changes for (absolute; the
// caller must Trigger each, also when placeUnits fails), and a conflict, a full disk or a failed commit as an
// *Error.
func (in *Ingester) placeUnits(ctx context.Context, units []unit, commit func(Status) error, made func(tree.Ref, tree.Stamp)) (Status, []string, error) {
	tus := make([]tree.Unit, len(units))
	for i, u := range units {
		tus[i] = tree.Unit{Staged: u.staged, SHA256: u.pkg.SHA256, Name: u.pkg.FileName()}
		for _, repo := range u.repos {
			tus[i].Repos = append(tus[i].Repos, in.rel(repo))
		}
	}
	opts := tree.PlaceOptions{Overwrite: in.opts.Overwrite, Made: made}
	if commit != nil {
		opts.Commit = func(s tree.Status) error { return commit(Status(s)) }
	}
	placed, err := in.tree.Place(ctx, tus, opts)
	var dirty []string
	for _, repo := range placed.Pending {
		dirty = append(dirty, in.abs(repo))
	}
	status := Status(placed.Status)
	var ee *tree.ExistsError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		p := units[0].pkg
		for _, u := range units {
			if u.pkg.FileName() == ee.Ref.Name {
				p = u.pkg
			}
		}
		err = conflict(p, ee.Stored)
	case errors.Is(err, tree.ErrAborted):
		err = fmt.Errorf("%w: %w", ErrNotRecorded, err)
	case errors.Is(err, tree.ErrNoSpace):
		err = &Error{Kind: ErrNoSpace, Msg: noSpaceMsg(err), cause: err}
	case errors.Is(err, tree.ErrUnavailable):
		err = &Error{Kind: ErrUnavailable, Msg: unavailableMsg, cause: err}
	}
	return status, dirty, err
}

// unavailableMsg is the uploader's line for a placement the storage did not answer: the package was not stored.
const unavailableMsg = "the package storage is unavailable; nothing was stored: retry in a few seconds"

// noSpaceMsg is the uploader's line for a placement the tree refused for want of space: the tree's error starts
// with the step that failed ("place package: ...": the new names were removed again).
func noSpaceMsg(err error) string {
	what, _, _ := strings.Cut(err.Error(), ": ")
	msg := what + ": no space left on the repository host; free disk space and upload again"
	if what == "place package" {
		msg += ": nothing was kept"
	}
	return msg
}

// abs is the absolute directory of a repository the tree names.
func (in *Ingester) abs(repo string) string {
	return filepath.Join(in.opts.TopDir, filepath.FromSlash(repo))
}

func conflict(p *rpmmeta.Package, storedSum string) error {
	return fail(ErrExists, "%s is already stored with different content (stored sha256 %s, uploaded sha256 %s): bump the release, or set repo.overwrite: true",
		p.FileName(), storedSum, p.SHA256)
}

// classifyIO turns ENOSPC and EDQUOT into ErrNoSpace and leaves input errors (already *Error, or a body read
// error passed through by the caller) alone.
func classifyIO(err error, what string) error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return err
	case errors.Is(err, tree.ErrNoSpace), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return &Error{Kind: ErrNoSpace, Msg: what + ": no space left on the repository host; free disk space and upload again", cause: err}
	case errors.Is(err, tree.ErrUnavailable):
		return &Error{Kind: ErrUnavailable, Msg: what + ": " + unavailableMsg, cause: err}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// targets locates repository directories (absolute) as Targets. Without Options.Locate only the directory is
// known: the Target is then empty, and an Allow that needs more must say so.
func (in *Ingester) targets(repos []string) []Target {
	out := make([]Target, 0, len(repos))
	for _, repo := range repos {
		var t Target
		if in.opts.Locate != nil {
			if c, r, a, ok := in.opts.Locate(in.rel(repo)); ok {
				t = Target{Channel: c, OSRelease: r, Arch: a}
			}
		}
		out = append(out, t)
	}
	return out
}
