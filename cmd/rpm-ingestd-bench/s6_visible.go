package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// scenarioVisible is scenario 6: one CI upload with ?wait=visible&publish=now through nginx, its whole curl
// wall time against bare createrepo_c on the same repository plus one HTTP round trip through nginx.
func (b *bench) scenarioVisible() error {
	t, err := b.ensureTree(b.sz.repoSizes[0])
	if err != nil {
		return err
	}
	curl, err := lookTool("curl")
	if err != nil {
		return err
	}
	dir, err := b.scratch("s6")
	if err != nil {
		return err
	}
	defer b.cleanup(dir)
	// The default-like quiet period: publish=now must not wait for it.
	d, err := startDaemon(b.bin, daemonConf{dir: filepath.Join(dir, "daemon"), top: t.top, spool: filepath.Join(dir, "spool"),
		quiet: 30 * time.Second, maxDelay: 5 * time.Minute})
	if err != nil {
		return err
	}
	defer d.stop(syscall.SIGKILL, time.Second)
	ng, err := startNginx(b.nginx, b.src(), filepath.Join(dir, "nginx"), d)
	if err != nil {
		return err
	}
	defer ng.close()

	// One HTTP round trip through nginx, by the same curl, process start included: the median of five GETs of
	// repomd.xml.
	var rtts []time.Duration
	for range 5 {
		t0 := time.Now()
		if out, err := exec.Command(curl, "-sSf", "-o", "/dev/null", ng.base+"/repo/9/x86_64/repodata/repomd.xml").CombinedOutput(); err != nil {
			return fmt.Errorf("curl repomd.xml: %w: %s", err, out)
		}
		rtts = append(rtts, time.Since(t0))
	}
	rtt := median(rtts)

	body := filepath.Join(dir, "answer.json")
	t0 := time.Now()
	out, err := exec.Command(curl, "-sS", "-u", uploadUser+":"+uploadPass, "-H", "Accept: application/json", "-o", body, "-w", "%{http_code}",
		"-T", t.addP, ng.base+"/upload/?wait=visible&publish=now").CombinedOutput()
	took := time.Since(t0)
	if err != nil {
		return fmt.Errorf("curl upload: %w: %s", err, out)
	}
	code, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	raw, _ := os.ReadFile(body)
	var answer struct {
		Visible *bool `json:"visible"`
	}
	_ = json.Unmarshal(raw, &answer)
	count, listed, lerr := primaryCount(t.repo, t.add.name)
	d.stop(syscall.SIGKILL, time.Second)
	bare, err := b.createrepo(t, 3, "--update", "--no-database")
	if err != nil {
		return err
	}
	floor := bare.wall + rtt
	switch {
	case code != 201 && code != 202:
		return fmt.Errorf("upload with ?wait=visible: HTTP %d: %s", code, raw)
	case answer.Visible == nil:
		b.add(row{scen: "6", what: "CI upload ?wait=visible&publish=now: curl / (bare createrepo_c + 1 round trip)", ratio: "-",
			abs:    fmt.Sprintf("not measured: the daemon answered %d in %s without a \"visible\" field: ?wait=visible is not in this build (branch wait not merged yet)", code, ms(took)),
			target: "≤ 1.5×", met: "-"})
		return nil
	case !*answer.Visible || lerr != nil || !listed:
		return fmt.Errorf("upload answered visible=%t (HTTP %d) but primary.xml lists it: %t (%d packages, %v)", *answer.Visible, code, listed, count, lerr)
	}
	r := took.Seconds() / floor.Seconds()
	b.add(row{scen: "6", what: "CI upload ?wait=visible&publish=now: curl / (bare createrepo_c + 1 round trip)", ratio: x(r),
		abs:    fmt.Sprintf("curl %s (HTTP %d, visible); bare createrepo_c %s + round trip %s, at %d packages", ms(took), code, ms(bare.wall), ms(rtt), t.n),
		target: "≤ 1.5×", met: verdict(r <= 1.5)})
	return nil
}
