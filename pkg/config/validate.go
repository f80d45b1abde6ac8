package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"
)

// LayoutFields are the values a repo.layout template may use.
type LayoutFields struct {
	OSAbbr    string // dist tag abbreviation: "el", "fc"
	OSRelease string // major release: "9", "39"
	Arch      string // "x86_64", "aarch64", or "SRPMS" for source packages
	Channel   string // one of repo.channels ("testing", "stable"); "" when none are configured
}

var (
	archRe   = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	distRe   = regexp.MustCompile(`^[a-z]+$`)
	headerRe = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
)

// Validate reports every problem in c at once (errors.Join, in file order), each as "line N: key.path: what to
// do"; a problem with a key the file leaves out names the line of its section, or no line.
func (c *Config) Validate() error { return joinProblems(c.validate()) }

// lineFor is the line of key in the file, or of the nearest section above it that is there; 0 when none is.
func (c *Config) lineFor(key string) int {
	for k := key; k != ""; {
		if line, ok := c.lines[k]; ok {
			return line
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

func (c *Config) validate() []problem {
	var errs []problem
	bad := func(key, format string, args ...any) {
		errs = append(errs, problem{line: c.lineFor(key), key: key, msg: fmt.Sprintf(format, args...)})
	}

	s := &c.Server
	if err := checkListen(s.Listen); err != nil {
		bad("server.listen", "%v", err)
	}
	for _, u := range []struct{ key, path string }{{"server.upload_path", s.UploadPath}, {"server.repo_url", s.RepoURL}} {
		if !strings.HasPrefix(u.path, "/") || strings.ContainsAny(u.path, "{}*?#") {
			bad(u.key, "%q must be a URL path below / such as /upload, without {}*?#", u.path)
		}
	}
	if s.UploadPath != "" && s.UploadPath == s.RepoURL {
		bad("server.repo_url", "must differ from server.upload_path")
	}
	if strings.HasPrefix(s.RepoURL+"/", "/api/") || strings.HasPrefix(s.UploadPath+"/", "/api/") {
		bad("server.repo_url", "/api is reserved for the status API")
	}
	if !headerRe.MatchString(s.UploadHeader) {
		bad("server.upload_header", "%q is not a valid HTTP header name", s.UploadHeader)
	}
	if s.MaxUploadSize <= 0 {
		bad("server.max_upload_size", "must be positive, like 128MiB")
	}
	if s.MaxConcurrentUploads < 1 {
		bad("server.max_concurrent_uploads", "must be at least 1")
	}
	if s.QueueTimeout < 0 {
		bad("server.queue_timeout", "must be 0 (answer 503 at once) or a duration, like 30s")
	}
	if s.HtpasswdCache < 0 {
		bad("server.htpasswd_cache", "must be 0 (check every login against its hash) or a duration, like 5m")
	}
	if msg := checkDebugListen(s.DebugListen); msg != "" {
		bad("server.debug_listen", "%s", msg)
	}
	if s.MemoryLimit != 0 && s.MemoryLimit < minMemoryLimit {
		// Below this the garbage collector would run almost continuously; 0 is the way to turn the limit off.
		bad("server.memory_limit", "%s is too small to run in: use at least %s, or 0 to turn the limit off", s.MemoryLimit, Size(minMemoryLimit))
	}
	if s.UploadMinRate < 0 {
		bad("server.upload_min_rate", "must be 0 (off) or a rate in bytes per second, like 4KiB")
	}
	if s.MaxHeaderBytes < minHeaderBytes {
		bad("server.max_header_bytes", "%s is too small for ordinary requests: use at least %s", s.MaxHeaderBytes, Size(minHeaderBytes))
	}
	// The file's content (hash formats, line by line) is checked by auth at start; here only that it is there,
	// so that a typo in the path is reported together with every other problem.
	if h := s.Htpasswd; h != "" {
		switch fi, err := os.Stat(h); {
		case errors.Is(err, os.ErrNotExist):
			bad("server.htpasswd", "%s does not exist: create it with htpasswd -c -B %s USER", h, h)
		case err != nil:
			bad("server.htpasswd", "%v", err)
		case !fi.Mode().IsRegular():
			bad("server.htpasswd", "%s is not a regular file", h)
		}
	}
	for _, p := range s.TrustedProxies {
		if err := checkProxy(p); err != nil {
			bad("server.trusted_proxies", "%v", err)
		}
	}

	checkDir := func(key, dir string) {
		switch fi, err := os.Stat(dir); {
		case dir == "":
			bad(key, "must be set to an absolute directory")
		case !filepath.IsAbs(dir):
			bad(key, "%q must be an absolute path", dir)
		case errors.Is(err, os.ErrNotExist):
			bad(key, "%s does not exist: create it (mkdir -p %s) and give it to the daemon's user", dir, dir)
		case err != nil:
			bad(key, "%v", err)
		case !fi.IsDir():
			bad(key, "%s is not a directory", dir)
		}
	}
	c.validateClient(bad)
	checkDir("server.spool_dir", s.SpoolDir)
	checkDir("repo.top_dir", c.Repo.TopDir)
	if within(s.SpoolDir, c.Repo.TopDir) {
		bad("server.spool_dir", "%s lies inside repo.top_dir %s, where createrepo would index half-written uploads and the web server would publish them: move it beside top_dir on the same filesystem", s.SpoolDir, c.Repo.TopDir)
	} else if within(c.Repo.TopDir, s.SpoolDir) {
		bad("repo.top_dir", "%s lies inside server.spool_dir %s: keep them apart, side by side on one filesystem", c.Repo.TopDir, s.SpoolDir)
	}

	r := &c.Repo
	if _, err := c.RenderLayout(LayoutFields{OSAbbr: "el", OSRelease: "9", Arch: "x86_64", Channel: c.sampleChannel()}); err != nil {
		bad("repo.layout", "%v", err)
	}
	c.validateChannels(bad)
	c.validateOSReleases(bad)
	checkList := func(key string, list []string, re *regexp.Regexp, what string) {
		if len(list) == 0 {
			bad(key, "must list at least one %s", what)
		}
		seen := map[string]bool{}
		for _, v := range list {
			switch {
			case !re.MatchString(v):
				bad(key, "%q is not a valid %s", v, what)
			case seen[v]:
				bad(key, "%q is listed twice", v)
			}
			seen[v] = true
		}
	}
	checkList("repo.arches", r.Arches, archRe, "architecture")
	for _, a := range r.Arches {
		if a == "noarch" || a == "src" || a == "SRPMS" {
			bad("repo.arches", "%q is not a repository architecture: noarch packages go to every listed arch and sources to SRPMS", a)
		}
	}
	checkList("repo.dist_tags", r.DistTags, distRe, "dist tag abbreviation (lowercase letters, like el)")

	if r.RequireSignature && len(r.Keyring) == 0 {
		bad("repo.require_signature", "is on but repo.keyring lists no key file: export the signing key with gpg --export --armor KEYID > ci.asc and list it")
	}
	for _, k := range r.Keyring {
		if fi, err := os.Stat(k); err != nil || !fi.Mode().IsRegular() {
			bad("repo.keyring", "%s is not a readable file: export the key with gpg --export --armor KEYID > %s", k, k)
		}
	}

	for _, p := range c.retentionProblems() {
		bad(p.key, "%s", p.msg)
	}

	ix := &c.Indexer
	if len(ix.Command) > 0 && ix.Command[0] == "" {
		bad("indexer.command", "the program name is empty")
	}
	if sg := ix.Sign; sg != nil {
		if sg.KeyID == "" {
			bad("indexer.sign", "key_id is missing: name the signing key, best by fingerprint (gpg --list-secret-keys)")
		}
		if sg.PublicKey == "" { // a default for a section that only exists when set, so Default() cannot hold it
			sg.PublicKey = DefaultPublicKey
		}
		if filepath.Base(sg.PublicKey) != sg.PublicKey || strings.HasPrefix(sg.PublicKey, ".") {
			bad("indexer.sign", "public_key %q must be a plain file name (it is written into repo.top_dir)", sg.PublicKey)
		}
		if sg.GPGHome != "" {
			if fi, err := os.Stat(sg.GPGHome); err != nil || !fi.IsDir() {
				bad("indexer.sign", "gpg_home %s is not a directory", sg.GPGHome)
			}
		}
	}
	for _, d := range []struct {
		key string
		d   Duration
	}{{"indexer.quiet_period", ix.QuietPeriod}, {"indexer.max_delay", ix.MaxDelay},
		{"indexer.timeout", ix.Timeout}, {"indexer.shutdown_timeout", ix.ShutdownTimeout},
		{"server.upload_idle_timeout", s.UploadIdleTimeout}, {"server.read_header_timeout", s.ReadHeaderTimeout},
		{"server.idle_timeout", s.IdleTimeout}, {"server.shutdown_timeout", s.ShutdownTimeout}} {
		if d.d <= 0 {
			bad(d.key, "must be a positive duration, like 30s")
		}
	}
	if stop := c.StopTime(); stop > StopBudget {
		bad("indexer.shutdown_timeout", "the longest stop adds up to %s, more than the %s stop budget: %s (server.shutdown_timeout%s) + %s (cutting off what is left) + %s (indexer.shutdown_timeout) + %s (createrepo_c's SIGTERM-to-SIGKILL delay); systemd's TimeoutStopSec=%s would SIGKILL createrepo_c: lower the two shutdown_timeout keys",
			stop, StopBudget, s.ShutdownTimeout, c.lineOf("server.shutdown_timeout"), AbortWait, ix.ShutdownTimeout, KillDelay, UnitTimeoutStop)
	}
	if ix.MaxDelay < ix.QuietPeriod {
		bad("indexer.max_delay", "%s is shorter than indexer.quiet_period %s", ix.MaxDelay.String(), ix.QuietPeriod.String())
	}
	if ix.Workers < 1 {
		bad("indexer.workers", "must be at least 1")
	}
	if ri := time.Duration(ix.RescanInterval); ri < 0 || (ri > 0 && ri < MinRescanInterval) {
		bad("indexer.rescan_interval", "%s: use %s or more (each rescan lists every Packages/ directory), or 0 to turn rescans off", ri, MinRescanInterval)
	}

	c.validateNotify(bad)
	c.validatePermissions(bad)

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		bad("log.format", "%q is not one of json, console", c.Log.Format)
	}
	c.validateAudit(bad)
	c.validateStorage(bad)
	return errs
}

// The stop budget. On SIGTERM the daemon waits up to server.shutdown_timeout for in-flight requests, then cuts off
// the rest and waits up to AbortWait for their handlers to clean up, then lets the indexer publish pending changes
// for up to indexer.shutdown_timeout, after which a running createrepo_c gets SIGTERM and, KillDelay later,
// SIGKILL. The steps run one after another, so their sum is the longest stop. It must stay within StopBudget, which
// leaves a margin below the unit's TimeoutStopSec (UnitTimeoutStop) for the rest of the exit; past that systemd
// SIGKILLs createrepo_c too, and it leaves its .repodata/ lock behind. A test keeps these constants, the unit file
// and deploy/config.yml in step.
const (
	// UnitTimeoutStop is TimeoutStopSec= in deploy/systemd/rpm-ingestd.service.
	UnitTimeoutStop = 120 * time.Second
	// StopBudget is the most StopTime may add up to: UnitTimeoutStop less a 10 s margin.
	StopBudget = UnitTimeoutStop - 10*time.Second
	// AbortWait bounds the wait for cut-off request handlers to return and remove their partial spool files.
	AbortWait = 5 * time.Second
	// KillDelay is how long createrepo_c gets between SIGTERM and SIGKILL; cmd sets the runner's KillDelay to it.
	KillDelay = 10 * time.Second
)

// StopTime is the longest the daemon can take to stop with this configuration (see StopBudget).
func (c *Config) StopTime() time.Duration {
	return time.Duration(c.Server.ShutdownTimeout) + AbortWait + time.Duration(c.Indexer.ShutdownTimeout) + KillDelay
}

// lineOf returns ", line N" when key was set in the file, for messages that name a second key.
func (c *Config) lineOf(key string) string {
	if line, ok := c.lines[key]; ok {
		return fmt.Sprintf(", line %d", line)
	}
	return ""
}

// Lower bounds of sizes that cannot usefully be smaller.
const (
	minMemoryLimit = 64 << 20
	minHeaderBytes = 4 << 10
)

// String renders a Duration as Go duration text.
func (d Duration) String() string { return time.Duration(d).String() }

func checkListen(addr string) error {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if !filepath.IsAbs(path) {
			return fmt.Errorf("%q: a unix socket path must be absolute, like unix:/run/rpm-ingestd/rpm-ingestd.sock", addr)
		}
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%q is neither host:port nor unix:/path", addr)
	}
	return nil
}

// checkProxy accepts what auth.NewTrust accepts: "10.0.0.0/8", "2001:db8::/32" or a bare address. It refuses
// host bits under the mask (did the admin mean the host or the network?), zones, and IPv4-mapped IPv6 prefixes,
// which would never match since peers are unmapped. A test in cmd runs the same table through both.
func checkProxy(s string) error {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("%q: zones are not supported; write the address without %%zone", s)
		}
		return nil
	}
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a CIDR (like 10.0.0.0/8 or ::1/128) or an IP address", s)
	case p.Masked() != p:
		return fmt.Errorf("%q has host bits set; write %s for the network or %s for the host", s, p.Masked(), p.Addr())
	case p.Addr().Is4In6():
		return fmt.Errorf("%q is an IPv4-mapped IPv6 prefix; write the IPv4 CIDR", s)
	}
	return nil
}

// within reports whether dir is sub or lies below it (both absolute and clean).
func within(dir, sub string) bool {
	if dir == "" || sub == "" {
		return false
	}
	rel, err := filepath.Rel(sub, dir)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// ErrNoOSAbbr is returned (wrapped) by RenderLayout when repo.layout uses {{.OSAbbr}} and the package has none:
// its release was named by hand (os_release=9) because its Release has no dist tag. The uploader can fix it by
// naming the release with its dist tag (os_release=el9), so callers answer it as a client error, not a 500.
var ErrNoOSAbbr = errors.New("repo.layout uses {{.OSAbbr}} but the package has no dist tag: name the release with its dist tag, like os_release=el9")

// probeAbbr stands in for an empty OSAbbr to find out whether the layout's output depends on it.
const probeAbbr = "osabbr"

// RenderLayout executes repo.layout for f and returns the repository directory relative to top_dir. It refuses
// results that are empty, absolute or climb out of top_dir, so the tree stays inside top_dir whatever the template.
// With an empty f.OSAbbr, a layout whose result depends on .OSAbbr fails with ErrNoOSAbbr: rendered as is it
// would silently file an el9 package beside fc9's, or render a path like "/9/x86_64" that is refused anyway.
func (c *Config) RenderLayout(f LayoutFields) (string, error) {
	tmpl, err := template.New("layout").Option("missingkey=error").Parse(c.Repo.Layout)
	if err != nil {
		return "", fmt.Errorf("%q is not a valid template: %w", c.Repo.Layout, err)
	}
	render := func(f LayoutFields) (string, error) {
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, f); err != nil {
			return "", fmt.Errorf("%q: %w (fields: .OSAbbr, .OSRelease, .Arch, .Channel)", c.Repo.Layout, err)
		}
		return buf.String(), nil
	}
	if err := c.checkChannel(f.Channel); err != nil {
		return "", err
	}
	out, err := render(f)
	if err != nil {
		return "", err
	}
	if f.OSAbbr == "" {
		// Rendering once more with a stand-in tells whether the template reads .OSAbbr at all (directly, in an
		// {{if}}, through a variable), which no look at the template text would catch in every spelling.
		probe := f
		probe.OSAbbr = probeAbbr
		if with, err := render(probe); err != nil || with != out {
			return "", ErrNoOSAbbr
		}
	}
	clean := filepath.Clean(out)
	if out == "" || filepath.IsAbs(out) || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%q renders %q, which is not a directory below top_dir", c.Repo.Layout, out)
	}
	return clean, nil
}

// Notes returns remarks about a valid configuration that an operator should read but that do not stop the
// daemon: today, that uploads of packages without a dist tag will need the release named with its dist tag
// because repo.layout uses {{.OSAbbr}}. The caller logs them; config itself never logs.
func (c *Config) Notes() []string {
	var notes []string
	_, err := c.RenderLayout(LayoutFields{OSRelease: "9", Arch: "x86_64", Channel: c.sampleChannel()})
	if errors.Is(err, ErrNoOSAbbr) {
		notes = append(notes, fmt.Sprintf("repo.layout %q uses {{.OSAbbr}}: a package without a dist tag is accepted only when its upload names the release with one (os_release=el9 or X-OS-Release: el9), not with the bare number (os_release=9)", c.Repo.Layout))
		if len(c.Repo.OSReleases) > 0 {
			notes = append(notes, "repo.os_releases limits uploads, but no empty repositories are created at start: the layout uses {{.OSAbbr}}, and which distribution families each release exists for is not known")
		}
	}
	return notes
}

// checkDebugListen accepts "" (off), unix:/absolute/path, or a loopback host:port (127.0.0.0/8, ::1,
// localhost): the profiler shows the daemon's memory and stacks and costs CPU, so it is never served to a network.
// It returns why addr is refused, or "".
func checkDebugListen(addr string) string {
	if addr == "" {
		return ""
	}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if !filepath.IsAbs(path) {
			return fmt.Sprintf("%q: a unix socket path must be absolute, like unix:/run/rpm-ingestd/debug.sock", addr)
		}
		return ""
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Sprintf("%q is neither a loopback host:port (like 127.0.0.1:6060) nor unix:/path", addr)
	}
	if host == "localhost" {
		return ""
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback() {
		return ""
	}
	return fmt.Sprintf("%q is not a loopback address: the profiler may only listen on 127.0.0.1, ::1 or a unix socket", addr)
}
