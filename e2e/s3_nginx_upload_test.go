package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/seaweed"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
)

// TestS3UploadsThroughNginx: the shipped nginx snippet in front (nginx spools the body, the daemon takes the
// spooled file as nginx's worker user) and the daemon on storage.backend s3: uploads land in the bucket with
// their sha256, 200 on the same bytes and 409 on different ones, and nothing stays in the spool or under top_dir
// but the daemon's work directory.
func TestS3UploadsThroughNginx(t *testing.T) {
	t.Parallel()
	srv := sharedSeaweed(t) // buckets of its own on the shared server
	bucket := srv.NewBucketFor(t)
	s := newStackWith(t, func(s *stack) {
		s.logExtra = fmt.Sprintf("storage:\n  backend: s3\n  s3:\n    endpoint: %s\n    bucket: %s\n    prefix: ngx\n    path_style: true\n", srv.Endpoint(), bucket)
	})
	st, err := objstore.New(objstore.Options{Endpoint: srv.Endpoint(), Bucket: bucket, Prefix: "ngx", Region: seaweed.Region,
		PathStyle: true, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"hello-1.0-1.el9.x86_64.rpm", "hello-data-1.0-1.el9.noarch.rpm", "hello-1.0-1.el9.src.rpm"} {
		file := filepath.Join("..", "testdata", "rpms", f)
		if r := s.curlUpload(t, file, s.base+"/upload/?wait=visible", curlAuth()...); r.code != http.StatusCreated {
			t.Fatalf("upload %s through nginx: %d %s", f, r.code, r.body)
		}
	}
	file := filepath.Join("..", "testdata", "rpms", "hello-1.0-1.el9.x86_64.rpm")
	if r := s.curlUpload(t, file, s.base+"/upload/", curlAuth()...); r.code != http.StatusOK {
		t.Errorf("identical upload through nginx: %d %s, want 200", r.code, r.body)
	}
	// Different bytes under one canonical name: 409 through nginx too.
	dup := testrpm.Spec{Name: "dup", Release: "1.el9", Arch: "x86_64"}
	first := testrpm.WriteFile(t, mkdir(t, filepath.Join(s.dir, "a")), dup)
	if r := s.curlUpload(t, first, s.base+"/upload/", curlAuth()...); r.code != http.StatusCreated {
		t.Fatalf("upload dup: %d %s", r.code, r.body)
	}
	dup.Salt = "rebuilt"
	second := testrpm.WriteFile(t, mkdir(t, filepath.Join(s.dir, "b")), dup)
	if r := s.curlUpload(t, second, s.base+"/upload/", curlAuth()...); r.code != http.StatusConflict {
		t.Errorf("different bytes through nginx: %d %s, want 409", r.code, r.body)
	}
	want, _ := os.ReadFile(file)
	sum := sha256.Sum256(want)
	for _, k := range []string{"9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", "9/aarch64/Packages/hello-data-1.0-1.el9.noarch.rpm", "9/SRPMS/Packages/hello-1.0-1.el9.src.rpm", "9/x86_64/repodata/repomd.xml"} {
		info, err := st.Head(context.Background(), k)
		if err != nil {
			t.Errorf("ngx/%s: %v", k, err)
			continue
		}
		if k == "9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm" && info.Metadata["sha256"] != hex.EncodeToString(sum[:]) {
			t.Errorf("stored hello: sha256 %q, want %x (the first upload)", info.Metadata["sha256"], sum)
		}
	}
	if files := s.spoolFiles(t); len(files) > 0 {
		t.Errorf("left in the spool: %v", files)
	}
	if _, err := os.Stat(filepath.Join(s.top, "9")); err == nil {
		t.Errorf("the repository was written under top_dir %s", s.top)
	}
}
