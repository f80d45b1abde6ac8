package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/rpm-ingestd/rpm-ingestd/internal/seaweed"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
)

// s3Repo is the repository the scenario 8 trees are at, relative to the bucket (no prefix) and to repo.top_dir.
const s3Repo = "9/x86_64"

// s3Poll is how often the bucket's repomd.xml is HEADed while a publish runs: each HEAD costs SeaweedFS and the
// bench some CPU on a two-core machine, so it is coarser than scenario 5's 0.5 ms stat(2); it bounds the error
// of one measurement.
const s3Poll = 5 * time.Millisecond

// scenarioS3Publish is scenario 8: the publish of one added package on storage.backend s3 (a bucket on a
// SeaweedFS the bench starts) against the same publish on fs, on the same tree of N packages, in the same run.
func (b *bench) scenarioS3Publish() error {
	dir, err := b.scratch("s8-weed")
	if err != nil {
		return err
	}
	defer b.cleanup(dir)
	srv, err := seaweed.Launch(dir, seaweed.Options{})
	if err != nil {
		return err
	}
	defer srv.Stop()
	reps := 5
	if b.sz.quick {
		reps = 1
	}
	for _, n := range b.sz.s3Sizes {
		t, err := b.ensureTree(n)
		if err != nil {
			return err
		}
		seed, err := b.seedBucket(srv, t)
		if err != nil {
			return err
		}
		defer b.cleanup(seed.dir)
		// The repetitions alternate between the backends, so that a change of load on the shared machine
		// weighs on both alike.
		var fsVis, fsRun, s3Vis, s3Run, s3Cold []time.Duration
		for range reps {
			v, r, _, err := b.daemonPublish(t, 1)
			if err != nil {
				return fmt.Errorf("fs: %w", err)
			}
			fsVis, fsRun = append(fsVis, v.wall), append(fsRun, r.wall)
			v, r, c, err := b.s3Publish(srv, seed, t, 1)
			if err != nil {
				return fmt.Errorf("s3: %w", err)
			}
			s3Vis, s3Run, s3Cold = append(s3Vis, v.wall), append(s3Run, r.wall), append(s3Cold, c.wall)
		}
		r := median(s3Vis).Seconds() / median(fsVis).Seconds()
		rw := row{scen: "8", what: fmt.Sprintf("%d packages + 1: publish on s3 / on fs (last_start to repomd.xml replaced)", n), ratio: x(r),
			abs: fmt.Sprintf("s3 %s (whole run %s; the first run after start %s); fs %s (whole run %s); SeaweedFS on loopback; median of %d, alternating",
				ms(median(s3Vis)), ms(median(s3Run)), ms(median(s3Cold)), ms(median(fsVis)), ms(median(fsRun)), reps)}
		if n == 10000 {
			rw.target, rw.met = "≤ 1.5× at 10,000", verdict(r <= 1.5)
		}
		b.add(rw)
	}
	return nil
}

// s3Seed is a bucket holding a scenario 8 tree in the state a migrated repository is in: the n packages (with
// their sha256 in the object metadata, as placement stores them) and the tree's published metadata. Everything
// but the packages is kept locally too, so that reset can put the bucket back into exactly that state after a
// measured publish.
type s3Seed struct {
	store    *objstore.Store
	bucket   string
	dir      string   // local copies of the seeded non-package objects, by key
	keys     []string // every key of the seeded bucket
	packages int      // how many of them are packages
}

// seedConcurrency is how many PUTs seeding sends at once.
const seedConcurrency = 16

// seedBucket creates a bucket on srv holding tree t: its n packages by parallel PUTs (what `rpm-ingestd migrate`
// stores, without its sequential per-package HEAD and Place and its pending records), then its current metadata
// (base/) under repodata/.
func (b *bench) seedBucket(srv *seaweed.Server, t *tree) (*s3Seed, error) {
	ctx := context.Background()
	name := fmt.Sprintf("bench-%d", t.n)
	if _, err := srv.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", name, err)
	}
	st, err := objstore.New(objstore.Options{Endpoint: srv.Endpoint(), Bucket: name, Region: seaweed.Region, PathStyle: true,
		Getenv: func(string) string { return "" }, Timeout: time.Minute})
	if err != nil {
		return nil, err
	}
	dir, err := b.scratch("s8-seed-" + fmt.Sprint(t.n))
	if err != nil {
		return nil, err
	}
	seed := &s3Seed{store: st, bucket: name, dir: dir}
	pkgs, err := os.ReadDir(filepath.Join(t.repo, "Packages"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range pkgs {
		if e.Name() != t.add.fileName() && e.Name() != t.warm.fileName() {
			names = append(names, e.Name())
		}
	}
	if len(names) != t.n {
		return nil, fmt.Errorf("%s holds %d packages besides the added ones, want %d", t.repo, len(names), t.n)
	}
	fmt.Fprintf(b.out, "  seeding the bucket %s with the %d-package tree (%d PUTs at once) ...\n", name, t.n, seedConcurrency)
	start := time.Now()
	if err := parallel(seedConcurrency, names, func(n string) error {
		data, err := os.ReadFile(filepath.Join(t.repo, "Packages", n))
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		_, err = st.Put(ctx, s3Repo+"/Packages/"+n, bytes.NewReader(data), map[string]string{"sha256": hex.EncodeToString(sum[:])})
		return err
	}); err != nil {
		return nil, err
	}
	md, err := os.ReadDir(t.base)
	if err != nil {
		return nil, err
	}
	for _, f := range md {
		key := s3Repo + "/repodata/" + f.Name()
		p := seed.localPath(key)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := copyFile(filepath.Join(t.base, f.Name()), p); err != nil {
			return nil, err
		}
	}
	infos, err := st.List(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, i := range infos {
		seed.keys = append(seed.keys, i.Key)
		if isPackageKey(i.Key) {
			seed.packages++
		}
	}
	for _, f := range md {
		seed.keys = append(seed.keys, s3Repo+"/repodata/"+f.Name())
	}
	fmt.Fprintf(b.out, "    done in %s\n", ms(time.Since(start)))
	return seed, seed.reset(ctx)
}

func isPackageKey(k string) bool { return strings.HasPrefix(k, s3Repo+"/Packages/") }

// s3Storage is the storage section of a configuration for bucket on srv (anonymous access).
func s3Storage(srv *seaweed.Server, bucket string) string {
	return fmt.Sprintf(`storage:
  backend: s3
  s3:
    endpoint: %s
    bucket: %s
    region: %s
    path_style: true
`, srv.Endpoint(), bucket, seaweed.Region)
}

func (s *s3Seed) localPath(key string) string { return filepath.Join(s.dir, filepath.FromSlash(key)) }

// reset puts the bucket back into the seeded state: the keys a measured run added go (the added packages, pending
// objects, the lease, new metadata generations and records), and every seeded object that is not a package is
// written again from its local copy (a run may have replaced repomd.xml or pruned old records). It fails when a
// seeded package is missing, so a lost bucket is seeded again.
func (s *s3Seed) reset(ctx context.Context) error {
	seeded := make(map[string]bool, len(s.keys))
	for _, k := range s.keys {
		seeded[k] = true
	}
	infos, err := s.store.List(ctx, "")
	if err != nil {
		return err
	}
	pkgs := 0
	var drop []string
	for _, i := range infos {
		switch {
		case !seeded[i.Key]:
			drop = append(drop, i.Key)
		case isPackageKey(i.Key):
			pkgs++
		}
	}
	if pkgs != s.packages {
		return fmt.Errorf("the bucket holds %d of the %d seeded packages", pkgs, s.packages)
	}
	if err := parallel(8, drop, func(k string) error { return s.store.Delete(ctx, k) }); err != nil {
		return err
	}
	var put []string
	for _, k := range s.keys {
		if !isPackageKey(k) {
			put = append(put, k)
		}
	}
	return parallel(8, put, func(k string) error {
		data, err := os.ReadFile(s.localPath(k))
		if err != nil {
			return err
		}
		_, err = s.store.Put(ctx, k, bytes.NewReader(data), nil)
		return err
	})
}

// parallel runs fn on every item, conc at a time, and returns the errors joined.
func parallel(conc int, items []string, fn func(string) error) error {
	sem := make(chan struct{}, conc)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(it); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// s3Publish is daemonPublish on storage.backend s3: per repetition the bucket is reset to the seeded state, a
// fresh daemon takes the warm-up upload and publishes it, then the added package; measured from that run's
// last_start to the bucket's repomd.xml having another ETag (HEAD every s3Poll), and the whole run (last_start to
// last_end: the pruning of old metadata and the consumption of the pending objects come after repomd.xml). The
// bucket's primary.xml must then list all n+2 packages.
func (b *bench) s3Publish(srv *seaweed.Server, seed *s3Seed, t *tree, reps int) (visible, run, cold crResult, err error) {
	ctx := context.Background()
	var walls, runs, colds []time.Duration
	for range reps {
		if err := seed.reset(ctx); err != nil {
			return visible, run, cold, err
		}
		dir := filepath.Join(b.var_, "run", "s8")
		os.RemoveAll(dir)
		spool := filepath.Join(dir, "spool")
		top := filepath.Join(dir, "top")
		repoDir := filepath.Join(top, filepath.FromSlash(s3Repo))
		d, err := startDaemon(&b.procs, b.bin, daemonConf{dir: filepath.Join(dir, "daemon"), top: top, spool: spool,
			quiet: time.Second, maxDelay: time.Minute, extra: s3Storage(srv, seed.bucket)})
		if err != nil {
			return visible, run, cold, err
		}
		first, err := b.warmUpAt(d, t, spool, repoDir)
		name := filepath.Join(spool, "pre", "0000000001")
		if err == nil {
			err = copyFile(t.addP, name)
		}
		var replaced func() time.Time
		if err == nil {
			replaced, err = watchETag(ctx, seed.store, s3Repo+"/repodata/repomd.xml")
		}
		if err == nil {
			err = do(d.client, func(int) (*httpRequest, error) { return headerPut("http://rpm-ingestd", name, "9") }, 0, []int{201})
		}
		var st repoStatus
		if err == nil {
			st, err = d.waitSettled(repoDir, 2, 10*time.Minute)
		}
		d.close()
		var at time.Time
		if replaced != nil {
			at = replaced()
		}
		if err != nil {
			return visible, run, cold, fmt.Errorf("%w (daemon log %s)", err, d.logf)
		}
		if st.LastStart == nil || st.LastEnd == nil || at.IsZero() {
			return visible, run, cold, fmt.Errorf("/api/v1/repos has no last_start/last_end for %s, or repomd.xml was never replaced", repoDir)
		}
		if err := seed.checkListed(ctx, t); err != nil {
			return visible, run, cold, fmt.Errorf("after the daemon's run: %w", err)
		}
		walls = append(walls, at.Sub(*st.LastStart))
		runs = append(runs, st.LastEnd.Sub(*st.LastStart))
		colds = append(colds, first)
	}
	return crResult{wall: median(walls)}, crResult{wall: median(runs)}, crResult{wall: median(colds)}, seed.reset(ctx)
}

// watchETag HEADs key every s3Poll and records when its ETag first differs from the one it has now. The returned
// function stops the polling and returns that time (zero if it never changed).
func watchETag(ctx context.Context, st *objstore.Store, key string) (func() time.Time, error) {
	i0, err := st.Head(ctx, key)
	if err != nil {
		return nil, err
	}
	stop, done := make(chan struct{}), make(chan time.Time, 1)
	go func() {
		for {
			if i, err := st.Head(ctx, key); err == nil && i.ETag != i0.ETag {
				done <- time.Now()
				return
			}
			select {
			case <-stop:
				done <- time.Time{}
				return
			case <-time.After(s3Poll):
			}
		}
	}()
	return func() time.Time {
		select {
		case <-stop:
		default:
			close(stop)
		}
		return <-done
	}, nil
}

// checkListed downloads the bucket's published metadata and checks that it lists all n+2 packages, the added one
// too.
func (s *s3Seed) checkListed(ctx context.Context, t *tree) error {
	dir, err := os.MkdirTemp("", "s8-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Mkdir(filepath.Join(dir, "repodata"), 0o755); err != nil {
		return err
	}
	get := func(name string) error {
		body, _, err := s.store.Get(ctx, s3Repo+"/repodata/"+name)
		if err != nil {
			return err
		}
		defer body.Close()
		f, err := os.Create(filepath.Join(dir, "repodata", name))
		if err != nil {
			return err
		}
		_, err = io.Copy(f, body)
		return errors.Join(err, f.Close())
	}
	if err := get("repomd.xml"); err != nil {
		return err
	}
	md, err := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml"))
	if err != nil {
		return err
	}
	for _, part := range strings.Split(string(md), `href="repodata/`)[1:] {
		if n, _, ok := strings.Cut(part, `"`); ok && strings.Contains(n, "primary") {
			if err := get(n); err != nil {
				return err
			}
		}
	}
	count, listed, err := primaryCount(dir, t.add.name)
	if err != nil {
		return err
	}
	if !listed || count != t.n+2 {
		return fmt.Errorf("the bucket's primary.xml lists %d packages (want %d), the added one: %t", count, t.n+2, listed)
	}
	return nil
}
