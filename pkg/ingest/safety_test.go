package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/indexer"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
)

// TestIndexRunBetweenMarkAndLink drives a whole real index run into the window between marking a repository and
// linking the package: the run claims the marker, scans Packages/ before the link, sees no change and clears the
// marker. The daemon then "crashes" (the in-memory trigger is lost) and a new one recovers from the disk alone:
// the package must be in primary.xml. Before the markers were re-asserted after the link, Recover found nothing.
func TestIndexRunBetweenMarkAndLink(t *testing.T) {
	if _, err := exec.LookPath("createrepo_c"); err != nil {
		t.Fatal("createrepo_c not found: install it (make deps)")
	}
	runner := indexer.NewCreaterepo(nil)
	var once sync.Once
	e := newEnvMark(t, func(o *Options) {
		o.Arches = []string{"x86_64"}
	}, func(repo string) error {
		if err := indexer.MarkDirty(repo); err != nil {
			return err
		}
		var err error
		once.Do(func() { err = runner.Run(context.Background(), repo) })
		return err
	})
	res, err := e.upload(t, testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"}), true, "")
	if err != nil || res.Status != Created {
		t.Fatalf("upload: %v %v", res, err)
	}

	// kill -9 here: nothing in memory survives. A new daemon runs Recover, then stops, publishing what it found.
	sched := indexer.NewScheduler(runner, indexer.Options{QuietPeriod: 1, MaxDelay: 1, Timeout: 1 << 40,
		ShutdownTimeout: 1 << 40, Workers: 1}, zaptest.NewLogger(t))
	if _, err := sched.Recover(e.top); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sched.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if names := primaryNames(t, filepath.Join(e.top, "9", "x86_64")); !slices.Contains(names, "hello") {
		t.Fatalf("after a crash and Recover, primary.xml lists %v: the 201 package was never published", names)
	}
}

// primaryNames returns the package names in repo's published primary.xml.
func primaryNames(t *testing.T, repo string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Data []struct {
			Type     string `xml:"type,attr"`
			Location struct {
				Href string `xml:"href,attr"`
			} `xml:"location"`
		} `xml:"data"`
	}
	if err := xml.Unmarshal(b, &md); err != nil {
		t.Fatal(err)
	}
	for _, d := range md.Data {
		if d.Type != "primary" {
			continue
		}
		f, err := os.Open(filepath.Join(repo, d.Location.Href))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		var primary struct {
			Packages []struct {
				Name string `xml:"name"`
			} `xml:"package"`
		}
		if err := xml.NewDecoder(zr).Decode(&primary); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range primary.Packages {
			names = append(names, p.Name)
		}
		return names
	}
	t.Fatal("repomd.xml names no primary")
	return nil
}

// TestNoarchOutOfInodes: a noarch upload whose second arch cannot be prepared (no inodes left for its directories)
// is placed nowhere and answers ErrNoSpace. Before, the first arch kept its copy while the client heard "nothing
// was kept".
func TestNoarchOutOfInodes(t *testing.T) {
	base := mountTmpfs(t, "size=8m,nr_inodes=256")
	e := newEnv(t, func(o *Options) {
		o.TopDir, o.SpoolDir = filepath.Join(base, "storage"), filepath.Join(base, "incoming")
		for _, d := range []string{o.TopDir, o.SpoolDir} {
			os.Mkdir(d, 0o755)
		}
	})
	e.top, e.spool = filepath.Join(base, "storage"), filepath.Join(base, "incoming")
	// x86_64 exists already; aarch64 will need new directories.
	if _, err := e.upload(t, testrpm.Build(t, testrpm.Spec{Name: "first", Release: "1.el9", Arch: "x86_64"}), true, ""); err != nil {
		t.Fatal(err)
	}
	data := testrpm.Build(t, testrpm.Spec{Name: "data", Release: "1.el9", Arch: "noarch"})
	spooled := e.spoolFile(t, data)
	fillInodes(t, base, 1) // enough for one link (tmpfs counts links as inodes), not for aarch64's directories

	_, err := e.in.Ingest(context.Background(), Request{SpoolPath: spooled})
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("err = %v, want ErrNoSpace", err)
	}
	if files := e.treeFiles(t); !slices.Equal(files, []string{"9/x86_64/Packages/first-1.0-1.el9.x86_64.rpm"}) {
		t.Errorf("tree holds %v after a refused noarch upload", files)
	}
	e.assertSpoolEmpty(t)
}

// fillInodes creates empty files under dir until the filesystem has no inode left, then frees free of them.
func fillInodes(t *testing.T, dir string, free int) {
	t.Helper()
	fill := filepath.Join(dir, "fill")
	os.Mkdir(fill, 0o755)
	for i := 0; ; i++ {
		f, err := os.Create(filepath.Join(fill, fmt.Sprint(i)))
		if errors.Is(err, syscall.ENOSPC) {
			for j := range free {
				os.Remove(filepath.Join(fill, fmt.Sprint(i-1-j)))
			}
			return
		}
		if err != nil || i > 100000 {
			t.Fatalf("filling inodes: %v after %d files", err, i)
		}
		f.Close()
	}
}

// TestNoarchLinkFailsMidway: when linking into the second arch fails, the first arch's link made by this upload
// is removed again, and nothing else is touched.
func TestNoarchLinkFailsMidway(t *testing.T) {
	e := newEnv(t, nil)
	e.tree.Link = func(oldname, newname string) error {
		if strings.Contains(newname, "/aarch64/") {
			return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.ENOSPC}
		}
		return os.Link(oldname, newname)
	}
	res, err := e.upload(t, testrpm.Build(t, testrpm.Spec{Name: "data", Release: "1.el9", Arch: "noarch"}), true, "")
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "nothing was kept") {
		t.Fatalf("err = %v, want ErrNoSpace saying nothing was kept", err)
	}
	if files := e.treeFiles(t); len(files) != 0 {
		t.Errorf("tree holds %v", files)
	}
	if len(res.Dirty) != 2 {
		t.Errorf("Dirty = %v: both marked repositories must be handed back for indexing", res.Dirty)
	}
	e.assertSpoolEmpty(t)
}

// TestOverwriteNoarchRaceNeverSplits uploads two different builds of one noarch package at once, many times, with
// overwrite on: every arch must end up with the same build. Without the per-name lock, each arch kept whichever
// upload wrote last (127 of 300 pairs ended split in the review).
func TestOverwriteNoarchRaceNeverSplits(t *testing.T) {
	const pairs = 60
	e := newEnv(t, func(o *Options) { o.Overwrite = true })
	name := "split-1.0-1.el9.noarch.rpm"
	split := 0
	for i := range pairs {
		var paths [2]string
		for j := range paths {
			paths[j] = e.spoolFile(t, testrpm.Build(t, testrpm.Spec{Name: "split", Release: "1.el9", Arch: "noarch", Salt: fmt.Sprint(i, j)}))
		}
		var wg sync.WaitGroup
		for _, p := range paths {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.in.Ingest(context.Background(), Request{SpoolPath: p}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		a := sha256File(t, filepath.Join(e.top, "9", "x86_64", "Packages", name))
		b := sha256File(t, filepath.Join(e.top, "9", "aarch64", "Packages", name))
		if a != b {
			split++
		}
	}
	if split > 0 {
		t.Errorf("%d of %d concurrent pairs ended split across arches", split, pairs)
	}
	e.assertSpoolEmpty(t)
}

func sha256File(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestNewDirectoriesAreSynced: every directory entry a first upload creates (the release, the arch, Packages/ and
// the package itself) is fsynced in its parent before the answer.
func TestNewDirectoriesAreSynced(t *testing.T) {
	e := newEnv(t, nil)
	var mu sync.Mutex
	var synced []string
	e.tree.SyncDir = func(dir string) error {
		mu.Lock()
		synced = append(synced, dir)
		mu.Unlock()
		return nil
	}
	if _, err := e.upload(t, testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"}), true, ""); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(e.top, "9", "x86_64")
	for _, dir := range []string{e.top, filepath.Join(e.top, "9"), repo, filepath.Join(repo, "Packages")} {
		if !slices.Contains(synced, dir) {
			t.Errorf("%s was not synced (synced: %v)", dir, synced)
		}
	}
}

// TestLayoutNeedsDistTag: a layout that needs the dist tag's abbreviation refuses, with 422 and advice, a bare
// os_release for a package without a dist tag, and routes the same package named by "el9".
func TestLayoutNeedsDistTag(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Layout = func(_, abbr, release, arch string) (string, error) {
			if abbr == "" {
				return "", errors.New("repo.layout uses {{.OSAbbr}} but the package has no dist tag: name the release with its dist tag, like os_release=el9")
			}
			return filepath.Join(abbr+release, arch), nil
		}
	})
	data := testrpm.Build(t, testrpm.Spec{Name: "plain", Release: "1", Arch: "x86_64"})
	_, err := e.upload(t, data, true, "9")
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "os_release=el9") {
		t.Fatalf("bare os_release: err = %v, want ErrRejected with advice", err)
	}
	res, err := e.upload(t, data, true, "el9")
	if err != nil || res.OSRelease != "9" || res.Paths[0] != "el9/x86_64/Packages/plain-1.0-1.x86_64.rpm" {
		t.Fatalf("os_release el9: %+v, %v", res, err)
	}
	e.assertSpoolEmpty(t)
}

// TestClientChecksums: a body whose checksum differs from what the client sent is refused as damaged in transit,
// before it is parsed, and leaves nothing behind; matching ones (any case) pass.
func TestClientChecksums(t *testing.T) {
	data := testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "x86_64"})
	sum := func(h hash.Hash) string { h.Write(data); return hex.EncodeToString(h.Sum(nil)) }
	good := map[string]string{"sha256": strings.ToUpper(sum(sha256.New())), "sha1": sum(sha1.New()), "md5": sum(md5.New())}
	tests := []struct {
		name string
		sums map[string]string
		want error
	}{
		{"all match", good, nil},
		{"sha256 differs", map[string]string{"sha256": sum(sha1.New())}, ErrBadUpload},
		{"sha1 differs", map[string]string{"sha256": good["sha256"], "sha1": strings.Repeat("0", 40)}, ErrBadUpload},
		{"md5 differs", map[string]string{"md5": "d41d8cd98f00b204e9800998ecf8427e"}, ErrBadUpload},
		{"unknown algorithm", map[string]string{"crc32": "0"}, ErrBadUpload},
	}
	for _, tc := range tests {
		// Header mode hashes the spooled file; direct mode takes the SHA-256 from the pass that spooled the body.
		for _, direct := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s direct=%t", tc.name, direct), func(t *testing.T) {
				e := newEnv(t, nil)
				req := Request{Checksums: tc.sums}
				if direct {
					req.Body = bytes.NewReader(data)
				} else {
					req.SpoolPath = e.spoolFile(t, data)
				}
				_, err := e.in.Ingest(context.Background(), req)
				if !errors.Is(err, tc.want) || tc.want != nil && !strings.Contains(err.Error(), "checksum") {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if tc.want != nil && len(e.treeFiles(t)) != 0 {
					t.Errorf("refused upload left %v", e.treeFiles(t))
				}
				e.assertSpoolEmpty(t)
			})
		}
	}
}

// TestDirectUploadHashedWhileReceived: a direct upload larger than the Digester's parallel threshold is stored
// byte for byte with its SHA-256, and one whose payload was damaged in transit is refused by the payload digest
// computed while it was received, leaving nothing behind.
func TestDirectUploadHashedWhileReceived(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	blob := make([]byte, 3<<20)
	for i := range blob {
		blob[i] = byte(rng.Uint32())
	}
	data := testrpm.Build(t, testrpm.Spec{Name: "big", Release: "1.el9", Arch: "x86_64", Files: map[string]string{"/usr/share/big/blob": string(blob)}})
	e := newEnv(t, func(o *Options) { o.MaxSize = 64 << 20 })

	damaged := append([]byte(nil), data...)
	damaged[len(damaged)-100] ^= 1
	_, err := e.in.Ingest(context.Background(), Request{Body: bytes.NewReader(damaged)})
	if !errors.Is(err, rpmmeta.ErrInvalidPackage) || !strings.Contains(err.Error(), "payload sha256 digest mismatch") {
		t.Fatalf("damaged body: %v, want a payload digest mismatch", err)
	}
	if files := e.treeFiles(t); len(files) != 0 {
		t.Errorf("refused upload left %v", files)
	}
	e.assertSpoolEmpty(t)

	res, err := e.in.Ingest(context.Background(), Request{Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(data); res.Package.SHA256 != hex.EncodeToString(want[:]) || res.Package.Size != int64(len(data)) {
		t.Errorf("SHA256 %s size %d, want %x %d", res.Package.SHA256, res.Package.Size, want, len(data))
	}
	stored, err := os.ReadFile(filepath.Join(e.top, filepath.FromSlash(res.Paths[0])))
	if err != nil || !bytes.Equal(stored, data) {
		t.Errorf("stored file differs from the upload (err %v)", err)
	}
	e.assertSpoolEmpty(t)
}
