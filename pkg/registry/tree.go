package registry

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// UseTree makes the index read the repository tree through t (any backend) instead of the files under its top
// directory: Build lists t's repositories and their packages (tree.Repos, tree.List), Placed describes a new
// file by tree.Stat and SyncRepo lists the repository once. Call it before Build.
func (ix *Index) UseTree(t tree.Tree) { ix.tree = t }

// listTree calls add for every package of every repository of the tree, hidden names left out as the walk
// leaves them out. An unreadable repository hides only itself; Repos' error is returned after the rest.
func (ix *Index) listTree(add func(rel string, fi fs.FileInfo)) error {
	ctx := context.Background()
	repos, rerr := ix.tree.Repos(ctx)
	for _, repo := range repos {
		entries, err := ix.tree.List(ctx, repo)
		if err != nil {
			continue // an unreadable corner hides only itself
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name, ".") {
				continue
			}
			add(path.Join(repo, "Packages", e.Name), stampInfo{e.Stamp})
		}
	}
	if rerr != nil && len(repos) == 0 {
		return fmt.Errorf("list the tree: %w", rerr)
	}
	return nil
}

// stampInfo is the fs.FileInfo of a tree.Stamp: all newFile reads is the size and the mtime.
type stampInfo struct{ st tree.Stamp }

func (i stampInfo) Name() string       { return "" }
func (i stampInfo) Size() int64        { return i.st.Size }
func (i stampInfo) Mode() fs.FileMode  { return 0o644 }
func (i stampInfo) ModTime() time.Time { return i.st.ModTime }
func (i stampInfo) IsDir() bool        { return false }
func (i stampInfo) Sys() any           { return nil }
