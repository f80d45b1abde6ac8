package s3tree

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// work is one publish in a local directory: <dir>/repo (Dir) and <dir>/out (Output).
type work struct {
	t     *Tree
	lock  *lock
	dir   string
	pkgs  []tree.Entry
	etag  string   // repomd.xml's ETag at Begin; "" when there was none
	old   []byte   // repomd.xml at Begin
	named []string // the data files it names
	full  bool     // a package changed under its name: no old metadata was seeded
	done  bool
	// primary is the published primary.xml's name → sha256 map Begin judged by (nil: none or unreadable), and
	// listed when Packages/ was last listed in full for w.pkgs: both go into the publish cache.
	primary map[string]string
	listed  time.Time
	cached  bool // seeded from the publish cache, not downloaded
}

func (w *work) Dir() string            { return filepath.Join(w.dir, "repo") }
func (w *work) Output() string         { return filepath.Join(w.dir, "out") }
func (w *work) Packages() []tree.Entry { return slices.Clone(w.pkgs) }
func (w *work) Close() error {
	w.t.log.Debug("s3tree: work closed", zap.String("repo", w.lock.repo))
	return os.RemoveAll(w.dir)
}
func (w *work) outFile(name string) string { return filepath.Join(w.Output(), "repodata", name) }

// Incremental: Dir()/Packages holds only what the seeded metadata does not describe (all of Packages() in a full
// run, where nothing is seeded), so createrepo_c runs with --update --skip-stat either way.
func (w *work) Incremental() bool { return true }

// parseRepomd returns the data files repomd.xml names (file names in repodata/) and the primary's, if any.
func parseRepomd(b []byte) (names []string, primary string, err error) {
	files, err := tree.ParseRepomd(b)
	if err != nil {
		return nil, "", fmt.Errorf("s3tree: repomd.xml: %w", err)
	}
	for _, d := range files {
		n, ok := tree.RepodataName(d.Href)
		if !ok || !segRe.MatchString(n) {
			return nil, "", fmt.Errorf("s3tree: repomd.xml names %q, not a file in repodata/", d.Href)
		}
		names = append(names, n)
		if d.Type == "primary" {
			primary = n
		}
	}
	return names, primary, nil
}

// Begin prepares a publish: it downloads the published repodata (repomd.xml and every file it names) into
// Dir()/repodata and Output()/repodata, lists the packages, and downloads those that the published primary.xml
// does not list with the sha256 stored in their metadata. When a listed package's bytes changed under its name
// (an overwrite), createrepo_c --update --skip-stat would reuse its old entry, so no old metadata is seeded and
// every package is downloaded: a full run.
func (t *Tree) Begin(ctx context.Context, l tree.Lock) (tree.Work, error) {
	lk, ok := l.(*lock)
	if !ok || lk.t != t {
		return nil, fmt.Errorf("%w: a lock of another tree", tree.ErrInvalid)
	}
	if err := lk.Renew(ctx); err != nil { // a lost lease is found before any download, not after
		return nil, err
	}
	dir, err := os.MkdirTemp(t.dir, "publish-")
	if err != nil {
		return nil, fmt.Errorf("s3tree: %w", err)
	}
	w := &work{t: t, lock: lk, dir: dir}
	// The two debug lines bracket the work under the lease: for one repository they never overlap between
	// daemons (the multi-daemon e2e test checks that from the logs).
	t.log.Debug("s3tree: work begun", zap.String("repo", lk.repo))
	if err := w.begin(ctx); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

func (w *work) begin(ctx context.Context) error {
	t, repo := w.t, w.lock.repo
	phase, logPhases := phases()
	defer func() { t.log.Debug("s3tree: begin phases", logPhases(zap.String("repo", repo))...) }()
	for _, d := range []string{filepath.Join(w.Dir(), "Packages"), filepath.Join(w.Dir(), "repodata"),
		filepath.Join(w.Output(), "repodata")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("s3tree: %w", err)
		}
	}
	var primary map[string]string
	// The publish cache (cache.go): this process's last publish, still current when repomd.xml has its ETag.
	cached := t.cacheOf(repo)
	if cached != nil {
		i, err := t.st.Head(ctx, mdKey(repo, "repomd.xml"))
		switch {
		case err != nil && !errors.Is(err, objstore.ErrNotFound):
			return mapErr(err)
		case err == nil && i.ETag == cached.etag && w.useCache(cached):
			primary, w.cached = cached.primary, true
		default:
			t.setCache(repo, nil) // another writer published: download what it published
			cached = nil
			for _, d := range []string{filepath.Join(w.Dir(), "repodata"), filepath.Join(w.Output(), "repodata")} {
				if err := os.RemoveAll(d); err != nil {
					return fmt.Errorf("s3tree: %w", err)
				}
				if err := os.Mkdir(d, 0o755); err != nil {
					return fmt.Errorf("s3tree: %w", err)
				}
			}
		}
	}
	if cached == nil {
		var err error
		if primary, err = w.download(ctx); err != nil {
			return err
		}
	}
	w.primary = primary
	phase("metadata")
	var err error
	w.listed = t.now()
	delta := false
	if cached != nil {
		var pkgs []tree.Entry
		if pkgs, delta, err = t.deltaListing(ctx, repo, cached); err != nil {
			return err
		}
		if delta {
			w.pkgs, w.listed = pkgs, cached.listed
		}
	}
	if !delta {
		if w.pkgs, err = t.List(ctx, repo); err != nil {
			return err
		}
	}
	phase("list")
	slices.SortFunc(w.pkgs, func(a, b tree.Entry) int { return strings.Compare(a.Name, b.Name) })

	// Which packages createrepo_c must read: those the published primary does not list, and (full run) all of
	// them when one changed under its name.
	// A package whose listed ETag is the one the published generation was built from is unchanged (no request);
	// the others that primary.xml lists are HEADed and judged by their sha256.
	var etags map[string]string
	switch {
	case primary != nil && cached != nil:
		etags = cached.etags
	case primary != nil:
		etags = t.readETags(ctx, repo, w.old)
	}
	phase("etags")
	index := map[string]int{}
	var known []string
	for i, e := range w.pkgs {
		index[e.Name] = i
		sum, ok := primary[e.Name]
		switch {
		case !ok:
		case etags[e.Name] != "" && etags[e.Name] == e.ETag:
			w.pkgs[i].SHA256 = sum
		default:
			known = append(known, e.Name)
		}
	}
	var mu sync.Mutex
	if err := t.parallel(ctx, known, func(ctx context.Context, n string) error {
		i, err := t.st.Head(ctx, pkgKey(tree.Ref{Repo: repo, Name: n}))
		if errors.Is(err, objstore.ErrNotFound) {
			return nil // removed since the listing: createrepo_c reuses the old entry; the next publish drops it
		}
		if err != nil {
			return mapErr(err)
		}
		sum, err := t.storedSHA(ctx, i)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		w.pkgs[index[n]].Stamp = stampOf(i)
		w.pkgs[index[n]].SHA256 = sum
		if sum != primary[n] {
			w.full = true
		}
		return nil
	}); err != nil {
		return err
	}
	phase("head")
	defer phase("fetch")
	var fetch []string
	for _, e := range w.pkgs {
		if _, ok := primary[e.Name]; w.full || !ok {
			fetch = append(fetch, e.Name)
		}
	}
	if w.full {
		t.log.Info("s3tree: a package changed under its name: full createrepo_c run", zap.String("repo", repo))
		for _, d := range []string{filepath.Join(w.Dir(), "repodata"), filepath.Join(w.Output(), "repodata")} {
			if err := os.RemoveAll(d); err != nil {
				return fmt.Errorf("s3tree: %w", err)
			}
			if err := os.Mkdir(d, 0o755); err != nil {
				return fmt.Errorf("s3tree: %w", err)
			}
		}
	}
	return t.parallel(ctx, fetch, func(ctx context.Context, n string) error {
		i, err := t.download(ctx, pkgKey(tree.Ref{Repo: repo, Name: n}), filepath.Join(w.Dir(), "Packages", n))
		if errors.Is(err, tree.ErrNotFound) {
			return nil // removed since the listing
		}
		if err != nil {
			return err
		}
		mu.Lock()
		w.pkgs[index[n]].Stamp = stampOf(i)
		mu.Unlock()
		return nil
	})
}

// phases times the steps of a Begin or Publish for the debug log (where a publish spends its time, per step):
// phase(name) ends the step name; fields returns the durations so far, plus extra.
func phases() (phase func(name string), fields func(extra ...zap.Field) []zap.Field) {
	mark := time.Now()
	var fs []zap.Field
	return func(name string) {
			now := time.Now()
			fs = append(fs, zap.Duration(name, now.Sub(mark)))
			mark = now
		}, func(extra ...zap.Field) []zap.Field {
			return append(slices.Clone(fs), extra...)
		}
}

// download seeds the work with the published metadata: repomd.xml and every file it names, GET in parallel, and
// returns the published primary's map (nil when there is none or it cannot be judged: a full run).
func (w *work) download(ctx context.Context) (primary map[string]string, err error) {
	t, repo := w.t, w.lock.repo
	body, info, err := t.st.Get(ctx, mdKey(repo, "repomd.xml"))
	switch {
	case errors.Is(err, objstore.ErrNotFound):
	case err != nil:
		return nil, mapErr(err)
	default:
		w.old, err = io.ReadAll(body)
		body.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: s3tree: read repomd.xml: %w", tree.ErrUnavailable, err)
		}
		w.etag = info.ETag
		var primaryName string
		if w.named, primaryName, err = parseRepomd(w.old); err != nil {
			return nil, err
		}
		if err := os.WriteFile(w.outFile("repomd.xml"), w.old, 0o644); err != nil {
			return nil, fmt.Errorf("s3tree: %w", err)
		}
		err = t.parallel(ctx, w.named, func(ctx context.Context, n string) error {
			_, err := t.download(ctx, mdKey(repo, n), w.outFile(n))
			return err
		})
		switch {
		case errors.Is(err, tree.ErrNotFound):
			// The published repomd.xml names a file that is gone (deleted by hand?): readers are broken
			// already; a full run repairs it.
			t.log.Warn("s3tree: published metadata incomplete: full createrepo_c run", zap.String("repo", repo), zap.Error(err))
			w.full = true
		case err != nil:
			return nil, err
		default:
			for _, n := range append([]string{"repomd.xml"}, w.named...) {
				if err := os.Link(w.outFile(n), filepath.Join(w.Dir(), "repodata", n)); err != nil {
					return nil, fmt.Errorf("s3tree: %w", err)
				}
			}
		}
		if primaryName != "" && !w.full {
			// Unreadable (another compression or checksum type): changes cannot be told, and createrepo_c
			// --skip-stat would reuse stale entries, so it is a full run.
			if primary = readPrimary(w.outFile(primaryName)); primary == nil {
				w.full = true
			}
		}
	}
	return primary, nil
}

// etagsKey is the object that records, for the repomd.xml with these bytes, the ETag of every package its
// primary.xml was built from. It is keyed by the repomd.xml's sha256, so it belongs to exactly one generation
// and needs no atomic update.
func etagsKey(repo string, md []byte) string {
	h := sha256.Sum256(md)
	return repo + "/.rpm-ingestd/etags/" + hex.EncodeToString(h[:]) + ".json"
}

// readETags returns the ETag record of the generation md, or nil when there is none (published by another tool
// or an older version): then every listed package is HEADed.
func (t *Tree) readETags(ctx context.Context, repo string, md []byte) map[string]string {
	b, err := t.readAll(ctx, etagsKey(repo, md))
	if err != nil {
		if !errors.Is(err, objstore.ErrNotFound) {
			t.log.Warn("s3tree: read package ETags", zap.String("repo", repo), zap.Error(err))
		}
		return nil
	}
	var m map[string]string
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// readPrimary maps the package file names in Packages/ that primary.xml(.gz) lists to their sha256; nil when it
// cannot be read or compared (another compression, another checksum type): then the publish is a full run.
func readPrimary(p string) map[string]string {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(p, ".gz"):
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil
		}
		defer gz.Close()
		r = gz
	case !strings.HasSuffix(p, ".xml"):
		return nil
	}
	type pkg struct {
		Checksum struct {
			Type  string `xml:"type,attr"`
			Value string `xml:",chardata"`
		} `xml:"checksum"`
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
	}
	out := map[string]string{}
	dec := xml.NewDecoder(r)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			return nil
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "package" {
			continue
		}
		var p pkg
		if err := dec.DecodeElement(&p, &se); err != nil {
			return nil
		}
		n, ok := strings.CutPrefix(p.Location.Href, "Packages/")
		if !ok || strings.Contains(n, "/") {
			continue // not ours to judge; createrepo_c keeps or drops it by the --pkglist
		}
		if p.Checksum.Type != "sha256" {
			return nil // cannot be compared with the objects' sha256: a full run
		}
		out[n] = strings.ToLower(strings.TrimSpace(p.Checksum.Value))
	}
}

// download GETs key into the local file p (mtime: Last-Modified) and returns what it fetched.
func (t *Tree) download(ctx context.Context, key, p string) (objstore.Info, error) {
	body, info, err := t.st.Get(ctx, key)
	if err != nil {
		return info, mapErr(err)
	}
	defer body.Close()
	f, err := os.Create(p)
	if err != nil {
		return info, fmt.Errorf("s3tree: %w", err)
	}
	n, err := io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != info.Size {
		err = fmt.Errorf("short read: %d of %d bytes", n, info.Size)
	}
	if err != nil {
		return info, fmt.Errorf("%w: s3tree: get %s: %w", tree.ErrUnavailable, key, err)
	}
	if !info.LastModified.IsZero() {
		_ = os.Chtimes(p, info.LastModified, info.LastModified)
	}
	return info, nil
}

// parallel runs fn for every item, Transfers at a time; the first error cancels the rest and is returned.
func (t *Tree) parallel(ctx context.Context, items []string, fn func(context.Context, string) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, t.transfers)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(ctx, it); err != nil {
				once.Do(func() { first = err; cancel(err) })
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// Publish uploads Output()/repodata: the data files the new repomd.xml names (those the starting one did not
// name, content-named, so a name names one content; and, when Begin used the publish cache, those a HEAD finds
// gone), in parallel with the generation and ETag records, then repomd.xml.asc and repomd.xml.key when present,
// then — after renewing the lease — repomd.xml with If-Match on the ETag Begin read (If-None-Match: * when there
// was none). A 412 is ErrConflict unless the stored repomd.xml is byte for byte ours (our own retried PUT). Then
// it remembers the generation in the publish cache and prunes metadata files that no repomd.xml current within
// the retention age named.
func (w *work) Publish(ctx context.Context) error {
	if w.done {
		return fmt.Errorf("%w: published already", tree.ErrInvalid)
	}
	t, repo := w.t, w.lock.repo
	phase, logPhases := phases()
	defer func() { t.log.Debug("s3tree: publish phases", logPhases(zap.String("repo", repo))...) }()
	md, err := os.ReadFile(w.outFile("repomd.xml"))
	if err != nil {
		return fmt.Errorf("s3tree: publish: %w", err)
	}
	names, primaryName, err := parseRepomd(md)
	if err != nil {
		return err
	}
	var upload, carried []string
	for _, n := range names {
		switch {
		case w.full || !slices.Contains(w.named, n):
			upload = append(upload, n)
		case w.cached:
			carried = append(carried, n)
		}
	}
	// Begin downloaded every file the starting repomd.xml names, which proves they are there; from the cache it
	// did not, so the files the new generation carries over are HEADed, and one deleted by hand is uploaded again.
	var mu sync.Mutex
	if err := t.parallel(ctx, carried, func(ctx context.Context, n string) error {
		_, err := t.st.Head(ctx, mdKey(repo, n))
		if errors.Is(err, objstore.ErrNotFound) {
			mu.Lock()
			upload = append(upload, n)
			mu.Unlock()
			return nil
		}
		return mapErr(err)
	}); err != nil {
		return err
	}
	// The ETags of the packages this generation was built from: what createrepo_c read (downloaded) or reused
	// (unchanged since the previous generation).
	etags := make(map[string]string, len(w.pkgs))
	for _, p := range w.pkgs {
		if p.ETag != "" {
			etags[p.Name] = p.ETag
		}
	}
	eb, err := json.Marshal(etags)
	if err != nil {
		return err
	}
	// The data files and the two records go up together (all before repomd.xml, none names another): the
	// superseded repomd.xml as a generation record, which protects what it names for the retention age before it
	// is superseded, and the ETag record.
	const genJob, etagsJob = "\x00generation", "\x00etags"
	jobs := slices.Clone(upload)
	if w.old != nil {
		jobs = append(jobs, genJob)
	}
	jobs = append(jobs, etagsJob)
	if err := t.parallel(ctx, jobs, func(ctx context.Context, n string) error {
		var err error
		switch n {
		case genJob:
			_, err = t.st.Put(ctx, generationPrefix(repo)+t.timeKey()+".xml", bytes.NewReader(w.old), nil)
		case etagsJob:
			_, err = t.st.Put(ctx, etagsKey(repo, md), bytes.NewReader(eb), nil)
		default:
			return t.putFile(ctx, mdKey(repo, n), w.outFile(n))
		}
		return mapErr(err)
	}); err != nil {
		return err
	}
	phase("upload")
	var sidecars []string
	for _, n := range []string{"repomd.xml.asc", "repomd.xml.key"} {
		if _, err := os.Stat(w.outFile(n)); err == nil {
			if err := t.putFile(ctx, mdKey(repo, n), w.outFile(n)); err != nil {
				return err
			}
			sidecars = append(sidecars, n)
		}
	}
	phase("sidecars")
	if err := w.lock.Renew(ctx); err != nil {
		return err
	}
	phase("renew")
	if t.beforeRepomd != nil {
		t.beforeRepomd(repo)
	}
	key := mdKey(repo, "repomd.xml")
	var newETag string
	if w.etag == "" {
		newETag, err = t.st.PutIfAbsent(ctx, key, bytes.NewReader(md), nil)
	} else {
		newETag, err = t.st.PutIfMatch(ctx, key, w.etag, bytes.NewReader(md), nil)
	}
	if errors.Is(err, objstore.ErrExists) || errors.Is(err, objstore.ErrConflict) || errors.Is(err, objstore.ErrNotFound) {
		if cur, cerr := t.readAll(ctx, key); cerr == nil && bytes.Equal(cur, md) {
			err, newETag = nil, "" // our own retried PUT met its first attempt: not cached
		} else {
			return fmt.Errorf("%w: %s/repodata/repomd.xml was published by another writer since this publish began: %w",
				tree.ErrConflict, repo, err)
		}
	}
	if err != nil {
		return mapErr(err)
	}
	w.done = true
	phase("repomd")
	w.remember(newETag, md, names, primaryName, etags)
	phase("cache")
	defer phase("prune")
	for _, n := range []string{"repomd.xml.asc", "repomd.xml.key"} {
		if !slices.Contains(sidecars, n) {
			if err := t.st.Delete(ctx, mdKey(repo, n)); err != nil {
				t.log.Warn("s3tree: remove stale signature", zap.String("repo", repo), zap.Error(err))
			}
		}
	}
	if err := t.prune(ctx, repo, names, md); err != nil {
		t.log.Warn("s3tree: prune old metadata", zap.String("repo", repo), zap.Error(err))
	}
	return nil
}

func (t *Tree) putFile(ctx context.Context, key, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("s3tree: %w", err)
	}
	defer f.Close()
	_, err = t.st.Put(ctx, key, f, nil)
	return mapErr(err)
}

func (t *Tree) readAll(ctx context.Context, key string) ([]byte, error) {
	body, _, err := t.st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return io.ReadAll(body)
}

// prune deletes, under the lease, the files in repodata/ that neither the current repomd.xml (current) nor any
// repomd.xml superseded within the retention age names, and that were themselves written longer ago than the
// retention age (a file a concurrent, losing publish just uploaded is not named by anything yet). Generation
// records and ETag records (but the current one) older than the retention age go too.
func (t *Tree) prune(ctx context.Context, repo string, current []string, currentMD []byte) error {
	keep := map[string]bool{"repomd.xml": true, "repomd.xml.asc": true, "repomd.xml.key": true}
	for _, n := range current {
		keep[n] = true
	}
	now := t.now()
	gens, err := t.st.List(ctx, generationPrefix(repo))
	if err != nil {
		return err
	}
	var errs []error
	for _, g := range gens {
		var nanos int64
		if _, err := fmt.Sscanf(strings.TrimPrefix(g.Key, generationPrefix(repo)), "%020d-", &nanos); err != nil {
			continue
		}
		if now.Sub(time.Unix(0, nanos)) > t.retention {
			errs = append(errs, t.st.Delete(ctx, g.Key))
			continue
		}
		b, err := t.readAll(ctx, g.Key)
		if err != nil {
			return err // cannot tell what it protects: delete nothing
		}
		names, _, err := parseRepomd(b)
		if err != nil {
			continue
		}
		for _, n := range names {
			keep[n] = true
		}
	}
	cur := etagsKey(repo, currentMD)
	maps, err := t.st.List(ctx, repo+"/.rpm-ingestd/etags/")
	if err != nil {
		return err
	}
	for _, m := range maps {
		if m.Key != cur && now.Sub(m.LastModified) > t.retention {
			errs = append(errs, t.st.Delete(ctx, m.Key))
		}
	}
	files, err := t.st.List(ctx, repo+"/repodata/")
	if err != nil {
		return err
	}
	for _, f := range files {
		n := strings.TrimPrefix(f.Key, repo+"/repodata/")
		if keep[n] || now.Sub(f.LastModified) <= t.retention {
			continue
		}
		errs = append(errs, t.st.Delete(ctx, f.Key))
	}
	return errors.Join(errs...)
}
