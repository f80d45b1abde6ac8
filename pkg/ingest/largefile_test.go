package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// Large files: bodies above rpmmeta's parallel threshold (1 MiB), whose digests are computed on a goroutine of
// their own while the body is received (direct mode) or read (header mode). Whatever order the receiving, writing,
// hashing and fsync run in, a refused upload must leave nothing behind, its hashing goroutine must end, and an
// accepted one must be staged (fsynced) complete before its decision is recorded.

// largePackage is a 3 MiB package of incompressible bytes.
func largePackage(t testing.TB) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	blob := make([]byte, 3<<20)
	for i := range blob {
		blob[i] = byte(rng.Uint32())
	}
	return testrpm.Build(t, testrpm.Spec{Name: "large", Release: "1.el9", Arch: "x86_64", Files: map[string]string{"/usr/share/large/blob": string(blob)}})
}

// cutReader returns data[:n] and then fails as a dropped connection does.
type cutReader struct {
	r io.Reader
}

func (c *cutReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		return n, errors.New("connection reset by peer")
	}
	return n, err
}

// waitGoroutines waits (briefly) until no more goroutines run than before: the hashing goroutines of a refused
// upload must end with it.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before the upload:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLargeRefusalsLeaveNothing: a large upload refused for its bytes, in direct and in header mode, gets the
// error of its kind, and leaves no file in the spool, the staging directory or the tree, and no goroutine running.
func TestLargeRefusalsLeaveNothing(t *testing.T) {
	data := largePackage(t)
	flip := func(at int) []byte {
		b := bytes.Clone(data)
		b[at] ^= 1
		return b
	}
	sum := sha256.Sum256(data)
	wrongSum := bytes.Clone(sum[:])
	wrongSum[0] ^= 1
	cases := []struct {
		name      string
		body      []byte
		cut       bool              // direct mode: the connection drops after the body, before its end
		checksums map[string]string // the client's claimed checksums
		maxSize   int64
		want      error
		msg       string
	}{
		{name: "payload byte damaged", body: flip(len(data) - 100), want: rpmmeta.ErrInvalidPackage, msg: "payload sha256 digest mismatch"},
		{name: "payload byte damaged near the start", body: flip(len(data) - 3<<20 + 10), want: rpmmeta.ErrInvalidPackage, msg: "digest mismatch"},
		{name: "truncated", body: data[:len(data)-4096], want: rpmmeta.ErrInvalidPackage},
		{name: "connection dropped", body: data[:2<<20], cut: true, want: ErrBadUpload, msg: "reading the upload body"},
		{name: "client sha256 differs", body: data, checksums: map[string]string{"sha256": hex.EncodeToString(wrongSum)}, want: ErrBadUpload, msg: "checksum mismatch"},
		{name: "too large", body: data, maxSize: 2 << 20, want: ErrTooLarge, msg: "max_upload_size"},
	}
	for _, viaSpool := range []bool{false, true} {
		for _, tc := range cases {
			if viaSpool && tc.cut {
				continue // the proxy spools whole bodies only
			}
			mode := map[bool]string{false: "direct", true: "header"}[viaSpool]
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t, func(o *Options) {
					o.MaxSize = 64 << 20
					if tc.maxSize > 0 {
						o.MaxSize = tc.maxSize
					}
				})
				before := runtime.NumGoroutine()
				req := Request{Checksums: tc.checksums}
				if viaSpool {
					req.SpoolPath = e.spoolFile(t, tc.body)
				} else {
					req.Body = bytes.NewReader(tc.body)
					if tc.cut {
						req.Body = &cutReader{r: bytes.NewReader(tc.body)}
					}
				}
				_, err := e.in.Ingest(context.Background(), req)
				if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("err = %v, want %v containing %q", err, tc.want, tc.msg)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				if files := e.treeFiles(t); len(files) != 0 {
					t.Errorf("refused upload left %v", files)
				}
				e.assertSpoolEmpty(t)
				waitGoroutines(t, before)
			})
		}
	}
}

// orderTree is the real tree, recording what Ingest asks of it, in order, and what the staged file held when
// Stage returned.
type orderTree struct {
	tree.Tree
	mu      sync.Mutex
	events  []string
	atStage []byte // the staged file's bytes as Stage returned
}

func (o *orderTree) record(ev string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, ev)
}

func (o *orderTree) Stage(ctx context.Context, f *os.File) (tree.Staged, error) {
	o.record("stage")
	s, err := o.Tree.Stage(ctx, f)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
	if err != nil {
		return nil, err
	}
	o.atStage = b
	o.record("staged")
	return s, nil
}

func (o *orderTree) Place(ctx context.Context, units []tree.Unit, opts tree.PlaceOptions) (tree.Placed, error) {
	o.record("place")
	inner := opts.Commit
	opts.Commit = func(s tree.Status) error {
		o.record("commit")
		if inner != nil {
			return inner(s)
		}
		return nil
	}
	p, err := o.Tree.Place(ctx, units, opts)
	o.record("placed")
	return p, err
}

// TestLargeUploadStagedCompleteBeforeDecision: a large upload, in both modes, is staged (the tree fsyncs the file
// there) only once all of it is written and hashed, the staged file holds exactly the body, and the decision is
// recorded (Request.Commit, the moment the upload counts as stored) only after staging and inside the placement,
// which makes the links durable before it returns: Ingest, and so the 201, comes last.
func TestLargeUploadStagedCompleteBeforeDecision(t *testing.T) {
	data := largePackage(t)
	for _, viaSpool := range []bool{false, true} {
		t.Run(map[bool]string{false: "direct", true: "header"}[viaSpool], func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.MaxSize = 64 << 20 })
			ot := &orderTree{Tree: e.tree}
			opts := e.in.opts
			opts.Tree = ot
			in, err := New(opts, e.in.log)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			req := Request{Body: bytes.NewReader(data), Commit: func(*Result) error { ot.record("recorded"); return nil }}
			if viaSpool {
				req = Request{SpoolPath: e.spoolFile(t, data), Commit: req.Commit}
			}
			res, err := in.Ingest(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			ot.record("answered")
			want := []string{"stage", "staged", "place", "commit", "recorded", "placed", "answered"}
			if strings.Join(ot.events, " ") != strings.Join(want, " ") {
				t.Errorf("events %v, want %v", ot.events, want)
			}
			if !bytes.Equal(ot.atStage, data) {
				t.Errorf("the staged file held %d bytes that differ from the %d of the body", len(ot.atStage), len(data))
			}
			if sum := sha256.Sum256(data); res.Package.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("SHA256 %s, want %x", res.Package.SHA256, sum)
			}
			e.assertSpoolEmpty(t)
		})
	}
}
