package seaweed

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestBinaryMissingSaysHowToBuildIt(t *testing.T) {
	t.Setenv(EnvBinary, "/nonexistent/weed")
	_, err := Binary()
	if err == nil || !strings.Contains(err.Error(), "make deps") || !strings.Contains(err.Error(), "/nonexistent/weed") {
		t.Fatalf("Binary: %v", err)
	}
	t.Setenv(EnvBinary, "")
	t.Setenv("XDG_CACHE_HOME", "/cache")
	if _, err := Binary(); err == nil || !strings.Contains(err.Error(), "/cache/rpm-ingestd/weed-"+Version+"/weed") {
		t.Fatalf("Binary without the override: %v", err)
	}
}

func TestEnvDropsTheCallersAWSVariables(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "from-the-test-env")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "from-the-test-env")
	t.Setenv("WEED_MASTER_PORT", "1")
	for _, kv := range (&Server{}).env() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "WEED_") {
			t.Fatalf("anonymous server would inherit %s", kv)
		}
	}
	env := (&Server{opts: Options{AccessKey: "k", SecretKey: "s"}}).env()
	if !contains(env, "AWS_ACCESS_KEY_ID=k") || !contains(env, "AWS_SECRET_ACCESS_KEY=s") || contains(env, "AWS_ACCESS_KEY_ID=from-the-test-env") {
		t.Fatalf("credentialed env: %v", env)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestFreePortsHaveFreeTwins(t *testing.T) {
	p, err := freePorts()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, port := range p.all() {
		for _, q := range []int{port, port + 10000} {
			if q >= 65536 || seen[q] {
				t.Fatalf("port %d repeated or out of range in %v", q, p)
			}
			seen[q] = true
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
			if err != nil {
				t.Fatalf("port %d: %v", q, err)
			}
			_ = l.Close()
		}
	}
}

// TestStartStopRestart: the server takes a PUT, keeps it across a restart on the same ports, and is gone after
// Stop.
func TestStartStopRestart(t *testing.T) {
	srv := Start(t, Options{})
	bucket := srv.NewBucket()
	ctx := context.Background()
	c := srv.Client()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"),
		Body: strings.NewReader("kept")}); err != nil {
		t.Fatal(err)
	}
	endpoint := srv.Endpoint()
	srv.Restart()
	if srv.Endpoint() != endpoint {
		t.Fatalf("endpoint moved: %s -> %s", endpoint, srv.Endpoint())
	}
	out, err := srv.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(out.Body)
	_ = out.Body.Close()
	if string(data) != "kept" {
		t.Fatalf("after restart: %q", data)
	}
	sockets, _ := filepath.Glob(fmt.Sprintf("/tmp/seaweedfs-*-grpc-%d.sock", srv.ports.master+10000))
	if len(sockets) != 1 {
		t.Errorf("expected weed's master gRPC socket in /tmp, found %v (has weed moved it?)", sockets)
	}
	srv.Stop()
	for _, p := range srv.ports.all() {
		if left, _ := filepath.Glob(fmt.Sprintf("/tmp/seaweedfs-*-grpc-%d.sock", p+10000)); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	}
	if conn, err := net.Dial("tcp", strings.TrimPrefix(endpoint, "http://")); err == nil {
		_ = conn.Close()
		t.Fatal("S3 port still answers after Stop")
	}
	if _, err := os.Stat(srv.LogPath()); err != nil {
		t.Fatal(err)
	}
}
