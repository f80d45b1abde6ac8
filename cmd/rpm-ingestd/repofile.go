package main

import (
	"fmt"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/repofile"
)

// writeRepoFile writes server.repo_file into top_dir, where nginx (and serve_repo) serve it under repo_url. It
// runs at every start, after the signing key was exported, so the file always matches the configuration in
// force. Without a URL clients can use (see Config.ClientURL) it writes nothing and says which key to set; a
// file left from an earlier start stays, since the daemon cannot tell whether it is still right.
// Each of repo.channels gets its own sections; without channels there is one set.
func writeRepoFile(cfg *config.Config, log *zap.Logger) error {
	client := cfg.ClientURL()
	if client == "" {
		log.Info("no .repo file written: set server.public_url to the URL clients reach the repository at, like https://repo.example.com",
			zap.String("repo_file", cfg.Server.RepoFile))
		return nil
	}
	base := client + cfg.Server.RepoURL
	o := repofile.Options{
		FileName: cfg.Server.RepoFile,
		BaseURL:  base,
		Layout: func(f repofile.Fields) (string, error) {
			return cfg.RenderLayout(config.LayoutFields{OSAbbr: f.OSAbbr, OSRelease: f.OSRelease, Arch: f.Arch, Channel: f.Channel})
		},
		Channels:       cfg.Repo.Channels,
		DefaultChannel: cfg.Repo.DefaultChannel,
		DistTags:       cfg.Repo.DistTags,
	}
	if sg := cfg.Indexer.Sign; sg != nil {
		o.GPGKeyURL = base + "/" + sg.PublicKey
	}
	if err := repofile.Write(cfg.Repo.TopDir, o); err != nil {
		return fmt.Errorf("server.repo_file: %w", err)
	}
	log.Info("wrote the .repo file for clients", zap.String("path", filepath.Join(cfg.Repo.TopDir, cfg.Server.RepoFile)),
		zap.String("url", base+"/"+cfg.Server.RepoFile))
	return nil
}
