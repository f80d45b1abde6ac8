package e2e

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
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/seaweed"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// The multi-daemon tests of issue 21: several rpm-ingestd processes (separate work directories and listen
// addresses, one storage configuration) on one bucket of a real SeaweedFS.

// multiRepos are the repositories the uploads go to: x86_64 and aarch64 packages into their own, noarch into both.
var multiRepos = []string{"9/x86_64", "9/aarch64"}

// settleTimeout bounds the wait for every acknowledged package to be published: generous, for a loaded machine
// where a daemon that lost the lease race backs off up to half a minute and more.
const settleTimeout = 6 * time.Minute

// multiSetup starts n daemons on one fresh bucket with storage.s3.lease_ttl ttl, each running createrepo_c
// through a wrapper that sleeps (as many seconds as it says) while <dir>/slow exists (and records its pid in <dir>/slow.pids).
func multiSetup(t *testing.T, srv *seaweed.Server, n int, ttl string) (ds []*s3Daemon, slowFlag string) {
	t.Helper()
	real, err := exec.LookPath("createrepo_c")
	if err != nil {
		t.Fatalf("createrepo_c: %v", err)
	}
	wdir := t.TempDir()
	slowFlag = filepath.Join(wdir, "slow")
	pids := filepath.Join(wdir, "slow.pids")
	// Named createrepo_c: the s3 tree needs createrepo_c --update --skip-stat, which the indexer adds to it.
	wrapper := filepath.Join(wdir, "bin", "createrepo_c")
	if err := os.MkdirAll(filepath.Dir(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, wrapper, fmt.Sprintf("#!/bin/sh\nif [ -e %s ]; then echo $$ >> %s; sleep \"$(cat %s)\"; fi\nexec %s \"$@\"\n", slowFlag, pids, slowFlag, real))
	if err := os.Chmod(wrapper, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Wrappers orphaned by a kill -9 of their daemon: ours to end.
		for _, f := range strings.Fields(readFile(pids)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	bucket := srv.NewBucketFor(t)
	for i := 0; i < n; i++ {
		d := prepareS3Daemon(t, srv, bucket, "el", s3Extra{
			indexer: fmt.Sprintf("  command: [%s, --update, --no-database, --error-exit-val, --retain-old-md-by-age=10m]", wrapper)})
		conf := readFile(d.conf)
		if !strings.Contains(conf, "    path_style: true\n") || !strings.Contains(conf, wrapper) {
			t.Fatalf("unexpected daemon configuration:\n%s", conf)
		}
		writeFile(t, d.conf, strings.Replace(conf, "    path_style: true\n", "    path_style: true\n    lease_ttl: "+ttl+"\n", 1))
		d.start(t)
		ds = append(ds, d)
	}
	return ds, slowFlag
}

// mpkg is one package of a multi-daemon run and what its upload was answered.
type mpkg struct {
	spec   testrpm.Spec
	body   []byte
	sum    string
	daemon int
	query  string // e.g. "?publish=now"
	code   int    // the last answer (0: transport error)
	answer string // its body or error
	retry  string // the Retry-After of the last answer
	tries  int
	acked  time.Time // when the last answer came, if it was a 2xx
}

func makePkgs(t *testing.T, prefix string, n int) []*mpkg {
	t.Helper()
	arches := []string{"x86_64", "aarch64", "noarch"}
	out := make([]*mpkg, n)
	for i := range out {
		s := testrpm.Spec{Name: fmt.Sprintf("%s%03d", prefix, i), Release: "1.el9", Arch: arches[i%3]}
		b := testrpm.Build(t, s)
		sum := sha256.Sum256(b)
		out[i] = &mpkg{spec: s, body: b, sum: hex.EncodeToString(sum[:]), daemon: i % 2}
	}
	return out
}

// nevrasIn are the name-evr.arch of the packages that go to repo, as repoquery prints them.
func nevrasIn(pkgs []*mpkg, repo string) []string {
	var out []string
	for _, p := range pkgs {
		if slices.Contains(p.reposOf(), repo) {
			out = append(out, p.spec.Name+"-1.0-"+p.spec.Release+"."+p.spec.Arch)
		}
	}
	return out
}

// reposOf are the repositories a package goes to.
func (p *mpkg) reposOf() []string {
	if p.spec.Arch == "noarch" {
		return multiRepos
	}
	return []string{"9/" + p.spec.Arch}
}

// uploadAll PUTs every package to its daemon, workers at a time. With retry503, a 503 is retried (as a client
// following Retry-After would) until deadline; every other answer is final.
func uploadAll(ds []*s3Daemon, pkgs []*mpkg, workers int, retry503 bool, deadline time.Time, pace time.Duration) {
	client := &http.Client{Timeout: 3 * time.Minute}
	work := make(chan *mpkg)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				time.Sleep(pace)
				for {
					p.tries++
					d := ds[p.daemon%len(ds)]
					r, err := d.tryDo(client, d.base, http.MethodPut, "/upload/"+p.spec.FileName()+p.query, p.body, nil, false)
					p.code, p.answer, p.retry = r.code, r.body, ""
					if p.code/100 == 2 {
						p.acked = time.Now()
					}
					if err != nil {
						p.answer = err.Error()
					} else {
						p.retry = r.header.Get("Retry-After")
					}
					if retry503 && p.code == http.StatusServiceUnavailable && time.Now().Before(deadline) {
						time.Sleep(time.Second)
						continue
					}
					break
				}
			}
		}()
	}
	for _, p := range pkgs {
		work <- p
	}
	close(work)
	wg.Wait()
}

// acknowledged are the packages answered 2xx; every other answer must be a 503 (only when allow503).
func acknowledged(t *testing.T, pkgs []*mpkg, allow503 bool) []*mpkg {
	t.Helper()
	var ok []*mpkg
	for _, p := range pkgs {
		switch {
		case p.code/100 == 2:
			ok = append(ok, p)
		case allow503 && p.code == http.StatusServiceUnavailable:
		default:
			t.Errorf("upload %s to daemon %d: %d %s", p.spec.FileName(), p.daemon%2, p.code, p.answer)
		}
	}
	return ok
}

// primaryOf reads a repository's published primary: package file name (under Packages/) → sha256. ok is false
// when there is no repomd.xml yet.
func primaryOf(ctx context.Context, st *objstore.Store, repo string) (map[string]string, bool, error) {
	md, err := getAll(ctx, st, repo+"/repodata/repomd.xml")
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	_, primary, err := repomdFiles(md)
	if err != nil {
		return nil, false, err
	}
	if primary == "" {
		return nil, false, fmt.Errorf("%s: repomd.xml names no primary", repo)
	}
	raw, err := getAll(ctx, st, repo+"/"+primary)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %s: %w", repo, primary, err)
	}
	var r io.Reader = bytes.NewReader(raw)
	if strings.HasSuffix(primary, ".gz") {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return nil, false, err
		}
		r = gz
	}
	var doc struct {
		Packages []struct {
			Checksum struct {
				Value string `xml:",chardata"`
			} `xml:"checksum"`
			Location struct {
				Href string `xml:"href,attr"`
			} `xml:"location"`
		} `xml:"package"`
	}
	if err := xml.NewDecoder(r).Decode(&doc); err != nil {
		return nil, false, fmt.Errorf("%s: %s: %w", repo, primary, err)
	}
	out := map[string]string{}
	for _, p := range doc.Packages {
		out[strings.TrimPrefix(p.Location.Href, "Packages/")] = strings.TrimSpace(p.Checksum.Value)
	}
	return out, true, nil
}

// repomdFiles are the hrefs repomd.xml names (relative to the repository) and the primary's.
func repomdFiles(md []byte) (hrefs []string, primary string, err error) {
	files, err := tree.ParseRepomd(md)
	if err != nil {
		return nil, "", fmt.Errorf("repomd.xml: %w", err)
	}
	for _, f := range files {
		hrefs = append(hrefs, f.Href)
		if f.Type == "primary" {
			primary = f.Href
		}
	}
	return hrefs, primary, nil
}

func getAll(ctx context.Context, st *objstore.Store, key string) ([]byte, error) {
	body, _, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return io.ReadAll(body)
}

// missingFromMetadata lists the acknowledged packages that a repository's published primary lacks or lists with
// another sha256.
func missingFromMetadata(ctx context.Context, st *objstore.Store, pkgs []*mpkg) ([]string, error) {
	prim := map[string]map[string]string{}
	for _, repo := range multiRepos {
		p, _, err := primaryOf(ctx, st, repo)
		if err != nil {
			return nil, err
		}
		prim[repo] = p
	}
	var missing []string
	for _, p := range pkgs {
		for _, repo := range p.reposOf() {
			if got := prim[repo][p.spec.FileName()]; got != p.sum {
				missing = append(missing, fmt.Sprintf("%s in %s (primary has %q)", p.spec.FileName(), repo, got))
			}
		}
	}
	return missing, nil
}

// waitAllPublished polls until every acknowledged package is in its repositories' published primary, and then
// until no pending object is left.
func waitAllPublished(t *testing.T, st *objstore.Store, pkgs []*mpkg) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(settleTimeout)
	var last []string
	var lastErr error
	for {
		last, lastErr = missingFromMetadata(ctx, st, pkgs)
		if lastErr == nil && len(last) == 0 {
			break
		}
		if time.Now().After(deadline) {
			if len(last) > 10 {
				last = append(last[:10], fmt.Sprintf("… %d more", len(last)-10))
			}
			t.Fatalf("after %s, acknowledged packages missing from the published metadata: %v (error %v)", settleTimeout, last, lastErr)
		}
		time.Sleep(time.Second)
	}
	for {
		var pending []string
		for _, repo := range multiRepos {
			infos, err := st.List(ctx, repo+"/.rpm-ingestd/pending/")
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range infos {
				pending = append(pending, i.Key)
			}
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending objects left after every package was published: %v", pending)
		}
		time.Sleep(time.Second)
	}
}

// checkStored: every acknowledged package is stored in each of its repositories with its sha256.
func checkStored(t *testing.T, st *objstore.Store, pkgs []*mpkg) {
	t.Helper()
	for _, p := range pkgs {
		for _, repo := range p.reposOf() {
			key := repo + "/Packages/" + p.spec.FileName()
			b, err := getAll(context.Background(), st, key)
			if err != nil {
				t.Errorf("acknowledged %s (answered %d): %s: %v", p.spec.FileName(), p.code, key, err)
				continue
			}
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != p.sum {
				t.Errorf("acknowledged %s: %s holds other bytes (sha256 %x)", p.spec.FileName(), key, sum)
			}
		}
	}
}

// logEvent is one line of a daemon's JSON log.
type logEvent struct {
	TS        time.Time `json:"ts"`
	Msg       string    `json:"msg"`
	Repo      string    `json:"repo"`
	Holder    string    `json:"holder"`
	Error     string    `json:"error"`
	WorkBegan time.Time `json:"work_began"` // "createrepo_c run started": before the run listed Packages/
}

func logEvents(d *s3Daemon) []logEvent {
	var out []logEvent
	for _, l := range strings.Split(readFile(d.logPath), "\n") {
		var e logEvent
		if json.Unmarshal([]byte(l), &e) == nil && e.Msg != "" {
			out = append(out, e)
		}
	}
	return out
}

// run is one createrepo_c run as the logs tell it.
type run struct {
	repo, holder string
	start, end   time.Time // end zero: never ended (the daemon was killed)
	began        time.Time // when its Work began: it indexes every package placed before (the log has ms)
	failed       bool      // it ended with an error: it published nothing
}

// runsFromLogs pairs "createrepo_c run started" and "… ended" per daemon and repository; a run without an end
// ends at cut (when its daemon was killed), or fails the test.
func runsFromLogs(t *testing.T, ds []*s3Daemon, cut map[*s3Daemon]time.Time) []run {
	t.Helper()
	// A daemon may still be in a run that publishes nothing new (a retry of work the other daemon published):
	// wait until every live daemon's runs have ended.
	deadline := time.Now().Add(3 * time.Minute)
	for _, d := range ds {
		if _, killed := cut[d]; killed {
			continue
		}
		for len(d.logLines("createrepo_c run started")) != len(d.logLines("createrepo_c run ended")) && time.Now().Before(deadline) {
			time.Sleep(500 * time.Millisecond)
		}
	}
	var runs []run
	for _, d := range ds {
		open := map[string]*run{}
		for _, e := range logEvents(d) {
			switch e.Msg {
			case "createrepo_c run started":
				if open[e.Repo] != nil {
					t.Errorf("%s: two createrepo_c runs of %s at once in one daemon (%s)", d.logPath, e.Repo, e.TS)
				}
				if e.Holder == "" {
					t.Errorf("%s: run start without a holder", d.logPath)
				}
				if e.WorkBegan.IsZero() || e.WorkBegan.After(e.TS) {
					t.Errorf("%s: run start at %s with work_began %s", d.logPath, e.TS, e.WorkBegan)
				}
				open[e.Repo] = &run{repo: e.Repo, holder: e.Holder, start: e.TS, began: e.WorkBegan}
			case "createrepo_c run ended":
				if r := open[e.Repo]; r != nil {
					r.end, r.failed = e.TS, e.Error != ""
					runs = append(runs, *r)
					delete(open, e.Repo)
				} else {
					t.Errorf("%s: run end of %s without a start", d.logPath, e.Repo)
				}
			}
		}
		for _, r := range open {
			c, killed := cut[d]
			if !killed {
				t.Errorf("%s: createrepo_c run of %s started at %s never ended", d.logPath, r.repo, r.start)
				continue
			}
			r.end = c
			runs = append(runs, *r)
		}
	}
	return runs
}

// checkNoOverlap: no two runs of one repository by different holders overlap in time (the logs have millisecond
// timestamps on one machine's clock; touching ends are allowed).
func checkNoOverlap(t *testing.T, runs []run) {
	t.Helper()
	for i, a := range runs {
		for _, b := range runs[i+1:] {
			if a.repo == b.repo && a.start.Before(b.end) && b.start.Before(a.end) {
				t.Errorf("createrepo_c runs of %s overlap: %s %s–%s and %s %s–%s", a.repo,
					a.holder, a.start.Format(time.StampMilli), a.end.Format(time.StampMilli),
					b.holder, b.start.Format(time.StampMilli), b.end.Format(time.StampMilli))
			}
		}
	}
}

// redos counts the publishes redone after a 412 on repomd.xml, from the logs.
// conflictsReported sums rpm_ingestd_publish_conflicts_total over every series of every daemon's /metrics, and
// fails the test when a daemon reports no series of it for a repository of multiRepos.
func conflictsReported(t *testing.T, ds []*s3Daemon) int {
	t.Helper()
	n := 0
	for i, d := range ds {
		r := d.do(t, http.MethodGet, "/metrics", nil, nil, false)
		if r.code != http.StatusOK {
			t.Fatalf("daemon %d: GET /metrics: %d", i, r.code)
		}
		seen := 0
		for _, l := range strings.Split(r.body, "\n") {
			name, val, ok := strings.Cut(l, " ")
			if !ok || !strings.HasPrefix(name, "rpm_ingestd_publish_conflicts_total{") {
				continue
			}
			v, err := strconv.ParseFloat(val, 64)
			if err != nil {
				t.Fatalf("daemon %d: %q: %v", i, l, err)
			}
			seen++
			n += int(v)
		}
		if seen == 0 {
			t.Errorf("daemon %d reports no rpm_ingestd_publish_conflicts_total series", i)
		}
	}
	return n
}

func redos(ds []*s3Daemon) int {
	n := 0
	for _, d := range ds {
		n += len(d.logLines("another writer published meanwhile; publishing again"))
	}
	return n
}

// reader fetches, in a loop, every repository's repomd.xml and every file it names, alternately from the bucket
// and through the daemons' serve_repo, and counts the files that were missing.
type reader struct {
	stop    chan struct{}
	done    chan struct{}
	rounds  atomic.Int64
	fetched atomic.Int64
	mu      sync.Mutex
	missing []string
}

func startReader(t *testing.T, st *objstore.Store, ds []*s3Daemon) *reader {
	r := &reader{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: time.Minute}
	viaDaemon := func(d *s3Daemon, key string) ([]byte, error) {
		resp, err := client.Get(d.base + "/repo/" + key)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		switch {
		case resp.StatusCode == http.StatusNotFound:
			return nil, objstore.ErrNotFound
		case resp.StatusCode != http.StatusOK:
			return nil, fmt.Errorf("GET /repo/%s: %s", key, resp.Status)
		}
		return b, err
	}
	go func() {
		defer close(r.done)
		ctx := context.Background()
		for i := 0; ; i++ {
			select {
			case <-r.stop:
				return
			default:
			}
			get := func(key string) ([]byte, error) { return getAll(ctx, st, key) }
			if i%2 == 1 {
				d := ds[(i/2)%len(ds)]
				get = func(key string) ([]byte, error) { return viaDaemon(d, key) }
			}
			for _, repo := range multiRepos {
				md, err := get(repo + "/repodata/repomd.xml")
				if err != nil {
					continue // none published yet, or a transient error: not a file a repomd.xml named
				}
				hrefs, _, err := repomdFiles(md)
				if err != nil {
					r.note(fmt.Sprintf("%s: unreadable repomd.xml: %v", repo, err))
					continue
				}
				for _, h := range hrefs {
					_, err := get(repo + "/" + h)
					r.fetched.Add(1)
					if errors.Is(err, objstore.ErrNotFound) {
						r.note(fmt.Sprintf("%s/%s named by the repomd.xml just read: 404", repo, h))
					}
				}
			}
			r.rounds.Add(1)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	t.Cleanup(r.halt)
	return r
}

func (r *reader) note(s string) {
	r.mu.Lock()
	r.missing = append(r.missing, s)
	r.mu.Unlock()
}

func (r *reader) halt() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

// check stops the reader and fails on any missing file.
func (r *reader) check(t *testing.T) {
	t.Helper()
	r.halt()
	t.Logf("reader: %d rounds, %d metadata files fetched, %d missing", r.rounds.Load(), r.fetched.Load(), len(r.missing))
	if r.rounds.Load() == 0 || r.fetched.Load() == 0 {
		t.Errorf("the reader fetched nothing: it proves nothing")
	}
	if len(r.missing) > 0 {
		t.Errorf("a reader saw %d missing files, e.g. %v", len(r.missing), r.missing[:min(5, len(r.missing))])
	}
}

func pidOf(d *s3Daemon) int { return d.proc.cmd.Process.Pid }

// TestS3MultiUploads: two daemons on one bucket take 200 concurrent uploads (x86_64, aarch64 and noarch, spread
// over both) into the same repositories. Every 2xx ends up in the final metadata with its sha256, no two
// createrepo_c runs of one repository overlap (from the logs: run start and end with the lease holder), the 412
// redos are counted, a reader fetching repomd.xml and every file it names meanwhile sees none missing, and each
// daemon's package list holds what docs/deploy.md promises (checkPackageLists).
func TestS3MultiUploads(t *testing.T) {
	t.Parallel()
	srv := sharedSeaweed(t) // buckets of its own on the shared server
	ds, _ := multiSetup(t, srv, 2, "30s")
	st := ds[0].store(t)
	rd := startReader(t, st, ds)
	pkgs := makePkgs(t, "multi", 200)
	// Some uploads ask for a publish at once, some wait until dnf can see them (on the daemon they were sent
	// to, whichever publishes): many publishes of the same repositories by both daemons, close together.
	for i, p := range pkgs {
		switch {
		case i%5 == 0:
			p.query = "?publish=now"
		case i%7 == 0:
			p.query = "?wait=visible"
		}
	}
	uploadAll(ds, pkgs, 16, false, time.Time{}, 0)
	ok := acknowledged(t, pkgs, false)
	for _, p := range ok {
		if p.query == "?wait=visible" && p.code != http.StatusCreated {
			t.Errorf("upload %s?wait=visible: %d %s, want 201 once visible", p.spec.FileName(), p.code, p.answer)
		}
	}
	if len(ok) != len(pkgs) {
		t.Fatalf("%d of %d uploads acknowledged", len(ok), len(pkgs))
	}
	waitAllPublished(t, st, ok)
	rd.check(t)
	checkStored(t, st, ok)
	// dnf through either daemon sees every package of each repository.
	for _, d := range ds {
		for _, repo := range multiRepos {
			d.eventually(t, "/repo/"+repo+"/", nevrasIn(ok, repo))
		}
	}

	// Both daemons publish: one that found the lease held retries with backoff (1 s, 2 s, 4 s, …) and runs
	// createrepo_c once it gets the lease, which may come after the other has published everything.
	ranBy := func(d *s3Daemon) bool {
		return slices.ContainsFunc(runsFromLogs(t, ds, nil), func(r run) bool { return strings.HasSuffix(r.holder, ":"+strconv.Itoa(pidOf(d))) })
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline) && !(ranBy(ds[0]) && ranBy(ds[1])); {
		time.Sleep(time.Second)
	}
	runs := runsFromLogs(t, ds, nil)
	checkNoOverlap(t, runs)
	checkPackageLists(t, ds, ok, runs)
	holders := map[string]bool{}
	for _, r := range runs {
		holders[r.holder] = true
	}
	for _, d := range ds {
		if !slices.ContainsFunc(runs, func(r run) bool { return strings.HasSuffix(r.holder, ":"+strconv.Itoa(pidOf(d))) }) {
			t.Errorf("daemon pid %d ran no createrepo_c: both daemons should have published", pidOf(d))
		}
	}
	locked := 0
	for _, d := range ds {
		locked += len(d.logLines("index run skipped: repository locked"))
	}
	// The redos are counted in /metrics as well as logged, and the two agree. With the lease serialising the
	// publishes of a repository, a redo needs another writer or a holder stalled past its lease between its
	// renewal and its repomd.xml PUT, so 0 is a legitimate count here (pkg/tree/s3's PublishRaceAcrossDaemons
	// forces the race); the series must exist all the same.
	if got, logged := conflictsReported(t, ds), redos(ds); got != logged {
		t.Errorf("rpm_ingestd_publish_conflicts_total sums to %d over both daemons, but %d redos were logged", got, logged)
	}
	t.Logf("%d createrepo_c runs by %d holders, %d publishes redone after a 412, %d runs skipped on a held lease",
		len(runs), len(holders), redos(ds), locked)
	if len(runs) == 0 {
		t.Fatal("no createrepo_c run in the logs")
	}
}

// checkPackageLists: each daemon's GET /api/v1/packages lists what docs/deploy.md promises, "the packages the
// daemon took, and every package of the repositories it published": every upload it acknowledged, and every
// upload the other daemon acknowledged before the Work of this daemon's last successful createrepo_c run of one
// of its repositories began (work_began: that run's metadata lists it; the run itself starts only after the Work
// has listed Packages/ and fetched the metadata). An upload the other daemon took after that is not promised.
// The lists are asked again for up to 10 s in all: the daemon takes a run's packages into its index after
// publishing, which follows the run's end in the log.
func checkPackageLists(t *testing.T, ds []*s3Daemon, ok []*mpkg, runs []run) {
	t.Helper()
	lastRun := func(d *s3Daemon, repo string) (last run) {
		for _, r := range runs {
			if !r.failed && strings.HasSuffix(r.holder, ":"+strconv.Itoa(pidOf(d))) && (r.repo == repo || strings.HasSuffix(r.repo, "/"+repo)) && r.start.After(last.start) {
				last = r
			}
		}
		return last
	}
	deadline := time.Now().Add(10 * time.Second) // for all lists together: after it, each is asked once
	for i, d := range ds {
		own, others := 0, 0
		for _, p := range ok {
			mine := p.daemon%len(ds) == i
			promised := mine
			for _, repo := range p.reposOf() {
				promised = promised || lastRun(d, repo).began.After(p.acked)
			}
			if !promised {
				continue
			}
			if mine {
				own++
			} else {
				others++
			}
			for ; ; time.Sleep(100 * time.Millisecond) {
				r := d.do(t, http.MethodGet, "/api/v1/packages?name="+p.spec.Name, nil, nil, false)
				if r.code == http.StatusOK && strings.Contains(r.body, p.spec.FileName()) {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("daemon %d: /api/v1/packages?name=%s lacks %s (taken by daemon %d, acknowledged at %s): %d %.300s",
						i, p.spec.Name, p.spec.FileName(), p.daemon%len(ds), p.acked.Format(time.StampMilli), r.code, r.body)
					break
				}
			}
		}
		t.Logf("daemon %d lists its %d uploads and the %d of the other daemon's that its own runs published", i, own, others)
	}
}

// TestS3UploadStatusOnEveryDaemon: GET /api/v1/uploads/{sha256} answers the same on both daemons, whichever took
// the upload: the other daemon finds a noarch upload (two copies) while it is still pending (visible false), and
// sees it become visible once the daemon that took it has published (another daemon's publish: nothing this
// daemon ran). A sha256 that no daemon took stays 404.
func TestS3UploadStatusOnEveryDaemon(t *testing.T) {
	t.Parallel()
	srv := sharedSeaweed(t) // buckets of its own on the shared server
	ds, slow := multiSetup(t, srv, 2, "30s")
	a, b := ds[0], ds[1]
	writeFile(t, slow, "15") // a's createrepo_c run sleeps: the upload is pending while b is asked
	spec := testrpm.Spec{Name: "status", Release: "1.el9", Arch: "noarch"}
	body := testrpm.Build(t, spec)
	h := sha256.Sum256(body)
	sum := hex.EncodeToString(h[:])
	if r := a.upload(t, spec.FileName(), body, ""); r.code != http.StatusCreated {
		t.Fatalf("upload to daemon a: %d %s", r.code, r.body)
	}
	type status struct {
		SHA256  string
		Visible bool
		Copies  []struct {
			URL     string
			Visible bool
		}
	}
	get := func(d *s3Daemon, sum string) (int, status) {
		t.Helper()
		r := d.do(t, http.MethodGet, "/api/v1/uploads/"+sum, nil, map[string]string{"Accept": "application/json"}, false)
		var st status
		if r.code == http.StatusOK {
			if err := json.Unmarshal([]byte(r.body), &st); err != nil {
				t.Fatalf("%v: %s", err, r.body)
			}
		}
		return r.code, st
	}
	wantURLs := []string{"/repo/9/aarch64/Packages/" + spec.FileName(), "/repo/9/x86_64/Packages/" + spec.FileName()}
	urls := func(st status) []string {
		var out []string
		for _, c := range st.Copies {
			out = append(out, c.URL)
		}
		slices.Sort(out)
		return out
	}
	code, st := get(b, sum)
	if code != http.StatusOK || st.SHA256 != sum || st.Visible || !slices.Equal(urls(st), wantURLs) {
		t.Fatalf("daemon b on a's pending upload: %d %+v, want 200, not visible, copies %v", code, st, wantURLs)
	}
	other := sha256.Sum256([]byte("no daemon took this"))
	if code, _ := get(b, hex.EncodeToString(other[:])); code != http.StatusNotFound {
		t.Errorf("daemon b on an unknown sha256: %d, want 404", code)
	}
	os.Remove(slow)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		code, st = get(b, sum)
		if code == http.StatusOK && st.Visible {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon b never saw a's upload become visible: %d %+v", code, st)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !slices.Equal(urls(st), wantURLs) {
		t.Errorf("daemon b after the publish: copies %v, want %v", urls(st), wantURLs)
	}
	if runs := b.logLines("createrepo_c run started"); len(runs) != 0 {
		t.Errorf("daemon b ran createrepo_c itself (%d runs): the test proves nothing about another daemon's publish", len(runs))
	}
	// And a, which took it, says the same.
	if code, sta := get(a, sum); code != http.StatusOK || !sta.Visible || !slices.Equal(urls(sta), wantURLs) {
		t.Errorf("daemon a: %d %+v", code, sta)
	}
	// Its package page reads the summary from the header in the bucket (nothing of it is under top_dir).
	page := a.do(t, http.MethodGet, "/packages/9/x86_64/Packages/"+spec.FileName(), nil, nil, false)
	if want := `<p class="summary">rpm-ingestd test package status</p>`; page.code != http.StatusOK || !strings.Contains(page.body, want) {
		t.Errorf("package page on daemon a: %d, want 200 with %s:\n%.2000s", page.code, want, page.body)
	}
}

// TestS3KillLeaseHolder: kill -9 of the daemon that holds a repository's lease in the middle of a (slow)
// createrepo_c run; the other daemon takes over after the lease expires, and every acknowledged package ends up
// in the final metadata. No two runs of one repository overlap, the killed one counting until the kill.
func TestS3KillLeaseHolder(t *testing.T) {
	t.Parallel()
	srv := sharedSeaweed(t) // buckets of its own on the shared server
	const ttl = 6 * time.Second
	ds, slow := multiSetup(t, srv, 2, ttl.String())
	st := ds[0].store(t)
	ctx := context.Background()
	rd := startReader(t, st, ds)

	// A first generation, fast.
	first := makePkgs(t, "before", 12)
	uploadAll(ds, first, 4, false, time.Time{}, 0)
	ok := acknowledged(t, first, false)
	waitAllPublished(t, st, ok)

	// Slow runs from now on; a second batch makes both daemons want to publish.
	writeFile(t, slow, "25")
	second := makePkgs(t, "during", 12)
	uploadAll(ds, second, 4, false, time.Time{}, 0)
	ok = append(ok, acknowledged(t, second, false)...)

	// Find the daemon whose createrepo_c run is under way, holding 9/x86_64's lease.
	var victim, other *s3Daemon
	deadline := time.Now().Add(3 * time.Minute)
	for victim == nil {
		if time.Now().After(deadline) {
			t.Fatal("no daemon started a createrepo_c run of 9/x86_64 under its lease")
		}
		time.Sleep(200 * time.Millisecond)
		b, err := getAll(ctx, st, "9/x86_64/.rpm-ingestd/lease.json")
		if err != nil {
			continue
		}
		var rec struct {
			Holder  string
			Expires time.Time
		}
		if json.Unmarshal(b, &rec) != nil {
			continue
		}
		// storage.s3.lease_ttl is applied: the lease lasts 6 s from its last renewal, not the default 2 minutes.
		if rec.Expires.After(time.Now().Add(ttl + 30*time.Second)) {
			t.Fatalf("lease %s expires at %s: storage.s3.lease_ttl %s was not applied", b, rec.Expires, ttl)
		}
		for i, d := range ds {
			if strings.HasSuffix(rec.Holder, ":"+strconv.Itoa(pidOf(d))) && len(d.logLines("createrepo_c run started", `"repo":"9/x86_64"`)) > 0 &&
				len(d.logLines("createrepo_c run started", `"repo":"9/x86_64"`)) > len(d.logLines("createrepo_c run ended", `"repo":"9/x86_64"`)) {
				victim, other = d, ds[1-i]
			}
		}
	}
	// More uploads to both while the run hangs: the survivor must publish them, and the victim's.
	third := makePkgs(t, "kill", 12)
	for _, p := range third {
		p.daemon = slices.Index(ds, other)
	}
	if err := victim.proc.stop(syscall.SIGKILL, stopTimeout); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	killedAt := time.Now()
	t.Logf("killed pid %d in the middle of its createrepo_c run of 9/x86_64", pidOf(victim))
	os.Remove(slow)
	uploadAll(ds, third, 4, false, time.Time{}, 0)
	ok = append(ok, acknowledged(t, third, false)...)

	waitAllPublished(t, st, ok)
	rd.check(t)
	checkStored(t, st, ok)
	runs := runsFromLogs(t, ds, map[*s3Daemon]time.Time{victim: killedAt})
	checkNoOverlap(t, runs)
	// The survivor published 9/x86_64 after the kill: a run that started after it.
	tookOver := false
	for _, r := range runs {
		if r.repo == "9/x86_64" && strings.HasSuffix(r.holder, ":"+strconv.Itoa(pidOf(other))) && r.start.After(killedAt) {
			tookOver = true
		}
	}
	if !tookOver {
		t.Errorf("the surviving daemon ran no createrepo_c for 9/x86_64 after the kill")
	}
	if len(other.logLines("index run skipped: repository locked")) == 0 {
		t.Error("the survivor never found the repository locked: the victim held no lease, and the test proved nothing")
	}
	other.eventually(t, "/repo/9/x86_64/", nevrasIn(ok, "9/x86_64"))
	t.Logf("%d createrepo_c runs, %d publishes redone after a 412", len(runs), redos(ds))
}

// TestS3RestartDuringUploads: the S3 server restarts while two daemons take uploads. Clients get 503 (retried
// until a 2xx) or a 2xx; each 2xx's package is stored with its sha256, and after the server is back every
// acknowledged package is published.
func TestS3RestartDuringUploads(t *testing.T) {
	t.Parallel()
	srv := seaweed.Start(t, seaweed.Options{}) // its own: it stops and restarts it
	ds, _ := multiSetup(t, srv, 2, "30s")
	st := ds[0].store(t)
	pkgs := makePkgs(t, "restart", 120)

	done := make(chan struct{})
	go func() {
		defer close(done)
		// Uploads before, during and after the restart window; a 503 is retried for up to 4 minutes.
		uploadAll(ds, pkgs, 4, false, time.Time{}, 400*time.Millisecond)
	}()
	time.Sleep(2 * time.Second)
	srv.Stop()
	// While the server is down: uploads and serve_repo reads get 503 with Retry-After and a one-line reason.
	d := ds[0]
	spec := testrpm.Spec{Name: "outage", Release: "1.el9", Arch: "x86_64"}
	r, err := d.tryDo(d.web, d.base, http.MethodPut, "/upload/"+spec.FileName(), testrpm.Build(t, spec), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "storage is unavailable") ||
		strings.Contains(strings.TrimSpace(r.body), "\n") {
		t.Errorf("upload while S3 is down: %d Retry-After %q %q, want 503 with Retry-After and one line", r.code, r.header.Get("Retry-After"), r.body)
	}
	r, err = d.tryDo(d.web, d.base, http.MethodGet, "/repo/9/x86_64/repodata/repomd.xml", nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("serve_repo while S3 is down: %d Retry-After %q, want 503", r.code, r.header.Get("Retry-After"))
	}
	srv.StartAgain() // the uploads go on through the restart window: refused connections, then hanging PUTs
	<-done
	acknowledged(t, pkgs, true) // 2xx or 503, nothing else
	n503 := 0
	for _, p := range pkgs {
		if p.code == http.StatusServiceUnavailable {
			n503++
			if p.retry == "" {
				t.Errorf("503 without Retry-After for %s: %q", p.spec.FileName(), p.answer)
			}
		}
	}
	// Retry what got 503, now that the server is back: the client's part.
	var retry []*mpkg
	for _, p := range pkgs {
		if p.code == http.StatusServiceUnavailable {
			retry = append(retry, p)
		}
	}
	uploadAll(ds, retry, 4, true, time.Now().Add(4*time.Minute), 0)
	ok := acknowledged(t, pkgs, false)
	t.Logf("%d uploads answered 503 during the restart, then retried; %d acknowledged", n503, len(ok))
	checkStored(t, st, ok)
	waitAllPublished(t, st, ok)
	// dnf sees every acknowledged package.
	ds[1].eventually(t, "/repo/9/x86_64/", nevrasIn(ok, "9/x86_64"))
	runs := runsFromLogs(t, ds, nil)
	checkNoOverlap(t, runs)
}

// TestS3SlowRunKeepsLease: a createrepo_c run that lasts several lease TTLs keeps its lease (the holder renews it
// while the run goes on), so the other daemon, which has uploads of its own to publish, waits instead of taking
// the lease over and running createrepo_c on the same repository at the same time.
func TestS3SlowRunKeepsLease(t *testing.T) {
	t.Parallel()
	srv := sharedSeaweed(t) // buckets of its own on the shared server
	ds, slow := multiSetup(t, srv, 2, "6s")
	st := ds[0].store(t)
	writeFile(t, slow, "15") // every run sleeps 15 s, two and a half TTLs
	pkgs := makePkgs(t, "slow", 12)
	uploadAll(ds, pkgs, 4, false, time.Time{}, 0)
	ok := acknowledged(t, pkgs, false)
	// Both daemons have started a run (the second only once the first one's lease was free): the slow runs are
	// under way and overlapping ones would show.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		n := 0
		for _, d := range ds {
			if len(d.logLines("createrepo_c run ended")) > 0 {
				n++
			}
		}
		if n == len(ds) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not both daemons finished a slow createrepo_c run")
		}
		time.Sleep(time.Second)
	}
	os.Remove(slow)
	waitAllPublished(t, st, ok)
	runs := runsFromLogs(t, ds, nil)
	checkNoOverlap(t, runs)
	lost := 0
	for _, d := range ds {
		lost += len(d.logLines("lease: lost"))
	}
	if lost > 0 {
		t.Errorf("%d log lines say a lease was lost during a slow run", lost)
	}
	t.Logf("%d createrepo_c runs, %d publishes redone after a 412", len(runs), redos(ds))
}
