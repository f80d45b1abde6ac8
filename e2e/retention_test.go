package e2e

import (
	"net/http"
	"slices"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// TestRetentionPrunesThroughDnf runs the daemon with repo.retention keep_versions 2 behind nginx and uploads
// three builds each of an x86_64 and a noarch package, in an order that is not rpm's (1.10 after 1.9, a tilde
// pre-release last): dnf then lists only the two newest of each, in every arch, so the noarch copies were pruned
// together, and the upload answers name what went.
func TestRetentionPrunesThroughDnf(t *testing.T) {
	s := newStackWith(t, func(s *stack) { s.repoExtra = "  retention: {keep_versions: 2}" })
	dir := t.TempDir()
	for _, b := range []struct{ name, version, arch string }{
		{"tool", "1.9", "x86_64"}, {"tool", "1.10", "x86_64"}, {"tool", "1.10~rc1", "x86_64"}, {"tool", "1.11", "x86_64"},
		{"docs", "2.0", "noarch"}, {"docs", "2.0^git1", "noarch"}, {"docs", "2.0.1", "noarch"},
	} {
		file := testrpm.WriteFile(t, dir, testrpm.Spec{Name: b.name, Version: b.version, Release: "1.el9", Arch: b.arch})
		if r := s.curlUpload(t, file, s.base+"/upload/", curlAuth()...); r.code != http.StatusCreated {
			t.Fatalf("upload %s-%s: %d %s", b.name, b.version, r.code, r.body)
		}
	}
	s.waitIndexed(t, map[string]int{"/repo/9/x86_64/": 1, "/repo/9/aarch64/": 1}, "/repo/9/x86_64/", "/repo/9/aarch64/")

	want := map[string][]string{
		"/repo/9/x86_64/":  {"docs-2.0.1-1.el9.noarch", "docs-2.0^git1-1.el9.noarch", "tool-1.10-1.el9.x86_64", "tool-1.11-1.el9.x86_64"},
		"/repo/9/aarch64/": {"docs-2.0.1-1.el9.noarch", "docs-2.0^git1-1.el9.noarch"},
	}
	for repo, w := range want {
		got := s.repoquery(t, []string{repo})
		slices.Sort(got)
		if !slices.Equal(got, w) {
			t.Errorf("repoquery %s = %v, want %v", repo, got, w)
		}
	}
}
