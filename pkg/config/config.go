// Package config owns rpm-ingestd's YAML configuration: its typed structure, the built-in defaults, strict loading
// (unknown keys are errors) and validation that reports every problem at once, with key names and line numbers.
package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultPath is where the daemon looks for its configuration when -c is not given.
const DefaultPath = "/etc/rpm-ingestd/config.yml"

// Config is the whole configuration file. Every key is documented in docs/configuration.md (a test checks it).
type Config struct {
	Server  Server  `yaml:"server"`
	Repo    Repo    `yaml:"repo"`
	Indexer Indexer `yaml:"indexer"`
	Log     Log     `yaml:"log"`
	Notify  Notify  `yaml:"notify"`
	Storage Storage `yaml:"storage"`

	// lines maps each key path in the file ("server.listen", "notify.webhooks[0].url") to its line, so
	// validation errors can point at it.
	lines map[string]int
}

// Server configures the HTTP side.
type Server struct {
	Listen        string `yaml:"listen"`
	UploadPath    string `yaml:"upload_path"`
	UploadHeader  string `yaml:"upload_header"`
	SpoolDir      string `yaml:"spool_dir"`
	DirectUpload  bool   `yaml:"direct_upload"`
	MaxUploadSize Size   `yaml:"max_upload_size"`
	ServeRepo     bool   `yaml:"serve_repo"`
	RepoURL       string `yaml:"repo_url"`

	// MaxConcurrentUploads caps uploads being received or inspected at once; one more waits for a slot (before
	// its body is read) for up to QueueTimeout, then is answered 503. Each inspection may decode up to
	// rpmmeta.MaxDecodeBytes (32 MiB) of headers, so the default 16 bounds that part of the heap near 512 MiB,
	// within the default MemoryLimit.
	MaxConcurrentUploads int `yaml:"max_concurrent_uploads"`
	// QueueTimeout is how long an upload over MaxConcurrentUploads waits for a slot; 0 answers 503 at once.
	QueueTimeout Duration `yaml:"queue_timeout"`
	// DebugListen, when set, serves net/http/pprof on a unix socket (a path) or a loopback address
	// (127.0.0.1:6060, [::1]:6060); empty (the default) serves nothing.
	DebugListen string `yaml:"debug_listen"`
	// MemoryLimit is the Go runtime's soft memory limit (debug.SetMemoryLimit); 0 leaves it off. Keep the unit's
	// MemoryMax= above it: MemoryMax is a hard cgroup limit that also counts createrepo_c.
	MemoryLimit Size `yaml:"memory_limit"`
	// UploadIdleTimeout is the longest a direct upload may go without sending a byte, and the grace period before
	// UploadMinRate applies.
	UploadIdleTimeout Duration `yaml:"upload_idle_timeout"`
	// UploadMinRate is the average a direct upload must keep up after UploadIdleTimeout, in bytes per second; 0
	// turns it off. Without it a client sending a byte every few seconds holds a slot and a spool file forever.
	UploadMinRate Size `yaml:"upload_min_rate"`
	// ReadHeaderTimeout, IdleTimeout and MaxHeaderBytes go to net/http's Server.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	IdleTimeout       Duration `yaml:"idle_timeout"`
	MaxHeaderBytes    Size     `yaml:"max_header_bytes"`
	// ShutdownTimeout bounds the wait for in-flight requests on stop; uploads still running then are cut off
	// (never acknowledged, nothing kept). See StopBudget.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`

	// Htpasswd is the user file (nginx's auth_basic_user_file) that direct uploads and mutating requests
	// authenticate against, relative to the config file. Empty: only loopback and the unix socket may upload.
	Htpasswd string `yaml:"htpasswd"`
	// HtpasswdCache is how long a password that passed its check against Htpasswd is accepted again without
	// hashing it (auth.Htpasswd.CacheVerified); 0 hashes every login.
	HtpasswdCache Duration `yaml:"htpasswd_cache"`
	// TrustedProxies lists the CIDRs (or single addresses) of TCP peers that may name a spooled file in the
	// upload header and speak for the client (X-Real-IP, X-Remote-User). An empty list trusts no TCP peer;
	// unix-socket peers are judged by uid instead.
	TrustedProxies []string `yaml:"trusted_proxies"`

	// PublicURL is the URL clients reach the repository host at (https://repo.example.com), for the .repo file;
	// empty derives it in embedded mode (see Config.ClientURL).
	PublicURL string `yaml:"public_url"`
	// RepoFile is the name of the .repo file written into top_dir at start, served under repo_url.
	RepoFile string `yaml:"repo_file"`
	// MaxWait caps how long an upload with ?wait=visible may hold its answer.
	MaxWait Duration `yaml:"max_wait"`
	// Permissions says who may upload, promote and delete where (see permissions.go); absent (nil) lets every
	// authenticated user do everything.
	Permissions []PermissionRule `yaml:"permissions,omitempty"`
}

// DefaultTrustedProxies is server.trusted_proxies when the file leaves it out: loopback only. It equals
// auth.DefaultTrustedProxies (config imports nothing of ours; a test in cmd keeps the two in step).
func DefaultTrustedProxies() []string { return []string{"127.0.0.0/8", "::1/128"} }

// Repo configures where and how packages are stored.
type Repo struct {
	TopDir    string   `yaml:"top_dir"`
	Layout    string   `yaml:"layout"`
	Arches    []string `yaml:"arches"`
	DistTags  []string `yaml:"dist_tags"`
	Overwrite bool     `yaml:"overwrite"`
	// RequireSignature refuses (422) every package whose header signature does not verify against Keyring.
	// Without it, a signature that is present is only read and its key id recorded.
	RequireSignature bool `yaml:"require_signature"`
	// Keyring lists files of armored OpenPGP public keys (gpg --export --armor), relative to the config file.
	Keyring []string `yaml:"keyring"`
	// Retention removes old builds after each upload (see Retention); the default keeps every build.
	Retention Retention `yaml:"retention"`
	// Channels, when listed, split the tree into named channels (testing, stable, ...): every upload goes to
	// one, promotion copies builds between them, and Layout must place {{.Channel}}. Empty: no channels.
	Channels []string `yaml:"channels"`
	// DefaultChannel receives uploads whose path names no channel; required with Channels. See channels.go.
	DefaultChannel string `yaml:"default_channel"`
	// OSReleases, when listed ("8", "9", "10"), are the only OS releases uploads may be routed to; empty allows
	// any release the dist tag or ?os_release= names.
	OSReleases []string `yaml:"os_releases"`
}

// Indexer configures the createrepo runs.
type Indexer struct {
	Command         []string `yaml:"command"`
	QuietPeriod     Duration `yaml:"quiet_period"`
	MaxDelay        Duration `yaml:"max_delay"`
	Workers         int      `yaml:"workers"`
	Timeout         Duration `yaml:"timeout"`
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// RescanInterval is how often the tree is compared with the published metadata, so packages copied in or
	// deleted by hand get indexed; 0 turns rescans off.
	RescanInterval Duration `yaml:"rescan_interval"`
	// Sign, when set, signs each new repodata/repomd.xml before it is published (repo_gpgcheck).
	Sign *Sign `yaml:"sign"`
}

// Sign configures metadata signing with the real gpg.
type Sign struct {
	// GPGHome is gpg's --homedir (relative to the config file); empty leaves it to gpg ($GNUPGHOME, ~/.gnupg).
	GPGHome string `yaml:"gpg_home"`
	// KeyID names the secret key: a fingerprint is best, a key id or user id works.
	KeyID string `yaml:"key_id"`
	// PublicKey is the file name under top_dir the public key is exported to at start, for clients' gpgkey=.
	PublicKey string `yaml:"public_key"`
}

// DefaultPublicKey is the default Sign.PublicKey.
const DefaultPublicKey = "RPM-GPG-KEY-rpm-ingestd"

// Log configures zap.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
	// AuditFile receives one JSON line per upload decision (the upload registry), relative to the config file;
	// empty (the default) keeps no audit trail. It is reopened on SIGHUP, for logrotate.
	AuditFile string `yaml:"audit_file"`
}

// Default returns the built-in configuration: the production layout under /srv/repo, listening on loopback.
// Indexer.Command is left empty here and filled by the caller (cmd), which knows which createrepo is on PATH.
func Default() *Config {
	return &Config{
		Server: Server{
			Listen:        "127.0.0.1:5000",
			UploadPath:    "/upload",
			UploadHeader:  "X-Package-Name",
			SpoolDir:      "/srv/repo/incoming",
			DirectUpload:  false, // safe default: only what the proxy spooled, after its authentication
			MaxUploadSize: 128 << 20,
			ServeRepo:     false,
			RepoURL:       "/repo",

			MaxConcurrentUploads: 16,
			QueueTimeout:         Duration(30 * time.Second),
			MemoryLimit:          1 << 30,
			UploadIdleTimeout:    Duration(30 * time.Second),
			UploadMinRate:        4 << 10, // 32 kbit/s: slower than any real link, far faster than a trickle attack
			ReadHeaderTimeout:    Duration(10 * time.Second),
			IdleTimeout:          Duration(2 * time.Minute),
			MaxHeaderBytes:       64 << 10, // nginx and curl send well under 8 KiB; net/http's own default is 1 MiB
			ShutdownTimeout:      Duration(20 * time.Second),
			TrustedProxies:       DefaultTrustedProxies(),
			HtpasswdCache:        Duration(5 * time.Minute),
			RepoFile:             "rpm-ingestd.repo",
			MaxWait:              Duration(5 * time.Minute),
		},
		Repo: Repo{
			TopDir:   "/srv/repo/storage",
			Layout:   "{{.OSRelease}}/{{.Arch}}",
			Arches:   []string{"x86_64", "aarch64"},
			DistTags: []string{"el", "fc", "amzn", "ol", "an", "oe", "mga"},

			Retention: Retention{}, // keep every build: removing packages is opt-in
		},
		Indexer: Indexer{
			QuietPeriod:     Duration(30 * time.Second),
			MaxDelay:        Duration(5 * time.Minute),
			Workers:         2,
			Timeout:         Duration(10 * time.Minute),
			ShutdownTimeout: Duration(60 * time.Second),
			RescanInterval:  Duration(5 * time.Minute),
		},
		Log: Log{Level: "info", Format: "json"},

		Notify: DefaultNotify(), // no webhooks

		Storage: Storage{Backend: BackendFS},
	}
}

// Load reads path over Default(), strictly: unknown keys, wrong types, bad durations and sizes are errors that name
// the line. Relative directories are resolved against the directory of path, so a config file and the tree it
// names can move together. The result is validated; the error joins every problem found.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, ps := parse(data)
	if cfg == nil {
		return nil, fmt.Errorf("%s: %w", path, joinProblems(ps))
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	cfg.resolvePaths(filepath.Dir(abs))
	// Decode problems (unknown keys, bad values) and validation problems are reported together, in file order,
	// so an admin fixes the file in one pass.
	if err := joinProblems(append(ps, cfg.validate()...)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML over Default() without resolving paths or validating. When only some keys are wrong
// (unknown, or values of the wrong type) it returns the config decoded from the rest together with the error,
// which lists every such problem in file order; on a syntax error the config is nil.
func Parse(data []byte) (*Config, error) {
	cfg, ps := parse(data)
	return cfg, joinProblems(ps)
}

func parse(data []byte) (*Config, []problem) {
	cfg := Default()
	lines, ps, ok := decodeNode(data, cfg)
	if !ok {
		return nil, ps
	}
	cfg.lines = lines
	return cfg, ps
}

// resolvePaths makes relative directories absolute against base and trims trailing slashes from URL paths, so
// the rest of the program sees one spelling of each.
func (c *Config) resolvePaths(base string) {
	c.Server.UploadPath = strings.TrimRight(c.Server.UploadPath, "/")
	c.Server.RepoURL = strings.TrimRight(c.Server.RepoURL, "/")
	paths := []*string{&c.Server.SpoolDir, &c.Repo.TopDir, &c.Server.Htpasswd}
	paths = append(paths, &c.Log.AuditFile)
	for i := range c.Repo.Keyring {
		paths = append(paths, &c.Repo.Keyring[i])
	}
	if c.Indexer.Sign != nil {
		paths = append(paths, &c.Indexer.Sign.GPGHome)
	}
	if c.Storage.S3 != nil {
		paths = append(paths, &c.Storage.S3.CredentialsFile)
	}
	for _, p := range paths {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
}

// YAML renders the effective configuration, as --check-config prints it.
func (c *Config) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
