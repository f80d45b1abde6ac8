package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// uploadScript is the CI upload script under test, as shipped.
const uploadScript = "../deploy/ci/upload.sh"

// scriptResult is one run of upload.sh.
type scriptResult struct {
	code           int
	stdout, stderr string
}

// runUploadScript runs upload.sh with /bin/sh (dash on Debian: the POSIX shell, not bash) and env added to a
// minimal environment, passing args.
func runUploadScript(t *testing.T, env map[string]string, args ...string) scriptResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{uploadScript}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", uploadScript, err)
	}
	return scriptResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func (r scriptResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// TestUploadScriptAgainstStack runs deploy/ci/upload.sh against nginx and the daemon, as a CI job would: several
// packages (each waits and publishes), two arches, then a conflict, bad credentials, the daemon down and the
// daemon restarting while the script runs.
func TestUploadScriptAgainstStack(t *testing.T) {
	s := newStack(t)
	s.restartDaemon(t, patientTiming) // only the script's publish=now can publish anything
	env := map[string]string{"RPM_INGESTD_URL": s.base + "/", "RPM_INGESTD_USER": uploadUser, "RPM_INGESTD_PASSWORD": uploadPass}

	dir := mkdir(t, filepath.Join(s.dir, "ci-rpms"))
	var want []string
	for _, name := range []string{"cione", "citwo", "cithree"} {
		spec := testrpm.Spec{Name: name, Release: "1.el9", Arch: "x86_64"}
		testrpm.WriteFile(t, dir, spec)
		want = append(want, nevraOf(spec.FileName()))
	}
	slices.Sort(want)

	t.Run("FoundInDirAllStoredAllVisible", func(t *testing.T) {
		env := withEnv(env, "RPM_INGESTD_DIR", dir)
		r := runUploadScript(t, env)
		if r.code != 0 {
			t.Fatalf("upload.sh: %s", r)
		}
		out := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(out) != 3 {
			t.Fatalf("want one line per package: %s", r)
		}
		for i, l := range out {
			// Sorted by find | sort: cione, cithree, citwo.
			name := []string{"cione", "cithree", "citwo"}[i]
			prefix := filepath.Join(dir, name+"-1.0-1.el9.x86_64.rpm") + ": OK - Accessible as /repo/9/x86_64/Packages/" + name + "-1.0-1.el9.x86_64.rpm"
			if !strings.HasPrefix(l, prefix) {
				t.Errorf("line %d: %q, want it to start with %q", i, l, prefix)
			}
		}
		for i, l := range out {
			if !strings.HasSuffix(l, "(visible to dnf now)") {
				t.Errorf("upload %d did not wait for visibility: %q", i+1, l)
			}
		}
		// The script's exit 0 means installable now: dnf sees all three at once, with a ten-minute quiet period.
		if got := s.repoquery(t, []string{"/repo/9/x86_64/"}, "ci*"); !slices.Equal(got, want) {
			t.Errorf("dnf repoquery right after upload.sh: %q, want %q", got, want)
		}
	})

	t.Run("ConflictFailsWithServerMessage", func(t *testing.T) {
		other := mkdir(t, filepath.Join(s.dir, "ci-other"))
		f := testrpm.WriteFile(t, other, testrpm.Spec{Name: "cione", Release: "1.el9", Arch: "x86_64", Salt: "rebuilt"})
		r := runUploadScript(t, env, f)
		want := "upload.sh: " + f + ": HTTP 409: cione-1.0-1.el9.x86_64.rpm is already stored with different content"
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("got %s\nwant exit 1 and %q", r, want)
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		r := runUploadScript(t, withEnv(env, "RPM_INGESTD_PASSWORD", "wrong"), filepath.Join(dir, "cione-1.0-1.el9.x86_64.rpm"))
		if r.code != 1 || !strings.Contains(r.stderr, ": HTTP 401: ") {
			t.Errorf("got %s\nwant exit 1 with HTTP 401", r)
		}
	})

	t.Run("ServerErrorWhenDaemonDown", func(t *testing.T) {
		s.stopDaemon(t, false)
		defer s.startDaemon(t, patientTiming)
		f := testrpm.WriteFile(t, mkdir(t, filepath.Join(s.dir, "ci-down")), testrpm.Spec{Name: "cidown", Release: "1.el9", Arch: "x86_64"})
		r := runUploadScript(t, withEnv(env, "RPM_INGESTD_RETRIES", "1"), f)
		if r.code != 1 || !strings.Contains(r.stderr, ": HTTP 502 (the rpm-ingestd daemon did not answer the login check; retry in a few seconds); retry 1 of 1 in 5s") ||
			!strings.Contains(r.stderr, ": HTTP 502: the rpm-ingestd daemon did not answer the login check") {
			t.Errorf("got %s\nwant one retry after nginx's Retry-After, then exit 1 with nginx's 502 line", r)
		}
	})

	// Two arches: the script exits 0 only when each package is visible in its own repository. With the patient
	// timing nothing is published unless an upload asks for it, so an upload that did not wait and publish would
	// leave its repository without the package (or without metadata at all).
	t.Run("EveryArchVisibleAtExit", func(t *testing.T) {
		two := mkdir(t, filepath.Join(s.dir, "ci-arches"))
		a := testrpm.WriteFile(t, two, testrpm.Spec{Name: "ciarch", Release: "1.el9", Arch: "aarch64"})
		x := testrpm.WriteFile(t, two, testrpm.Spec{Name: "ciarch", Release: "1.el9", Arch: "x86_64"})
		r := runUploadScript(t, env, a, x)
		if r.code != 0 {
			t.Fatalf("upload.sh: %s", r)
		}
		for _, arch := range []string{"aarch64", "x86_64"} {
			want := "ciarch-1.0-1.el9." + arch
			// --forcearch: dnf on this x86_64 host would hide aarch64 packages.
			if got := s.repoquery(t, []string{"/repo/9/" + arch + "/"}, "--forcearch="+arch, "ciarch"); !slices.Contains(got, want) {
				t.Errorf("dnf repoquery %s right after upload.sh: %q, want %s", arch, got, want)
			}
		}
	})

	// The daemon restarts while the script runs: nginx answers 502 until it is back, and the script retries.
	t.Run("RetriesWhileDaemonRestarts", func(t *testing.T) {
		f := testrpm.WriteFile(t, mkdir(t, filepath.Join(s.dir, "ci-restart")), testrpm.Spec{Name: "cirestart", Release: "1.el9", Arch: "x86_64"})
		s.stopDaemon(t, false)
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "/bin/sh", uploadScript, f)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "RPM_INGESTD_RETRIES=20"}
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var stdout bytes.Buffer
		stderr := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = &stdout, stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Start the daemon again once the script has met the 502 (or ended, which the checks below report).
		for !strings.Contains(stderr.String(), "HTTP 502") {
			select {
			case err := <-done:
				t.Fatalf("upload.sh ended before the daemon was back: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
			case <-time.After(50 * time.Millisecond):
			}
		}
		s.startDaemon(t, patientTiming)
		if err := <-done; err != nil {
			t.Fatalf("upload.sh after the restart: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String(), f+": OK - Accessible as") || !strings.Contains(stdout.String(), "(visible to dnf now)") {
			t.Errorf("stdout %q, want the stored and visible line", stdout.String())
		}
		if got := s.repoquery(t, []string{"/repo/9/x86_64/"}, "cirestart"); len(got) != 1 {
			t.Errorf("dnf repoquery cirestart: %q, want it listed", got)
		}
	})
}

func mkdir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func withEnv(env map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// scripted is a stand-in server that answers uploads from a script of (status, Retry-After, body), one per
// request, and records what it received. It tests the script's handling of answers the real stack cannot be made
// to give on demand (503 busy, 500, 202).
type scripted struct {
	mu       sync.Mutex
	answers  []answer
	requests []*http.Request
	queries  []string
	auth     []string
}

type answer struct {
	status     int
	retryAfter string
	body       string
}

func newScripted(t *testing.T, answers ...answer) (*scripted, *httptest.Server) {
	sc := &scripted{answers: answers}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		sc.requests = append(sc.requests, r)
		sc.queries = append(sc.queries, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		u, p, _ := r.BasicAuth()
		sc.auth = append(sc.auth, u+":"+p)
		a := answer{status: http.StatusInternalServerError, body: "script ran out of answers\n"}
		if len(sc.answers) > 0 {
			a, sc.answers = sc.answers[0], sc.answers[1:]
		}
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.WriteHeader(a.status)
		fmt.Fprint(w, a.body)
	}))
	t.Cleanup(srv.Close)
	return sc, srv
}

func TestUploadScriptAnswers(t *testing.T) {
	dir := t.TempDir()
	a := testrpm.WriteFile(t, dir, testrpm.Spec{Name: "a", Release: "1.el9", Arch: "x86_64"})
	b := testrpm.WriteFile(t, dir, testrpm.Spec{Name: "b", Release: "1.el9", Arch: "x86_64"})
	ok := answer{status: 201, body: "OK - Accessible as /repo/9/x86_64/Packages/x.rpm (visible to dnf now)\n"}
	tests := []struct {
		name      string
		env       map[string]string
		answers   []answer
		files     []string
		code      int
		stderr    []string // substrings
		stdout    []string
		requests  int
		lastQuery string
	}{
		{"two files, the last waits", nil, []answer{ok, ok}, []string{a, b}, 0, nil,
			[]string{a + ": OK - Accessible as", b + ": OK - Accessible as"}, 2,
			"PUT /upload?wait=visible&publish=now&timeout=100s"},
		{"503 retried after Retry-After", nil, []answer{{503, "1", "busy: 16 uploads are already being received\n"}, {503, "0", "busy\n"}, ok}, []string{a}, 0,
			[]string{"upload.sh: " + a + ": HTTP 503 (busy: 16 uploads are already being received); retry 1 of 5 in 1s", "retry 2 of 5 in 0s"},
			[]string{a + ": OK"}, 3, "PUT /upload?wait=visible&publish=now&timeout=100s"},
		{"502 (daemon restarting) retried", nil, []answer{{502, "", "<html><head><title>502 Bad Gateway</title></head></html>\n"}, ok}, []string{a}, 0,
			[]string{"upload.sh: " + a + ": HTTP 502 (502 Bad Gateway); retry 1 of 5 in 5s"}, []string{a + ": OK"}, 2,
			"PUT /upload?wait=visible&publish=now&timeout=100s"},
		{"201 without visibility is not success", nil, []answer{{201, "", "OK - Accessible as /repo/9/x86_64/Packages/a.rpm (published to dnf in about 30s)\n"}}, []string{a}, 1,
			[]string{"upload.sh: " + a + ": stored (HTTP 201), but the server did not say it is visible to dnf: OK - Accessible as"}, nil, 1, ""},
		{"503 until retries run out", map[string]string{"RPM_INGESTD_RETRIES": "1"}, []answer{{503, "0", "busy\n"}, {503, "0", "still busy\n"}}, []string{a}, 1,
			[]string{"retry 1 of 1 in 0s", "upload.sh: " + a + ": HTTP 503: still busy"}, nil, 2, ""},
		{"500 with the daemon's line", nil, []answer{{500, "", "internal error; the daemon's log has the details under request id x/1\n"}}, []string{a}, 1,
			[]string{"upload.sh: " + a + ": HTTP 500: internal error; the daemon's log has the details under request id x/1"}, nil, 1, ""},
		{"a refusal stops the job", nil, []answer{{422, "", "package is not signed\n"}}, []string{a, b}, 1,
			[]string{": HTTP 422: package is not signed"}, nil, 1, ""},
		{"202: stored but not visible", map[string]string{"RPM_INGESTD_WAIT_TIMEOUT": "30s"}, []answer{{202, "", "Accepted - stored as /repo/9/x86_64/Packages/a.rpm, not yet visible\n"}}, []string{a}, 1,
			[]string{"upload.sh: " + a + ": stored, but not visible to dnf within 30s: Accepted - stored as"}, nil, 1,
			"PUT /upload?wait=visible&publish=now&timeout=30s"},
		{"upload path and release header", map[string]string{"RPM_INGESTD_UPLOAD_PATH": "/rpms/upload", "RPM_INGESTD_OS_RELEASE": "9"}, []answer{ok}, []string{a}, 0, nil, nil, 1,
			"PUT /rpms/upload?wait=visible&publish=now&timeout=100s"},
		{"no RPM_INGESTD_URL", map[string]string{"RPM_INGESTD_URL": ""}, nil, []string{a}, 2, []string{"set RPM_INGESTD_URL"}, nil, 0, ""},
		{"bad retries", map[string]string{"RPM_INGESTD_RETRIES": "many"}, nil, []string{a}, 2, []string{"RPM_INGESTD_RETRIES must be a whole number"}, nil, 0, ""},
		{"missing file", nil, nil, []string{a, filepath.Join(dir, "absent.rpm")}, 2, []string{"absent.rpm is not a readable file"}, nil, 0, ""},
		{"nothing found", map[string]string{"RPM_INGESTD_DIR": t.TempDir()}, nil, nil, 2, []string{"no *.rpm file given, and none found"}, nil, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc, srv := newScripted(t, tc.answers...)
			env := withEnv(map[string]string{"RPM_INGESTD_URL": srv.URL}, flatten(tc.env)...)
			r := runUploadScript(t, env, tc.files...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d", r.code, tc.code)
			}
			for _, w := range tc.stderr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
			for _, w := range tc.stdout {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q", w)
				}
			}
			sc.mu.Lock()
			defer sc.mu.Unlock()
			if len(sc.requests) != tc.requests {
				t.Errorf("%d requests, want %d: %q", len(sc.requests), tc.requests, sc.queries)
			}
			if tc.lastQuery != "" && (len(sc.queries) == 0 || sc.queries[len(sc.queries)-1] != tc.lastQuery) {
				t.Errorf("requests %q, want the last to be %q", sc.queries, tc.lastQuery)
			}
			// Every upload waits for its own visibility, not only the last.
			for _, q := range sc.queries {
				if tc.lastQuery != "" && !strings.HasSuffix(q, tc.lastQuery[strings.Index(tc.lastQuery, "?"):]) {
					t.Errorf("request %q does not wait for visibility like %q", q, tc.lastQuery)
				}
			}
			if tc.env["RPM_INGESTD_OS_RELEASE"] != "" && sc.requests[0].Header.Get("X-OS-Release") != tc.env["RPM_INGESTD_OS_RELEASE"] {
				t.Errorf("X-OS-Release %q", sc.requests[0].Header.Get("X-OS-Release"))
			}
			if t.Failed() {
				t.Logf("%s", r)
			}
		})
	}
}

func flatten(m map[string]string) []string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k, v)
	}
	return kv
}

// The credentials reach the server intact however they are spelled (curl's config quoting), and never appear on
// curl's command line.
func TestUploadScriptCredentials(t *testing.T) {
	f := testrpm.WriteFile(t, t.TempDir(), testrpm.Spec{Name: "a", Release: "1.el9", Arch: "x86_64"})
	const user, pass = `ci bot`, `p"a\ss$w'o rd\`
	sc, srv := newScripted(t, answer{status: 201, body: "OK - Accessible as /repo/9/x86_64/Packages/a.rpm (visible to dnf now)\n"})
	// A curl that records its arguments, then runs the real one.
	bin := t.TempDir()
	realCurl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is not installed: run `make deps`")
	}
	argsLog := filepath.Join(bin, "args")
	writeFile(t, filepath.Join(bin, "curl"), "#!/bin/sh\nprintf '%s\\n' \"$@\" >>"+argsLog+"\nexec "+realCurl+" \"$@\"\n")
	if err := os.Chmod(filepath.Join(bin, "curl"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", uploadScript, f)
	cmd.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "RPM_INGESTD_URL=" + srv.URL, "RPM_INGESTD_USER=" + user, "RPM_INGESTD_PASSWORD=" + pass}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("upload.sh: %v\n%s", err, out)
	}
	if got := sc.auth[0]; got != user+":"+pass {
		t.Errorf("server got credentials %q, want %q", got, user+":"+pass)
	}
	if args := readFile(argsLog); strings.Contains(args, pass) || strings.Contains(args, "ci bot") {
		t.Errorf("the credentials are on curl's command line:\n%s", args)
	}
}

// TestCISnippets checks the shipped CI files: upload.sh is clean POSIX sh for shellcheck, and the GitLab CI job,
// the GitHub Actions workflow and the Jenkinsfile stage are well formed and call it with the URL and credentials.
func TestCISnippets(t *testing.T) {
	shellcheck, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Fatal("shellcheck is not installed: run `make deps` (Debian: apt-get install shellcheck)")
	}
	if out, err := exec.Command(shellcheck, "-s", "sh", uploadScript).CombinedOutput(); err != nil {
		t.Errorf("shellcheck -s sh %s: %v\n%s", uploadScript, err, out)
	}

	var gitlab struct {
		Job struct {
			Image     struct{ Name string }
			Script    []string
			Variables map[string]string
		} `yaml:"upload-rpms"`
	}
	decodeYAML(t, "../deploy/ci/gitlab-ci.yml", &gitlab)
	if !slices.Contains(gitlab.Job.Script, "sh ci/upload.sh") || gitlab.Job.Image.Name == "" || gitlab.Job.Variables["RPM_INGESTD_DIR"] == "" {
		t.Errorf("gitlab-ci.yml: job upload-rpms %+v does not run sh ci/upload.sh in an image with a package dir", gitlab.Job)
	}

	var gh struct {
		On   map[string]any `yaml:"on"`
		Jobs map[string]struct {
			Steps []struct {
				Uses string
				Run  string
				Env  map[string]string
			}
		}
	}
	decodeYAML(t, "../deploy/ci/github-actions.yml", &gh)
	var runs []string
	for _, st := range gh.Jobs["upload"].Steps {
		if st.Run != "" {
			runs = append(runs, st.Run)
			for _, k := range []string{"RPM_INGESTD_URL", "RPM_INGESTD_USER", "RPM_INGESTD_PASSWORD"} {
				if st.Env[k] == "" {
					t.Errorf("github-actions.yml: the run step does not set %s", k)
				}
			}
		}
	}
	if _, ok := gh.On["workflow_call"]; !ok || !slices.Equal(runs, []string{"sh ci/upload.sh"}) {
		t.Errorf("github-actions.yml: on %v, run steps %q; want a reusable workflow whose one run step is sh ci/upload.sh", gh.On, runs)
	}

	jf := readFile("../deploy/ci/Jenkinsfile")
	for _, want := range []string{"stage('Upload RPMs')", "credentials('rpm-ingestd-upload')", "RPM_INGESTD_URL = ",
		`sh 'RPM_INGESTD_USER="$RPM_INGESTD_CRED_USR" RPM_INGESTD_PASSWORD="$RPM_INGESTD_CRED_PSW" sh ci/upload.sh'`} {
		if !strings.Contains(jf, want) {
			t.Errorf("Jenkinsfile lacks %q", want)
		}
	}
	if strings.Count(jf, "{") != strings.Count(jf, "}") {
		t.Errorf("Jenkinsfile: unbalanced braces")
	}
}

func decodeYAML(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}

// syncBuffer is a bytes.Buffer safe to read while a child process writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
