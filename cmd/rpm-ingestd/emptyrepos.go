package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/indexer"
	pkgtree "github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// repoRunner is the part of indexer.Createrepo that creating empty repositories needs.
type repoRunner interface {
	Run(ctx context.Context, repoDir string) error
}

// createConfiguredRepos gives every repository that repo.os_releases names (channel × release × arch and SRPMS)
// real, empty createrepo_c metadata, before the daemon serves anything: every baseurl of the .repo file then
// answers with a repomd.xml from the first start, and a client whose channel or arch got no package yet sees an
// empty repository instead of failing on a 404. Repositories that already have metadata are left alone, so a
// restart costs one look at each repository's repomd.xml, through the tree (tree.OpenMetadata: on s3 the
// bucket, where a file under top_dir would never be found and every start would publish every configured
// repository again). It runs the indexer's own runner (signing included), synchronously,
// before the scheduler starts; a repository another process is indexing right now (indexer.ErrLocked) is skipped.
func createConfiguredRepos(ctx context.Context, cfg *config.Config, tr pkgtree.Tree, runner repoRunner, log *zap.Logger) (int, error) {
	repos, err := cfg.ConfiguredRepos()
	if errors.Is(err, config.ErrNoOSAbbr) {
		return 0, nil // config.Notes says why at start
	}
	if err != nil {
		return 0, err
	}
	created := 0
	for _, r := range repos {
		dir := filepath.Join(cfg.Repo.TopDir, r.Rel)
		if md, err := tr.OpenMetadata(ctx, filepath.ToSlash(r.Rel), "repomd.xml"); err == nil {
			md.Close()
			continue
		}
		switch err := runner.Run(ctx, dir); {
		case errors.Is(err, indexer.ErrLocked):
			log.Info("configured repository is being indexed by another process", zap.String("repo", r.Rel))
		case err != nil:
			return created, fmt.Errorf("repo.os_releases: create the empty repository %s: %w", r.Rel, err)
		default:
			created++
		}
	}
	if created > 0 {
		log.Info("created empty repositories for repo.os_releases", zap.Int("created", created), zap.Int("configured", len(repos)))
	}
	return created, nil
}
