package registry

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// LocateFunc tells the os_release and arch of a repository from its directory relative to top_dir ("9/x86_64"),
// by reading repo.layout backwards; ok is false for a directory the layout cannot have made. config.Config's
// LocateRepo is the production one.
type LocateFunc func(repoRel string) (osRelease, arch string, ok bool)

// Entry is one package file in the tree with what the registry knows of it. The record fields (UploadedAt to
// Paths) are all null together when no record describes the file: it was copied in by hand, uploaded before the
// audit trail was on, or recorded only in a rotated-away audit file.
type Entry struct {
	Path      string    `json:"path"` // relative to top_dir, slash-separated
	Repo      string    `json:"repo"` // the repository directory relative to top_dir
	OSRelease string    `json:"os_release"`
	Arch      string    `json:"arch"` // the repository's arch ("SRPMS" for sources)
	Name      string    `json:"name"` // the package name, read from the canonical file name
	Size      int64     `json:"size"`
	ModTime   time.Time `json:"mtime"`

	UploadedAt *time.Time `json:"uploaded_at"` // of the first upload of these bytes
	UploadedBy *string    `json:"uploaded_by"` // "" for a local peer without htpasswd
	NEVRA      *string    `json:"nevra"`
	SHA256     *string    `json:"sha256"`
	SignedBy   *string    `json:"signed_by"` // verified against repo.keyring; "" when unsigned or not verified
	// ClaimedKeyID is the key id of a signature that was not verified; "" when verified or unsigned.
	ClaimedKeyID *string  `json:"claimed_key_id"`
	RequestID    *string  `json:"request_id"`
	Paths        []string `json:"paths"` // every path the recorded upload placed, this one included
}

// Query selects entries for List. Empty fields do not filter.
type Query struct {
	Name      string
	OSRelease string
	Arch      string
	Since     time.Time // entries first uploaded (for entries without a record: modified) at or after
	Limit     int       // at most this many; <= 0 means DefaultLimit, and more than MaxLimit means MaxLimit
	Cursor    string    // NextCursor of the previous page; "" starts at the beginning
}

// Page is one page of List, in path order. NextCursor is "" on the last page.
type Page struct {
	Items      []Entry `json:"items"`
	NextCursor string  `json:"next_cursor"`
}

// Page sizes of List.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// ErrBadCursor is returned by List for a cursor it did not make.
var ErrBadCursor = errors.New("bad cursor: pass next_cursor from the previous page unchanged")

// recentMax is how many decisions Recent can return.
const recentMax = 200

// file is one package file in the tree.
type file struct {
	path, repo, osRelease, arch, name string
	size                              int64
	mtime                             time.Time
	rec                               *Record // nil: no record describes this file
}

// Index is the in-memory list of the package files in the tree, each with the record of its upload. It is built
// once at start (Build) and kept current by Placed, Removed and SyncRepo; it is safe for concurrent use, and
// queries never touch the disk.
//
// Memory and speed (BenchmarkList50k, BenchmarkBuild50k): about 0.6-1 KB of heap per package with its record, so
// 30-50 MB at 50,000; a page filtered by name takes microseconds, a page with other filters scans the path-sorted
// list (about a millisecond at 50,000); Build walks the tree once at start (about half a second for 50,000 files
// on a warm cache).
type Index struct {
	top    string
	locate LocateFunc
	tree   tree.Tree // nil: the files under top (see UseTree)

	mu     sync.RWMutex
	files  map[string]*file    // by path
	sorted []*file             // every file, sorted by path: the paging order
	byName map[string][]*file  // each package name's files, sorted by path
	repos  map[string]location // Locate's answers, by repository
	recent []Record            // ring of the last recentMax decisions
	next   int                 // where the ring writes next, once full
}

// location is a repository's os_release and arch.
type location struct {
	osRelease, arch string
}

// NewIndex returns an empty index of the tree at topDir (absolute). locate may be nil: then no entry has an
// os_release or arch.
func NewIndex(topDir string, locate LocateFunc) *Index {
	if locate == nil {
		locate = func(string) (string, string, bool) { return "", "", false }
	}
	return &Index{top: topDir, locate: locate, files: map[string]*file{}, byName: map[string][]*file{}, repos: map[string]location{}}
}

// BuildStats says what Build found.
type BuildStats struct {
	Files    int // package files in the tree
	Records  int // audit lines read
	Bad      int // audit lines that are not records (a line cut short by a crash or a full disk)
	Attached int // files with a record
}

// Build fills the index: it replays the audit file at auditPath ("" for none; a missing file is fine) and then
// walks the tree for <repo>/Packages/*.rpm, skipping names that start with a dot (staging, locks, createrepo_c's
// temporaries). A record is attached to a file it names only if the sizes agree, so a file replaced by hand
// loses its record. Only auditPath itself is read, not its rotated predecessors: a package recorded only in a
// rotated file shows no record. Call it once, before the index is shared.
func (ix *Index) Build(auditPath string) (BuildStats, error) {
	var st BuildStats
	records := map[string]*Record{}
	if auditPath != "" {
		if err := ix.replay(auditPath, records, &st); err != nil {
			return st, err
		}
	}
	add := func(rel string, fi fs.FileInfo) {
		f := ix.newFile(rel, fi)
		if rec := records[rel]; rec != nil && rec.Size == f.size {
			f.rec = rec
			st.Attached++
		}
		ix.files[rel] = f
		st.Files++
	}
	var err error
	if ix.tree != nil {
		err = ix.listTree(add)
	} else {
		err = ix.walk(add)
	}
	if err != nil {
		return st, err
	}
	ix.sorted = make([]*file, 0, len(ix.files))
	for _, f := range ix.files {
		ix.sorted = append(ix.sorted, f)
		ix.byName[f.name] = append(ix.byName[f.name], f)
	}
	slices.SortFunc(ix.sorted, byPath)
	for _, files := range ix.byName {
		slices.SortFunc(files, byPath)
	}
	return st, nil
}

// walk walks top for <repo>/Packages/*.rpm and calls add for each regular file (symlinks followed).
func (ix *Index) walk(add func(rel string, fi fs.FileInfo)) error {
	err := filepath.WalkDir(ix.top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == ix.top {
				return err
			}
			return nil // an unreadable corner hides only itself
		}
		name := d.Name()
		if d.IsDir() {
			if p != ix.top && (strings.HasPrefix(name, ".") || name == "repodata") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".rpm") || filepath.Base(filepath.Dir(p)) != "Packages" {
			return nil
		}
		fi, err := os.Stat(p) // follows a symlink, as createrepo_c does
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(ix.top, p)
		if err != nil {
			return nil
		}
		add(filepath.ToSlash(rel), fi)
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk top_dir: %w", err)
	}
	return nil
}

// maxLine bounds one audit line when reading it back; a real one is well under 4 KiB.
const maxLine = 1 << 20

// replay reads the audit file into records (the latest record of each path) and the recent ring.
func (ix *Index) replay(auditPath string, records map[string]*Record, st *BuildStats) error {
	f, err := os.Open(auditPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read audit file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil // a device (tests use /dev/full) has no history; reading one might never end
	}
	r := bufio.NewReaderSize(f, maxLine) // a longer line is skipped as bad
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Longer than any record we write: skip it whole.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			st.Bad++
			continue
		}
		if len(line) > 0 {
			var rec Record
			if json.Unmarshal(line, &rec) != nil || rec.Action == "" {
				st.Bad++
			} else {
				st.Records++
				ix.remember(rec)
				applyRecord(records, &rec)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read audit file: %w", err)
		}
	}
}

// applyRecord updates the record of each path rec names. Identical bytes keep their first record: a retry that
// found the package stored is not its upload.
func applyRecord(records map[string]*Record, rec *Record) {
	switch {
	case rec.Placed():
		for _, p := range rec.Paths {
			if old := records[p]; old == nil || old.SHA256 != rec.SHA256 {
				records[p] = rec
			}
		}
	case rec.Action == ActionDelete || rec.Action == ActionPrune:
		if rec.Status/100 == 2 {
			for _, p := range rec.Paths {
				delete(records, p)
			}
		}
	}
}

// newFile describes the package file at rel (relative to top_dir, slash-separated).
func (ix *Index) newFile(rel string, fi fs.FileInfo) *file {
	repo := path.Dir(path.Dir(rel))
	loc, ok := ix.repos[repo]
	if !ok {
		loc.osRelease, loc.arch, _ = ix.locate(repo)
		ix.repos[repo] = loc
	}
	return &file{path: rel, repo: repo, osRelease: loc.osRelease, arch: loc.arch, name: PackageName(path.Base(rel)),
		size: fi.Size(), mtime: fi.ModTime()}
}

// PackageName reads the package name from a canonical file name, <name>-<version>-<release>.<arch>.rpm. A name
// that is not canonical (copied in by hand) gives itself without ".rpm".
func PackageName(fileName string) string {
	s := strings.TrimSuffix(fileName, ".rpm")
	dot := strings.LastIndexByte(s, '.')
	if dot < 0 {
		return s
	}
	nvr := s[:dot]
	rel := strings.LastIndexByte(nvr, '-')
	if rel <= 0 {
		return s
	}
	ver := strings.LastIndexByte(nvr[:rel], '-')
	if ver <= 0 {
		return s
	}
	return nvr[:ver]
}

// Placed records that rec (an accepted upload or a promotion) put its package at rec.Paths: each path gets an
// entry, described by rec unless it already held the same bytes under an earlier record. Other records only
// count for Recent.
func (ix *Index) Placed(rec Record) {
	if !rec.Placed() {
		return
	}
	stamps := rec.Stamps
	rec.Stamps = nil
	r := &rec
	// The paths the index does not hold yet are stat'ed before the write lock: a stat is system calls (on s3 a
	// request), and every upload records here, so under the lock it would hold up every other upload's record
	// and every reader. A path removed or placed meanwhile is handled as before: an entry exists afterwards,
	// described by what the stat found or, failing that, by rec. A path the placement itself created comes
	// with its stamp (rec.Stamps: the tree's own identity of the linked file), which needs no stat at all.
	infos := make([]fs.FileInfo, len(rec.Paths))
	ix.mu.RLock()
	missing := make([]bool, len(rec.Paths))
	for i, p := range rec.Paths {
		missing[i] = ix.files[p] == nil
	}
	ix.mu.RUnlock()
	for i, p := range rec.Paths {
		switch {
		case !missing[i]:
		case i < len(stamps) && !stamps[i].ModTime.IsZero():
			infos[i] = stampInfo{stamps[i]}
		default:
			infos[i] = ix.statInfo(p)
		}
	}

	ix.mu.Lock()
	defer ix.mu.Unlock()
	for i, p := range rec.Paths {
		f := ix.files[p]
		if f == nil {
			fi := infos[i]
			if fi == nil && !missing[i] {
				fi = ix.statInfo(p) // the entry went away after the check above: rare, so under the lock
			}
			if fi == nil {
				// Stat failed (it was linked a moment ago): describe it from the record.
				fi = recordInfo{r}
			}
			f = ix.newFile(p, fi)
			ix.insert(f)
		}
		if f.rec == nil || f.rec.SHA256 != rec.SHA256 {
			f.rec = r
			f.size = rec.Size
		}
	}
}

// statInfo describes the file at rel from the disk (or the tree); nil if it is not a regular file there. It
// needs no lock.
func (ix *Index) statInfo(rel string) fs.FileInfo {
	if ix.tree != nil {
		st, err := ix.tree.Stat(context.Background(), tree.Ref{Repo: path.Dir(path.Dir(rel)), Name: path.Base(rel)})
		if err != nil {
			return nil
		}
		return stampInfo{st}
	}
	fi, err := os.Stat(filepath.Join(ix.top, filepath.FromSlash(rel)))
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	return fi
}

// recordInfo is the fs.FileInfo a record implies, for a file that cannot be stat'ed.
type recordInfo struct{ r *Record }

func (i recordInfo) Name() string       { return "" }
func (i recordInfo) Size() int64        { return i.r.Size }
func (i recordInfo) Mode() fs.FileMode  { return 0o644 }
func (i recordInfo) ModTime() time.Time { return i.r.Time }
func (i recordInfo) IsDir() bool        { return false }
func (i recordInfo) Sys() any           { return nil }

// insert adds f; the caller holds ix.mu and f.path is not in the index.
func (ix *Index) insert(f *file) {
	ix.files[f.path] = f
	ix.sorted = insertSorted(ix.sorted, f)
	ix.byName[f.name] = insertSorted(ix.byName[f.name], f)
}

// remove drops the entry at p, if any; the caller holds ix.mu.
func (ix *Index) remove(p string) {
	f := ix.files[p]
	if f == nil {
		return
	}
	delete(ix.files, p)
	ix.sorted = deleteSorted(ix.sorted, p)
	if names := deleteSorted(ix.byName[f.name], p); len(names) > 0 {
		ix.byName[f.name] = names
	} else {
		delete(ix.byName, f.name)
	}
}

func byPath(a, b *file) int { return strings.Compare(a.path, b.path) }

// search finds the position of path p in s, sorted by path.
func search(s []*file, p string) (int, bool) {
	return slices.BinarySearchFunc(s, p, func(f *file, p string) int { return strings.Compare(f.path, p) })
}

func insertSorted(s []*file, f *file) []*file {
	i, found := search(s, f.path)
	if found {
		return s
	}
	return slices.Insert(s, i, f)
}

func deleteSorted(s []*file, p string) []*file {
	i, found := search(s, p)
	if !found {
		return s
	}
	return slices.Delete(s, i, i+1)
}

// Removed drops the entries at paths (relative to top_dir), with their records: a package deleted, pruned or
// moved away.
func (ix *Index) Removed(paths ...string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, p := range paths {
		ix.remove(p)
	}
}

// SyncRepo brings the entries of one repository (repoRel: its directory relative to top_dir) in line with hrefs,
// the package paths relative to it that its new metadata lists ("Packages/x.rpm"), as a publish event reports
// them. Entries the metadata no longer lists are dropped, and files it lists that the index lacks are added
// without a record (copied in by hand). Each is checked on disk first: an upload placed after createrepo_c's scan
// is missing from hrefs but is in the tree, and stays; a listed file already removed again is not added. An entry
// whose file changed size loses its record.
func (ix *Index) SyncRepo(repoRel string, hrefs []string) {
	repoRel = path.Clean(repoRel)
	want := make(map[string]bool, len(hrefs))
	for _, h := range hrefs {
		dir, name := path.Split(h)
		if dir != "Packages/" || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".rpm") {
			continue // not a place uploads or Build use
		}
		want[path.Join(repoRel, h)] = true
	}
	// The disk is read without the lock; what changes meanwhile is decided by the next event or upload.
	type seen struct {
		fi fs.FileInfo // nil: not a regular file now
	}
	ix.mu.RLock()
	check := map[string]seen{}
	for p := range want {
		check[p] = seen{}
	}
	start, _ := search(ix.sorted, repoRel+"/")
	for _, f := range ix.sorted[start:] {
		if !strings.HasPrefix(f.path, repoRel+"/") {
			break
		}
		if f.repo == repoRel { // not an entry of a repository nested below this one
			check[f.path] = seen{}
		}
	}
	ix.mu.RUnlock()
	if ix.tree != nil {
		// One listing of the repository: what createrepo_c indexes there (regular files, symlinks followed).
		entries, err := ix.tree.List(context.Background(), repoRel)
		if err != nil {
			return // unknown now: the next publish or upload decides
		}
		for _, e := range entries {
			p := path.Join(repoRel, "Packages", e.Name)
			if _, ok := check[p]; ok {
				check[p] = seen{stampInfo{e.Stamp}}
			}
		}
	} else {
		for p := range check {
			if fi, err := os.Stat(filepath.Join(ix.top, filepath.FromSlash(p))); err == nil && fi.Mode().IsRegular() {
				check[p] = seen{fi}
			}
		}
	}

	ix.mu.Lock()
	defer ix.mu.Unlock()
	for p, s := range check {
		f := ix.files[p]
		switch {
		case s.fi == nil:
			ix.remove(p)
		case f == nil:
			ix.insert(ix.newFile(p, s.fi))
		default:
			if f.size != s.fi.Size() {
				f.rec = nil // different bytes than recorded
			}
			f.size, f.mtime = s.fi.Size(), s.fi.ModTime()
		}
	}
}

// Get returns the entry at p (relative to top_dir).
func (ix *Index) Get(p string) (Entry, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	f := ix.files[p]
	if f == nil {
		return Entry{}, false
	}
	return f.entry(), true
}

// BySHA256 returns the entries whose record has the given SHA-256 (hex), in path order. Files without a record
// are never found: their digest is not known without reading them.
func (ix *Index) BySHA256(sum string) []Entry {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var out []Entry
	for _, f := range ix.sorted {
		if f.rec != nil && f.rec.SHA256 == sum {
			out = append(out, f.entry())
		}
	}
	return out
}

// Len is the number of package files in the index.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.files)
}

// List returns one page of entries matching q, in path order. The cursor is the last path of the previous page,
// so paging stays consistent while packages come and go: nothing is repeated, and nothing that stayed is skipped.
func (ix *Index) List(q Query) (Page, error) {
	after := ""
	if q.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		if err != nil || len(b) == 0 {
			return Page{}, ErrBadCursor
		}
		after = string(b)
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}

	ix.mu.RLock()
	defer ix.mu.RUnlock()
	files := ix.sorted
	if q.Name != "" {
		files = ix.byName[q.Name]
	}
	start, found := search(files, after)
	if found {
		start++
	}
	page := Page{Items: []Entry{}}
	for _, f := range files[start:] {
		if !f.matches(q) {
			continue
		}
		if len(page.Items) == limit {
			// One more match exists: there is a next page, starting after the last item.
			page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(page.Items[limit-1].Path))
			break
		}
		page.Items = append(page.Items, f.entry())
	}
	return page, nil
}

// matches reports whether f passes q's filters.
func (f *file) matches(q Query) bool {
	if q.OSRelease != "" && f.osRelease != q.OSRelease || q.Arch != "" && f.arch != q.Arch || q.Name != "" && f.name != q.Name {
		return false
	}
	if !q.Since.IsZero() {
		t := f.mtime
		if f.rec != nil {
			t = f.rec.Time
		}
		return !t.Before(q.Since)
	}
	return true
}

// entry copies f out for a caller; the record's fields are copied too, so callers cannot change the index.
func (f *file) entry() Entry {
	e := Entry{Path: f.path, Repo: f.repo, OSRelease: f.osRelease, Arch: f.arch, Name: f.name, Size: f.size, ModTime: f.mtime}
	if r := f.rec; r != nil {
		at, by, nevra, sum, signer, id := r.Time, r.User, r.NEVRA, r.SHA256, r.SignedBy, r.RequestID
		e.UploadedAt, e.UploadedBy, e.NEVRA, e.SHA256, e.SignedBy, e.RequestID = &at, &by, &nevra, &sum, &signer, &id
		claimed := r.ClaimedKeyID
		e.ClaimedKeyID = &claimed
		e.Paths = slices.Clone(r.Paths)
	}
	return e
}

// remember adds rec to the ring of recent decisions.
func (ix *Index) remember(rec Record) {
	rec.Stamps = nil
	if len(ix.recent) < recentMax {
		ix.recent = append(ix.recent, rec)
		return
	}
	ix.recent[ix.next] = rec
	ix.next = (ix.next + 1) % recentMax
}

// Noted adds rec, any decision, to what Recent returns.
func (ix *Index) Noted(rec Record) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.remember(rec)
}

// Recent returns up to n of the latest decisions (at most 200 are kept), newest first.
func (ix *Index) Recent(n int) []Record {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	n = min(n, len(ix.recent))
	out := make([]Record, 0, max(n, 0))
	for i := range n {
		// The newest is just before next (the ring's oldest), or the last appended while not full.
		j := (ix.next - 1 - i + 2*len(ix.recent)) % len(ix.recent)
		out = append(out, ix.recent[j])
	}
	return out
}
