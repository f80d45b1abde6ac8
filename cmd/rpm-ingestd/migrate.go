package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/indexer"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
	pkgtree "github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// migrateBatch is how many new packages one Place covers: one decision and two pending records per batch
// instead of per package.
const migrateBatch = 64

// migrate is `rpm-ingestd migrate -c CONFIG --from DIR`: it copies the fs tree DIR (a former repo.top_dir) into
// the bucket of CONFIG's storage.s3, then publishes every repository. Exit 0 when everything was copied and
// published (or left pending for a daemon that holds the publish lock), 1 when something failed or a package
// in the bucket holds different bytes under the same name (it is never replaced), 2 on bad usage.
//
// Per repository (a directory with a Packages/ subdirectory, named by its path below DIR):
//   - every *.rpm in Packages/ (regular files, or symlinks to them) is judged by HEAD: the same sha256 in the
//     bucket is skipped, different bytes are reported and left alone, absent ones are placed through the tree
//     (If-None-Match: *, with their sha256 in the object metadata), as an upload would be;
//   - when the bucket has no repodata/repomd.xml yet, DIR's published metadata is copied (the files it names,
//     then repomd.xml if still absent), so the repository is readable at once and the publish below reuses it;
//   - a pending change is recorded and the repository is published (createrepo_c through the tree, as the
//     daemon does); a repository whose publish lock a daemon holds is left to that daemon, which finds it by
//     its pending change.
//
// Re-running it copies nothing that is already there and publishes again.
func migrate(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("rpm-ingestd migrate", flag.ContinueOnError)
	flags.SetOutput(stderr)
	var cfgPath, from string
	flags.StringVar(&cfgPath, "c", config.DefaultPath, "configuration file (YAML) with storage.backend: s3")
	flags.StringVar(&cfgPath, "config", config.DefaultPath, "same as -c")
	flags.StringVar(&from, "from", "", "the fs tree to copy (a former repo.top_dir)")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if from == "" || flags.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: rpm-ingestd migrate -c CONFIG --from DIR")
		return 2
	}
	cfg, _, err := loadConfig(cfgPath)
	if err != nil {
		printConfigErrors(stderr, "rpm-ingestd migrate", err)
		return 2
	}
	if cfg.Storage.Backend != config.BackendS3 {
		fmt.Fprintf(stderr, "rpm-ingestd migrate: %s: storage.backend is %s: migrate copies into the bucket of storage.s3, so set backend: s3\n", cfgPath, cfg.Storage.Backend)
		return 2
	}
	from, err = filepath.Abs(from)
	if err == nil {
		var fi os.FileInfo
		if fi, err = os.Stat(from); err == nil && !fi.IsDir() {
			err = fmt.Errorf("%s is not a directory", from)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "rpm-ingestd migrate: --from: %v\n", err)
		return 2
	}
	log, err := newLogger(config.Log{Level: "warn", Format: "console"}, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "rpm-ingestd migrate: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tr, store, err := openTree(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "rpm-ingestd migrate: %v\n", err)
		return 1
	}
	defer tr.Close()
	runner := indexer.NewCreaterepo(cfg.Indexer.Command)
	runner.Log = log.Named("createrepo")
	runner.KillDelay = config.KillDelay
	runner.Tree, runner.TopDir = tr, cfg.Repo.TopDir
	if sg := cfg.Indexer.Sign; sg != nil {
		runner.Signer = indexer.NewGPG(sg.GPGHome, sg.KeyID)
	}
	m := &migration{tr: tr, store: store, runner: runner, topDir: cfg.Repo.TopDir, out: stdout}
	fmt.Fprintf(stdout, "migrating %s into %s\n", from, store)
	failed := m.run(ctx, from)
	fmt.Fprintf(stdout, "total: %d repositories, %d packages: %d copied, %d already there, %d conflicting; %d published, %d left to a daemon, %d failed\n",
		m.total.repos, m.total.pkgs, m.total.copied, m.total.present, m.total.conflicts, m.total.published, m.total.pending, m.total.failed)
	if failed {
		return 1
	}
	return 0
}

type migration struct {
	tr     storageTree
	store  *objstore.Store
	runner *indexer.Createrepo
	topDir string
	out    io.Writer
	total  struct{ repos, pkgs, copied, present, conflicts, published, pending, failed int }
}

// run migrates every repository below from; it reports whether anything failed.
func (m *migration) run(ctx context.Context, from string) bool {
	repos, err := findRepos(from)
	failed := false
	if err != nil {
		fmt.Fprintf(m.out, "error: %v\n", err)
		failed = true
	}
	for _, repo := range repos {
		if ctx.Err() != nil {
			fmt.Fprintf(m.out, "stopped: %v\n", ctx.Err())
			return true
		}
		m.total.repos++
		if !m.repo(ctx, from, repo) {
			failed = true
			m.total.failed++
		}
	}
	return failed || m.total.conflicts > 0
}

// findRepos lists the repositories below from: directories with a Packages/ subdirectory, slash-separated and
// relative to from, sorted. Hidden directories are skipped (our own .rpm-ingestd*, staging), and so are
// Packages/ and repodata/ themselves.
func findRepos(from string) ([]string, error) {
	var repos []string
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if p != from && (strings.HasPrefix(name, ".") || name == "Packages" || name == "repodata") {
			return filepath.SkipDir
		}
		if fi, err := os.Stat(filepath.Join(p, "Packages")); err == nil && fi.IsDir() {
			rel, _ := filepath.Rel(from, p)
			repos = append(repos, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(repos)
	return repos, err
}

type localPkg struct {
	name, path, sha string
}

// repo migrates one repository and reports whether it went without failure (conflicts are counted, not
// failures).
func (m *migration) repo(ctx context.Context, from, repo string) bool {
	dir := filepath.Join(from, filepath.FromSlash(repo))
	pkgs, err := readPackages(filepath.Join(dir, "Packages"))
	if err != nil {
		fmt.Fprintf(m.out, "%s: error: %v\n", repo, err)
		return false
	}
	var copied, present int
	var conflicts []string
	var todo []localPkg
	for _, p := range pkgs {
		st, err := m.tr.Stat(ctx, pkgtree.Ref{Repo: repo, Name: p.name})
		switch {
		case errors.Is(err, pkgtree.ErrNotFound):
			todo = append(todo, p)
		case err != nil:
			fmt.Fprintf(m.out, "%s: error: %s: %v\n", repo, p.name, err)
			return false
		case st.SHA256 == p.sha:
			present++
		case st.SHA256 == "": // stored by another tool without its sha256: Place compares the bytes
			todo = append(todo, p)
		default:
			conflicts = append(conflicts, fmt.Sprintf("%s (bucket sha256 %s, %s sha256 %s)", p.name, st.SHA256, from, p.sha))
		}
	}
	for batch := range slices.Chunk(todo, migrateBatch) {
		c, pr, conf, err := m.place(ctx, repo, batch)
		copied, present, conflicts = copied+c, present+pr, append(conflicts, conf...)
		if err != nil {
			fmt.Fprintf(m.out, "%s: error: %v\n", repo, err)
			return false
		}
	}
	m.total.pkgs += len(pkgs)
	m.total.copied += copied
	m.total.present += present
	m.total.conflicts += len(conflicts)
	for _, c := range conflicts {
		fmt.Fprintf(m.out, "%s: conflict: %s: left as it is in the bucket\n", repo, c)
	}
	meta, err := m.copyMetadata(ctx, dir, repo)
	if err != nil {
		fmt.Fprintf(m.out, "%s: error: copy metadata: %v\n", repo, err)
		return false
	}
	if err := m.tr.RecordPending(ctx, repo); err != nil {
		fmt.Fprintf(m.out, "%s: error: record pending change: %v\n", repo, err)
		return false
	}
	outcome := "published"
	err = m.runner.Run(ctx, filepath.Join(m.topDir, filepath.FromSlash(repo)))
	switch {
	case errors.Is(err, pkgtree.ErrLocked):
		outcome = "left to the daemon publishing it now (pending change recorded)"
		m.total.pending++
	case err != nil:
		fmt.Fprintf(m.out, "%s: error: publish: %v\n", repo, err)
		return false
	default:
		m.total.published++
	}
	fmt.Fprintf(m.out, "%s: %d packages: %d copied, %d already there, %d conflicting; metadata %s; %s\n",
		repo, len(pkgs), copied, present, len(conflicts), meta, outcome)
	return true
}

// readPackages lists the *.rpm files of a Packages/ directory with their sha256. Hidden files (half-written
// uploads) are skipped; a symlink counts when it leads to a regular file, as createrepo_c indexed it.
func readPackages(dir string) ([]localPkg, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []localPkg
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".rpm") {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		sum, err := pkgtree.FileSHA256(p)
		if err != nil {
			return nil, err
		}
		out = append(out, localPkg{name: name, path: p, sha: sum})
	}
	return out, nil
}

// place puts a batch of packages into repo as one decision. When another writer created one of the names with
// different bytes meanwhile, the batch places nothing; it is then placed one package at a time, so only that
// package is refused.
func (m *migration) place(ctx context.Context, repo string, batch []localPkg) (copied, present int, conflicts []string, err error) {
	one := func(ps []localPkg) (pkgtree.Status, error) {
		units := make([]pkgtree.Unit, 0, len(ps))
		for _, p := range ps {
			f, err := os.Open(p.path)
			if err != nil {
				return "", err
			}
			defer f.Close()
			st, err := m.tr.Stage(ctx, f)
			if err != nil {
				return "", err
			}
			defer st.Close()
			units = append(units, pkgtree.Unit{Staged: st, SHA256: p.sha, Name: p.name, Repos: []string{repo}})
		}
		placed, err := m.tr.Place(ctx, units, pkgtree.PlaceOptions{})
		return placed.Status, err
	}
	status, err := one(batch)
	var ee *pkgtree.ExistsError
	switch {
	case err == nil && status == pkgtree.Present:
		return 0, len(batch), nil, nil
	case err == nil:
		// Created: at least one was new. A package stored by another tool without its sha256 and found identical
		// counts as copied too.
		return len(batch), 0, nil, nil
	case !errors.As(err, &ee):
		return 0, 0, nil, err
	}
	for _, p := range batch {
		status, err := one([]localPkg{p})
		switch {
		case errors.As(err, &ee):
			conflicts = append(conflicts, fmt.Sprintf("%s (bucket sha256 %s, local sha256 %s)", p.name, ee.Stored, p.sha))
		case err != nil:
			return copied, present, conflicts, err
		case status == pkgtree.Present:
			present++
		default:
			copied++
		}
	}
	return copied, present, conflicts, nil
}

// copyMetadata copies dir's published metadata (repodata/repomd.xml and every file it names) into the bucket
// when the bucket has none for repo: data files first, repomd.xml last and only if still absent, so a reader
// never sees a repomd.xml naming a missing file, and a repository published meanwhile is never overwritten.
func (m *migration) copyMetadata(ctx context.Context, dir, repo string) (string, error) {
	repomd, err := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml"))
	if errors.Is(err, fs.ErrNotExist) {
		return "none to copy", nil
	}
	if err != nil {
		return "", err
	}
	key := repo + "/repodata/repomd.xml"
	switch _, err := m.store.Head(ctx, key); {
	case err == nil:
		return "already in the bucket (kept)", nil
	case !errors.Is(err, objstore.ErrNotFound):
		return "", err
	}
	files, err := pkgtree.ParseRepomd(repomd)
	if err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Join(dir, "repodata", "repomd.xml"), err)
	}
	for _, f := range files {
		href := f.Href
		name, ok := pkgtree.RepodataName(href)
		if !ok {
			return "", fmt.Errorf("repomd.xml names %q, not a file in repodata/", href)
		}
		if err := m.putFile(ctx, filepath.Join(dir, "repodata", name), repo+"/repodata/"+name); err != nil {
			return "", err
		}
	}
	if _, err := m.store.PutIfAbsent(ctx, key, bytes.NewReader(repomd), nil); errors.Is(err, objstore.ErrExists) {
		return "published meanwhile by a daemon (kept)", nil
	} else if err != nil {
		return "", err
	}
	return fmt.Sprintf("copied (%d files)", len(files)+1), nil
}

func (m *migration) putFile(ctx context.Context, p, key string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = m.store.Put(ctx, key, f, nil)
	return err
}
