package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/server"
	pkgtree "github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
	s3tree "github.com/rpm-ingestd/rpm-ingestd/pkg/tree/s3"
)

// storageTree is the repository tree that storage.backend names, with what closes it.
type storageTree interface {
	pkgtree.Tree
	io.Closer
}

// openStore builds the S3 client of storage.s3. It sends no request. The credentials come from
// storage.s3.credentials_file or the environment; the Store's String names their source, never the secret.
func openStore(s *config.S3) (*objstore.Store, error) {
	st, err := objstore.New(objstore.Options{
		Endpoint:        s.Endpoint,
		Bucket:          s.Bucket,
		Prefix:          s.Prefix,
		Region:          s.Region,
		PathStyle:       s.PathStyle,
		CredentialsFile: s.CredentialsFile,
	})
	if err != nil {
		return nil, fmt.Errorf("storage.s3: %w", err)
	}
	return st, nil
}

// openTree builds the tree of storage.backend: fs on repo.top_dir, or s3 on the bucket with repo.top_dir as the
// local work directory. store is the S3 client (nil on fs), for the parts that read the bucket directly
// (serve_repo).
func openTree(cfg *config.Config, log *zap.Logger) (storageTree, *objstore.Store, error) {
	if cfg.Storage.Backend != config.BackendS3 {
		tr, err := fstree.New(fstree.Options{TopDir: cfg.Repo.TopDir, Log: log.Named("tree")})
		return tr, nil, err
	}
	st, err := openStore(cfg.Storage.S3)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tr, err := s3tree.New(s3tree.Options{
		Store:    st,
		WorkDir:  cfg.Repo.TopDir,
		Holder:   host + ":" + strconv.Itoa(os.Getpid()),
		LeaseTTL: time.Duration(cfg.Storage.S3.LeaseTTL),
		Logger:   log.Named("tree"),
	})
	if err != nil {
		return nil, nil, err
	}
	log.Info("repository tree in S3", zap.Stringer("store", st), zap.String("work_dir", cfg.Repo.TopDir))
	return tr, st, nil
}

// sharedPublishRefresh is how long a daemon on s3 trusts what it read of a repository's published metadata before
// it looks at repomd.xml again for another daemon's publish.
const sharedPublishRefresh = 2 * time.Second

// sharedRefresh is the indexer's RefreshPublished: sharedPublishRefresh on s3, where several daemons publish into
// one bucket; 0 on fs, where this daemon's own runs are the only publishes.
func sharedRefresh(cfg *config.Config) time.Duration {
	if cfg.Storage.Backend == config.BackendS3 {
		return sharedPublishRefresh
	}
	return 0
}

// repoObjects is what serve_repo reads from: the bucket on s3, nothing (top_dir) on fs. A nil *objstore.Store must
// become a nil interface, not an interface holding a nil pointer.
func repoObjects(st *objstore.Store) server.RepoObjects {
	if st == nil {
		return nil
	}
	return st
}
