package server

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// formBody wraps data in a multipart form as curl -F file=@hello.rpm sends it, and returns the body and its
// Content-Type.
func formBody(t *testing.T, data []byte) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	part, err := mw.CreateFormFile("file", "hello-1.0-1.el9.x86_64.rpm")
	if err != nil {
		t.Fatal(err)
	}
	part.Write(data)
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

// TestUploadBodyMistakes: a form upload (curl -F) and an upload without a body get a 400 that says what to do
// (curl -T), in direct mode and through the proxy's spool file alike, and leave nothing behind.
func TestUploadBodyMistakes(t *testing.T) {
	form, formType := formBody(t, hello(t, ""))
	tests := []struct {
		name  string
		body  []byte
		hdr   map[string]string
		spool bool // hand the body over as a spooled file in the upload header
		want  string
	}{
		{"curl -F, direct", form, map[string]string{"Content-Type": formType}, false, "this is a multipart form upload (curl -F)"},
		{"form without its Content-Type, direct", form, map[string]string{"Content-Type": "application/octet-stream"}, false, "this is a multipart form upload (curl -F)"},
		{"curl -F through the proxy", form, nil, true, "this is a multipart form upload (curl -F)"},
		{"empty PUT, direct", nil, nil, false, "no body: the request carried no package"},
		{"empty spooled file", nil, nil, true, "no body: the request carried no package"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			hdr := map[string]string{}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			body := tc.body
			if tc.spool {
				hdr["X-Package-Name"] = f.spoolFile(t, tc.body)
				body = nil
			}
			rec := f.do(t, http.MethodPut, "/upload/", body, hdr)
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), tc.want) || !strings.Contains(rec.Body.String(), "curl -T") {
				t.Errorf("%d %q, want 400 saying %q and curl -T", rec.Code, rec.Body.String(), tc.want)
			}
			if strings.Contains(rec.Body.String(), "lead magic") || strings.Contains(rec.Body.String(), "0 bytes") {
				t.Errorf("answer still speaks of the rpm format: %q", rec.Body.String())
			}
			for _, dir := range []string{f.spool, f.top} {
				entries, _ := os.ReadDir(dir)
				for _, e := range entries {
					if !strings.HasPrefix(e.Name(), ".") {
						t.Errorf("left behind: %s", filepath.Join(dir, e.Name()))
					}
				}
			}
		})
	}
}

// TestReuploadOfVisiblePackage: sending a package again that dnf already sees says so, instead of promising a
// publish that some other upload's pending run would make.
func TestReuploadOfVisiblePackage(t *testing.T) {
	w := newWaitFixture(t, newFakePublisher(false), nil)
	data := pkg(t, "hello", "x86_64")
	if rec := w.do(t, http.MethodPut, "/upload/", data, nil); rec.Code != http.StatusCreated {
		t.Fatalf("first upload: %d %s", rec.Code, rec.Body)
	}
	repo := filepath.Join(w.top, "9", "x86_64")
	// Not yet published: the answer to a re-upload promises the publish.
	rec := w.do(t, http.MethodPut, "/upload/", data, nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "published to dnf in about") {
		t.Errorf("re-upload before the publish: %d %q", rec.Code, rec.Body)
	}
	w.pub.publish(repo)
	rec = w.do(t, http.MethodPut, "/upload/", data, nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "OK (already present)") ||
		!strings.Contains(rec.Body.String(), "(already visible to dnf)") || strings.Contains(rec.Body.String(), "in about") {
		t.Errorf("re-upload after the publish: %d %q, want it said to be already visible", rec.Code, rec.Body)
	}
}
