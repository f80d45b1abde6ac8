package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/seaweed"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// TestS3Unavailable: while the S3 server is down, uploads and serve_repo reads get 503 with Retry-After and a
// one-line reason, and no 2xx is sent for a package that is not in the bucket; through the restart (refused
// connections, then PUTs hanging) uploads keep getting 503 or 201, and every 201 is stored; afterwards dnf sees
// every package that was acknowledged.
func TestS3Unavailable(t *testing.T) {
	srv := seaweed.Start(t, seaweed.Options{})
	d := newS3Daemon(t, srv, "", "", s3Extra{})
	ctx := context.Background()
	st := d.store(t)
	if r := d.upload(t, "hello-1.0-1.el9.x86_64.rpm", rpmFixture(t, "hello-1.0-1.el9.x86_64.rpm"), "?wait=visible"); r.code != http.StatusCreated {
		t.Fatalf("upload before the outage: %d %s", r.code, r.body)
	}

	srv.Stop()
	spec := testrpm.Spec{Name: "outage", Release: "1.el9", Arch: "x86_64"}
	resp := d.raw(t, http.MethodPut, "/upload/"+spec.FileName(), testrpm.Build(t, spec))
	if resp.code != http.StatusServiceUnavailable || resp.retryAfter == "" || !strings.Contains(resp.body, "storage is unavailable") {
		t.Errorf("upload while S3 is down: %d Retry-After %q %q, want 503 with Retry-After", resp.code, resp.retryAfter, resp.body)
	}
	if strings.Count(strings.TrimSpace(resp.body), "\n") > 0 {
		t.Errorf("503 body is not one line: %q", resp.body)
	}
	resp = d.raw(t, http.MethodGet, "/repo/9/x86_64/repodata/repomd.xml", nil)
	if resp.code != http.StatusServiceUnavailable || resp.retryAfter == "" {
		t.Errorf("serve_repo while S3 is down: %d Retry-After %q, want 503", resp.code, resp.retryAfter)
	}

	// Through the restart window: uploads until one is stored; every answer is 503 or 201, and every 201 is in
	// the bucket.
	srv.StartAgain()
	var acked []string
	deadline := time.Now().Add(3 * time.Minute)
	for i := 0; len(acked) < 3; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no upload stored within 3 minutes of the restart; acked %v", acked)
		}
		s := testrpm.Spec{Name: fmt.Sprintf("restart-%d", i), Release: "1.el9", Arch: "x86_64"}
		r := d.raw(t, http.MethodPut, "/upload/"+s.FileName(), testrpm.Build(t, s))
		switch r.code {
		case http.StatusCreated:
			if _, err := st.Head(ctx, "9/x86_64/Packages/"+s.FileName()); err != nil {
				t.Errorf("201 for %s, which is not in the bucket: %v", s.FileName(), err)
			}
			acked = append(acked, s.Name+"-1.0-1.el9.x86_64")
		case http.StatusServiceUnavailable:
			if r.retryAfter == "" {
				t.Errorf("503 without Retry-After: %q", r.body)
			}
			time.Sleep(500 * time.Millisecond)
		default:
			t.Fatalf("upload during the restart: %d %s, want 201 or 503", r.code, r.body)
		}
	}
	d.eventually(t, "/repo/9/x86_64/", append([]string{"hello-1.0-1.el9.x86_64"}, acked...))
}

type rawResponse struct {
	code             int
	body, retryAfter string
}

// raw sends one request straight to the daemon and returns the status, body and Retry-After.
func (d *s3Daemon) raw(t *testing.T, method, path string, body []byte) rawResponse {
	t.Helper()
	r, err := d.tryDo(d.web, d.base, method, path, body, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	return rawResponse{code: r.code, body: r.body, retryAfter: r.header.Get("Retry-After")}
}
