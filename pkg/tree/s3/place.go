package s3tree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/lease"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// staged is a local file ready to be PUT. own: a copy the tree made (StageStored), closed by Close.
type staged struct {
	f    *os.File
	size int64
	own  bool
}

func (s *staged) ReadAt(p []byte, off int64) (int, error) { return s.f.ReadAt(p, off) }
func (s *staged) Size() int64                             { return s.size }
func (s *staged) File() *os.File                          { return s.f }
func (s *staged) Close() error {
	if s.own {
		return s.f.Close()
	}
	return nil
}

// Stage takes the caller's checked local file as is: its bytes are streamed at PUT time with the sha256 the
// caller gives in the Unit. f stays the caller's and must not change until the Staged is closed.
func (t *Tree) Stage(_ context.Context, f *os.File) (tree.Staged, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("s3tree: stage: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: stage: %s is not a regular file", tree.ErrInvalid, f.Name())
	}
	return &staged{f: f, size: fi.Size()}, nil
}

// StageStored downloads the stored package to an unlinked local file. A server-side Copy at Place time would
// move no bytes through the daemon, but it would place whatever ref holds at Place time, not at the call; and the
// caller (promotion) inspects the staged bytes through File, which must be local anyway. So: one download.
func (t *Tree) StageStored(ctx context.Context, ref tree.Ref) (tree.Staged, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	o, err := t.spool(ctx, pkgKey(ref))
	if err != nil {
		return nil, err
	}
	return &staged{f: o.File, size: o.st.Size, own: true}, nil
}

type action int

const (
	create action = iota
	present
	replace
)

type target struct {
	ref  tree.Ref
	unit int
	act  action
	etag string // replace: the ETag judged; create: the ETag we created
}

// Place puts every unit into every one of its repositories as one decision. On S3:
//   - the names are locked inside this process only; across daemons the conditional writes decide;
//   - every target is judged by HEAD (sha256 from the metadata, or from the bytes when an object has none);
//   - pending objects are written for every target repository, also those where the bytes are present already
//     (a retried upload whose first PUT landed after its pending change was consumed still gets published);
//   - absent names are PUT with If-None-Match: *; a 412 is judged again by HEAD (same sha256: present, which is
//     also what our own retried PUT meeting its first attempt looks like);
//   - on failure the names we created are deleted with If-Match on the ETag we created;
//   - replacements use If-Match on the ETag judged; a 412 there is ErrConflict unless the stored bytes are ours.
func (t *Tree) Place(ctx context.Context, units []tree.Unit, opts tree.PlaceOptions) (tree.Placed, error) {
	var res tree.Placed
	if len(units) == 0 {
		return res, fmt.Errorf("%w: nothing to place", tree.ErrInvalid)
	}
	var names, repos []string
	var targets []*target
	seen := map[tree.Ref]bool{}
	for ui, u := range units {
		if u.Staged == nil || !validSHA(u.SHA256) || len(u.Repos) == 0 {
			return res, fmt.Errorf("%w: unit %q without bytes, sha256 or repositories", tree.ErrInvalid, u.Name)
		}
		for _, repo := range u.Repos {
			ref := tree.Ref{Repo: repo, Name: u.Name}
			if err := checkRef(ref); err != nil {
				return res, err
			}
			if seen[ref] {
				continue
			}
			seen[ref] = true
			targets = append(targets, &target{ref: ref, unit: ui})
			repos = append(repos, repo)
		}
		names = append(names, u.Name)
	}
	repos = slices.Compact(slices.Sorted(slices.Values(repos)))
	// One global order of creation (by key) for every daemon: two placements racing over the same targets meet
	// at the first key, where exactly one wins and the other has created nothing yet. In the callers' order,
	// each could create one target and then both give up on the other's.
	slices.SortFunc(targets, func(a, b *target) int { return strings.Compare(pkgKey(a.ref), pkgKey(b.ref)) })
	unlock := t.names.lock(names)
	defer unlock()
	if opts.Overwrite {
		// Replacements use If-Match, but two overwriting Places in two daemons could still each replace one
		// arch of a noarch name (and fail on the other after their Commit): overwrites of a name take a
		// cross-daemon lease on it and run one after the other. Placements without overwrite need none: they
		// only create, and the first key in the global order decides between them.
		release, err := t.leaseNames(ctx, names)
		if err != nil {
			return res, err
		}
		defer release()
	}

	// Judge every target before touching any.
	for _, tg := range targets {
		if err := t.judge(ctx, tg, units[tg.unit].SHA256, opts.Overwrite); err != nil {
			return res, err
		}
	}
	changed := map[string][]string{} // repository → the names this placement may change there
	for _, tg := range targets {
		changed[tg.ref.Repo] = append(changed[tg.ref.Repo], tg.ref.Name)
	}
	if err := t.recordAll(ctx, repos, changed, &res); err != nil {
		return res, err
	}
	// The sha256 markers (FindSHA256) go before the packages, like the pending records: every daemon can then
	// answer GET /api/v1/uploads/{sha256} for a copy as soon as it may exist. A marker left by a placement that
	// failed later is only a hint; readers check the copy.
	markers := make([]string, 0, len(targets))
	for _, tg := range targets {
		markers = append(markers, shaKey(units[tg.unit].SHA256, tg.ref))
	}
	if err := t.parallel(ctx, markers, func(ctx context.Context, key string) error { // a migrate batch has many
		_, err := t.st.Put(ctx, key, nil, nil)
		return mapErr(err)
	}); err != nil {
		return res, err
	}
	var created []*target
	undo := func(cause error) error {
		var errs []error
		for _, tg := range created {
			if err := t.st.DeleteIfMatch(context.WithoutCancel(ctx), pkgKey(tg.ref), tg.etag); err != nil &&
				!errors.Is(err, objstore.ErrConflict) && !errors.Is(err, objstore.ErrNotFound) {
				errs = append(errs, fmt.Errorf("undo %s: %w", tg.ref, err))
			}
		}
		return errors.Join(append([]error{cause}, errs...)...)
	}
	for _, tg := range targets {
		if tg.act != create {
			continue
		}
		u := units[tg.unit]
		etag, err := t.st.PutIfAbsent(ctx, pkgKey(tg.ref), body(u.Staged), meta(u.SHA256))
		if err == nil {
			tg.etag = etag
			created = append(created, tg)
			continue
		}
		if !errors.Is(err, objstore.ErrExists) {
			return res, undo(mapErr(err))
		}
		// The name appeared meanwhile (another daemon), or our own retried PUT met its first attempt: judge again.
		if err := t.judge(ctx, tg, u.SHA256, opts.Overwrite); err != nil {
			return res, undo(err)
		}
		if tg.act == create { // gone again in between: give up rather than loop
			return res, undo(fmt.Errorf("%w: %s appeared and vanished during placement", tree.ErrConflict, tg.ref))
		}
	}
	status := tree.Present
	for _, tg := range targets {
		switch {
		case tg.act == replace:
			status = tree.Replaced
		case tg.act == create && status == tree.Present:
			status = tree.Created
		}
	}
	if opts.Commit != nil {
		if err := opts.Commit(status); err != nil {
			return res, undo(fmt.Errorf("%w: %w", tree.ErrAborted, err))
		}
	}
	for _, tg := range targets {
		if tg.act != replace {
			continue
		}
		u := units[tg.unit]
		_, err := t.st.PutIfMatch(ctx, pkgKey(tg.ref), tg.etag, body(u.Staged), meta(u.SHA256))
		if err == nil {
			continue
		}
		if errors.Is(err, objstore.ErrConflict) || errors.Is(err, objstore.ErrNotFound) {
			// Ours after all (a retry that met its first attempt), or somebody else's change: never overwrite that.
			if i, herr := t.st.Head(ctx, pkgKey(tg.ref)); herr == nil {
				if s, serr := t.storedSHA(ctx, i); serr == nil && s == u.SHA256 {
					continue
				}
			}
			return res, fmt.Errorf("%w: %s changed while it was being replaced: %w", tree.ErrConflict, tg.ref, err)
		}
		return res, mapErr(err)
	}
	res.Status = status
	return res, t.recordAll(ctx, repos, changed, nil)
}

// judge HEADs a target and sets its action; an *ExistsError when it holds other bytes and !overwrite.
func (t *Tree) judge(ctx context.Context, tg *target, sum string, overwrite bool) error {
	i, err := t.st.Head(ctx, pkgKey(tg.ref))
	if errors.Is(err, objstore.ErrNotFound) {
		tg.act = create
		return nil
	}
	if err != nil {
		return mapErr(err)
	}
	stored, err := t.storedSHA(ctx, i)
	if err != nil {
		return err
	}
	switch {
	case stored == sum:
		tg.act = present
	case overwrite:
		tg.act, tg.etag = replace, i.ETag
	default:
		return &tree.ExistsError{Ref: tg.ref, Stored: stored}
	}
	return nil
}

func body(s tree.Staged) io.ReadSeeker  { return io.NewSectionReader(s, 0, s.Size()) }
func meta(sum string) map[string]string { return map[string]string{"sha256": sum} }

// recordAll writes a pending object for every repository, naming the packages changed there; into res.Pending
// when res is not nil.
func (t *Tree) recordAll(ctx context.Context, repos []string, changed map[string][]string, res *tree.Placed) error {
	for _, r := range repos {
		if err := t.recordNames(ctx, r, changed[r]); err != nil {
			return err
		}
		if res != nil {
			res.Pending = append(res.Pending, r)
		}
	}
	return nil
}

// Remove deletes packages after checking (HEAD) that every one exists, recording pending changes for their
// repositories before the first deletion and after the last. Another daemon may delete or replace a package
// between the check and the deletion; the deletion is unconditional (the caller decided to remove the name).
func (t *Tree) Remove(ctx context.Context, refs []tree.Ref) ([]string, error) {
	var names, repos []string
	for _, r := range refs {
		if err := checkRef(r); err != nil {
			return nil, err
		}
		names = append(names, r.Name)
		repos = append(repos, r.Repo)
	}
	repos = slices.Compact(slices.Sorted(slices.Values(repos)))
	unlock := t.names.lock(names)
	defer unlock()
	// Every ref is checked first: an absent one fails the call with nothing removed and nothing recorded.
	sums := make([]string, len(refs)) // for the sha256 markers, removed after their package
	for i, r := range refs {
		info, err := t.st.Head(ctx, pkgKey(r))
		if err != nil {
			return nil, mapErr(err)
		}
		sums[i] = info.Metadata["sha256"]
	}
	changed := map[string][]string{}
	for _, r := range refs {
		changed[r.Repo] = append(changed[r.Repo], r.Name)
	}
	var pending []string
	for _, r := range repos {
		if err := t.recordNames(ctx, r, changed[r]); err != nil {
			return pending, err
		}
		pending = append(pending, r)
	}
	for i, r := range refs {
		if err := t.st.Delete(ctx, pkgKey(r)); err != nil {
			return pending, mapErr(err)
		}
		if validSHA(sums[i]) {
			// Best effort: a marker left behind only costs FindSHA256's caller one Stat.
			_ = t.st.Delete(ctx, shaKey(sums[i], r))
		}
	}
	for _, r := range repos {
		if err := t.recordNames(ctx, r, changed[r]); err != nil {
			return pending, err
		}
	}
	return pending, nil
}

// RecordPending writes one new pending object under <repo>/.rpm-ingestd/pending/. It names no package: the
// publish that consumes it lists Packages/ in full.
func (t *Tree) RecordPending(ctx context.Context, repo string) error {
	return t.recordNames(ctx, repo, nil)
}

// recordNames writes one new pending object naming the packages of repo that are changing (pendingBody; empty
// when names is: an unknown change). A publish with the cached listing HEADs exactly these names (cache.go).
func (t *Tree) recordNames(ctx context.Context, repo string, names []string) error {
	if err := checkRepo(repo); err != nil {
		return err
	}
	var body io.ReadSeeker
	if len(names) > 0 {
		body = bytes.NewReader(pendingBody(names))
	}
	_, err := t.st.Put(ctx, pendingPrefix(repo)+t.timeKey(), body, nil)
	return mapErr(err)
}

var errStop = errors.New("stop")

// HasPending reports whether any pending object exists for repo.
func (t *Tree) HasPending(ctx context.Context, repo string) (bool, error) {
	if err := checkRepo(repo); err != nil {
		return false, err
	}
	found := false
	err := t.st.Walk(ctx, pendingPrefix(repo), func(objstore.Info) error { found = true; return errStop })
	if err != nil && !errors.Is(err, errStop) {
		return false, mapErr(err)
	}
	return found, nil
}

type claim struct {
	repo string
	keys []string
}

func (c *claim) Repo() string { return c.repo }

// ClaimPending lists the pending objects that exist now; ConsumePending deletes exactly those.
func (t *Tree) ClaimPending(ctx context.Context, repo string) (tree.Claim, error) {
	if err := checkRepo(repo); err != nil {
		return nil, err
	}
	c := &claim{repo: repo}
	err := t.st.Walk(ctx, pendingPrefix(repo), func(i objstore.Info) error { c.keys = append(c.keys, i.Key); return nil })
	if err != nil {
		return nil, mapErr(err)
	}
	return c, nil
}

// ConsumePending deletes the pending objects c claimed (each key is unique, so nothing recorded later goes).
func (t *Tree) ConsumePending(ctx context.Context, c tree.Claim) error {
	cl, ok := c.(*claim)
	if !ok {
		return fmt.Errorf("%w: claim of another backend", tree.ErrInvalid)
	}
	for _, k := range cl.keys {
		if err := t.st.Delete(ctx, k); err != nil {
			return mapErr(err)
		}
	}
	return nil
}

// lock is a publish lease.
type lock struct {
	t    *Tree
	repo string
	l    *lease.Lease
}

// TryLock acquires repo's lease (pkg/lease): ErrLocked while another holder's lease is unexpired.
func (t *Tree) TryLock(ctx context.Context, repo string) (tree.Lock, error) {
	if err := checkRepo(repo); err != nil {
		return nil, err
	}
	l, err := t.leases.Acquire(ctx, repo)
	if errors.Is(err, lease.ErrHeld) {
		return nil, fmt.Errorf("%w: %w", tree.ErrLocked, err)
	}
	if err != nil {
		return nil, mapErr(err)
	}
	return &lock{t: t, repo: repo, l: l}, nil
}

func (l *lock) Repo() string { return l.repo }

// Holder names this daemon as the lease names it (for logs).
func (l *lock) Holder() string { return l.l.Holder() }

// Remaining is the time left on the lease as of its last acquisition or renewal.
func (l *lock) Remaining() time.Duration { return l.l.Remaining() }

// Renew extends the lease; ErrLockLost when it was taken over or removed.
func (l *lock) Renew(ctx context.Context) error {
	err := l.l.Renew(ctx)
	if errors.Is(err, lease.ErrLost) {
		return fmt.Errorf("%w: %w", tree.ErrLockLost, err)
	}
	return mapErr(err)
}

// Release deletes the lease if it is still ours; a lost lease is no error.
func (l *lock) Release() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := l.l.Release(ctx)
	if errors.Is(err, lease.ErrLost) {
		return nil
	}
	return mapErr(err)
}

// nameLeaseRepo is the pseudo-repository whose lease locks overwrites of one package name across daemons: its
// key is .rpm-ingestd/names/<name>/.rpm-ingestd/lease.json, outside every repository.
func nameLeaseRepo(name string) string { return ".rpm-ingestd/names/" + name }

// leaseNames waits for the leases of names (in sorted order) and returns the function that releases them. A
// daemon that dies holding one blocks overwrites of that name (not placements) for LeaseTTL.
func (t *Tree) leaseNames(ctx context.Context, names []string) (func(), error) {
	var held []*lease.Lease
	release := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for _, l := range held {
			if err := l.Release(rctx); err != nil && !errors.Is(err, lease.ErrLost) {
				t.log.Warn("s3tree: release name lease", zap.Error(err))
			}
		}
	}
	for _, n := range slices.Compact(slices.Sorted(slices.Values(names))) {
		wait := 20 * time.Millisecond
		for {
			l, err := t.leases.Acquire(ctx, nameLeaseRepo(n))
			if err == nil {
				held = append(held, l)
				break
			}
			if !errors.Is(err, lease.ErrHeld) {
				release()
				return nil, mapErr(err)
			}
			select {
			case <-ctx.Done():
				release()
				return nil, fmt.Errorf("%w: waiting for the overwrite lock of %s: %w", tree.ErrUnavailable, n, ctx.Err())
			case <-time.After(wait):
			}
			wait = min(2*wait, 500*time.Millisecond)
		}
	}
	return release, nil
}
