package e2e

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestS3NginxReadSnippet renders the shipped nginx/rpm-ingestd-s3-read.conf for a SeaweedFS bucket, checks it with
// nginx -t, and has dnf install from a repository the daemon published into the bucket, read through nginx alone:
// the cache headers per kind of file, 404 for missing keys, for the daemon's hidden keys and for listings, and
// the daemon's .repo file from top_dir.
func TestS3NginxReadSnippet(t *testing.T) {
	t.Parallel()
	srv := sharedSeaweed(t) // buckets of its own on the shared server
	d := newS3Daemon(t, srv, "", "el", s3Extra{})
	for _, f := range []string{"hello-1.0-1.el9.x86_64.rpm", "hello-data-1.0-1.el9.noarch.rpm"} {
		if r := d.upload(t, f, rpmFixture(t, f), "?wait=visible"); r.code != http.StatusCreated {
			t.Fatalf("upload %s: %d %s", f, r.code, r.body)
		}
	}
	os.WriteFile(filepath.Join(d.top, "rpm-ingestd.repo"), []byte("[rpm-ingestd]\n"), 0o644)

	ngx := filepath.Join(d.dir, "nginx")
	for _, sub := range []string{"", "tmp", "logs"} {
		os.MkdirAll(filepath.Join(ngx, sub), 0o755)
	}
	read, err := os.ReadFile(filepath.Join("..", "nginx", "rpm-ingestd-s3-read.conf"))
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := os.ReadFile(filepath.Join("..", "nginx", "rpm-ingestd-s3-proxy.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(read)
	for _, r := range [][2]string{
		{"http://127.0.0.1:8333", srv.Endpoint()},
		{"/rpm-repo/el/", "/" + d.bucket + "/el/"},
		{"/srv/repo/storage/", d.top + "/"},
	} {
		if !strings.Contains(conf, r[0]) {
			t.Fatalf("the snippet no longer contains %q: update the test", r[0])
		}
		conf = strings.ReplaceAll(conf, r[0], r[1])
	}
	writeFile(t, filepath.Join(ngx, "rpm-ingestd-s3-read.conf"), conf)
	writeFile(t, filepath.Join(ngx, "rpm-ingestd-s3-proxy.conf"), string(proxy))
	port := freePort(t)
	main := filepath.Join(ngx, "nginx.conf")
	writeFile(t, main, fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log info;
events { worker_connections 64; }
http {
    include /etc/nginx/mime.types;
    access_log %[1]s/logs/access.log;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    server {
        listen 127.0.0.1:%[2]d;
        include rpm-ingestd-s3-read.conf;
    }
}
`, ngx, port))
	nginxBin := d.tools["nginx"]
	if out, err := exec.Command(nginxBin, "-t", "-c", main, "-p", ngx+"/").CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(nginxBin, "-c", main, "-p", ngx+"/")
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := startProc(t, "nginx", cmd)
	t.Cleanup(func() {
		_ = p.stop(syscall.SIGQUIT, stopTimeout)
		if t.Failed() {
			t.Logf("nginx stderr: %s\nerror.log:\n%s", stderr.String(), tail(readFile(filepath.Join(ngx, "logs", "error.log")), 30))
		}
	})
	web := &stack{t: t, tools: d.tools, dir: d.dir, dnfDir: filepath.Join(d.dir, "dnf-nginx"), base: fmt.Sprintf("http://127.0.0.1:%d", port), web: d.web}
	os.MkdirAll(web.dnfDir, 0o755)
	if err := waitFor(startTimeout, p, func() error {
		_, err := web.tryDo(web.web, web.base, http.MethodGet, "/repo/9/x86_64/repodata/repomd.xml", nil, nil, false)
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// dnf reads the bucket through nginx alone.
	got := web.repoquery(t, []string{"/repo/9/x86_64/"})
	slices.Sort(got)
	if want := []string{"hello-1.0-1.el9.x86_64", "hello-data-1.0-1.el9.noarch"}; !slices.Equal(got, want) {
		t.Errorf("repoquery through the nginx snippet = %v, want %v", got, want)
	}
	root := filepath.Join(web.dnfDir, "root")
	web.dnf(t, root, []string{"/repo/9/x86_64/"}, "install", "hello")
	if _, err := os.Stat(filepath.Join(root, "usr", "bin", "hello")); err != nil {
		t.Errorf("dnf install through the nginx snippet: %v", err)
	}

	// Cache headers by kind, and 404s.
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := web.web.Get(web.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp, b.String()
	}
	resp, repomd := get("/repo/9/x86_64/repodata/repomd.xml")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=60" || !strings.Contains(repomd, "<repomd") {
		t.Errorf("repomd.xml: %d Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	hrefs, err := repomdHrefsOf(repomd)
	if err != nil || len(hrefs) == 0 {
		t.Fatalf("repomd.xml hrefs: %v %v", hrefs, err)
	}
	for _, h := range hrefs {
		resp, _ := get("/repo/9/x86_64/" + h)
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: %d Cache-Control %q, want 200 immutable", h, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
	}
	resp, _ = get("/repo/9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=3600" || resp.ContentLength != int64(len(rpmFixture(t, "hello-1.0-1.el9.x86_64.rpm"))) {
		t.Errorf("package: %d Cache-Control %q length %d", resp.StatusCode, resp.Header.Get("Cache-Control"), resp.ContentLength)
	}
	if resp, body := get("/repo/rpm-ingestd.repo"); resp.StatusCode != 200 || body != "[rpm-ingestd]\n" {
		t.Errorf("the .repo file: %d %q", resp.StatusCode, body)
	}
	hidden := "/repo/9/x86_64/.rpm-ingestd/lease.json"
	if keys := d.keys(t, "9/x86_64/.rpm-ingestd/"); len(keys) > 0 {
		hidden = "/repo/" + keys[0] // a key that exists in the bucket
	} else {
		t.Log("no .rpm-ingestd/ key left in the bucket; checking a made-up one")
	}
	for _, p := range []string{"/repo/9/x86_64/Packages/nope-1-1.el9.x86_64.rpm", "/repo/9/x86_64/repodata/0123456789abcdef0123456789abcdef-primary.xml.gz",
		hidden, "/repo/9/x86_64/", "/repo/", "/repo/9/x86_64/Packages/"} {
		if resp, body := get(p); resp.StatusCode != 404 || strings.Contains(body, "<Error>") {
			t.Errorf("GET %s: %d %q, want a plain 404", p, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodDelete, web.base+"/repo/9/x86_64/repodata/repomd.xml", nil)
	// Refused by limit_except (403, which the bucket locations' error_page turns into 404), never forwarded.
	if resp, err := web.web.Do(req); err != nil || (resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusNotFound) {
		t.Errorf("DELETE through the read snippet: %v %v, want 403 or 404", resp, err)
	}
	if resp, _ := get("/repo/9/x86_64/repodata/repomd.xml"); resp.StatusCode != 200 {
		t.Errorf("repomd.xml after a DELETE through nginx: %d", resp.StatusCode)
	}
}

// repomdHrefsOf lists the location hrefs of a repomd.xml.
func repomdHrefsOf(repomd string) ([]string, error) {
	var doc struct {
		Data []struct {
			Location struct {
				Href string `xml:"href,attr"`
			} `xml:"location"`
		} `xml:"data"`
	}
	if err := xml.Unmarshal([]byte(repomd), &doc); err != nil {
		return nil, err
	}
	var out []string
	for _, d := range doc.Data {
		out = append(out, d.Location.Href)
	}
	return out, nil
}
