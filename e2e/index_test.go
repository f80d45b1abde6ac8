package e2e

import (
	"net/http"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// TestIndexedTreeAfterRestart (issue 18 item 16): a restarted daemon lists every repository that has metadata
// at once, before any run or rescan, with its package count, and does not re-index it.
func TestIndexedTreeAfterRestart(t *testing.T) {
	s := newStack(t)
	const repo = "/repo/9/x86_64/"
	spec := testrpm.Spec{Name: "restarted", Release: "1.el9", Arch: "x86_64"}
	if r := s.do(t, http.MethodPut, "/upload/?wait=visible&publish=now", testrpm.Build(t, spec), nil, true); r.code != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.code, r.body)
	}
	s.waitIndexed(t, map[string]int{repo: 1}, repo)

	s.restartDaemon(t, defaultTiming)
	m, err := s.statuses()
	if err != nil {
		t.Fatal(err)
	}
	st, ok := m[repo]
	if !ok {
		t.Fatalf("GET /api/v1/repos right after a restart: %v, want %s listed", m, repo)
	}
	if st.Packages != 1 || st.Runs != 0 || st.DirtySince != nil || st.Running {
		t.Errorf("%s after a restart: %+v, want 1 package, known without a run", repo, st)
	}
}
