package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/durable"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// BenchmarkIngestVsFloor measures a header-mode ingest of a 4 MiB package against the floor any correct
// implementation pays on the same machine in the same run: read the file once to hash it, fsync it, link it
// into place, fsync the directory. It reports only the ratio (absolute times on a shared machine are noise): 1.0 would
// mean the header guard, the parse, the digest checks and the bookkeeping cost nothing.
func BenchmarkIngestVsFloor(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	payload := make([]byte, 4<<20)
	for i := range payload {
		payload[i] = byte(rng.Uint32()) // incompressible: the file really is 4 MiB
	}
	e := newEnv(b, func(o *Options) { o.MaxSize = 64 << 20 })
	var ingestTime, floorTime time.Duration
	for i := 0; b.Loop(); i++ {
		data := testrpm.Build(b, testrpm.Spec{Name: fmt.Sprintf("bench%d", i), Release: "1.el9", Arch: "x86_64",
			Files: map[string]string{"/usr/share/bench/blob": string(payload)}})
		spooled := filepath.Join(e.spool, fmt.Sprintf("in-%d", i))
		floorSrc := filepath.Join(e.spool, fmt.Sprintf("floor-%d", i))
		os.WriteFile(spooled, data, 0o600)
		os.WriteFile(floorSrc, data, 0o600)

		start := time.Now()
		if _, err := e.in.Ingest(context.Background(), Request{SpoolPath: spooled}); err != nil {
			b.Fatal(err)
		}
		ingestTime += time.Since(start)

		start = time.Now()
		floor(b, floorSrc, filepath.Join(e.top, "floor", fmt.Sprintf("f-%d.rpm", i)))
		floorTime += time.Since(start)
	}
	b.ReportMetric(float64(ingestTime)/float64(floorTime), "ingest/floor")
	b.ReportMetric(0, "ns/op") // hide the absolute figure: it mixes in building the package
}

// floor is the least work of a correct, durable placement: hash the bytes, fsync them, link, fsync the
// directory, remove the spool name.
func floor(b *testing.B, src, dst string) {
	f, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(dst), 0o755)
	if err := os.Link(src, dst); err != nil {
		b.Fatal(err)
	}
	if err := durable.SyncDir(filepath.Dir(dst)); err != nil {
		b.Fatal(err)
	}
	os.Remove(src)
}

// BenchmarkDirectVsCopy measures a direct upload (the body streamed into Ingest, as from a socket) of a 48 MiB
// package against writing the same bytes to a file in the same directory and fsyncing it, the floor of receiving a
// body durably. Only the ratio is reported.
func BenchmarkDirectVsCopy(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	payload := make([]byte, 48<<20)
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	data := testrpm.Build(b, testrpm.Spec{Name: "direct", Release: "1.el9", Arch: "x86_64",
		Files: map[string]string{"/usr/share/direct/blob": string(payload)}})
	e := newEnv(b, func(o *Options) { o.MaxSize = 256 << 20 })
	var ingestTime, floorTime, ingestCPU, floorCPU time.Duration
	for i := 0; b.Loop(); i++ {
		start, cpu0 := time.Now(), cpuTime()
		// onlyRead hides bytes.Reader's WriteTo: a socket hands the body over in reads.
		if _, err := e.in.Ingest(context.Background(), Request{Body: onlyRead{bytes.NewReader(data)}, OSRelease: fmt.Sprint(i)}); err != nil {
			b.Fatal(err)
		}
		ingestTime, ingestCPU = ingestTime+time.Since(start), ingestCPU+cpuTime()-cpu0

		start, cpu0 = time.Now(), cpuTime()
		f, err := os.Create(filepath.Join(e.spool, fmt.Sprintf("floor-%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(f, onlyRead{bytes.NewReader(data)}); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		floorTime, floorCPU = floorTime+time.Since(start), floorCPU+cpuTime()-cpu0
		os.Remove(f.Name())
	}
	b.ReportMetric(float64(ingestTime)/float64(floorTime), "ingest/floor")
	b.ReportMetric(float64(ingestCPU)/float64(floorCPU), "cpu-ingest/floor")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type onlyRead struct{ r io.Reader }

func (o onlyRead) Read(p []byte) (int, error) { return o.r.Read(p) }
