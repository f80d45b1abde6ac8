// Package seaweed starts a private SeaweedFS server (`weed server` with its S3 gateway) for tests: a real S3
// implementation on loopback ports, its data and log in the test's temporary directory, stopped by t.Cleanup.
//
// The weed binary is built once by `make deps` (deploy/seaweedfs.sh) and cached outside the repository; a test that
// needs it fails, never skips, when it is missing.
package seaweed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Version is the SeaweedFS module version that deploy/seaweedfs.sh builds. Keep the two in step.
const Version = "v0.0.0-20261109003541-7506e5f91cd6"

// EnvBinary names the environment variable that overrides the path of the weed binary (for tests and for
// deploy/seaweedfs.sh alike).
const EnvBinary = "RPM_INGESTD_WEED"

// Region is the region the test clients sign with; SeaweedFS accepts any.
const Region = "us-east-1"

// Binary returns the path of the cached weed binary, or an error that says how to build it.
func Binary() (string, error) {
	p := os.Getenv(EnvBinary)
	if p == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("seaweed: no cache directory: %w", err)
			}
			cache = filepath.Join(home, ".cache")
		}
		p = filepath.Join(cache, "rpm-ingestd", "weed-"+Version, "weed")
	}
	fi, err := os.Stat(p)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("seaweed: the SeaweedFS binary %s is missing: run `make deps` (deploy/seaweedfs.sh builds "+
			"and caches it once), or set %s", p, EnvBinary)
	}
	return p, nil
}

// Options chooses how the server is started.
type Options struct {
	// AccessKey and SecretKey, when both are set, go into weed's environment as AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY: weed then makes them an admin account and answers anonymous requests with 403.
	// When empty, the server allows anonymous access.
	AccessKey, SecretKey string
}

// Server is a running weed server. Its methods are for the goroutine of the test (or tool) that started it; a shared server
// (Launch) may be used by many tests at once through Endpoint, Client, LogPath and NewBucketFor, and its
// owner alone stops it.
type Server struct {
	t       testing.TB // nil when Launched outside a test
	bin     string
	opts    Options
	dataDir string
	logPath string
	ports   ports

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

type ports struct{ master, volume, filer, s3 int }

func (p ports) all() []int { return []int{p.master, p.volume, p.filer, p.s3} }

// startAttempts: a port picked free can be taken by another process before weed binds it; start again on others.
const startAttempts = 3

// readyTimeout bounds the wait for the first successful PUT after a start or a restart. TECH-NOTES: a fresh
// server takes about 10 s, a restarted one refuses connections for about 20 s and hangs PUTs for 10 s more.
const readyTimeout = 90 * time.Second

// Start starts a private weed server and waits until it accepts a PUT. It fails the test when the binary is
// missing or the server does not come up; t.Cleanup stops it, and the tail of its log is printed when the test
// failed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	s, err := newServer(bin, t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	s.t = t
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("seaweed: last lines of %s:\n%s", s.logPath, tail(s.logPath, 40))
		}
	})
	if err := s.boot(); err != nil {
		t.Fatal(err)
	}
	return s
}

// Launch starts a weed server that belongs to no test, and waits until it accepts a PUT: for tools
// (cmd/rpm-ingestd-bench), and for the tests of one binary to share (started once, from TestMain or a
// sync.Once; each test takes its own bucket with NewBucketFor, and a test that stops, kills or restarts its
// server needs a private one, Start). Its data and log live in dir, which should be empty: weed names its
// master's state after the master's port, so a server on another port does not take over an old data directory
// (its volumes refuse to grow). The caller must Stop it and remove dir. NewBucket, Restart and StartAgain are for
// the test that started a server; use NewBucketFor or Client to make buckets.
func Launch(dir string, opts Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	s, err := newServer(bin, dir, opts)
	if err != nil {
		return nil, err
	}
	if err := s.boot(); err != nil {
		return nil, err
	}
	return s, nil
}

func newServer(bin, base string, opts Options) (*Server, error) {
	if (opts.AccessKey == "") != (opts.SecretKey == "") {
		return nil, errors.New("seaweed: set both AccessKey and SecretKey, or neither")
	}
	s := &Server{bin: bin, opts: opts, dataDir: filepath.Join(base, "data"), logPath: filepath.Join(base, "weed.log")}
	if err := os.MkdirAll(s.dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("seaweed: %w", err)
	}
	return s, nil
}

// boot starts the server on free ports and waits until it accepts a PUT, trying other ports startAttempts times.
func (s *Server) boot() error {
	var last error
	for range startAttempts {
		var err error
		if s.ports, err = freePorts(); err != nil {
			return err
		}
		if last = s.start(); last == nil {
			if last = s.waitReady(); last == nil {
				return nil
			}
		}
		s.Stop()
	}
	return fmt.Errorf("seaweed: no server after %d attempts: %w\nlast lines of %s:\n%s", startAttempts, last, s.logPath,
		tail(s.logPath, 40))
}

// Endpoint is the S3 endpoint URL, e.g. http://127.0.0.1:23456.
func (s *Server) Endpoint() string { return "http://127.0.0.1:" + strconv.Itoa(s.ports.s3) }

// LogPath is the file that collects weed's output across restarts.
func (s *Server) LogPath() string { return s.logPath }

// Client returns an S3 client for this server that signs with the server's credentials, or with none when the
// server is anonymous. Tests use it to create buckets and to check what pkg/objstore did, independently of it.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint()),
		Region:       Region,
		UsePathStyle: true,
		Credentials:  s.credentials(),
		HTTPClient:   &http.Client{Timeout: 15 * time.Second},
	})
}

func (s *Server) credentials() aws.CredentialsProvider {
	if s.opts.AccessKey == "" {
		return aws.AnonymousCredentials{}
	}
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: s.opts.AccessKey, SecretAccessKey: s.opts.SecretKey}, nil
	})
}

// NewBucket creates a bucket with a unique name and returns the name; it fails the test that started the
// server. A shared server (Launch) has no such test: use NewBucketFor.
func (s *Server) NewBucket() string {
	s.t.Helper()
	return s.NewBucketFor(s.t)
}

// NewBucketFor creates a bucket with a unique name for the test t and returns the name; it fails t when it
// cannot. Safe for concurrent use.
func (s *Server) NewBucketFor(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%d", time.Now().UnixNano()%1e9, rand.IntN(1e6))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("seaweed: create bucket %s: %v", name, err)
	}
	return name
}

// Stop stops the server (SIGTERM, SIGKILL after 10 s) and waits for it to exit. Stopping a stopped server does
// nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	s.removeSockets()
}

// removeSockets deletes the unix sockets that weed server creates at fixed paths in /tmp for its gRPC ports
// (weed/command/server.go: /tmp/seaweedfs-<service>-grpc-<port>.sock; no flag moves them) and leaves behind.
// Only the running server can hold a port, so after it exited these are its own.
func (s *Server) removeSockets() {
	for _, svc := range []struct {
		name string
		port int
	}{{"master", s.ports.master}, {"volume", s.ports.volume}, {"filer", s.ports.filer}, {"s3", s.ports.s3}} {
		if svc.port != 0 {
			_ = os.Remove(fmt.Sprintf("/tmp/seaweedfs-%s-grpc-%d.sock", svc.name, svc.port+10000))
		}
	}
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it to exit.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
	s.removeSockets()
}

// Restart stops the server and starts it again on the same data directory and ports, then waits until a PUT
// works again.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.StartAgain()
	if err := s.waitReady(); err != nil {
		s.t.Fatalf("seaweed: after restart: %v", err)
	}
}

// StartAgain starts a stopped server on the same data directory and ports without waiting until it is ready:
// tests that observe the restart window use it.
func (s *Server) StartAgain() {
	s.t.Helper()
	var err error
	// The ports were ours a moment ago; a listener in TIME_WAIT is no obstacle (Go servers set SO_REUSEADDR),
	// but another process may have taken one meanwhile.
	for i := 0; i < 20; i++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	s.t.Fatalf("seaweed: start again: %v", err)
}

func (s *Server) start() error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n==== %s start on ports %v\n", time.Now().Format(time.RFC3339Nano), s.ports)
	args := []string{"server",
		"-dir=" + s.dataDir,
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port=" + strconv.Itoa(s.ports.master),
		"-volume.port=" + strconv.Itoa(s.ports.volume),
		"-filer.port=" + strconv.Itoa(s.ports.filer),
		"-s3", "-s3.port=" + strconv.Itoa(s.ports.s3),
		// Without these two, every second server fights over the fixed ports 8181 and 9101.
		"-s3.port.iceberg=0", "-s3.port.lance=0",
		// Without it, the master reports home.
		"-master.telemetry=false",
		// Every bucket is a collection that takes 7 volume slots on its first write; the default of 8 slots
		// makes the second bucket's PUTs fail with 500 InternalError. Volumes are not preallocated: slots are free.
		"-volume.max=200",
	}
	// The filer's and the S3 gateway's unix sockets default to /tmp/seaweedfs-*-<port>.sock: keep them with the
	// data when the path fits in a socket address.
	if len(s.dataDir) < 90 {
		args = append(args, "-filer.localSocket="+filepath.Join(s.dataDir, "filer.sock"),
			"-s3.localSocket="+filepath.Join(s.dataDir, "s3.sock"))
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dataDir // weed reads *.toml from its working directory: keep it in ours
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = s.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive a crashed test binary
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("seaweed: start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	// A port conflict makes weed exit within a second or two: notice it here rather than after readyTimeout.
	select {
	case <-done:
		s.mu.Lock()
		s.cmd = nil
		s.mu.Unlock()
		s.removeSockets()
		return fmt.Errorf("seaweed: weed exited at once (%v); see %s", cmd.ProcessState, s.logPath)
	case <-time.After(2 * time.Second):
		return nil
	}
}

// env is the test process's environment without any AWS_* or WEED_* variable, plus the server's credentials.
func (s *Server) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "WEED_") {
			continue
		}
		env = append(env, kv)
	}
	if s.opts.AccessKey != "" {
		env = append(env, "AWS_ACCESS_KEY_ID="+s.opts.AccessKey, "AWS_SECRET_ACCESS_KEY="+s.opts.SecretKey)
	}
	return env
}

// waitReady creates the probe bucket and PUTs into it until that works, or readyTimeout passes, or weed exits.
func (s *Server) waitReady() error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	deadline := time.Now().Add(readyTimeout)
	client := s.Client()
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("seaweed: weed exited while starting; see %s", s.logPath)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("ready-probe")})
		if err == nil || isAlreadyOwned(err) {
			_, err = client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("ready-probe"),
				Key: aws.String("probe"), Body: bytes.NewReader([]byte("ok"))}, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
		}
		cancel()
		if err == nil {
			return nil
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("seaweed: no successful PUT within %s: %w", readyTimeout, last)
}

func isAlreadyOwned(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "BucketAlreadyOwnedByYou") ||
		strings.Contains(err.Error(), "BucketAlreadyExists"))
}

// freePorts picks four ports below 55535 that are free on 127.0.0.1 together with their +10000 gRPC twins.
func freePorts() (ports, error) {
	var got []int
	seen := map[int]bool{}
	for tries := 0; len(got) < 4 && tries < 1000; tries++ {
		p := 20000 + rand.IntN(35000) // 20000..54999: the twin stays below 65000
		if seen[p] || seen[p+10000] || seen[p-10000] {
			continue
		}
		if !portFree(p) || !portFree(p+10000) {
			continue
		}
		seen[p] = true
		got = append(got, p)
	}
	if len(got) < 4 {
		return ports{}, errors.New("seaweed: no four free port pairs on 127.0.0.1")
	}
	return ports{master: got[0], volume: got[1], filer: got[2], s3: got[3]}, nil
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
