package ingest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
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
