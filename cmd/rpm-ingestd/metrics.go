package main

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
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

// registerPasswordChecks exports rpm_ingestd_password_checks_total{how}: the checks of a password against
// server.htpasswd that ran its hash ("hashed": right, wrong, or an unknown user's decoy) and those answered from
// server.htpasswd_cache ("cached"), so an admin sees what the logins cost and that the cache works.
func registerPasswordChecks(reg prometheus.Registerer, a *auth.Authenticator) error {
	for _, how := range []string{"hashed", "cached"} {
		c := prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "rpm_ingestd_password_checks_total",
			Help:        "Password checks against server.htpasswd, by how they were answered: hashed (the hash ran: a right or wrong password, or an unknown user's decoy) or cached (a password that passed within server.htpasswd_cache).",
			ConstLabels: prometheus.Labels{"how": how},
		}, func() float64 {
			hashed, cached := a.PasswordChecks()
			if how == "cached" {
				return float64(cached)
			}
			return float64(hashed)
		})
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
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
