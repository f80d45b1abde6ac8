package e2e

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
)

// TestS3Lifecycle: promote (a server-side copy into another channel), delete and retention on storage.backend
// s3, each checked in the bucket and with dnf through serve_repo.
func TestS3Lifecycle(t *testing.T) {
	t.Parallel()
	srv := sharedSeaweed(t) // buckets of its own on the shared server
	d := newS3Daemon(t, srv, "", "", s3Extra{repo: "  layout: \"{{.Channel}}/{{.OSRelease}}/{{.Arch}}\"\n" +
		"  channels: [testing, stable]\n  default_channel: testing\n  retention: {keep_versions: 2}"})
	ctx := context.Background()
	st := d.store(t)

	for _, f := range []string{"hello-1.0-1.el9.x86_64.rpm", "hello-1.0-1.el9.aarch64.rpm", "hello-1.0-1.el9.src.rpm", "hello-data-1.0-1.el9.noarch.rpm"} {
		if r := d.upload(t, f, rpmFixture(t, f), "?wait=visible"); r.code != http.StatusCreated {
			t.Fatalf("upload %s: %d %s", f, r.code, r.body)
		}
	}

	// Promote: the build goes to stable in the bucket, and dnf installs it from there.
	r := d.do(t, http.MethodPost, "/api/v1/promote", []byte(`{"from":"testing","to":"stable","name":"hello","version":"1.0","release":"1.el9"}`),
		map[string]string{"Content-Type": "application/json"}, false)
	if r.code != http.StatusCreated {
		t.Fatalf("promote hello: %d %s", r.code, r.body)
	}
	r = d.do(t, http.MethodPost, "/api/v1/promote", []byte(`{"from":"testing","to":"stable","name":"hello-data","version":"1.0","release":"1.el9","arch":"noarch"}`),
		map[string]string{"Content-Type": "application/json"}, false)
	if r.code != http.StatusCreated {
		t.Fatalf("promote hello-data: %d %s", r.code, r.body)
	}
	for _, k := range []string{"stable/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", "stable/9/aarch64/Packages/hello-1.0-1.el9.aarch64.rpm",
		"stable/9/SRPMS/Packages/hello-1.0-1.el9.src.rpm", "stable/9/aarch64/Packages/hello-data-1.0-1.el9.noarch.rpm"} {
		if info, err := st.Head(ctx, k); err != nil || info.Metadata["sha256"] == "" {
			t.Errorf("promoted %s: %v %v", k, info.Metadata, err)
		}
	}
	d.eventually(t, "/repo/stable/9/x86_64/", []string{"hello-1.0-1.el9.x86_64", "hello-data-1.0-1.el9.noarch"})
	d.eventually(t, "/repo/stable/9/SRPMS/", []string{"hello-1.0-1.el9.src"}, "--arch=src")
	root := filepath.Join(d.dnfDir, "stable-root")
	d.dnf(t, root, []string{"/repo/stable/9/x86_64/"}, "install", "hello")
	if _, err := os.Stat(filepath.Join(root, "usr", "bin", "hello")); err != nil {
		t.Errorf("dnf install hello from stable: %v", err)
	}
	if r := d.do(t, http.MethodPost, "/api/v1/promote", []byte(`{"from":"testing","to":"stable","name":"hello","version":"1.0","release":"1.el9"}`),
		map[string]string{"Content-Type": "application/json"}, false); r.code != http.StatusOK {
		t.Errorf("promote hello again: %d %s, want 200", r.code, r.body)
	}

	// Delete: the object goes, and the next publish drops it.
	r = d.do(t, http.MethodDelete, "/api/v1/packages/stable/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", nil, nil, false)
	if r.code != http.StatusOK {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	if _, err := st.Head(ctx, "stable/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("deleted package still in the bucket: %v", err)
	}
	if _, err := st.Head(ctx, "testing/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"); err != nil {
		t.Errorf("the delete in stable removed testing's copy: %v", err)
	}
	d.eventually(t, "/repo/stable/9/x86_64/", []string{"hello-data-1.0-1.el9.noarch"})
	if r := d.do(t, http.MethodDelete, "/api/v1/packages/stable/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", nil, nil, false); r.code != http.StatusNotFound {
		t.Errorf("delete again: %d %s, want 404", r.code, r.body)
	}

	// Retention (keep_versions: 2): the oldest build goes from the bucket and from the metadata.
	for _, v := range []string{"1.9", "1.10", "1.11"} {
		spec := testrpm.Spec{Name: "tool", Version: v, Release: "1.el9", Arch: "x86_64"}
		if r := d.upload(t, spec.FileName(), testrpm.Build(t, spec), "?wait=visible"); r.code != http.StatusCreated {
			t.Fatalf("upload tool-%s: %d %s", v, r.code, r.body)
		}
	}
	d.eventually(t, "/repo/testing/9/x86_64/", []string{"hello-1.0-1.el9.x86_64", "hello-data-1.0-1.el9.noarch", "tool-1.10-1.el9.x86_64", "tool-1.11-1.el9.x86_64"})
	if _, err := st.Head(ctx, "testing/9/x86_64/Packages/tool-1.9-1.el9.x86_64.rpm"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("retention left tool-1.9 in the bucket: %v", err)
	}
}

// eventually waits (up to a minute) until repoquery of repo lists exactly want.
func (d *s3Daemon) eventually(t *testing.T, repo string, want []string, extra ...string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		out, err := d.tryDnf(ctx, filepath.Join(d.dnfDir, "query-root"), []string{repo}, append([]string{"repoquery", "--qf", "%{name}-%{evr}.%{arch}"}, extra...)...)
		cancel()
		got := lines(out)
		slices.Sort(got)
		if err == nil && slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("repoquery %s = %v (%v), want %v", repo, got, err, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
