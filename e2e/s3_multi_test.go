package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/seaweed"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
)

// TestS3TwoDaemons: two daemons (two processes, each with its own top_dir and port) on one bucket and prefix
// take 200 concurrent uploads (each with ?wait=visible, so publishes keep interleaving) spread over both, into the same repositories (x86_64 packages, and noarch ones
// fanned out to x86_64 and aarch64). Every 2xx ends up in the final metadata, seen by dnf through either daemon;
// a reader loop fetching repomd.xml and every file it names sees no missing file; the publish redos after a
// lost If-Match race are counted; and for each repository no two Works (createrepo_c under the lease) of the
// two daemons overlap in time, from their logs.
func TestS3TwoDaemons(t *testing.T) {
	srv := seaweed.Start(t, seaweed.Options{})
	bucket := srv.NewBucket()
	a := newS3Daemon(t, srv, bucket, "multi", s3Extra{})
	b := newS3Daemon(t, srv, bucket, "multi", s3Extra{})
	daemons := []*s3Daemon{a, b}
	ctx := context.Background()
	st := a.store(t)

	// The reader: repomd.xml of 9/x86_64 and every file it names, in a loop, straight from the bucket.
	var reads, missing atomic.Int64
	var missed sync.Map
	stopReader := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stopReader:
				return
			default:
			}
			body, _, err := st.Get(ctx, "9/x86_64/repodata/repomd.xml")
			if errors.Is(err, objstore.ErrNotFound) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if err != nil {
				continue
			}
			repomd, _ := io.ReadAll(body)
			body.Close()
			hrefs, err := repomdHrefsOf(string(repomd))
			if err != nil {
				continue
			}
			for _, h := range hrefs {
				rc, _, err := st.Get(ctx, "9/x86_64/"+h)
				reads.Add(1)
				if errors.Is(err, objstore.ErrNotFound) {
					missing.Add(1)
					missed.Store(h, true)
					continue
				}
				if err == nil {
					io.Copy(io.Discard, rc)
					rc.Close()
				}
			}
		}
	}()

	const n = 200
	type result struct {
		name string // name-evr.arch
		code int
		body string
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			arch := "x86_64"
			if i%5 == 0 {
				arch = "noarch"
			}
			spec := testrpm.Spec{Name: fmt.Sprintf("multi-%03d", i), Release: "1.el9", Arch: arch}
			d := daemons[i%2]
			r, err := d.tryDo(d.web, d.base, http.MethodPut, "/upload/"+spec.FileName()+"?wait=visible", testrpm.Build(t, spec), nil, false)
			if err != nil {
				r.code, r.body = -1, err.Error()
			}
			results[i] = result{name: spec.Name + "-1.0-1.el9." + arch, code: r.code, body: r.body}
		}()
	}
	wg.Wait()
	var want86, wantArm []string
	codes := map[int]int{}
	for _, r := range results {
		codes[r.code]++
		if r.code/100 != 2 {
			t.Errorf("upload %s: %d %s", r.name, r.code, r.body)
			continue
		}
		want86 = append(want86, r.name)
		if strings.HasSuffix(r.name, ".noarch") {
			wantArm = append(wantArm, r.name)
		}
	}
	t.Logf("answers: %v", codes)
	// Both daemons publish what they took; each sees the final metadata of every repository.
	for _, d := range daemons {
		d.eventually(t, "/repo/9/x86_64/", slices.Clone(want86))
		d.eventually(t, "/repo/9/aarch64/", slices.Clone(wantArm))
	}
	close(stopReader)
	<-readerDone

	// The package list answers the same on both daemons, whichever took the upload: multi-001 went to daemon 1,
	// multi-002 to daemon 0 (both x86_64).
	for i, d := range daemons {
		spec := testrpm.Spec{Name: fmt.Sprintf("multi-%03d", 1+i), Release: "1.el9", Arch: "x86_64"}
		r := d.do(t, http.MethodGet, "/api/v1/packages?name="+spec.Name, nil, nil, false)
		if r.code != http.StatusOK || !strings.Contains(r.body, spec.FileName()) {
			t.Errorf("daemon %d: /api/v1/packages?name=%s lacks the other daemon's upload: %d %.300s", i, spec.Name, r.code, r.body)
		}
	}
	if missing.Load() > 0 {
		var names []string
		missed.Range(func(k, _ any) bool { names = append(names, k.(string)); return true })
		t.Errorf("the reader found %d of %d fetched files missing: %v", missing.Load(), reads.Load(), names)
	}
	t.Logf("reader: %d files fetched, none missing", reads.Load())

	// Stop both (a graceful stop publishes what is pending), then read the logs.
	for _, d := range daemons {
		if err := d.proc.stop(15, stopTimeout); err != nil { // SIGTERM
			t.Errorf("rpm-ingestd after SIGTERM: %v", err)
		}
	}
	redos := 0
	type span struct {
		daemon     int
		start, end time.Time
	}
	spans := map[string][]span{} // repo → Works
	for i, d := range daemons {
		redos += len(d.logLines("another writer published meanwhile; publishing again"))
		open := map[string]time.Time{}
		for _, l := range d.logLines("s3tree: work ") {
			var e struct {
				TS   string `json:"ts"`
				Msg  string `json:"msg"`
				Repo string `json:"repo"`
			}
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				continue
			}
			ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", e.TS)
			if err != nil {
				t.Fatalf("log time %q: %v", e.TS, err)
			}
			switch e.Msg {
			case "s3tree: work begun":
				if _, ok := open[e.Repo]; ok {
					t.Errorf("daemon %d: two Works of %s open at once", i, e.Repo)
				}
				open[e.Repo] = ts
			case "s3tree: work closed":
				spans[e.Repo] = append(spans[e.Repo], span{daemon: i, start: open[e.Repo], end: ts})
				delete(open, e.Repo)
			}
		}
	}
	works := 0
	for repo, ss := range spans {
		works += len(ss)
		sort.Slice(ss, func(i, j int) bool { return ss[i].start.Before(ss[j].start) })
		for i := 1; i < len(ss); i++ {
			if ss[i].start.Before(ss[i-1].end) {
				t.Errorf("%s: a Work of daemon %d (%s–%s) overlaps one of daemon %d (%s–%s)", repo,
					ss[i].daemon, ss[i].start.Format(time.StampMilli), ss[i].end.Format(time.StampMilli),
					ss[i-1].daemon, ss[i-1].start.Format(time.StampMilli), ss[i-1].end.Format(time.StampMilli))
			}
		}
	}
	byDaemon := [2]int{}
	for _, ss := range spans {
		for _, s := range ss {
			byDaemon[s.daemon]++
		}
	}
	if byDaemon[0] == 0 || byDaemon[1] == 0 {
		t.Errorf("Works per daemon %v: both daemons should have published", byDaemon)
	}
	t.Logf("%d Works (createrepo_c under the lease) in %d repositories, per daemon %v, none overlapping; %d redos after a lost If-Match race",
		works, len(spans), byDaemon, redos)
}
