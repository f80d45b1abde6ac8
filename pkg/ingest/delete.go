package ingest

import (
	"context"
	"errors"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// DeleteRequest names one stored package by its path.
type DeleteRequest struct {
	// Path is slash-separated and relative to TopDir, as in the package's URL: <repo>/Packages/<file>.rpm.
	Path string
	// AllArches also removes a noarch package's copies in the other arches' repositories (same channel and OS
	// release). It changes nothing for other packages.
	AllArches bool
	// Allow, when set, is asked with the repositories of the files to remove before anything is removed; an
	// error refuses the deletion as it is (server.permissions).
	Allow func(targets []Target) error
}

// DeleteResult says what Delete removed, for the response and the audit trail.
type DeleteResult struct {
	Paths []string // removed files, slash-separated, relative to TopDir; the requested one first
	Repos []string // their repositories (absolute), parallel to Paths
	// Dirty lists the repositories marked dirty, also when Delete failed after marking them: the caller must
	// Trigger each.
	Dirty []string
}

// segmentRe is what each directory of a deletable path may look like: what the layout renders from channels,
// OS releases and arches. It refuses "..", hidden names, empty segments, and anything percent-encoded that
// survived one decoding (%2e%2e sent as %252e%252e).
var segmentRe = regexp.MustCompile(`^[A-Za-z0-9_+~^-][A-Za-z0-9._+~^-]*$`)

// Delete removes a stored package, and with AllArches a noarch package's copies, under the lock of its file
// name. Only <repo>/Packages/<name>.rpm inside TopDir can be deleted: a path that climbs, is hidden, passes
// through a symbolic link or is not a package in a Packages/ directory is ErrForbidden with nothing touched,
// and a package that is not there is ErrNotFound. The repositories are marked dirty before the first removal,
// so a crash cannot leave metadata listing a file that is gone. Safe for concurrent use.
func (in *Ingester) Delete(ctx context.Context, req DeleteRequest) (*DeleteResult, error) {
	repoRel, file, err := splitPackagePath(req.Path)
	if err != nil {
		return nil, err
	}
	rels := []string{req.Path}
	if req.AllArches && strings.HasSuffix(file, ".noarch.rpm") {
		siblings, err := in.noarchCopies(repoRel, file)
		if err != nil {
			return nil, err
		}
		rels = append(rels, siblings...)
	}
	res := &DeleteResult{}
	var refs []tree.Ref
	for i, rel := range rels {
		ref := tree.Ref{Repo: path.Dir(path.Dir(rel)), Name: path.Base(rel)}
		_, err := in.tree.Stat(ctx, ref)
		if errors.Is(err, tree.ErrNotFound) {
			if i == 0 {
				return nil, fail(ErrNotFound, "%s is not stored", rel)
			}
			continue // a copy that is not there: nothing to remove
		}
		if err != nil {
			return nil, deleteErr(err)
		}
		refs = append(refs, ref)
		res.Paths = append(res.Paths, rel)
		res.Repos = append(res.Repos, in.abs(ref.Repo))
	}
	if err := in.allow(req.Allow, res.Repos); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The tree checks every file again under the lock of its name (on fs: a regular file reached through real
	// directories) and records pending changes before the first removal and after the last.
	pending, err := in.tree.Remove(ctx, refs)
	for _, repo := range pending {
		res.Dirty = append(res.Dirty, in.abs(repo))
	}
	if err != nil {
		switch {
		case len(pending) > 0:
			return res, deleteErr(err) // marked, maybe partly removed: the caller triggers res.Dirty
		case errors.Is(err, tree.ErrNotFound):
			return nil, fail(ErrNotFound, "%s is not stored", req.Path) // removed meanwhile
		}
		return nil, deleteErr(err) // refused before anything was touched
	}
	res.Dirty = res.Repos
	return res, nil
}

// deleteErr turns the tree's refusal of a path (a symbolic link on the way, not a regular file) into ErrForbidden.
func deleteErr(err error) error {
	if errors.Is(err, tree.ErrInvalid) {
		return fail(ErrForbidden, "%s", strings.TrimPrefix(err.Error(), tree.ErrInvalid.Error()+": "))
	}
	return err
}

// splitPackagePath checks that p has the shape <repo>/Packages/<file>.rpm with harmless segments, and returns
// the repository (relative) and the file name.
func splitPackagePath(p string) (repoRel, file string, err error) {
	forbid := func(why string) (string, string, error) {
		return "", "", fail(ErrForbidden, "%.200q %s: only <repository>/Packages/<file>.rpm below repo.top_dir can be deleted", p, why)
	}
	segs := strings.Split(p, "/")
	for _, s := range segs {
		if !segmentRe.MatchString(s) {
			return forbid("has a path segment that is empty, hidden, '..' or has characters no repository path has")
		}
	}
	switch {
	case len(segs) < 3 || segs[len(segs)-2] != "Packages":
		return forbid("is not in a Packages directory")
	case !strings.HasSuffix(segs[len(segs)-1], ".rpm"):
		return forbid("is not an .rpm file")
	}
	return path.Join(segs[:len(segs)-2]...), segs[len(segs)-1], nil
}

// noarchCopies returns where the other copies of the noarch package file in repoRel are: the same channel and
// OS release, every other arch.
func (in *Ingester) noarchCopies(repoRel, file string) ([]string, error) {
	if in.opts.Locate == nil {
		return nil, fail(ErrRejected, "all_arches is not available: this daemon cannot map repositories back to their arch")
	}
	channel, osRelease, arch, ok := in.opts.Locate(repoRel)
	if !ok {
		return nil, fail(ErrRejected, "%s is not a repository repo.layout renders, so its sibling arches are unknown; delete each copy by its path", repoRel)
	}
	// The dist tag's abbreviation is not in every path, but it is in the file name's release.
	release := strings.TrimSuffix(file, ".noarch.rpm")
	release = release[strings.LastIndex(release, "-")+1:]
	dist, _ := rpmmeta.ParseDist(release, in.opts.DistTags)
	var out []string
	for _, a := range in.opts.Arches {
		if a == arch {
			continue
		}
		rel, err := in.opts.Layout(channel, dist.Abbr, osRelease, a)
		if err != nil {
			return nil, &Error{Kind: ErrRejected, Msg: "cannot find the copies of " + file + ": " + err.Error(), cause: err}
		}
		out = append(out, path.Join(filepath.ToSlash(rel), "Packages", file))
	}
	return out, nil
}
