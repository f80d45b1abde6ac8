package s3tree_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/seaweed"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
	s3tree "github.com/rpm-ingestd/rpm-ingestd/pkg/tree/s3"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/treetest"
)

var ctx = context.Background()

// clock is a settable clock shared by the daemons of one test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is one SeaweedFS with one bucket; every tree gets its own prefix unless it shares one on purpose.
type env struct {
	srv    *seaweed.Server
	bucket string
	n      atomic.Int32
}

func (e *env) store(t *testing.T, prefix string) *objstore.Store {
	t.Helper()
	st, err := objstore.New(objstore.Options{Endpoint: e.srv.Endpoint(), Bucket: e.bucket, Prefix: prefix,
		Region: seaweed.Region, PathStyle: true, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (e *env) prefix() string { return fmt.Sprintf("t%d", e.n.Add(1)) }

// daemon is one daemon's tree on prefix: its own client, work directory and holder name.
func (e *env) daemon(t *testing.T, prefix string, opts s3tree.Options) *s3tree.Tree {
	t.Helper()
	opts.Store = e.store(t, prefix)
	if opts.WorkDir == "" {
		opts.WorkDir = t.TempDir()
	}
	if opts.Holder == "" {
		opts.Holder = fmt.Sprintf("daemon-%d", e.n.Add(1))
	}
	tr, err := s3tree.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// TestOnSeaweedFS runs the backend-agnostic contract and the S3-specific cases against one real SeaweedFS.
func TestOnSeaweedFS(t *testing.T) {
	if _, err := exec.LookPath("createrepo_c"); err != nil {
		t.Fatal("createrepo_c is required: run make deps")
	}
	e := &env{srv: seaweed.Start(t, seaweed.Options{})}
	e.bucket = e.srv.NewBucket()

	t.Run("Contract", func(t *testing.T) {
		treetest.Run(t, func(t *testing.T) tree.Tree { return e.daemon(t, e.prefix(), s3tree.Options{}) })
	})
	t.Run("Shared", func(t *testing.T) {
		treetest.RunShared(t, func(t *testing.T) (tree.Tree, tree.Tree) {
			p := e.prefix()
			return e.daemon(t, p, s3tree.Options{}), e.daemon(t, p, s3tree.Options{})
		})
	})
	t.Run("ConcurrentPlacementsAcrossDaemons", func(t *testing.T) { testAcrossDaemons(t, e) })
	t.Run("CrossedFanOutAcrossDaemons", func(t *testing.T) { testCrossedFanOut(t, e) })
	t.Run("ConcurrentOverwritesAcrossDaemons", func(t *testing.T) { testOverwritesAcross(t, e) })
	t.Run("LockAcrossDaemonsAndTakeover", func(t *testing.T) { testLockTakeover(t, e) })
	t.Run("CreaterepoPublishOnlyNewLocal", func(t *testing.T) { testCreaterepo(t, e) })
	t.Run("PublishCache", func(t *testing.T) { testPublishCache(t, e) })
	t.Run("IndexerThroughTree", func(t *testing.T) { testIndexer(t, e) })
	t.Run("PublishConflict", func(t *testing.T) { testConflict(t, e) })
	t.Run("ReadersDuringPublishesAndPruning", func(t *testing.T) { testReaders(t, e) })
	t.Run("StoredWithoutMetadata", func(t *testing.T) { testNoMetadata(t, e) })
	t.Run("Cleanup", func(t *testing.T) { testCleanup(t, e) })
	t.Run("Signatures", func(t *testing.T) { testSignatures(t, e) })
	t.Run("RemoveChecksEveryRefFirst", func(t *testing.T) { testRemoveChecksFirst(t, e) })
	t.Run("FindSHA256AcrossDaemons", func(t *testing.T) { testFindSHA256(t, e) })
	t.Run("PublishRaceAcrossDaemons", func(t *testing.T) { testPublishRace(t, e) })
}

func stageBytes(t *testing.T, tr tree.Tree, b []byte) (tree.Staged, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "upload")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	s, err := tr.Stage(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return s, hex.EncodeToString(h[:])
}

func placeBytes(t *testing.T, tr tree.Tree, b []byte, name string, overwrite bool, repos ...string) (tree.Placed, error) {
	t.Helper()
	s, sum := stageBytes(t, tr, b)
	defer s.Close()
	return tr.Place(ctx, []tree.Unit{{Staged: s, SHA256: sum, Name: name, Repos: repos}}, tree.PlaceOptions{Overwrite: overwrite})
}

// testAcrossDaemons: 8 placements of one name with different bytes through 4 daemons (no shared in-process lock):
// the conditional PUT makes exactly one winner, and a same-bytes retry through another daemon is Present.
func testAcrossDaemons(t *testing.T, e *env) {
	prefix := e.prefix()
	var trees []*s3tree.Tree
	for range 4 {
		trees = append(trees, e.daemon(t, prefix, s3tree.Options{}))
	}
	const name = "race-1-1.el9.x86_64.rpm"
	var created, exists atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		tr := trees[i%4]
		s, sum := stageBytes(t, tr, []byte(fmt.Sprintf("build %d", i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := tr.Place(ctx, []tree.Unit{{Staged: s, SHA256: sum, Name: name, Repos: []string{"9/x86_64"}}}, tree.PlaceOptions{})
			var ee *tree.ExistsError
			switch {
			case err == nil && res.Status == tree.Created:
				created.Add(1)
			case errors.As(err, &ee) && validHex(ee.Stored):
				exists.Add(1)
			default:
				t.Errorf("placement %d: %v %q", i, err, res.Status)
			}
		}()
	}
	wg.Wait()
	if created.Load() != 1 || exists.Load() != 7 {
		t.Fatalf("%d created, %d refused; want exactly one winner", created.Load(), exists.Load())
	}
	st, err := trees[0].Stat(ctx, tree.Ref{Repo: "9/x86_64", Name: name})
	if err != nil || !validHex(st.SHA256) {
		t.Fatalf("stat: %+v %v", st, err)
	}
	// The winner's bytes, whichever daemon it was, are what a same-bytes retry through another daemon finds.
	o, err := trees[3].Open(ctx, tree.Ref{Repo: "9/x86_64", Name: name})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(o)
	o.Close()
	res, err := placeBytes(t, trees[2], b, name, false, "9/x86_64")
	if err != nil || res.Status != tree.Present {
		t.Errorf("retry with the winner's bytes: %v %q, want present", err, res.Status)
	}
}

func validHex(s string) bool { _, err := hex.DecodeString(s); return err == nil && len(s) == 64 }

// testLockTakeover: two daemons on one prefix; the lease excludes the second until it expires (fake clock), then
// the second takes over and the first can neither renew nor publish.
func testLockTakeover(t *testing.T, e *env) {
	prefix := e.prefix()
	clk := &clock{t: time.Now()}
	a := e.daemon(t, prefix, s3tree.Options{Holder: "a", LeaseTTL: time.Minute, Now: clk.Now})
	b := e.daemon(t, prefix, s3tree.Options{Holder: "b", LeaseTTL: time.Minute, Now: clk.Now})
	const repo = "9/x86_64"
	la, err := a.TryLock(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryLock(ctx, repo); !errors.Is(err, tree.ErrLocked) {
		t.Fatalf("b while a holds: %v, want ErrLocked", err)
	}
	wa, err := a.Begin(ctx, la)
	if err != nil {
		t.Fatal(err)
	}
	defer wa.Close()
	writeGen(t, wa.Output(), "a")
	clk.Advance(61 * time.Second)
	lb, err := b.TryLock(ctx, repo)
	if err != nil {
		t.Fatalf("takeover after expiry: %v", err)
	}
	if err := la.Renew(ctx); !errors.Is(err, tree.ErrLockLost) {
		t.Errorf("a renews after takeover: %v, want ErrLockLost", err)
	}
	if err := wa.Publish(ctx); !errors.Is(err, tree.ErrLockLost) {
		t.Errorf("a publishes after takeover: %v, want ErrLockLost", err)
	}
	if _, err := b.OpenMetadata(ctx, repo, "repomd.xml"); !errors.Is(err, tree.ErrNotFound) {
		t.Errorf("the lost holder published: %v", err)
	}
	if _, err := a.Begin(ctx, la); !errors.Is(err, tree.ErrLockLost) {
		t.Errorf("a begins after takeover: %v, want ErrLockLost", err)
	}
	if err := la.Release(); err != nil {
		t.Errorf("release of a lost lock: %v", err)
	}
	if _, err := a.TryLock(ctx, repo); !errors.Is(err, tree.ErrLocked) {
		t.Errorf("a while b holds: %v, want ErrLocked", err)
	}
	if err := lb.Release(); err != nil {
		t.Fatal(err)
	}
	la, err = a.TryLock(ctx, repo)
	if err != nil {
		t.Fatalf("after b released: %v", err)
	}
	la.Release()
}

// writeGen writes a synthetic generation into out/repodata: a content-named data file and a repomd.xml.
func writeGen(t *testing.T, out string, tag string, extra ...string) string {
	t.Helper()
	rd := filepath.Join(out, "repodata")
	if err := os.MkdirAll(rd, 0o755); err != nil {
		t.Fatal(err)
	}
	data := "gen-" + tag + ".xml"
	if err := os.WriteFile(filepath.Join(rd, data), []byte(tag), 0o644); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString("<repomd>\n")
	for i, n := range append([]string{data}, extra...) {
		fmt.Fprintf(&b, "<data type=\"t%d\"><location href=\"repodata/%s\"/></data>\n", i, n)
	}
	b.WriteString("</repomd>\n")
	tmp := filepath.Join(rd, ".repomd.new")
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(rd, "repomd.xml")); err != nil {
		t.Fatal(err)
	}
	return data
}

// publish runs one publish of repo the way the indexer does: lock, claim, Begin, createrepo_c --update
// --skip-stat --pkglist over the local directory, Publish, consume. It returns what the Work held locally.
func publish(t *testing.T, tr tree.Tree, repo string) (local []string, pkgs []tree.Entry) {
	t.Helper()
	local, pkgs, err := tryPublish(t, tr, repo)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return local, pkgs
}

// tryPublish is publish that returns Publish's error (the pending records stay then) instead of failing the test.
func tryPublish(t *testing.T, tr tree.Tree, repo string) (local []string, pkgs []tree.Entry, _ error) {
	t.Helper()
	l, err := tr.TryLock(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	c, err := tr.ClaimPending(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	w, err := tr.Begin(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ents, err := os.ReadDir(filepath.Join(w.Dir(), "Packages"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		local = append(local, e.Name())
	}
	pkgs = w.Packages()
	var list bytes.Buffer
	for _, p := range pkgs {
		fmt.Fprintf(&list, "Packages/%s\n", p.Name)
	}
	pl := filepath.Join(t.TempDir(), "pkglist")
	if err := os.WriteFile(pl, list.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("createrepo_c", "--update", "--skip-stat", "--no-database", "--error-exit-val",
		"--pkglist", pl, "--outputdir", w.Output(), w.Dir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("createrepo_c: %v\n%s", err, out)
	}
	if err := w.Publish(ctx); err != nil {
		return local, pkgs, err
	}
	if err := tr.ConsumePending(ctx, c); err != nil {
		t.Fatal(err)
	}
	return local, pkgs, nil
}

// published reads repo's published primary.xml from the bucket: file name → sha256.
func published(t *testing.T, tr tree.Tree, repo string) map[string]string {
	t.Helper()
	md := readMeta(t, tr, repo, "repomd.xml")
	var r struct {
		Data []struct {
			Type     string `xml:"type,attr"`
			Location struct {
				Href string `xml:"href,attr"`
			} `xml:"location"`
		} `xml:"data"`
	}
	if err := xml.Unmarshal(md, &r); err != nil {
		t.Fatal(err)
	}
	for _, d := range r.Data {
		if d.Type != "primary" {
			continue
		}
		gz, err := gzip.NewReader(bytes.NewReader(readMeta(t, tr, repo, strings.TrimPrefix(d.Location.Href, "repodata/"))))
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Packages []struct {
				Checksum string `xml:"checksum"`
				Location struct {
					Href string `xml:"href,attr"`
				} `xml:"location"`
			} `xml:"package"`
		}
		if err := xml.NewDecoder(gz).Decode(&p); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, pk := range p.Packages {
			out[strings.TrimPrefix(pk.Location.Href, "Packages/")] = pk.Checksum
		}
		return out
	}
	t.Fatal("no primary in repomd.xml")
	return nil
}

func readMeta(t *testing.T, tr tree.Tree, repo, name string) []byte {
	t.Helper()
	o, err := tr.OpenMetadata(ctx, repo, name)
	if err != nil {
		t.Fatalf("metadata %s: %v", name, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// testCreaterepo: real createrepo_c through Begin/Work/Publish. The second publish has only the new packages
// local, yet its primary.xml lists every package; a removal leaves it; a replacement under the same name is
// re-read (a full run), so primary.xml carries the new checksum.
func testCreaterepo(t *testing.T, e *env) {
	prefix := e.prefix()
	tr := e.daemon(t, prefix, s3tree.Options{})
	const repo = "9/x86_64"
	want := map[string]string{}
	add := func(name string, salt string) string {
		spec := testrpm.Spec{Name: name, Arch: "x86_64", Salt: salt}
		b := testrpm.Build(t, spec)
		if _, err := placeBytes(t, tr, b, spec.FileName(), salt != "", repo); err != nil {
			t.Fatal(err)
		}
		want[spec.FileName()] = sha(b)
		return spec.FileName()
	}
	for _, n := range []string{"alpha", "bravo", "charlie"} {
		add(n, "")
	}
	local, _ := publish(t, tr, repo)
	if len(local) != 3 {
		t.Errorf("first publish had %v local, want all 3", local)
	}
	if got := published(t, tr, repo); !mapsEqual(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	if ok, _ := tr.HasPending(ctx, repo); ok {
		t.Error("pending after the publish consumed it")
	}
	d, e2 := add("delta", ""), add("echo", "")
	local, pkgs := publish(t, tr, repo)
	if !slices.Equal(local, []string{d, e2}) {
		t.Errorf("second publish had %v local, want only the new %v", local, []string{d, e2})
	}
	if len(pkgs) != 5 || !slices.IsSortedFunc(pkgs, func(a, b tree.Entry) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("work packages %v: want 5, sorted", pkgs)
	}
	if got := published(t, tr, repo); !mapsEqual(got, want) {
		t.Fatalf("published %v, want all of %v", got, want)
	}
	// Removal: the package leaves the list.
	gone := testrpm.Spec{Name: "bravo", Arch: "x86_64"}.FileName()
	if _, err := tr.Remove(ctx, []tree.Ref{{Repo: repo, Name: gone}}); err != nil {
		t.Fatal(err)
	}
	delete(want, gone)
	if local, _ = publish(t, tr, repo); len(local) != 0 {
		t.Errorf("publish after a removal had %v local, want none", local)
	}
	if got := published(t, tr, repo); !mapsEqual(got, want) {
		t.Fatalf("after removal published %v, want %v", got, want)
	}
	// Unchanged packages are recognised by the ETag the published generation was built from, without a HEAD:
	// alpha rewritten with the same bytes (same ETag) but a wrong sha256 in its metadata still counts as
	// unchanged, so only the new package is local.
	raw := e.store(t, prefix)
	alpha := testrpm.Spec{Name: "alpha", Arch: "x86_64"}
	if _, err := raw.Put(ctx, repo+"/Packages/"+alpha.FileName(), bytes.NewReader(testrpm.Build(t, alpha)),
		map[string]string{"sha256": strings.Repeat("0", 64)}); err != nil {
		t.Fatal(err)
	}
	f := add("foxtrot", "")
	if local, _ = publish(t, tr, repo); !slices.Equal(local, []string{f}) {
		t.Errorf("with the ETag record: %v local, want only %s", local, f)
	}
	// Without the ETag record (a generation published by another tool) every listed package is HEADed: the
	// wrong sha256 now looks like a change, and the run is a full one. (A daemon without the publish cache: tr
	// keeps the record of its own last generation in memory, see testPublishCache.)
	recs, err := raw.List(ctx, repo+"/.rpm-ingestd/etags/")
	if err != nil || len(recs) == 0 {
		t.Fatalf("no ETag records: %v", err)
	}
	for _, r := range recs {
		if err := raw.Delete(ctx, r.Key); err != nil {
			t.Fatal(err)
		}
	}
	add("golf", "")
	if local, _ = publish(t, e.daemon(t, prefix, s3tree.Options{}), repo); len(local) != len(want) {
		t.Errorf("without the ETag record: %v local, want all %d", local, len(want))
	}
	if got := published(t, tr, repo); !mapsEqual(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	// A published data file deleted by hand: the next publish (without the publish cache) is a full run and
	// repairs the metadata.
	var r struct {
		Data []struct {
			Location struct {
				Href string `xml:"href,attr"`
			} `xml:"location"`
		} `xml:"data"`
	}
	if err := xml.Unmarshal(readMeta(t, tr, repo, "repomd.xml"), &r); err != nil || len(r.Data) == 0 {
		t.Fatal(err)
	}
	if err := raw.Delete(ctx, repo+"/"+r.Data[0].Location.Href); err != nil {
		t.Fatal(err)
	}
	add("hotel", "")
	if local, _ = publish(t, e.daemon(t, prefix, s3tree.Options{}), repo); len(local) != len(want) {
		t.Errorf("with a missing data file: %v local, want all %d", local, len(want))
	}
	if got := published(t, tr, repo); !mapsEqual(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	// Replacement under the same name: must not keep the old entry.
	add("alpha", "rebuilt")
	publish(t, tr, repo)
	if got := published(t, tr, repo); !mapsEqual(got, want) {
		t.Fatalf("after replacement published %v, want %v", got, want)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// testConflict: another writer publishes repomd.xml while a Work is under way: Publish is ErrConflict and leaves
// the other writer's repomd.xml alone; both for a first publish (If-None-Match) and a later one (If-Match).
func testConflict(t *testing.T, e *env) {
	prefix := e.prefix()
	tr := e.daemon(t, prefix, s3tree.Options{})
	raw := e.store(t, prefix)
	const repo = "9/x86_64"
	for round := range 2 {
		l, err := tr.TryLock(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		w, err := tr.Begin(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		writeGen(t, w.Output(), fmt.Sprintf("mine%d", round))
		theirs := []byte(fmt.Sprintf("<repomd><!-- theirs %d --></repomd>", round))
		if _, err := raw.Put(ctx, repo+"/repodata/repomd.xml", bytes.NewReader(theirs), nil); err != nil {
			t.Fatal(err)
		}
		if err := w.Publish(ctx); !errors.Is(err, tree.ErrConflict) {
			t.Fatalf("round %d: publish over a concurrent one: %v, want ErrConflict", round, err)
		}
		if got := readMeta(t, tr, repo, "repomd.xml"); !bytes.Equal(got, theirs) {
			t.Errorf("round %d: repomd.xml overwritten: %q", round, got)
		}
		w.Close()
		l.Release()
	}
	// Redo from Begin succeeds.
	w, done := treetest.Begin(t, tr, repo)
	defer done()
	writeGen(t, w.Output(), "redo")
	if err := w.Publish(ctx); err != nil {
		t.Fatalf("redo: %v", err)
	}
}

// testReaders: a reader (another daemon) fetches repomd.xml, waits a little as a slow client does, then fetches
// every file it names, while a publisher publishes generation after generation with a short retention. Every
// generation names a file of its own and one that changes only every 25th generation, so that it was written
// longer than the retention age before it stops being named: only the superseded generation's record protects it
// then. No reader may miss a file, and pruning must really have deleted old ones.
func testReaders(t *testing.T, e *env) {
	prefix := e.prefix()
	const retention = time.Second
	pub := e.daemon(t, prefix, s3tree.Options{Retention: retention})
	rd := e.daemon(t, prefix, s3tree.Options{})
	raw := e.store(t, prefix)
	const repo = "9/x86_64"
	gen := func(i int) {
		t.Helper()
		w, done := treetest.Begin(t, pub, repo)
		defer done()
		stable := fmt.Sprintf("stable-%d.xml", i/25)
		if err := os.WriteFile(filepath.Join(w.Output(), "repodata", stable), []byte(stable), 0o644); err != nil {
			t.Fatal(err)
		}
		writeGen(t, w.Output(), fmt.Sprint(i), stable)
		if err := w.Publish(ctx); err != nil {
			t.Fatalf("generation %d: %v", i, err)
		}
	}
	gen(0)
	stop := make(chan struct{})
	var reads, missing atomic.Int32
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				md := readMeta(t, rd, repo, "repomd.xml")
				var r struct {
					Data []struct {
						Location struct {
							Href string `xml:"href,attr"`
						} `xml:"location"`
					} `xml:"data"`
				}
				if err := xml.Unmarshal(md, &r); err != nil || len(r.Data) == 0 {
					t.Errorf("torn repomd.xml %q: %v", md, err)
					return
				}
				time.Sleep(300 * time.Millisecond) // a slow client, well within the retention
				for _, d := range r.Data {
					o, err := rd.OpenMetadata(ctx, repo, strings.TrimPrefix(d.Location.Href, "repodata/"))
					if err != nil {
						missing.Add(1)
						t.Errorf("repomd.xml names %s, which is gone: %v", d.Location.Href, err)
						continue
					}
					o.Close()
				}
				reads.Add(1)
			}
		}()
	}
	// Publish until pruning has deleted old files for a while (bounded).
	var pruned bool
	for i := 1; i <= 300; i++ {
		gen(i)
		infos, err := raw.List(ctx, repo+"/repodata/")
		if err != nil {
			t.Fatal(err)
		}
		if i >= 100 && len(infos) < i/2 {
			pruned = true
			break
		}
	}
	close(stop)
	wg.Wait()
	if gens, err := raw.List(ctx, repo+"/.rpm-ingestd/generations/"); err != nil || len(gens) > 50 {
		t.Errorf("%d generation records kept (%v): old ones are not pruned", len(gens), err)
	}
	if !pruned {
		t.Error("old generations were never pruned")
	}
	if missing.Load() != 0 || reads.Load() == 0 {
		t.Fatalf("%d reads, %d missing files", reads.Load(), missing.Load())
	}
	t.Logf("%d reads, none missing", reads.Load())
}

// testNoMetadata: a package stored by another tool (no sha256 metadata) is judged by its bytes.
func testNoMetadata(t *testing.T, e *env) {
	prefix := e.prefix()
	tr := e.daemon(t, prefix, s3tree.Options{})
	raw := e.store(t, prefix)
	const name = "foreign-1-1.el9.x86_64.rpm"
	if _, err := raw.Put(ctx, "9/x86_64/Packages/"+name, strings.NewReader("foreign"), nil); err != nil {
		t.Fatal(err)
	}
	res, err := placeBytes(t, tr, []byte("foreign"), name, false, "9/x86_64")
	if err != nil || res.Status != tree.Present {
		t.Errorf("same bytes: %v %q, want present", err, res.Status)
	}
	_, err = placeBytes(t, tr, []byte("other"), name, false, "9/x86_64")
	var ee *tree.ExistsError
	if !errors.As(err, &ee) || ee.Stored != sha([]byte("foreign")) {
		t.Errorf("different bytes: %v, want ExistsError with the stored bytes' sha256", err)
	}
	// List carries no metadata: SHA256 stays empty there, Stat has it for packages we placed.
	l, err := tr.List(ctx, "9/x86_64")
	if err != nil || len(l) != 1 || l[0].SHA256 != "" || l[0].ETag == "" {
		t.Errorf("list %+v %v", l, err)
	}
}

// testCleanup: the local directory of a process that is gone is removed; a live one's is not.
func testCleanup(t *testing.T, e *env) {
	work := t.TempDir()
	a := e.daemon(t, e.prefix(), s3tree.Options{WorkDir: work})
	b := e.daemon(t, e.prefix(), s3tree.Options{WorkDir: work})
	if n, err := a.Cleanup(ctx); err != nil || n != 0 {
		t.Fatalf("cleanup with both alive: %d %v", n, err)
	}
	// A dead process's directory: no flock held.
	dead := filepath.Join(work, ".s3tree", "999999-dead")
	if err := os.MkdirAll(filepath.Join(dead, "publish-x", "repo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, "owner.lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Cleanup(ctx); err != nil || n != 1 {
		t.Fatalf("cleanup: %d %v, want 1", n, err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("dead directory still there: %v", err)
	}
	// b is alive: staging through it still works.
	if _, err := placeBytes(t, b, []byte("x"), "x-1-1.el9.x86_64.rpm", false, "9/x86_64"); err != nil {
		t.Fatal(err)
	}
}

// testRemoveChecksFirst: removing a present and an absent package fails with ErrNotFound and removes nothing,
// records nothing.
func testRemoveChecksFirst(t *testing.T, e *env) {
	tr := e.daemon(t, e.prefix(), s3tree.Options{})
	const name = "keep-1-1.el9.x86_64.rpm"
	if _, err := placeBytes(t, tr, []byte("k"), name, false, "9/x86_64"); err != nil {
		t.Fatal(err)
	}
	l, err := tr.TryLock(ctx, "9/x86_64")
	if err != nil {
		t.Fatal(err)
	}
	c, err := tr.ClaimPending(ctx, "9/x86_64")
	if err == nil {
		err = tr.ConsumePending(ctx, c)
	}
	l.Release()
	if err != nil {
		t.Fatal(err)
	}
	pending, err := tr.Remove(ctx, []tree.Ref{{Repo: "9/x86_64", Name: name}, {Repo: "9/aarch64", Name: name}})
	if !errors.Is(err, tree.ErrNotFound) || len(pending) != 0 {
		t.Fatalf("remove with an absent ref: %v, pending %v; want ErrNotFound and nothing recorded", err, pending)
	}
	if _, err := tr.Stat(ctx, tree.Ref{Repo: "9/x86_64", Name: name}); err != nil {
		t.Errorf("the present package was removed: %v", err)
	}
	if ok, _ := tr.HasPending(ctx, "9/x86_64"); ok {
		t.Error("a refused removal recorded a pending change")
	}
}

// testCrossedFanOut: two daemons place different builds of one noarch name into the same two arches, listing
// them in opposite orders, at once, many rounds: exactly one wins each round and both arches hold its build.
func testCrossedFanOut(t *testing.T, e *env) {
	prefix := e.prefix()
	a, b := e.daemon(t, prefix, s3tree.Options{}), e.daemon(t, prefix, s3tree.Options{})
	for round := range 10 {
		name := fmt.Sprintf("crossed-%d-1.el9.noarch.rpm", round)
		sa, suma := stageBytes(t, a, []byte(fmt.Sprintf("a %d", round)))
		sb, sumb := stageBytes(t, b, []byte(fmt.Sprintf("b %d", round)))
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, p := range []struct {
			tr    tree.Tree
			s     tree.Staged
			sum   string
			repos []string
		}{{a, sa, suma, []string{"9/x86_64", "9/aarch64"}}, {b, sb, sumb, []string{"9/aarch64", "9/x86_64"}}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = p.tr.Place(ctx, []tree.Unit{{Staged: p.s, SHA256: p.sum, Name: name, Repos: p.repos}}, tree.PlaceOptions{})
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, tree.ErrExists):
				t.Errorf("round %d: %v", round, err)
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d winners (%v), want exactly one", round, won, errs)
		}
		x, _ := a.Stat(ctx, tree.Ref{Repo: "9/x86_64", Name: name})
		y, _ := a.Stat(ctx, tree.Ref{Repo: "9/aarch64", Name: name})
		if x.SHA256 != y.SHA256 {
			t.Errorf("round %d: split placement: %q and %q", round, x.SHA256, y.SHA256)
		}
	}
}

// testSignatures: repomd.xml.asc and .key are published with their generation, not seeded into the next one, and
// removed when a generation comes without them (signing turned off), so no old signature sits beside a new
// repomd.xml.
func testSignatures(t *testing.T, e *env) {
	tr := e.daemon(t, e.prefix(), s3tree.Options{})
	const repo = "9/x86_64"
	gen := func(tag string, sign bool) {
		t.Helper()
		w, done := treetest.Begin(t, tr, repo)
		defer done()
		for _, n := range []string{"repomd.xml.asc", "repomd.xml.key"} {
			if _, err := os.Stat(filepath.Join(w.Output(), "repodata", n)); !os.IsNotExist(err) {
				t.Errorf("%s seeded into the output (%v)", n, err)
			}
		}
		writeGen(t, w.Output(), tag)
		if sign {
			for _, n := range []string{"repomd.xml.asc", "repomd.xml.key"} {
				if err := os.WriteFile(filepath.Join(w.Output(), "repodata", n), []byte(n+" "+tag), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := w.Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	gen("one", true)
	if got := readMeta(t, tr, repo, "repomd.xml.asc"); string(got) != "repomd.xml.asc one" {
		t.Errorf("signature %q", got)
	}
	gen("two", false)
	for _, n := range []string{"repomd.xml.asc", "repomd.xml.key"} {
		if _, err := tr.OpenMetadata(ctx, repo, n); !errors.Is(err, tree.ErrNotFound) {
			t.Errorf("stale %s after an unsigned generation: %v", n, err)
		}
	}
}

// testOverwritesAcross: different builds of one noarch name placed with overwrite into two arches at once through
// two daemons, many rounds: every placement succeeds and each round ends with both arches holding one build.
func testOverwritesAcross(t *testing.T, e *env) {
	prefix := e.prefix()
	ds := []tree.Tree{e.daemon(t, prefix, s3tree.Options{}), e.daemon(t, prefix, s3tree.Options{})}
	const name = "over-1-1.el9.noarch.rpm"
	for round := range 8 {
		var wg sync.WaitGroup
		for i := range 6 {
			tr := ds[i%2]
			s, sum := stageBytes(t, tr, []byte(fmt.Sprintf("round %d build %d", round, i)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := tr.Place(ctx, []tree.Unit{{Staged: s, SHA256: sum, Name: name, Repos: []string{"9/x86_64", "9/aarch64"}}},
					tree.PlaceOptions{Overwrite: true}); err != nil {
					t.Errorf("round %d placement %d: %v", round, i, err)
				}
			}()
		}
		wg.Wait()
		x, _ := ds[0].Stat(ctx, tree.Ref{Repo: "9/x86_64", Name: name})
		y, _ := ds[1].Stat(ctx, tree.Ref{Repo: "9/aarch64", Name: name})
		if x.SHA256 == "" || x.SHA256 != y.SHA256 {
			t.Errorf("round %d: split placement: %q and %q", round, x.SHA256, y.SHA256)
		}
	}
}

// testFindSHA256: a noarch package placed into two repositories by daemon a is found by its sha256 through
// daemon b (another process's tree on the same prefix), before any publish; a removed copy's marker goes with it;
// a replacement with other bytes leaves the old marker (a hint the caller checks with Stat).
func testFindSHA256(t *testing.T, e *env) {
	prefix := e.prefix()
	a := e.daemon(t, prefix, s3tree.Options{})
	b := e.daemon(t, prefix, s3tree.Options{})
	body := []byte("find me by my sha256")
	sum := sha(body)
	const name = "find-1-1.el9.noarch.rpm"
	if _, err := placeBytes(t, a, body, name, false, "9/x86_64", "9/aarch64"); err != nil {
		t.Fatal(err)
	}
	if _, err := placeBytes(t, a, []byte("other bytes"), "other-1-1.el9.x86_64.rpm", false, "9/x86_64"); err != nil {
		t.Fatal(err)
	}
	find := func(tr tree.Tree, sum string) []tree.Ref {
		t.Helper()
		refs, err := tr.(tree.Finder).FindSHA256(ctx, sum) // the interface, as the server asks it
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(refs, func(x, y tree.Ref) int { return strings.Compare(x.Path(), y.Path()) })
		return refs
	}
	want := []tree.Ref{{Repo: "9/aarch64", Name: name}, {Repo: "9/x86_64", Name: name}}
	if got := find(b, sum); !slices.Equal(got, want) {
		t.Fatalf("FindSHA256 through the other daemon: %v, want %v", got, want)
	}
	if got := find(b, sha([]byte("never stored"))); len(got) != 0 {
		t.Errorf("FindSHA256 of bytes never stored: %v", got)
	}
	if _, err := b.FindSHA256(ctx, "../../x"); !errors.Is(err, tree.ErrInvalid) {
		t.Errorf("FindSHA256 of a hostile sha256: %v, want ErrInvalid", err)
	}
	if _, err := b.Remove(ctx, []tree.Ref{{Repo: "9/aarch64", Name: name}}); err != nil {
		t.Fatal(err)
	}
	if got := find(a, sum); !slices.Equal(got, want[1:]) {
		t.Errorf("after removing the aarch64 copy: %v, want %v", got, want[1:])
	}
	// The markers live outside every repository: Repos lists only the real ones.
	repos, err := b.Repos(ctx)
	if err != nil || !slices.Equal(repos, []string{"9/aarch64", "9/x86_64"}) {
		t.Errorf("Repos: %v %v", repos, err)
	}
}

// testPublishRace: two daemons publish one repository from the same repomd.xml ETag, with real createrepo_c. a
// renews its lease and then stalls past it right before its repomd.xml PUT (the seam); meanwhile b takes the
// expired lease over and publishes from the generation a began from. Exactly one wins: b; a's conditional PUT is
// refused (ErrConflict), b's repomd.xml is not overwritten, and a's pending records stay. a then redoes: it takes
// the lease again, begins from b's generation, and publishes everything, a package placed since included.
func testPublishRace(t *testing.T, e *env) {
	prefix := e.prefix()
	clk := &clock{t: time.Now()}
	a := e.daemon(t, prefix, s3tree.Options{Holder: "a", LeaseTTL: time.Minute, Now: clk.Now})
	b := e.daemon(t, prefix, s3tree.Options{Holder: "b", LeaseTTL: time.Minute, Now: clk.Now})
	const repo = "9/x86_64"
	want := map[string]string{}
	add := func(tr tree.Tree, name string) {
		t.Helper()
		spec := testrpm.Spec{Name: name, Arch: "x86_64"}
		body := testrpm.Build(t, spec)
		if _, err := placeBytes(t, tr, body, spec.FileName(), false, repo); err != nil {
			t.Fatal(err)
		}
		want[spec.FileName()] = sha(body)
	}
	add(a, "first")
	publish(t, a, repo) // the generation both will begin from
	add(a, "mine")

	var bErr error
	var theirs []byte
	races := 0
	s3tree.SetBeforeRepomd(a, func(string) {
		races++
		s3tree.SetBeforeRepomd(a, nil) // the redo below runs without the stall
		clk.Advance(2 * time.Minute)   // a stalls past its lease
		// b has an upload of its own, which a's generation lacks (with equal bytes, a's PUT meeting b's
		// repomd.xml would count as its own retry, rightly: nothing would be lost).
		add(b, "theirs")
		_, _, bErr = tryPublish(t, b, repo)
		theirs = readMeta(t, b, repo, "repomd.xml")
	})
	_, _, aErr := tryPublish(t, a, repo)
	if races != 1 {
		t.Fatalf("the seam ran %d times, want 1", races)
	}
	if bErr != nil || !errors.Is(aErr, tree.ErrConflict) {
		t.Fatalf("race: a %v, b %v; want b to win and a to get ErrConflict", aErr, bErr)
	}
	if got := readMeta(t, a, repo, "repomd.xml"); !bytes.Equal(got, theirs) {
		t.Fatal("the loser overwrote the winner's repomd.xml")
	}
	if got := published(t, b, repo); !mapsEqual(got, want) {
		t.Fatalf("the winner published %v, want %v", got, want)
	}
	// The loser redoes, from the winner's generation, with what changed since.
	add(a, "later")
	if _, _, err := tryPublish(t, a, repo); err != nil {
		t.Fatalf("redo: %v", err)
	}
	if got := readMeta(t, b, repo, "repomd.xml"); bytes.Equal(got, theirs) {
		t.Error("the redo published nothing")
	}
	if got := published(t, b, repo); !mapsEqual(got, want) {
		t.Errorf("after the redo: %v, want %v", got, want)
	}
	if ok, err := a.HasPending(ctx, repo); ok || err != nil {
		t.Errorf("pending after the redo: %t %v", ok, err)
	}
}
