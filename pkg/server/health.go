package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"strings"
)

// Readiness: GET /readyz says whether an upload sent now could succeed. /healthz only says the process answers;
// a load balancer or an orchestrator wants to know more before sending uploads here, and to stop sending them
// while the daemon stops.

// readyProbe is the name pattern of the file /readyz creates and removes to prove a directory writable. It starts
// with a dot, so listings and createrepo_c's package scan skip it (it does not end in .rpm either), and it cannot
// match the ingester's spool pattern (.rpm-ingestd-*.part), whose leftovers are removed at start.
const readyProbe = ".rpm-ingestd-readyz-*"

// ShuttingDown tells the server that the daemon has begun to stop: from now on /readyz answers 503, so that a
// balancer stops sending uploads while the running ones finish. main calls it when the stop begins, before
// http.Server.Shutdown (which keeps answering requests on open connections for a while). Safe to call from any
// goroutine, more than once.
func (s *Server) ShuttingDown() { s.stopping.Store(true) }

// readyz answers 200 "ready", or 503 with every reason it is not, in one line.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	fmt.Fprintln(w, "ready")
}

// ready checks, each time it is asked, that the daemon is not stopping, that TopDir and SpoolDir take a new file,
// and that the indexer program is on PATH. It checks by doing, not by reading permission bits: root ignores them,
// and a read-only mount, a full inode table or an SELinux denial show only when a file is created. An empty
// directory or program in Options is not checked.
func (s *Server) ready() error {
	var problems []error
	if s.stopping.Load() {
		problems = append(problems, errors.New("shutting down"))
	}
	for _, d := range []struct{ key, dir string }{{"repo.top_dir", s.opts.TopDir}, {"server.spool_dir", s.opts.SpoolDir}} {
		if d.dir == "" {
			continue
		}
		if err := probeWritable(d.dir); err != nil {
			problems = append(problems, fmt.Errorf("%s %s is not writable: %w", d.key, d.dir, err))
		}
	}
	if p := s.opts.IndexerProgram; p != "" {
		if _, err := exec.LookPath(p); err != nil {
			problems = append(problems, fmt.Errorf("indexer.command %q is not found: %w", p, unwrapExec(err)))
		}
	}
	return errors.Join(problems...)
}

// probeWritable creates and removes a file in dir. The error names the cause without the probe's random name.
func probeWritable(dir string) error {
	f, err := os.CreateTemp(dir, readyProbe)
	if err != nil {
		return unwrapPath(err)
	}
	name := f.Name()
	if err := f.Close(); err != nil {
		os.Remove(name)
		return unwrapPath(err)
	}
	// A file we can create but not remove would pile up, one per probe: that is not ready either.
	return unwrapPath(os.Remove(name))
}

// unwrapPath drops the *fs.PathError around err: the caller's message already names the directory.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// unwrapExec drops the *exec.Error around err: the caller's message already names the program.
func unwrapExec(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}
