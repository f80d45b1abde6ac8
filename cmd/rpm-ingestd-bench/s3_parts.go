package main

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
)

// Scenario 3's parts: what a direct upload costs without the daemon's hashing, and what the hashing costs
// alone, each measured in the same repetition as the upload and cp+fsync. They carry no target; they show
// which part holds the upload's throughput back (docs/benchmarks-notes.md, "Scenario 3's parts").

// bareReceiver accepts one upload at a time on a unix socket and does what the daemon does with a direct
// upload's body except the hashing and the checks: 256 KiB reads from the socket, written to a new file, its
// writeback started every 2 MiB, one fsync; then a 201. The body is sent by sendfilePut, as to the daemon.
type bareReceiver struct {
	ln  net.Listener
	dir string
}

func newBareReceiver(dir string) (*bareReceiver, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "bare.sock")
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	return &bareReceiver{ln: ln, dir: dir}, nil
}

func (b *bareReceiver) socket() string { return b.ln.Addr().String() }

// body is the file each upload is written to, replacing the last one.
func (b *bareReceiver) body() string { return filepath.Join(b.dir, "body") }
func (b *bareReceiver) close()       { b.ln.Close() }

// once serves one upload and returns the first error.
func (b *bareReceiver) once() error {
	c, err := b.ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 256<<10)
	req, err := http.ReadRequest(br)
	if err != nil {
		return err
	}
	f, err := os.Create(b.body())
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	var n, started int64
	body := io.LimitReader(br, req.ContentLength)
	for {
		k, rerr := io.ReadFull(body, buf)
		if k > 0 {
			if _, err := f.Write(buf[:k]); err != nil {
				return err
			}
			if n += int64(k); n-started >= 2<<20 {
				_ = unix.SyncFileRange(int(f.Fd()), started, n-started, unix.SYNC_FILE_RANGE_WRITE)
				started = n
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if n != req.ContentLength {
		return fmt.Errorf("bare receiver: %d of %d bytes", n, req.ContentLength)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	_, err = io.WriteString(c, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	return err
}

// bareUpload sends the file at path to r with sendfilePut and returns the time to the answer.
func bareUpload(r *bareReceiver, path string) (time.Duration, error) {
	done := make(chan error, 1)
	go func() { done <- r.once() }()
	t0 := time.Now()
	status, body, err := sendfilePut(r.socket(), "/upload/", path)
	d := time.Since(t0)
	if rerr := <-done; err == nil {
		err = rerr
	}
	if err == nil && status != http.StatusCreated {
		err = fmt.Errorf("bare receiver: %d %s", status, body)
	}
	return d, err
}

// hashOnce computes the two digests a direct upload needs (the whole-file SHA-256 and the payload digest) as the
// daemon does while the body arrives, and returns the time taken: rpmmeta.Digester's buffers are filled here by
// reads of the file (in the page cache, where the daemon reads the socket) and hashed on its own goroutine.
func hashOnce(path string) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	t0 := time.Now()
	d := rpmmeta.NewDigester()
	for {
		buf := d.Buffer()
		k, rerr := io.ReadFull(f, buf)
		d.Commit(k)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			d.Sum()
			return 0, rerr
		}
	}
	d.Sum()
	return time.Since(t0), nil
}

// hashTwoCores hashes the file at path twice with crypto/sha256, each pass on a goroutine of its own fed by one
// reader (the whole file stands in for the payload, which is all but a few KiB of it): what the two digests
// cost when each has a core to itself, as on a machine with more cores than this one's two.
func hashTwoCores(path string) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	t0 := time.Now()
	const pieces = 8
	free := make(chan []byte, pieces)
	for range pieces {
		free <- make([]byte, 256<<10)
	}
	type piece struct {
		b    []byte
		left *atomic.Int32
	}
	var wg sync.WaitGroup
	var outs [2]chan piece
	for i := range outs {
		outs[i] = make(chan piece, pieces)
		wg.Add(1)
		go func(in chan piece) {
			defer wg.Done()
			h := sha256.New()
			for p := range in {
				h.Write(p.b)
				if p.left.Add(-1) == 0 {
					free <- p.b[:cap(p.b)]
				}
			}
			h.Sum(nil)
		}(outs[i])
	}
	var rerr error
	for {
		b := <-free
		k, err := io.ReadFull(f, b)
		if k > 0 {
			left := new(atomic.Int32)
			left.Store(int32(len(outs)))
			for _, o := range outs {
				o <- piece{b: b[:k], left: left}
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	for _, o := range outs {
		close(o)
	}
	wg.Wait()
	return time.Since(t0), rerr
}
