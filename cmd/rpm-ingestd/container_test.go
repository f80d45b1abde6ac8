package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
)

// There is no container engine here (nor in CI), so the container files are checked against each other and against
// the daemon's own rules instead: the Dockerfile, deploy/config.container.yml (baked into the image) and
// deploy/compose.yml must describe one consistent deployment. TestProbeAgainstRealDaemon proves the HEALTHCHECK's
// command works against a real daemon.

// dockerfile is the parsed part of the Dockerfile the checks need.
type dockerfile struct {
	text        string            // the whole file
	instr       []string          // instructions with continuations joined, comments dropped
	args        map[string]string // ARG defaults
	comments    string            // every comment line, joined
	stopTimeout []int             // every --stop-timeout N mentioned (comments)
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	d := dockerfile{text: string(b), args: map[string]string{}}
	var cur string
	var comments []string
	for _, l := range strings.Split(d.text, "\n") {
		trim := strings.TrimSpace(l)
		if strings.HasPrefix(trim, "#") {
			comments = append(comments, trim)
			continue
		}
		if cont, ok := strings.CutSuffix(trim, "\\"); ok {
			cur += cont + " "
			continue
		}
		if cur += trim; strings.TrimSpace(cur) != "" {
			d.instr = append(d.instr, strings.Join(strings.Fields(cur), " "))
		}
		cur = ""
	}
	d.comments = strings.Join(comments, "\n")
	for _, in := range d.instr {
		if rest, ok := strings.CutPrefix(in, "ARG "); ok {
			k, v, _ := strings.Cut(rest, "=")
			d.args[k] = v
		}
	}
	for _, m := range regexp.MustCompile(`--stop-timeout (\d+)`).FindAllStringSubmatch(d.text, -1) {
		n, _ := strconv.Atoi(m[1])
		d.stopTimeout = append(d.stopTimeout, n)
	}
	return d
}

// instructions returns the instructions starting with keyword.
func (d dockerfile) instructions(keyword string) []string {
	var out []string
	for _, in := range d.instr {
		if strings.HasPrefix(in, keyword+" ") {
			out = append(out, in)
		}
	}
	return out
}

type composeFile struct {
	Services map[string]struct {
		Image           string   `yaml:"image"`
		Volumes         []string `yaml:"volumes"`
		StopGracePeriod string   `yaml:"stop_grace_period"`
		Ports           []string `yaml:"ports"`
		Networks        map[string]struct {
			IPv4Address string `yaml:"ipv4_address"`
		} `yaml:"networks"`
	} `yaml:"services"`
	Networks map[string]struct {
		IPAM struct {
			Config []struct {
				Subnet string `yaml:"subnet"`
			} `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
}

func readContainerConfig(t *testing.T) *config.Config {
	t.Helper()
	b, err := os.ReadFile("../../deploy/config.container.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(b) // not Load: its paths exist only in the image
	if err != nil {
		t.Fatalf("deploy/config.container.yml: %v", err)
	}
	return cfg
}

// TestContainerStopTimeoutAgrees: every stop timeout the container files name is the unit's TimeoutStopSec (the
// budget the daemon enforces at start, config.StopBudget, plus its margin), the container configuration's longest
// stop fits in it, and the figure its comment gives is the real one.
func TestContainerStopTimeoutAgrees(t *testing.T) {
	want := int(config.UnitTimeoutStop / time.Second)
	d := readDockerfile(t)
	cfgText, err := os.ReadFile("../../deploy/config.container.yml")
	if err != nil {
		t.Fatal(err)
	}
	var all []int
	all = append(all, d.stopTimeout...)
	for _, m := range regexp.MustCompile(`--stop-timeout (\d+)`).FindAllStringSubmatch(string(cfgText), -1) {
		n, _ := strconv.Atoi(m[1])
		all = append(all, n)
	}
	if len(d.stopTimeout) == 0 {
		t.Errorf("the Dockerfile names no --stop-timeout: docker's default of 10s kills the daemon mid-index")
	}
	for _, n := range all {
		if n != want {
			t.Errorf("--stop-timeout %d in the container files, want %d (config.UnitTimeoutStop)", n, want)
		}
	}
	cfg := readContainerConfig(t)
	stop := cfg.StopTime()
	if stop > config.StopBudget {
		t.Errorf("config.container.yml: longest stop %s is over the %s budget", stop, config.StopBudget)
	}
	// The comment states the figure: "... = 95s".
	stated := regexp.MustCompile(`\+ 10s = (\d+)s`).FindSubmatch(cfgText)
	if stated == nil || string(stated[1]) != strconv.Itoa(int(stop/time.Second)) {
		t.Errorf("config.container.yml's comment says the longest stop is %q, want %ds", stated, int(stop/time.Second))
	}

	var c composeFile
	decodeFile(t, "../../deploy/compose.yml", &c)
	grace, err := time.ParseDuration(c.Services["rpm-ingestd"].StopGracePeriod)
	if err != nil || grace != config.UnitTimeoutStop {
		t.Errorf("deploy/compose.yml: rpm-ingestd stop_grace_period %q, want %s", c.Services["rpm-ingestd"].StopGracePeriod, config.UnitTimeoutStop)
	}
}

// TestContainerHealthcheck: the image's HEALTHCHECK runs the built-in probe on the configuration file the
// daemon runs with (COPY destination and CMD's -c).
func TestContainerHealthcheck(t *testing.T) {
	d := readDockerfile(t)
	hc := d.instructions("HEALTHCHECK")
	if len(hc) != 1 {
		t.Fatalf("the Dockerfile has %d HEALTHCHECK instructions, want 1", len(hc))
	}
	var cfgPath string
	for _, in := range d.instructions("COPY") {
		if f := strings.Fields(in); len(f) == 3 && f[1] == "deploy/config.container.yml" {
			cfgPath = f[2]
		}
	}
	if cfgPath == "" {
		t.Fatal("the Dockerfile does not COPY deploy/config.container.yml")
	}
	wantCmd := fmt.Sprintf(`CMD ["/usr/bin/rpm-ingestd", "--probe", "-c", %q]`, cfgPath)
	if !strings.HasSuffix(hc[0], wantCmd) {
		t.Errorf("HEALTHCHECK is %q, want it to end in %s", hc[0], wantCmd)
	}
	if cmd := d.instructions("CMD"); len(cmd) != 1 || cmd[0] != fmt.Sprintf(`CMD ["-c", %q]`, cfgPath) {
		t.Errorf("CMD %q does not run the daemon on %s, which the HEALTHCHECK probes", cmd, cfgPath)
	}
	if ep := d.instructions("ENTRYPOINT"); len(ep) != 1 || ep[0] != `ENTRYPOINT ["/usr/bin/rpm-ingestd"]` {
		t.Errorf("ENTRYPOINT %q, want the binary the HEALTHCHECK runs", ep)
	}
	// The probe must not take longer than the HEALTHCHECK allows it.
	m := regexp.MustCompile(`--timeout=(\d+)s`).FindStringSubmatch(hc[0])
	if m == nil {
		t.Fatalf("HEALTHCHECK %q has no --timeout", hc[0])
	}
	if n, _ := strconv.Atoi(m[1]); time.Duration(n)*time.Second <= probeTimeout {
		t.Errorf("HEALTHCHECK --timeout=%ss is not above the probe's own timeout %s", m[1], probeTimeout)
	}
}

// TestContainerBaseImagesPinnable: each base image is named by an image ARG plus a digest ARG, the digest is
// either empty (unpinned; no registry was reachable to look one up) or a real sha256 digest, and the comment
// says how to get it for that very image.
func TestContainerBaseImagesPinnable(t *testing.T) {
	d := readDockerfile(t)
	from := regexp.MustCompile(`^FROM \$\{(\w+)_IMAGE\}\$\{(\w+)_DIGEST:\+@\}\$\{(\w+)_DIGEST\}( AS \w+)?$`)
	froms := d.instructions("FROM")
	if len(froms) == 0 {
		t.Fatal("no FROM")
	}
	for _, f := range froms {
		m := from.FindStringSubmatch(f)
		if m == nil || m[1] != m[2] || m[2] != m[3] {
			t.Errorf("%q: want FROM ${X_IMAGE}${X_DIGEST:+@}${X_DIGEST}, so the image can be pinned by digest", f)
			continue
		}
		image, digest := d.args[m[1]+"_IMAGE"], d.args[m[1]+"_DIGEST"]
		if image == "" || strings.Contains(image, "@") {
			t.Errorf("ARG %s_IMAGE=%q: want a tag without a digest", m[1], image)
		}
		if _, ok := d.args[m[1]+"_DIGEST"]; !ok {
			t.Errorf("no ARG %s_DIGEST", m[1])
		}
		if digest != "" && !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(digest) {
			t.Errorf("ARG %s_DIGEST=%q is not a sha256 digest", m[1], digest)
		}
		how := "skopeo inspect --format '{{.Digest}}' docker://" + image
		if !strings.Contains(d.comments, how) {
			t.Errorf("the Dockerfile's comment does not say how to get %s's digest (%s)", image, how)
		}
	}
}

// TestContainerTrustsOnlyNginx: the container configuration trusts single addresses, not ranges, and exactly the
// nginx container's fixed address in deploy/compose.yml, inside that network's subnet; the daemon's own address is
// not trusted. The listen port is the EXPOSEd one, the user file is mounted where the configuration reads it (and
// the image has a placeholder there, so --check-config passes at build), and the daemon publishes no port.
func TestContainerTrustsOnlyNginx(t *testing.T) {
	cfg := readContainerConfig(t)
	var c composeFile
	decodeFile(t, "../../deploy/compose.yml", &c)
	ngx, daemon := c.Services["nginx"], c.Services["rpm-ingestd"]
	var subnet netip.Prefix
	for name, n := range c.Networks {
		if len(n.IPAM.Config) != 1 {
			t.Fatalf("compose network %s: want one fixed subnet", name)
		}
		var err error
		if subnet, err = netip.ParsePrefix(n.IPAM.Config[0].Subnet); err != nil {
			t.Fatalf("compose network %s: %v", name, err)
		}
		nginxAddr, err := netip.ParseAddr(ngx.Networks[name].IPv4Address)
		if err != nil || !subnet.Contains(nginxAddr) {
			t.Fatalf("compose: nginx's ipv4_address %q is not a fixed address in %s", ngx.Networks[name].IPv4Address, subnet)
		}
		if got := cfg.Server.TrustedProxies; len(got) != 1 || got[0] != nginxAddr.String() {
			t.Errorf("config.container.yml trusted_proxies %q, want exactly nginx's address [%s]", got, nginxAddr)
		}
		if daemon.Networks[name].IPv4Address == nginxAddr.String() {
			t.Errorf("compose: the daemon and nginx share an address")
		}
	}
	if len(c.Networks) != 1 {
		t.Errorf("compose: %d networks, want the one both services share", len(c.Networks))
	}
	for _, p := range cfg.Server.TrustedProxies {
		if pr, err := netip.ParsePrefix(p); err == nil && pr.Bits() != pr.Addr().BitLen() {
			t.Errorf("config.container.yml trusts the range %s: everything on it could name spool files", p)
		}
	}
	if len(daemon.Ports) != 0 {
		t.Errorf("compose publishes the daemon's ports %v: anything reaching them bypasses nginx", daemon.Ports)
	}

	d := readDockerfile(t)
	_, port, err := net.SplitHostPort(cfg.Server.Listen)
	if err != nil {
		t.Fatalf("config.container.yml listen %q: %v", cfg.Server.Listen, err)
	}
	if expose := d.instructions("EXPOSE"); len(expose) != 1 || expose[0] != "EXPOSE "+port {
		t.Errorf("EXPOSE %q, want the configuration's port %s", expose, port)
	}
	if cfg.Server.Htpasswd == "" {
		t.Fatal("config.container.yml sets no server.htpasswd: nginx's login checks would all be refused")
	}
	if !strings.Contains(d.text, "install -m 0644 /dev/null "+cfg.Server.Htpasswd) {
		t.Errorf("the Dockerfile makes no placeholder at %s: --check-config fails at build", cfg.Server.Htpasswd)
	}
	mounted := false
	for _, v := range daemon.Volumes {
		if parts := strings.Split(v, ":"); len(parts) >= 2 && parts[1] == cfg.Server.Htpasswd {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("compose mounts no user file at %s into the daemon's container: %v", cfg.Server.Htpasswd, daemon.Volumes)
	}
}

func decodeFile(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(p))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}
