package objstore_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/rpm-ingestd/rpm-ingestd/internal/seaweed"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
)

func noEnv(string) string { return "" }

// newStore is a Store on srv's bucket with the given prefix and anonymous credentials.
func newStore(t *testing.T, srv *seaweed.Server, bucket, prefix string, mod ...func(*objstore.Options)) *objstore.Store {
	t.Helper()
	opts := objstore.Options{Endpoint: srv.Endpoint(), Bucket: bucket, Prefix: prefix, Region: seaweed.Region,
		PathStyle: true, Getenv: noEnv}
	for _, m := range mod {
		m(&opts)
	}
	s, err := objstore.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func body(s string) io.ReadSeeker { return strings.NewReader(s) }

func quotedMD5(s string) string { h := md5.Sum([]byte(s)); return `"` + hex.EncodeToString(h[:]) + `"` }

func read(t *testing.T, s *objstore.Store, key string) (string, objstore.Info) {
	t.Helper()
	rc, info, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(data), info
}

// TestAgainstSeaweedFS runs the anonymous cases on one private SeaweedFS.
func TestAgainstSeaweedFS(t *testing.T) {
	t.Parallel()
	srv := seaweed.Start(t, seaweed.Options{})
	t.Run("ConditionalWrites", func(t *testing.T) { testConditionalWrites(t, srv) })
	t.Run("Operations", func(t *testing.T) { testOperations(t, srv) })
	t.Run("ConcurrentPutIfAbsent", func(t *testing.T) { testConcurrentPutIfAbsent(t, srv) })
}

// testConditionalWrites is the matrix of issue 21, checked through this package against the real server.
func testConditionalWrites(t *testing.T, srv *seaweed.Server) {
	s := newStore(t, srv, srv.NewBucket(), "cw")
	ctx := context.Background()
	const v1, v2 = "version one", "version two"
	for _, tc := range []struct {
		name     string
		existing bool                                   // the key holds v1 before the step
		step     func(key, etag string) (string, error) // etag: v1's ETag ("" when not existing)
		want     error
		after    string // the content afterwards; "" = no object
	}{
		{"PutIfAbsent on a new key", false,
			func(k, _ string) (string, error) { return s.PutIfAbsent(ctx, k, body(v2), nil) }, nil, v2},
		{"PutIfAbsent on an existing key", true,
			func(k, _ string) (string, error) { return s.PutIfAbsent(ctx, k, body(v2), nil) }, objstore.ErrExists, v1},
		{"PutIfMatch with a stale ETag", true,
			func(k, _ string) (string, error) { return s.PutIfMatch(ctx, k, quotedMD5("stale"), body(v2), nil) },
			objstore.ErrConflict, v1},
		{"PutIfMatch with the current ETag", true,
			func(k, e string) (string, error) { return s.PutIfMatch(ctx, k, e, body(v2), nil) }, nil, v2},
		{"PutIfMatch with the current ETag unquoted", true,
			func(k, e string) (string, error) { return s.PutIfMatch(ctx, k, strings.Trim(e, `"`), body(v2), nil) }, nil, v2},
		{"PutIfMatch on a missing key", false,
			func(k, _ string) (string, error) { return s.PutIfMatch(ctx, k, quotedMD5(v1), body(v2), nil) },
			objstore.ErrNotFound, ""},
		{"DeleteIfMatch with a stale ETag", true,
			func(k, _ string) (string, error) { return "", s.DeleteIfMatch(ctx, k, quotedMD5("stale")) },
			objstore.ErrConflict, v1},
		{"DeleteIfMatch with the current ETag", true,
			func(k, e string) (string, error) { return "", s.DeleteIfMatch(ctx, k, e) }, nil, ""},
		{"DeleteIfMatch on a missing key", false,
			func(k, _ string) (string, error) { return "", s.DeleteIfMatch(ctx, k, quotedMD5(v1)) },
			objstore.ErrConflict, ""},
		{"Put unconditionally over an existing key", true,
			func(k, _ string) (string, error) { return s.Put(ctx, k, body(v2), nil) }, nil, v2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "matrix/" + strings.ReplaceAll(tc.name, " ", "-")
			var etag string
			if tc.existing {
				var err error
				if etag, err = s.PutIfAbsent(ctx, key, body(v1), nil); err != nil {
					t.Fatal(err)
				}
				if etag != quotedMD5(v1) {
					t.Errorf("ETag %s, want the quoted MD5 %s", etag, quotedMD5(v1))
				}
			}
			newETag, err := tc.step(key, etag)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var oe *objstore.Error
			if err != nil {
				if !errors.As(err, &oe) {
					t.Fatalf("%T is not an *objstore.Error", err)
				}
				t.Logf("answer: HTTP %d", oe.Status)
			}
			if err == nil && tc.after == v2 && newETag != quotedMD5(v2) {
				t.Errorf("new ETag %q, want %s", newETag, quotedMD5(v2))
			}
			info, herr := s.Head(ctx, key)
			switch {
			case tc.after == "" && !errors.Is(herr, objstore.ErrNotFound):
				t.Fatalf("after: Head %v %v, want ErrNotFound", info, herr)
			case tc.after != "":
				if got, _ := read(t, s, key); got != tc.after {
					t.Fatalf("after: %q, want %q", got, tc.after)
				}
			}
		})
	}
}

func testOperations(t *testing.T, srv *seaweed.Server) {
	ctx := context.Background()
	bucket := srv.NewBucket()
	el := newStore(t, srv, bucket, "el", func(o *objstore.Options) { o.ListPageSize = 3 })
	fc := newStore(t, srv, bucket, "fc")

	// Put with the sha256 in the metadata; Head and Get return size, ETag and metadata.
	content := strings.Repeat("rpm bytes ", 1000)
	sum := sha256.Sum256([]byte(content))
	meta := map[string]string{"sha256": hex.EncodeToString(sum[:])}
	etag, err := el.PutIfAbsent(ctx, "9/x86_64/Packages/a-1.0-1.el9.x86_64.rpm", body(content), meta)
	if err != nil {
		t.Fatal(err)
	}
	info, err := el.Head(ctx, "9/x86_64/Packages/a-1.0-1.el9.x86_64.rpm")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(content)) || info.ETag != etag || info.Metadata["sha256"] != meta["sha256"] ||
		info.LastModified.IsZero() || info.Key != "9/x86_64/Packages/a-1.0-1.el9.x86_64.rpm" {
		t.Fatalf("Head: %+v (etag %s)", info, etag)
	}
	got, ginfo := read(t, el, "9/x86_64/Packages/a-1.0-1.el9.x86_64.rpm")
	if got != content || ginfo.Metadata["sha256"] != meta["sha256"] || ginfo.ETag != etag {
		t.Fatalf("Get: %d bytes, %+v", len(got), ginfo)
	}

	// The prefix: el's keys are under el/ in the bucket, invisible to fc.
	raw := srv.Client()
	if _, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket),
		Key: aws.String("el/9/x86_64/Packages/a-1.0-1.el9.x86_64.rpm")}); err != nil {
		t.Fatalf("not under the prefix in the bucket: %v", err)
	}
	if _, err := fc.Head(ctx, "9/x86_64/Packages/a-1.0-1.el9.x86_64.rpm"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("fc sees el's key: %v", err)
	}

	// List paginates (page size 3), returns keys relative to the prefix, in order, and only under the prefix.
	var want []string
	for i := range 10 {
		k := fmt.Sprintf("9/x86_64/.rpm-ingestd/pending/p%02d", i)
		want = append(want, k)
		if _, err := el.Put(ctx, k, body(k), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fc.Put(ctx, "9/x86_64/.rpm-ingestd/pending/other", body("x"), nil); err != nil {
		t.Fatal(err)
	}
	list, err := el.List(ctx, "9/x86_64/.rpm-ingestd/pending/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, i := range list {
		keys = append(keys, i.Key)
		if i.Size != int64(len(i.Key)) || i.ETag != quotedMD5(i.Key) {
			t.Errorf("listed %+v", i)
		}
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("List: %v\nwant %v", keys, want)
	}
	all, err := el.List(ctx, "")
	if err != nil || len(all) != 11 {
		t.Fatalf("List all: %d %v", len(all), err)
	}
	// Walk stops at fn's error and returns it.
	stop := errors.New("stop")
	n := 0
	if err := el.Walk(ctx, "", func(objstore.Info) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("Walk: %v after %d", err, n)
	}

	// Copy is server-side and keeps the metadata.
	cetag, err := el.Copy(ctx, "9/x86_64/Packages/a-1.0-1.el9.x86_64.rpm", "10/x86_64/Packages/a-1.0-1.el9.x86_64.rpm")
	if err != nil {
		t.Fatal(err)
	}
	cinfo, err := el.Head(ctx, "10/x86_64/Packages/a-1.0-1.el9.x86_64.rpm")
	if err != nil || cinfo.Size != info.Size || cinfo.Metadata["sha256"] != meta["sha256"] || cinfo.ETag != cetag {
		t.Fatalf("copy: %+v %v (etag %s)", cinfo, err, cetag)
	}
	if _, err := el.Copy(ctx, "missing", "x"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Copy from a missing key: %v", err)
	}
	// Keys with spaces and non-ASCII survive a copy (the copy source is URL-escaped).
	if _, err := el.Put(ctx, "odd name/ü+1%.rpm", body("odd"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := el.Copy(ctx, "odd name/ü+1%.rpm", "odd copy/ü+1%.rpm"); err != nil {
		t.Fatal(err)
	}
	if got, _ := read(t, el, "odd copy/ü+1%.rpm"); got != "odd" {
		t.Fatalf("odd copy: %q", got)
	}

	// Missing keys: Head and Get say ErrNotFound; Delete succeeds (as S3 does).
	if _, err := el.Head(ctx, "missing"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Head missing: %v", err)
	}
	if _, _, err := el.Get(ctx, "missing"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	if err := el.Delete(ctx, "missing"); err != nil {
		t.Fatalf("Delete missing: %v", err)
	}
	if err := el.Delete(ctx, "10/x86_64/Packages/a-1.0-1.el9.x86_64.rpm"); err != nil {
		t.Fatal(err)
	}
	if _, err := el.Head(ctx, "10/x86_64/Packages/a-1.0-1.el9.x86_64.rpm"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("after Delete: %v", err)
	}

	// A larger body (several MiB) goes through Put and Get intact.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	if _, err := el.Put(ctx, "big", bytes.NewReader(big), nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := read(t, el, "big"); got != string(big) {
		t.Fatalf("big: %d bytes back", len(got))
	}
	// The bucket must exist.
	nob := newStore(t, srv, "no-such-bucket", "")
	if _, err := nob.Put(ctx, "k", body("x"), nil); err == nil {
		t.Fatal("Put into a missing bucket succeeded")
	}
}

// testConcurrentPutIfAbsent: 8 writers race for the same new key, 30 rounds: exactly one wins each round and the
// object holds the winner's bytes.
func testConcurrentPutIfAbsent(t *testing.T, srv *seaweed.Server) {
	s := newStore(t, srv, srv.NewBucket(), "race")
	const writers, rounds = 8, 30
	for round := range rounds {
		key := fmt.Sprintf("round/%02d", round)
		start := make(chan struct{})
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				<-start
				_, errs[w] = s.PutIfAbsent(context.Background(), key, body(fmt.Sprintf("writer %d", w)), nil)
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for w, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: writers %d and %d both won", round, winner, w)
			case err == nil:
				winner = w
			case !errors.Is(err, objstore.ErrExists):
				t.Fatalf("round %d: writer %d: %v", round, w, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no winner", round)
		}
		if got, _ := read(t, s, key); got != fmt.Sprintf("writer %d", winner) {
			t.Fatalf("round %d: object holds %q, winner was %d", round, got, winner)
		}
	}
}

// TestCredentials: weed started with credentials refuses anonymous and wrongly signed requests, and accepts the
// credentials from a file and from the environment.
func TestCredentials(t *testing.T) {
	t.Parallel()
	const id, secret = "rpmingestdtest", "s3cr3t-for-tests-only"
	srv := seaweed.Start(t, seaweed.Options{AccessKey: id, SecretKey: secret})
	bucket := srv.NewBucket()
	ctx := context.Background()

	file := filepath.Join(t.TempDir(), "s3.credentials")
	if err := os.WriteFile(file, []byte("[default]\naws_access_key_id = "+id+"\naws_secret_access_key = "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile := newStore(t, srv, bucket, "", func(o *objstore.Options) { o.CredentialsFile = file })
	fromEnv := newStore(t, srv, bucket, "", func(o *objstore.Options) {
		o.Getenv = func(k string) string {
			return map[string]string{"AWS_ACCESS_KEY_ID": id, "AWS_SECRET_ACCESS_KEY": secret}[k]
		}
	})
	anonymous := newStore(t, srv, bucket, "")
	wrong := newStore(t, srv, bucket, "", func(o *objstore.Options) {
		o.Getenv = func(k string) string {
			return map[string]string{"AWS_ACCESS_KEY_ID": id, "AWS_SECRET_ACCESS_KEY": "wrong"}[k]
		}
	})
	for i, s := range []*objstore.Store{fromFile, fromEnv} {
		if _, err := s.Put(ctx, fmt.Sprintf("k%d", i), body("x"), nil); err != nil {
			t.Fatalf("%s: Put: %v", s, err)
		}
		if _, err := s.List(ctx, ""); err != nil {
			t.Fatalf("%s: List: %v", s, err)
		}
	}
	if _, err := fromFile.Put(ctx, "private", body("x"), nil); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*objstore.Store{"anonymous": anonymous, "wrong secret": wrong} {
		if _, err := s.Put(ctx, "intruder", body("x"), nil); !errors.Is(err, objstore.ErrDenied) {
			t.Errorf("%s Put: %v, want ErrDenied", name, err)
		}
		if _, _, err := s.Get(ctx, "private"); !errors.Is(err, objstore.ErrDenied) {
			t.Errorf("%s Get: %v, want ErrDenied", name, err)
		}
		if _, err := s.List(ctx, ""); !errors.Is(err, objstore.ErrDenied) {
			t.Errorf("%s List: %v, want ErrDenied", name, err)
		}
		if err := s.Delete(ctx, "private"); !errors.Is(err, objstore.ErrDenied) {
			t.Errorf("%s Delete: %v, want ErrDenied", name, err)
		}
		if strings.Contains(fmt.Sprint(s), secret) {
			t.Errorf("String shows the secret")
		}
	}
	if _, err := fromFile.Head(ctx, "intruder"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("a refused Put left an object: %v", err)
	}
	if _, err := fromFile.Head(ctx, "private"); err != nil {
		t.Fatalf("a refused Delete removed the object: %v", err)
	}
}

// TestServerRestart: while SeaweedFS restarts, every request fails with ErrUnavailable (none hangs past the
// stall time-outs, none gets a wrong answer), and afterwards the objects written before are all there.
//
// Measured along the way: a PUT that hung in the restart window can take effect after the client gave up on it,
// so a PutIfAbsent whose retry meets its own earlier attempt reports ErrExists for a key nobody else writes, and
// an attempt that failed with ErrUnavailable may have stored its object all the same.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	srv := seaweed.Start(t, seaweed.Options{})
	s := newStore(t, srv, srv.NewBucket(), "", func(o *objstore.Options) {
		o.StallTimeout = 3 * time.Second
		o.Timeout = 10 * time.Second
	})
	ctx := context.Background()
	for i := range 5 {
		if _, err := s.PutIfAbsent(ctx, fmt.Sprintf("before/%d", i), body(fmt.Sprint(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	srv.Stop()
	if _, err := s.Put(ctx, "while-down", body("x"), nil); !errors.Is(err, objstore.ErrUnavailable) {
		t.Fatalf("Put while down: %v, want ErrUnavailable", err)
	}
	srv.StartAgain()
	began := time.Now()
	var failures []string
	var unavailable []string // keys whose PutIfAbsent ended in ErrUnavailable
	echoes := 0
	deadline := began.Add(3 * time.Minute)
	for attempt := 0; ; attempt++ {
		if time.Now().After(deadline) {
			t.Fatalf("no successful PUT within 3 minutes after the restart; failures: %v", failures)
		}
		// A new key per attempt, written by nobody else: ErrExists can only be this request's own earlier try.
		key, val := fmt.Sprintf("after/%d", attempt), fmt.Sprintf("attempt %d", attempt)
		t0 := time.Now()
		_, err := s.PutIfAbsent(ctx, key, body(val), nil)
		if err == nil {
			break
		}
		failures = append(failures, fmt.Sprintf("%.1fs %v", time.Since(t0).Seconds(), errorKind(err)))
		switch {
		case errors.Is(err, objstore.ErrExists):
			if got, _ := read(t, s, key); got != val {
				t.Fatalf("%s: ErrExists, and it holds %q, not this request's %q", key, got, val)
			}
			echoes++
		case errors.Is(err, objstore.ErrUnavailable):
			unavailable = append(unavailable, key)
		default:
			t.Fatalf("Put during the restart: %v, want ErrUnavailable (or ErrExists for its own write)", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	storedAnyway := 0
	for _, key := range unavailable {
		if _, err := s.Head(ctx, key); err == nil {
			storedAnyway++
		} else if !errors.Is(err, objstore.ErrNotFound) {
			t.Fatal(err)
		}
	}
	t.Logf("first successful PUT %.1f s after the restart; failed attempts: %v; ErrExists for its own write: %d; "+
		"stored despite ErrUnavailable: %d of %d", time.Since(began).Seconds(), failures, echoes, storedAnyway, len(unavailable))
	for i := range 5 {
		if got, _ := read(t, s, fmt.Sprintf("before/%d", i)); got != fmt.Sprint(i) {
			t.Fatalf("before/%d: %q after the restart", i, got)
		}
	}
	if _, err := s.PutIfAbsent(ctx, "before/0", body("again"), nil); !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("If-None-Match after the restart: %v, want ErrExists", err)
	}
}

func errorKind(err error) string {
	for _, k := range []error{objstore.ErrExists, objstore.ErrUnavailable, objstore.ErrConflict, objstore.ErrNotFound} {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	return err.Error()
}
