package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/indexer"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/registry"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/server"
	pkgtree "github.com/rpm-ingestd/rpm-ingestd/pkg/tree" // not "tree": the tests have a helper of that name
)

// openRegistry builds the package index from the tree and the audit file, then opens the audit file for
// appending (nil when log.audit_file is off). tr is the repository tree the index lists. reg receives the audit metrics; nil registers none.
func openRegistry(cfg *config.Config, tr pkgtree.Tree, reg prometheus.Registerer, log *zap.Logger) (*registry.Index, *registry.Audit, error) {
	index := registry.NewIndex(cfg.Repo.TopDir, func(repoRel string) (osRelease, arch string, ok bool) {
		_, osRelease, arch, ok = cfg.LocateRepo(repoRel)
		return osRelease, arch, ok
	})
	index.UseTree(tr) // the packages as the tree lists them (tree.Repos, tree.List), on any backend
	start := time.Now()
	st, err := index.Build(cfg.Log.AuditFile)
	if err != nil {
		return nil, nil, err
	}
	log.Info("package index built", zap.Int("packages", st.Files), zap.Int("with_record", st.Attached),
		zap.Int("audit_records", st.Records), zap.Duration("took", time.Since(start)))
	if st.Bad > 0 {
		// A line cut short by a crash or a full disk: the rest of the file is still read.
		log.Warn("audit file has lines that are not records", zap.String("file", cfg.Log.AuditFile), zap.Int("lines", st.Bad))
	}
	if cfg.Log.AuditFile == "" {
		log.Info("no audit trail (log.audit_file is off): upload records live in memory until the daemon stops")
		return index, nil, nil
	}
	audit, err := registry.Open(cfg.Log.AuditFile, reg)
	if err != nil {
		return nil, nil, err
	}
	log.Info("audit trail", zap.String("file", cfg.Log.AuditFile))
	if n := audit.TornTails(); n > 0 {
		log.Warn("audit file ended in a torn line (a crash mid-write); ended it with a newline so the next record starts a line of its own",
			zap.String("file", cfg.Log.AuditFile))
	}
	return index, audit, nil
}

// lookupSHA256 finds the stored copies of a package by its sha256 for GET /api/v1/uploads/{sha256}.
func lookupSHA256(index *registry.Index) server.LookupFunc {
	return func(sum string) []string {
		var paths []string
		for _, e := range index.BySHA256(sum) {
			paths = append(paths, e.Path)
		}
		return paths
	}
}

// onHangup handles SIGHUP until ctx ends: it reopens the audit file (logrotate's postrotate) and rescans the
// tree for changes made by hand. SIGHUP is caught also without an audit file: its default action would kill
// the daemon.
func onHangup(ctx context.Context, audit *registry.Audit, sched *indexer.Scheduler, log *zap.Logger) error {
	hup := make(chan os.Signal, 1) // one pending HUP is enough: a reopen covers every rotation before it
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			go func() { // a walk of a large tree must not hold up the next reopen
				n, err := sched.Rescan()
				log.Info("SIGHUP: rescanned the tree for changes made by hand", zap.Int("repos_to_index", n), zap.Error(err))
			}()
			if audit == nil {
				log.Info("SIGHUP: nothing to reopen (log.audit_file is off)")
				continue
			}
			torn := audit.TornTails()
			if err := audit.Reopen(); err != nil {
				// Appends go on into the old (renamed) file, so nothing is lost; an operator must fix the path.
				log.Error("SIGHUP: audit file not reopened; still writing to the old one", zap.String("file", audit.Path()), zap.Error(err))
				continue
			}
			log.Info("SIGHUP: audit file reopened", zap.String("file", audit.Path()))
			if audit.TornTails() > torn {
				log.Warn("SIGHUP: the reopened audit file ended in a torn line; ended it with a newline", zap.String("file", audit.Path()))
			}
		}
	}
}
