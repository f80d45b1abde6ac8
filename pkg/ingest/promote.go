package ingest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// PromoteRequest names a build in one channel and the channel to copy it to. A build is every file named
// <Name>-<Version>-<Release>.<arch>.rpm in the source channel's repositories for the release's OS: each binary
// arch, the noarch copies in every arch, and the source package in SRPMS. (Subpackages have names of their own
// and are promoted each by name.)
type PromoteRequest struct {
	From, To               string
	Name, Version, Release string
	// Epoch, when set, must match the stored packages' epoch (none counts as 0); nil accepts any.
	Epoch *uint32
	// Arch limits the promotion to one arch: a binary arch, "noarch" (its copies in every arch) or "src" (the
	// source package; "SRPMS" means the same). "" promotes all of them.
	Arch string
	// OSRelease names the OS release for a build whose release has no dist tag, as an upload's os_release does.
	OSRelease string
	// Allow, when set, is asked with the target repositories once they are known and before anything is placed;
	// an error refuses the promotion as it is (server.permissions).
	Allow func(targets []Target) error
}

// PromoteResult says what Promote did, for the response and the audit trail.
type PromoteResult struct {
	From, To string
	NEVRAs   []string           // of the promoted files, parallel to Sources
	Packages []*rpmmeta.Package // the promoted files as read, parallel to Sources
	Sources  []string           // slash-separated paths relative to TopDir, in the source channel
	Paths    []string           // the same files' paths in the target channel, parallel to Sources
	Repos    []string           // the target repositories (absolute), parallel to Sources
	// SignedBy and ClaimedKeyIDs are each file's verified signer and unverified claimed key id, as for an upload
	// (Result.SignedBy, Result.ClaimedKeyID), parallel to Sources: every promoted file passed the signature
	// policy, judged again here because a file can reach the source channel without an upload (copied by hand).
	SignedBy      []string
	ClaimedKeyIDs []string
	Status        Status // Present when every file was already there, identical
	// Pruned lists the files the target channel's retention rule removed after the promotion placed newer
	// builds (slash-separated, relative to TopDir); their repositories are in Dirty.
	Pruned []string
	// Dirty lists the repositories marked dirty, also when Promote failed after marking them: the caller must
	// Trigger each, as after an upload.
	Dirty []string
}

// Promote copies a build from one channel into another through the same placement as uploads: under the lock
// of every file name, each target is judged first (identical: nothing to do; different: ErrExists unless
// overwrite is on, and then nothing changes anywhere), and the files are hard-linked in (copied where the target
// is on another filesystem), all or nothing. Source files are opened inside TopDir only (os.Root), so a symlink
// planted in a channel cannot promote a file from outside the tree. Safe for concurrent use.
func (in *Ingester) Promote(ctx context.Context, req PromoteRequest) (*PromoteResult, error) {
	if err := in.checkPromote(req); err != nil {
		return nil, err
	}
	dist, osRelease, err := in.promoteRelease(req)
	if err != nil {
		return nil, err
	}
	if err := in.checkOSRelease(osRelease, req.Name+"-"+req.Version+"-"+req.Release); err != nil {
		return nil, err
	}
	res := &PromoteResult{From: req.From, To: req.To}
	var units []unit
	defer func() {
		for _, u := range units {
			u.staged.Close()
		}
	}()
	var looked []string
	for _, c := range in.promoteCandidates(req.Arch) {
		srcRepo, err := in.opts.Layout(req.From, dist.Abbr, osRelease, c.repoArch)
		if err != nil {
			return nil, &Error{Kind: ErrRejected, Msg: "cannot locate the build: " + err.Error(), cause: err}
		}
		file := req.Name + "-" + req.Version + "-" + req.Release + "." + c.fileArch + ".rpm"
		src := path.Join(filepath.ToSlash(srcRepo), "Packages", file)
		looked = append(looked, src)
		pkg, staged, sig, err := in.stageStored(ctx, src)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		units = append(units, unit{staged: staged, pkg: pkg}) // staged: removed by the defer above
		if err := checkBuild(pkg, req, c.fileArch, src); err != nil {
			return nil, err
		}
		if sig.err != nil {
			return nil, sig.err
		}
		res.SignedBy, res.ClaimedKeyIDs = append(res.SignedBy, sig.signedBy), append(res.ClaimedKeyIDs, sig.claimed)
		dstRepo, err := in.opts.Layout(req.To, dist.Abbr, osRelease, c.repoArch)
		if err != nil {
			return nil, &Error{Kind: ErrRejected, Msg: "cannot route the build into " + req.To + ": " + err.Error(), cause: err}
		}
		dst := path.Join(filepath.ToSlash(dstRepo), "Packages", file)
		u := &units[len(units)-1]
		u.repos = []string{filepath.Join(in.opts.TopDir, dstRepo)}
		res.NEVRAs, res.Packages = append(res.NEVRAs, pkg.NEVRA()), append(res.Packages, pkg)
		res.Sources, res.Paths, res.Repos = append(res.Sources, src), append(res.Paths, dst), append(res.Repos, u.repos[0])
	}
	if len(units) == 0 {
		return nil, fail(ErrNotFound, "%s-%s-%s is not in channel %s (looked for %s)", req.Name, req.Version, req.Release, req.From, strings.Join(looked, ", "))
	}
	if err := in.allow(req.Allow, res.Repos); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Status, res.Dirty, err = in.placeUnits(ctx, units, nil, nil)
	if err == nil && res.Status != Present {
		// The target channel's retention rule, as after an upload: a channel fed only by promotion would
		// otherwise never prune. Failures are logged; the promotion stands whatever retention does.
		acc := pruneAcc{dirty: res.Dirty}
		for _, g := range groupByBuild(units) {
			in.pruneOlder(g.pkg, g.repos, &acc)
		}
		res.Dirty, res.Pruned = acc.dirty, acc.pruned
	}
	return res, err
}

// buildGroup is one promoted package (name and file arch) with every target repository it went to: a noarch
// package's copies in each arch are judged by retention together, as after an upload.
type buildGroup struct {
	pkg   *rpmmeta.Package
	repos []string
}

// groupByBuild groups the units by package name and file arch, in order of first appearance.
func groupByBuild(units []unit) []buildGroup {
	var gs []buildGroup
	idx := map[nameArch]int{}
	for _, u := range units {
		k := nameArch{u.pkg.Name, u.pkg.FileArch()}
		i, ok := idx[k]
		if !ok {
			i = len(gs)
			idx[k] = i
			gs = append(gs, buildGroup{pkg: u.pkg})
		}
		gs[i].repos = append(gs[i].repos, u.repos...)
	}
	return gs
}

// checkPromote refuses a request whose fields cannot name a build in two configured channels. Every field that
// becomes part of a path is checked like an upload's header fields, before any path is built.
func (in *Ingester) checkPromote(req PromoteRequest) error {
	if len(in.opts.Channels) == 0 {
		return fail(ErrUnknownChannel, "promotion moves builds between channels, and repo.channels lists none")
	}
	for _, ch := range []struct{ field, name string }{{"from", req.From}, {"to", req.To}} {
		if ch.name == "" {
			return fail(ErrBadUpload, "%q is missing: name a channel (one of %s)", ch.field, strings.Join(in.opts.Channels, ", "))
		}
		if err := CheckChannel(ch.name, in.opts.Channels); err != nil {
			return err
		}
	}
	if req.From == req.To {
		return fail(ErrBadUpload, "from and to are both %q: name two different channels", req.From)
	}
	for _, f := range []struct {
		field, value string
		ok           bool
	}{
		{"name", req.Name, nameRe.MatchString(req.Name)},
		{"version", req.Version, versionRe.MatchString(req.Version) && req.Version != "." && req.Version != ".."},
		{"release", req.Release, versionRe.MatchString(req.Release) && req.Release != "." && req.Release != ".."},
	} {
		if !f.ok {
			return fail(ErrBadUpload, "%s %.80q is not a valid package %s", f.field, f.value, f.field)
		}
	}
	switch a := req.Arch; {
	case a == "" || a == "noarch" || a == "src" || a == "SRPMS" || slices.Contains(in.opts.Arches, a):
	default:
		return fail(ErrBadUpload, "arch %.40q is not one of repo.arches (%s), noarch or src", a, strings.Join(in.opts.Arches, ", "))
	}
	return nil
}

// promoteRelease finds the OS release the build was filed under, as route does for an upload.
func (in *Ingester) promoteRelease(req PromoteRequest) (rpmmeta.Dist, string, error) {
	dist, ok := rpmmeta.ParseDist(req.Release, in.opts.DistTags)
	switch {
	case req.OSRelease != "":
		if !osRelRe.MatchString(req.OSRelease) {
			return dist, "", fail(ErrBadUpload, "os_release %q is not allowed: use letters, digits, . and _, like 9 or el9", req.OSRelease)
		}
		if d, ok := rpmmeta.ParseDist(req.OSRelease, in.opts.DistTags); ok {
			return d, d.Major, nil
		}
		return dist, req.OSRelease, nil
	case ok:
		return dist, dist.Major, nil
	}
	return dist, "", fail(ErrBadUpload, "release %q has no dist tag (known: %s): name the OS release the build was uploaded for with os_release",
		req.Release, strings.Join(in.opts.DistTags, ", "))
}

// candidate is one place a file of a build may be: the arch of its repository and the arch in its file name.
type candidate struct{ repoArch, fileArch string }

// promoteCandidates lists where the files of a build may be, for the requested arch.
func (in *Ingester) promoteCandidates(arch string) []candidate {
	var cs []candidate
	if arch == "" || arch == "src" || arch == "SRPMS" {
		cs = append(cs, candidate{"SRPMS", "src"})
	}
	for _, a := range in.opts.Arches {
		if arch == "" || arch == a {
			cs = append(cs, candidate{a, a})
		}
		if arch == "" || arch == "noarch" {
			cs = append(cs, candidate{a, "noarch"})
		}
	}
	return cs
}

// sigVerdict is the signature policy's decision on a stored file: err is the refusal (or a read failure).
type sigVerdict struct {
	signedBy, claimed string
	err               error
}

// stageStored stages the stored package rel (slash-separated, relative to TopDir) through the tree, which reads it
// inside the tree only (on fs: no symlink, nothing but a regular file, nothing outside TopDir), inspects the staged
// bytes and judges their signatures by the policy (the verdict, not an error: the caller checks the build first).
// What is inspected is exactly what will be placed. A missing file is fs.ErrNotExist; anything the tree refuses is
// ErrForbidden.
func (in *Ingester) stageStored(ctx context.Context, rel string) (*rpmmeta.Package, tree.Staged, sigVerdict, error) {
	var sig sigVerdict
	repo, file := path.Dir(path.Dir(rel)), path.Base(rel)
	staged, err := in.tree.StageStored(ctx, tree.Ref{Repo: repo, Name: file})
	switch {
	case errors.Is(err, tree.ErrNotFound):
		return nil, nil, sig, fs.ErrNotExist
	case errors.Is(err, tree.ErrInvalid):
		return nil, nil, sig, fail(ErrForbidden, "%s: nothing was promoted", strings.TrimPrefix(err.Error(), tree.ErrInvalid.Error()+": "))
	case err != nil:
		return nil, nil, sig, classifyIO(err, "stage package")
	}
	pkg, err := rpmmeta.Inspect(staged.File())
	if err != nil {
		staged.Close()
		return nil, nil, sig, fmt.Errorf("stored package %s: %w", rel, err)
	}
	sig.signedBy, sig.claimed, sig.err = in.judgeSignature(pkg, staged)
	var ie *Error
	if errors.As(sig.err, &ie) {
		sig.err = &Error{Kind: ie.Kind, Msg: "stored package " + rel + ": " + ie.Msg + ": nothing was promoted", cause: ie.cause}
	}
	return pkg, staged, sig, nil
}

// checkBuild makes sure the stored file holds what its name says (a file copied in by hand may not), and the
// requested epoch.
func checkBuild(p *rpmmeta.Package, req PromoteRequest, fileArch, rel string) error {
	if p.Name != req.Name || p.Version != req.Version || p.Release != req.Release || p.FileArch() != fileArch {
		return fail(ErrRejected, "%s holds %s, not what its name says: fix or remove it before promoting", rel, p.NEVRA())
	}
	if req.Epoch != nil {
		var have uint32
		if p.Epoch != nil {
			have = *p.Epoch
		}
		if have != *req.Epoch {
			return fail(ErrNotFound, "%s has epoch %d, not %d", rel, have, *req.Epoch)
		}
	}
	return nil
}
