package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/doccheck"
)

// TestDocsNginxExamples runs `nginx -t` on every ```nginx block of docs/deploy.md, with the shipped snippet
// included, so the server {} examples a reader copies stay valid nginx. Only host paths are rewritten into a
// temporary directory: the certificate pair (a throwaway one is made), logs, the snippet and the tree.
func TestDocsNginxExamples(t *testing.T) {
	nginx := requireTools(t)["nginx"]
	md, err := os.ReadFile("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := doccheck.FencedBlocks(string(md), "nginx")
	if len(blocks) < 2 {
		t.Fatalf("docs/deploy.md has %d ```nginx blocks; expected the TLS and the container examples", len(blocks))
	}
	dir := t.TempDir()
	cert, key := writeCertPair(t, dir)
	for _, sub := range []string{"incoming", "storage", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	snippet, err := os.ReadFile("../nginx/rpm-ingestd.conf")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("/srv/repo/incoming", filepath.Join(dir, "incoming"), "/srv/repo/storage", filepath.Join(dir, "storage"),
		"/etc/nginx/rpm-ingestd.htpasswd", filepath.Join(dir, "htpasswd")).Replace(string(snippet))
	snippetPath := filepath.Join(dir, "rpm-ingestd.conf")
	if err := os.WriteFile(snippetPath, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	certRe := regexp.MustCompile(`(ssl_certificate\s+)\S+;`)
	keyRe := regexp.MustCompile(`(ssl_certificate_key\s+)\S+;`)
	logRe := regexp.MustCompile(`((?:access|error)_log\s+)/var/log/nginx/(\S+);`)
	for i, block := range blocks {
		conf := strings.ReplaceAll(block, "/etc/nginx/rpm-ingestd.conf", snippetPath)
		conf = keyRe.ReplaceAllString(conf, "${1}"+key+";")
		conf = certRe.ReplaceAllString(conf, "${1}"+cert+";")
		conf = logRe.ReplaceAllString(conf, "${1}"+filepath.Join(dir, "logs")+"/${2};")
		main := filepath.Join(dir, "nginx-"+string(rune('a'+i))+".conf")
		body := "pid " + filepath.Join(dir, "nginx.pid") + ";\nerror_log " + filepath.Join(dir, "logs", "error.log") + ";\n" +
			"events {}\nhttp {\n    access_log off;\n" + conf + "}\n"
		if err := os.WriteFile(main, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(nginx, "-t", "-p", dir, "-e", filepath.Join(dir, "logs", "error.log"), "-c", main).CombinedOutput()
		if err != nil {
			t.Errorf("nginx block %d of docs/deploy.md does not pass nginx -t: %v\n%s\n--- block\n%s", i+1, err, out, block)
		}
	}
}

// writeCertPair writes a throwaway self-signed certificate and key for nginx -t.
func writeCertPair(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "repo.example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"repo.example.com"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}
