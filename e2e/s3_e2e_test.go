package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// TestS3EndToEnd runs the daemon on storage.backend s3 (a real SeaweedFS) in embedded mode: direct uploads into
// the bucket, 200 on an identical re-upload and 409 on different bytes, noarch fan-out and an SRPM, ?wait=visible,
// and dnf reading every repository through serve_repo, which streams from the bucket.
func TestS3EndToEnd(t *testing.T) {
	t.Parallel()
	srv := sharedSeaweed(t) // buckets of its own on the shared server
	d := newS3Daemon(t, srv, "", "el", s3Extra{})
	ctx := context.Background()

	for _, f := range []string{"hello-1.0-1.el9.x86_64.rpm", "hello-data-1.0-1.el9.noarch.rpm", "hello-1.0-1.el9.src.rpm"} {
		if r := d.upload(t, f, rpmFixture(t, f), "?wait=visible"); r.code != http.StatusCreated {
			t.Fatalf("upload %s ?wait=visible: %d %s", f, r.code, r.body)
		}
	}
	// The keys are where the issue says: <prefix>/<repository>/Packages/<name>, with the sha256 in the metadata.
	st := d.store(t)
	for key, file := range map[string]string{
		"9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm":       "hello-1.0-1.el9.x86_64.rpm",
		"9/x86_64/Packages/hello-data-1.0-1.el9.noarch.rpm":  "hello-data-1.0-1.el9.noarch.rpm",
		"9/aarch64/Packages/hello-data-1.0-1.el9.noarch.rpm": "hello-data-1.0-1.el9.noarch.rpm",
		"9/SRPMS/Packages/hello-1.0-1.el9.src.rpm":           "hello-1.0-1.el9.src.rpm",
	} {
		info, err := st.Head(ctx, key)
		if err != nil {
			t.Errorf("HEAD el/%s: %v", key, err)
			continue
		}
		sum := sha256.Sum256(rpmFixture(t, file))
		if got := info.Metadata["sha256"]; got != hex.EncodeToString(sum[:]) {
			t.Errorf("el/%s: sha256 metadata %q, want %x", key, got, sum)
		}
	}
	for _, repo := range []string{"9/x86_64", "9/aarch64", "9/SRPMS"} {
		if _, err := st.Head(ctx, repo+"/repodata/repomd.xml"); err != nil {
			t.Errorf("no published metadata for %s after ?wait=visible: %v", repo, err)
		}
	}
	// Nothing of the tree is kept in top_dir: it is only the work directory.
	if _, err := os.Stat(filepath.Join(d.top, "9")); err == nil {
		t.Errorf("%s/9 exists: the s3 backend wrote the repository locally", d.top)
	}

	// 200 on the same bytes, 409 on different bytes under the same name; the stored package is unchanged.
	if r := d.upload(t, "hello-1.0-1.el9.x86_64.rpm", rpmFixture(t, "hello-1.0-1.el9.x86_64.rpm"), ""); r.code != http.StatusOK {
		t.Errorf("identical re-upload: %d %s, want 200", r.code, r.body)
	}
	dup := testrpm.Spec{Name: "dup", Release: "1.el9", Arch: "x86_64"}
	if r := d.upload(t, dup.FileName(), testrpm.Build(t, dup), "?wait=visible"); r.code != http.StatusCreated {
		t.Fatalf("upload dup: %d %s", r.code, r.body)
	}
	salted := dup
	salted.Salt = "other bytes"
	if r := d.upload(t, dup.FileName(), testrpm.Build(t, salted), ""); r.code != http.StatusConflict {
		t.Errorf("different bytes under the same name: %d %s, want 409", r.code, r.body)
	}
	info, err := st.Head(ctx, "9/x86_64/Packages/"+dup.FileName())
	if sum := sha256.Sum256(testrpm.Build(t, dup)); err != nil || info.Metadata["sha256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("after the 409 the stored dup is %v %v, want the first upload", info.Metadata, err)
	}

	// serve_repo: dnf reads every repository from the bucket through the daemon.
	if got, want := d.sortedQuery(t, "/repo/9/x86_64/"), []string{"dup-1.0-1.el9.x86_64", "hello-1.0-1.el9.x86_64", "hello-data-1.0-1.el9.noarch"}; !slices.Equal(got, want) {
		t.Errorf("repoquery /repo/9/x86_64/ = %v, want %v", got, want)
	}
	if got, want := d.sortedQuery(t, "/repo/9/aarch64/"), []string{"hello-data-1.0-1.el9.noarch"}; !slices.Equal(got, want) {
		t.Errorf("repoquery /repo/9/aarch64/ = %v, want %v", got, want)
	}
	if got, want := d.sortedQuery(t, "/repo/9/SRPMS/", "--arch=src"), []string{"hello-1.0-1.el9.src"}; !slices.Equal(got, want) {
		t.Errorf("repoquery --arch=src /repo/9/SRPMS/ = %v, want %v", got, want)
	}
	root := filepath.Join(d.dnfDir, "install-root")
	d.dnf(t, root, []string{"/repo/9/x86_64/"}, "install", "hello", "hello-data")
	if b, err := os.ReadFile(filepath.Join(root, "usr", "bin", "hello")); err != nil || !strings.Contains(string(b), "hello from hello-1.0-1.el9") {
		t.Errorf("dnf install hello from the bucket: %v %q", err, b)
	}
	// The status page, a package's page, the package list and the upload status know what is in the bucket.
	for p, want := range map[string]string{
		"/": `<a href="/repo/9/x86_64/">9/x86_64</a>`, "/packages/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm": "hello-1.0-1.el9.x86_64",
		"/api/v1/packages?name=hello-data": "9/aarch64/Packages/hello-data-1.0-1.el9.noarch.rpm",
	} {
		if r := d.do(t, http.MethodGet, p, nil, nil, false); r.code != http.StatusOK || !strings.Contains(r.body, want) {
			t.Errorf("GET %s: %d, want 200 with %q:\n%s", p, r.code, want, r.body)
		}
	}
	sum := sha256.Sum256(rpmFixture(t, "hello-data-1.0-1.el9.noarch.rpm"))
	if r := d.do(t, http.MethodGet, "/api/v1/uploads/"+hex.EncodeToString(sum[:]), nil, nil, false); r.code != http.StatusOK || strings.Count(strings.ReplaceAll(r.body, " ", ""), `"visible":true`) != 3 {
		t.Errorf("upload status of hello-data: %d %s, want both copies and the whole visible", r.code, strings.Join(strings.Fields(r.body), " "))
	}
	// serve_repo's answers: type and length of a package, 404 for a missing one and for the daemon's own keys.
	r := d.do(t, http.MethodHead, "/repo/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", nil, nil, false)
	if r.code != http.StatusOK {
		t.Errorf("HEAD a package: %d", r.code)
	}
	for _, p := range []string{"/repo/9/x86_64/Packages/nope-1-1.el9.x86_64.rpm", "/repo/9/x86_64/.rpm-ingestd/lease.json", "/repo/9/x86_64/"} {
		if r := d.do(t, http.MethodGet, p, nil, nil, false); r.code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, r.code)
		}
	}
}
