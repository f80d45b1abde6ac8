// Command rpm-ingestd receives RPM uploads, files them into a yum/dnf repository tree and keeps the tree's
// metadata current with createrepo_c. This is the only code that reads flags and configuration, handles signals
// or exits; everything else is wired from here.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/indexer"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/registry"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/server"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/signature"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/web"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is main without the exit, returning the exit code: 0 success, 1 runtime failure, 2 bad usage or config.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "migrate" {
		return migrate(args[1:], stdout, stderr)
	}
	flags := flag.NewFlagSet("rpm-ingestd", flag.ContinueOnError)
	flags.SetOutput(stderr)
	var cfgPath string
	flags.StringVar(&cfgPath, "c", config.DefaultPath, "configuration file (YAML)")
	flags.StringVar(&cfgPath, "config", config.DefaultPath, "configuration file (YAML); same as -c")
	showVersion := flags.Bool("version", false, "print the version and exit")
	checkConfig := flags.Bool("check-config", false, "validate the configuration, print it as the daemon sees it, and exit")
	probeReady := flags.Bool("probe", false, "ask the running daemon (server.listen) whether it is ready (GET /readyz); exit 0 ready, 1 not, with a one-line reason (probe.go)")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if *probeReady {
		return probe(cfgPath, stdout, stderr)
	}
	if *showVersion {
		fmt.Fprintf(stdout, "rpm-ingestd %s\n", version)
		return 0
	}

	cfg, defaulted, err := loadConfig(cfgPath)
	if err != nil {
		printConfigErrors(stderr, "rpm-ingestd", err)
		return 2
	}
	if *checkConfig {
		for _, note := range cfg.Notes() {
			fmt.Fprintf(stderr, "rpm-ingestd: note: %s\n", note)
		}
		for _, w := range permissionWarnings(cfg) {
			fmt.Fprintf(stderr, "rpm-ingestd: warning: %s\n", w)
		}
		out, err := cfg.YAML()
		if err != nil {
			fmt.Fprintf(stderr, "rpm-ingestd: %v\n", err)
			return 1
		}
		stdout.Write(out)
		return 0
	}

	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "rpm-ingestd: %v\n", err)
		return 2
	}
	defer log.Sync()
	if defaulted {
		log.Info("no configuration file, running on built-in defaults", zap.String("looked_for", cfgPath))
	}
	for _, note := range cfg.Notes() {
		log.Info("configuration note", zap.String("note", note))
	}
	for _, w := range permissionWarnings(cfg) {
		log.Warn("configuration warning", zap.String("warning", w))
	}
	if limit := int64(cfg.Server.MemoryLimit); limit > 0 {
		// A soft limit: the collector works harder as the heap nears it, so bursts of uploads are collected
		// before the unit's hard MemoryMax= would kill the daemon. It cannot cap live memory; the upload cap
		// and rpmmeta's decode budget do that.
		debug.SetMemoryLimit(limit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("exit", zap.Error(err))
		return 1
	}
	return 0
}

// printConfigErrors writes loadConfig's error for the command cmd: every problem on its own line.
func printConfigErrors(w io.Writer, cmd string, err error) {
	fmt.Fprintf(w, "%s: invalid configuration:\n", cmd)
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "  - %s\n", line)
	}
}

// loadConfig loads path. When path is the default and does not exist, the built-in defaults apply (defaulted
// is true). The indexer command, when not configured, is whichever createrepo is on PATH, and must exist.
func loadConfig(path string) (cfg *config.Config, defaulted bool, err error) {
	cfg, err = config.Load(path)
	if errors.Is(err, fs.ErrNotExist) && path == config.DefaultPath {
		cfg, defaulted, err = config.Default(), true, nil
		err = cfg.Validate()
	}
	if err != nil {
		return nil, false, err
	}
	if len(cfg.Indexer.Command) == 0 {
		cfg.Indexer.Command = indexer.DefaultCommand()
	}
	if _, err := exec.LookPath(cfg.Indexer.Command[0]); err != nil {
		return nil, false, fmt.Errorf("indexer.command: %q is not on PATH: install createrepo_c (Debian: apt-get install createrepo-c; RHEL/Fedora: dnf install createrepo_c) or name the program", cfg.Indexer.Command[0])
	}
	// Parsed here too, not only in serve, so that a bad line is a configuration error (exit 2, also for
	// --check-config) naming the file and the line. serve loads the file again with its logger for reloads.
	if cfg.Server.Htpasswd != "" {
		if _, err := auth.LoadHtpasswd(cfg.Server.Htpasswd, nil); err != nil {
			return nil, false, fmt.Errorf("server.htpasswd: %w", err)
		}
	}
	return cfg, defaulted, nil
}

func newLogger(c config.Log, out io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	encCfg.EncodeDuration = zapcore.StringDurationEncoder // "1.2s" reads better than 1.2 in a journal
	enc := zapcore.NewJSONEncoder(encCfg)
	if c.Format == "console" {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(out)), level)), nil
}

// serve wires the parts and runs until ctx is cancelled (a signal) or one of them fails. Shutdown order: stop
// taking requests and let in-flight uploads finish, then stop the indexer, which publishes every pending change
// within indexer.shutdown_timeout. Stopping the indexer last means no handler can Trigger a stopped scheduler.
func serve(ctx context.Context, cfg *config.Config, log *zap.Logger) error {
	reg := newRegistry() // every part's metrics, served at GET /metrics
	policy, err := signaturePolicy(cfg.Repo, log)
	if err != nil {
		return err
	}
	// The repository tree (pkg/tree): fs on top_dir, or s3 on the bucket (storage.backend).
	tr, store, err := openTree(cfg, log)
	if err != nil {
		return err
	}
	defer tr.Close()
	ing, err := ingest.New(ingest.Options{
		Tree:       tr,
		TopDir:     cfg.Repo.TopDir,
		SpoolDir:   cfg.Server.SpoolDir,
		Layout:     cachedLayout(cfg),
		Arches:     cfg.Repo.Arches,
		DistTags:   cfg.Repo.DistTags,
		Overwrite:  cfg.Repo.Overwrite,
		MaxSize:    int64(cfg.Server.MaxUploadSize),
		Signatures: policy,
		Retention: ingest.RetentionOptions{
			Policy: retentionPolicy(cfg),
		},

		Channels:       cfg.Repo.Channels,
		DefaultChannel: cfg.Repo.DefaultChannel,
		Locate:         cachedLocate(cfg),
		OSReleases:     cfg.Repo.OSReleases,
	}, log.Named("ingest"))
	if err != nil {
		return err
	}
	defer ing.Close()
	if n, err := ing.Cleanup(); n > 0 || err != nil {
		log.Info("removed leftovers of interrupted uploads", zap.Int("files", n), zap.Error(err))
	}
	index, audit, err := openRegistry(cfg, tr, reg, log.Named("registry"))
	if err != nil {
		return err
	}
	if audit != nil {
		defer audit.Close() // after g.Wait: every upload has been answered
	}

	notifier, err := newNotifier(cfg.Notify, reg, log)
	if err != nil {
		return err
	}
	// onPublish fans each publish out to everything that reacts to it. It runs on an indexer worker, so each
	// consumer only hands the event off or updates memory (Notify enqueues, never blocks; SyncRepo brings the
	// package index in line with hand-made changes the run published).
	onPublish := func(p indexer.Published) {
		rel, err := filepath.Rel(cfg.Repo.TopDir, p.Dir)
		if err != nil {
			return
		}
		index.SyncRepo(filepath.ToSlash(rel), p.Packages)
		notifier.Notify(notifyBatch(cfg.ClientURL()+cfg.Server.RepoURL, filepath.ToSlash(rel), p.Added, p.At))
	}

	runner := indexer.NewCreaterepo(cfg.Indexer.Command)
	runner.Log = log.Named("createrepo")
	runner.KillDelay = config.KillDelay              // part of the stop budget that config validated
	runner.Tree, runner.TopDir = tr, cfg.Repo.TopDir // publishes through the tree (pkg/tree)
	if runner.Conflicts, err = indexer.NewPublishConflicts(reg); err != nil {
		return err
	}
	sched := indexer.NewScheduler(runner, indexer.Options{
		QuietPeriod:     time.Duration(cfg.Indexer.QuietPeriod),
		MaxDelay:        time.Duration(cfg.Indexer.MaxDelay),
		Workers:         cfg.Indexer.Workers,
		Timeout:         time.Duration(cfg.Indexer.Timeout),
		ShutdownTimeout: time.Duration(cfg.Indexer.ShutdownTimeout),
		TopDir:          cfg.Repo.TopDir, // the base of the metrics' repo label ("9/x86_64") and what rescans walk
		Tree:            tr,              // repositories, pending changes and published metadata (pkg/tree)
		Registerer:      reg,
		RescanInterval:  time.Duration(cfg.Indexer.RescanInterval),
		OnPublish:       onPublish,
		// On a bucket that other daemons publish into too, ?wait=visible and GET /api/v1/uploads/{sha256} must see
		// their publishes: repomd.xml is looked at again at most this often (one GET per repository asked about).
		RefreshPublished: sharedRefresh(cfg),
	}, log.Named("indexer"))
	scan := sched.Recover
	if sg := cfg.Indexer.Sign; sg != nil {
		runner.Signer = indexer.NewGPG(sg.GPGHome, sg.KeyID)
		dst := filepath.Join(cfg.Repo.TopDir, sg.PublicKey)
		if err := indexer.ExportPublicKey(ctx, sg.GPGHome, sg.KeyID, dst); err != nil {
			return fmt.Errorf("indexer.sign: %w", err)
		}
		log.Info("signing repository metadata", zap.String("key_id", sg.KeyID), zap.String("public_key", dst))
		// Metadata published unsigned or under another key fails clients with repo_gpgcheck: re-sign it all.
		scan = sched.RecoverAll
	}
	if err := writeRepoFile(cfg, log); err != nil {
		return err
	}
	if _, err := createConfiguredRepos(ctx, cfg, tr, runner, log.Named("indexer")); err != nil {
		return err
	}
	// An unreadable corner of the tree must not keep every other repository from being served: report it
	// (an operator must fix the permissions) and go on with what was found.
	queued, err := scan(cfg.Repo.TopDir)
	if err != nil {
		log.Error("scan for unindexed repositories incomplete", zap.Error(err))
	}

	authn, err := newAuthenticator(cfg.Server, log.Named("auth"))
	if err != nil {
		return err
	}
	if err := registerPasswordChecks(reg, authn); err != nil {
		return err
	}
	webHandler, err := web.New(web.Options{Source: webSource{cfg: cfg, sched: sched, index: index, audited: audit != nil, tree: tr,
		summaries: newSummaryCache()}}, log.Named("web"))
	if err != nil {
		return err
	}
	srv, err := server.New(server.Options{
		UploadPath:    cfg.Server.UploadPath,
		UploadHeader:  cfg.Server.UploadHeader,
		DirectUpload:  cfg.Server.DirectUpload,
		MaxUploadSize: int64(cfg.Server.MaxUploadSize),
		RepoURL:       cfg.Server.RepoURL,
		ServeRepo:     cfg.Server.ServeRepo,
		TopDir:        cfg.Repo.TopDir,
		RepoObjects:   repoObjects(store),
		Tree:          tr, // whether an upload's copies are still stored (GET /api/v1/uploads/{sha256})

		MaxConcurrentUploads: cfg.Server.MaxConcurrentUploads,
		QueueTimeout:         time.Duration(cfg.Server.QueueTimeout),
		UploadIdleTimeout:    time.Duration(cfg.Server.UploadIdleTimeout),
		UploadMinRate:        int64(cfg.Server.UploadMinRate),
		Auth:                 authn,
		Permissions:          permissions(cfg.Server.Permissions),
		Retention:            ing,
		SpoolDir:             cfg.Server.SpoolDir,
		IndexerProgram:       cfg.Indexer.Command[0],
		Registerer:           reg,
		Gatherer:             reg,
		Publisher:            sched,
		MaxWait:              time.Duration(cfg.Server.MaxWait),
		Channels:             cfg.Repo.Channels,
		Lifecycle:            ing,
		Registry:             registry.New(audit, index),
		Packages:             index,
		Lookup:               lookupSHA256(index),
		Web:                  webHandler,
	}, ing, sched, log.Named("http"))
	if err != nil {
		return err
	}
	ln, err := listen(cfg.Server.Listen)
	if err != nil {
		return err
	}
	var serveDebug func(context.Context) error // the profiler, when server.debug_listen is set
	if cfg.Server.DebugListen != "" {
		if serveDebug, err = debugServer(cfg.Server.DebugListen, log.Named("debug")); err != nil {
			ln.Close()
			return fmt.Errorf("server.debug_listen: %w", err)
		}
	}
	// Every request's context derives from reqCtx, so that a stop that runs out of drain time can cancel the
	// uploads still running before it closes their connections, with server.ErrStopping as the cause: a request
	// cancelled otherwise is a client that went away, and is answered and counted as such.
	reqCtx, cancelRequests := context.WithCancelCause(context.Background())
	defer cancelRequests(server.ErrStopping)
	httpSrv := &http.Server{
		Handler:           srv.Routes(),
		ReadHeaderTimeout: time.Duration(cfg.Server.ReadHeaderTimeout),
		IdleTimeout:       time.Duration(cfg.Server.IdleTimeout),
		MaxHeaderBytes:    int(cfg.Server.MaxHeaderBytes),
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ConnContext:       auth.ConnContext, // the kernel's view of each peer, which every auth decision uses
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	// Uploads waiting for visibility answer 202 at once when the stop begins: the stop publishes them anyway.
	httpSrv.RegisterOnShutdown(srv.StopWaiting)

	schedCtx, stopSched := context.WithCancel(context.Background())
	defer stopSched()
	g, gctx := errgroup.WithContext(ctx)
	// The notifier stops only after the indexer has drained, so the last publishes are still handed to it.
	notifyCtx, stopNotify := context.WithCancel(context.Background())
	defer stopNotify()
	g.Go(func() error { return notifier.Run(notifyCtx) })
	g.Go(func() error { // returns after publishing what is pending
		err := sched.Run(schedCtx)
		stopNotify()
		return err
	})
	g.Go(func() error { return onHangup(gctx, audit, sched, log) })
	if serveDebug != nil {
		g.Go(func() error { return serveDebug(gctx) })
	}
	g.Go(func() error {
		if err := httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down: finishing uploads, then publishing pending repositories")
		daemon.SdNotify(false, daemon.SdNotifyStopping)
		srv.ShuttingDown() // /readyz turns 503 while the running uploads finish
		err := stopHTTP(httpSrv, srv, cancelRequests, time.Duration(cfg.Server.ShutdownTimeout), log)
		stopSched()
		return err
	})
	log.Info("listening", zap.String("version", version), zap.String("listen", cfg.Server.Listen),
		zap.String("top_dir", cfg.Repo.TopDir), zap.String("spool_dir", cfg.Server.SpoolDir),
		zap.Bool("direct_upload", cfg.Server.DirectUpload), zap.Bool("serve_repo", cfg.Server.ServeRepo),
		zap.Int("repos_to_index", queued))
	daemon.SdNotify(false, daemon.SdNotifyReady) // (false, nil) outside systemd
	return g.Wait()
}

// The failed-login limit: after loginFailures wrong passwords within loginWindow, an address gets 429 until its
// oldest failure leaves the window. Ten a minute is far more than a person mistyping and far too few to guess.
const (
	loginFailures = 10
	loginWindow   = time.Minute
)

// newAuthenticator builds who-may-upload from server.htpasswd and server.trusted_proxies, and logs the mode in
// force and the users whose hashes are weak (an operator should re-create them with htpasswd -B).
func newAuthenticator(s config.Server, log *zap.Logger) (*auth.Authenticator, error) {
	var h *auth.Htpasswd
	if s.Htpasswd != "" {
		var err error
		if h, err = auth.LoadHtpasswd(s.Htpasswd, log); err != nil {
			return nil, fmt.Errorf("server.htpasswd: %w", err)
		}
		h.CacheVerified(time.Duration(s.HtpasswdCache))
	}
	trust, err := auth.NewTrust(s.TrustedProxies, os.Getuid())
	if err != nil {
		return nil, err // config validated the same rules; this is only reached if the two disagree
	}
	a := auth.NewAuthenticator(h, trust, auth.NewLimiter(loginFailures, loginWindow, nil))
	log.Info("upload authentication", zap.String("mode", a.Mode()), zap.Strings("trusted_proxies", trust.Proxies()),
		zap.Int("proxy_uid", os.Getuid()))
	if h != nil {
		if weak := h.Weak(); len(weak) > 0 {
			log.Warn("htpasswd users with weak password hashes (apr1, md5-crypt or {SHA}, fast to brute-force from a stolen file): re-create them with htpasswd -B",
				zap.String("file", h.Path()), zap.Strings("users", weak))
		}
	}
	return a, nil
}

// stopHTTP stops taking requests and waits up to drain for the running ones to finish. Uploads still running
// then are cut off: their contexts are cancelled and their connections closed, and stopHTTP waits (up to
// config.AbortWait) until their handlers have returned, which is when the ingester has removed their partial
// spool files. That is a clean stop (nil): no cut-off upload had been answered, so nothing a client was told is
// stored can be lost, and the client sees its upload fail and retries. Only handlers that do not return in time
// make it an error.
func stopHTTP(httpSrv *http.Server, srv *server.Server, cancelRequests context.CancelCauseFunc, drain time.Duration, log *zap.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := httpSrv.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	running := srv.InFlight()
	cancelRequests(server.ErrStopping)
	if err := httpSrv.Close(); err != nil {
		return err
	}
	wctx, wcancel := context.WithTimeout(context.Background(), config.AbortWait)
	defer wcancel()
	if err := srv.Wait(wctx); err != nil {
		return fmt.Errorf("cut off requests still running after server.shutdown_timeout (%s): %w", drain, err)
	}
	log.Warn("server.shutdown_timeout reached: cut off the requests still running; none had been answered, so nothing acknowledged is lost",
		zap.Int("requests", running), zap.Duration("shutdown_timeout", drain))
	return nil
}

// signaturePolicy loads the keyring and logs the policy in force. Without require_signature every package passes:
// a signature that verifies against the keyring (when one is configured) is returned as signed_by, any other as
// claimed_key_id.
func signaturePolicy(r config.Repo, log *zap.Logger) (ingest.SignaturePolicy, error) {
	p := signature.Policy{Require: r.RequireSignature}
	if len(r.Keyring) > 0 {
		kr, err := signature.LoadKeyring(r.Keyring)
		if err != nil {
			return nil, fmt.Errorf("repo.keyring: %w", err)
		}
		p.Keyring = kr
		for _, k := range kr.Keys() {
			log.Info("trusted package signing key", zap.String("key_id", k.KeyID), zap.String("fingerprint", k.Fingerprint), zap.String("user", k.UserID))
		}
	}
	log.Info("package signature policy", zap.Bool("require_signature", p.Require), zap.Int("keyring_files", len(r.Keyring)))
	return p, nil
}

// listen opens "host:port" or "unix:/path". A stale socket from a crashed run is replaced; the socket is made
// group-writable so that the proxy's user, in the daemon's group, can connect and nobody else can.
func listen(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return net.Listen("tcp", addr)
	}
	// Only a socket is removed: a typo in the path must not delete a file.
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSocket != 0 {
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// retentionPolicy returns the retention rule of a repository directory (relative to top_dir). It runs after
// every created upload, so each directory's rule is worked out once (LocateRepo parses the layout and compiles
// regexps) and remembered: the configuration does not change while the daemon runs.
func retentionPolicy(cfg *config.Config) func(rel string) ingest.Retention {
	var rules sync.Map // rel → ingest.Retention
	return func(rel string) ingest.Retention {
		if r, ok := rules.Load(rel); ok {
			return r.(ingest.Retention)
		}
		channel := "" // without channels: the top-level rule
		if len(cfg.Repo.Channels) > 0 {
			channel, _, _, _ = cfg.LocateRepo(rel)
		}
		r := cfg.Repo.Retention.For(channel)
		rule := ingest.Retention{KeepVersions: r.KeepVersions, KeepDays: r.KeepDays}
		rules.Store(rel, rule)
		return rule
	}
}

// layoutCacheSize bounds cachedLayout's memory: OS releases are the uploader's to name, so the set of keys is not.
const layoutCacheSize = 4096

// cachedLayout returns repo.layout rendered (config.RenderLayout parses the template on each call, which an upload
// would pay every time), remembering up to layoutCacheSize answers; beyond that it renders without remembering.
func cachedLayout(cfg *config.Config) ingest.LayoutFunc {
	type result struct {
		rel string
		err error
	}
	var mu sync.Mutex
	cache := map[config.LayoutFields]result{}
	return func(channel, abbr, release, arch string) (string, error) {
		f := config.LayoutFields{OSAbbr: abbr, OSRelease: release, Arch: arch, Channel: channel}
		mu.Lock()
		r, ok := cache[f]
		mu.Unlock()
		if ok {
			return r.rel, r.err
		}
		rel, err := cfg.RenderLayout(f)
		mu.Lock()
		if len(cache) < layoutCacheSize {
			cache[f] = result{rel, err}
		}
		mu.Unlock()
		return rel, err
	}
}

// cachedLocate returns config.LocateRepo, remembering up to layoutCacheSize answers: it parses the layout and
// compiles a regexp per channel, arch and dist tag on each call, and with server.permissions every upload asks it
// where its repositories are. Beyond the bound it locates without remembering.
func cachedLocate(cfg *config.Config) func(rel string) (channel, osRelease, arch string, ok bool) {
	type result struct {
		channel, osRelease, arch string
		ok                       bool
	}
	var mu sync.Mutex
	cache := map[string]result{}
	return func(rel string) (string, string, string, bool) {
		mu.Lock()
		r, hit := cache[rel]
		mu.Unlock()
		if !hit {
			r.channel, r.osRelease, r.arch, r.ok = cfg.LocateRepo(rel)
			mu.Lock()
			if len(cache) < layoutCacheSize {
				cache[rel] = r
			}
			mu.Unlock()
		}
		return r.channel, r.osRelease, r.arch, r.ok
	}
}
