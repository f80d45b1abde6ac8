package main

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// newRegistry returns the one registry that every part registers its metrics with and GET /metrics serves. It is
// not Prometheus's global default registry: library packages take it as a prometheus.Registerer, so tests build
// their own and nothing leaks between them. It starts with the Go runtime and process collectors and
// rpm_ingestd_build_info.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rpm_ingestd_build_info",
		Help: "Always 1; the labels say which build is running: the release version, the VCS revision and the Go version.",
	}, []string{"version", "revision", "goversion"})
	info.WithLabelValues(version, revision(), runtime.Version()).Set(1)
	// A fresh registry holds none of these, so MustRegister cannot panic here.
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		info,
	)
	return reg
}

// revision is the VCS commit the binary was built from, as the Go toolchain recorded it ("-dirty" when the work
// tree had changes), or "unknown" (go test, or a build outside a git checkout or with -buildvcs=false).
func revision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "" {
		return "unknown"
	}
	return rev + dirty
}
