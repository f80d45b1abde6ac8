package main

import (
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/notify"
)

// newNotifier builds the Notifier for the notify section; package notify never sees config. With no webhooks it
// still returns a Notifier, whose Notify does nothing and whose Run only waits, so the wiring has no special case.
func newNotifier(c config.Notify, reg prometheus.Registerer, log *zap.Logger) (*notify.Notifier, error) {
	hooks := make([]notify.Webhook, 0, len(c.Webhooks))
	for _, w := range c.Webhooks {
		hooks = append(hooks, notify.Webhook{URL: w.URL, Format: notify.Format(w.Format), Repos: w.Repos,
			Secret: w.Secret, ChatID: w.ChatID})
	}
	return notify.New(hooks, notify.Options{Timeout: time.Duration(c.Timeout), Retries: c.Retries, Queue: c.Queue,
		Registerer: reg}, log.Named("notify"))
}

// notifyBatch describes one publish of repository rel (relative to top_dir, slash-separated) for the notifier:
// added are the hrefs that became installable ("Packages/hello-2.12-1.el9.x86_64.rpm"), linked below baseURL
// (server.public_url + server.repo_url). The NEVRA shown is the file name without .rpm: uploads are stored under their canonical
// name-version-release.arch.rpm, so it names the package without reading it again.
func notifyBatch(baseURL, rel string, added []string, at time.Time) notify.Batch {
	b := notify.Batch{Repo: rel, At: at, Packages: make([]notify.Package, 0, len(added))}
	// JoinPath escapes each segment ('+', '^' and '~' are common in versions) and refuses nothing Validate passed.
	if u, err := url.JoinPath(baseURL, rel); err == nil {
		b.RepoURL = u + "/"
	}
	for _, href := range added {
		p := notify.Package{NEVRA: strings.TrimSuffix(path.Base(href), ".rpm")}
		if b.RepoURL != "" {
			if u, err := url.JoinPath(b.RepoURL, href); err == nil {
				p.URL = u
			}
		}
		b.Packages = append(b.Packages, p)
	}
	return b
}
