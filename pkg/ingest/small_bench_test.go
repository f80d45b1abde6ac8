package ingest

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// BenchmarkIngestSmall: one header-mode ingest of a package like make bench scenario 1's (9 KiB of payload), from
// a spooled file, for allocations per upload (-benchmem). The spooled copies are written outside the timer.
func BenchmarkIngestSmall(b *testing.B) {
	e := newEnv(b, nil)
	body := string(make([]byte, 9<<10))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		b.StopTimer()
		data := testrpm.Build(b, testrpm.Spec{Name: "small" + strconv.Itoa(i), Release: "1.el9", Arch: "x86_64",
			Files: map[string]string{"/usr/share/small/data": body}})
		f, err := os.CreateTemp(e.spool, "0000*")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			b.Fatal(err)
		}
		f.Close()
		i++
		b.StartTimer()
		if _, err := e.in.Ingest(context.Background(), Request{SpoolPath: f.Name()}); err != nil {
			b.Fatal(err)
		}
	}
}
