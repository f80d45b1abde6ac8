package indexer

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
)

// mkRepo creates top/rel/Packages plus the given files (relative to the repo
// directory) and returns the repo directory.
func mkRepo(t *testing.T, top, rel string, files ...string) string {
	t.Helper()
	dir := filepath.Join(top, rel)
	if err := os.MkdirAll(filepath.Join(dir, "Packages"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func exists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Lstat(p)
	return err == nil
}

func TestMarkDirty(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "new", "9", "x86_64") // parents do not exist yet
	if err := MarkDirty(repo); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(repo, DirtyMarker)
	if !exists(t, marker) {
		t.Fatal("marker not created")
	}
	// Idempotent, and a no-op that keeps the original file.
	old := time.Unix(1000, 0)
	if err := os.Chtimes(marker, old, old); err != nil {
		t.Fatal(err)
	}
	if err := MarkDirty(repo); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(marker); err != nil || !fi.ModTime().Equal(old) {
		t.Fatalf("second MarkDirty touched the marker: %v %v", fi.ModTime(), err)
	}
}

func TestClaimMarker(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		want  []string // markers present after the claim
	}{
		{"dirty only", []string{DirtyMarker}, []string{IndexingMarker}},
		{"leftover indexing kept", []string{IndexingMarker}, []string{IndexingMarker}},
		{"both", []string{DirtyMarker, IndexingMarker}, []string{IndexingMarker}},
		{"none", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := mkRepo(t, t.TempDir(), "r", tc.files...)
			if err := fstree.ClaimMarker(repo); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range []string{DirtyMarker, IndexingMarker} {
				if exists(t, filepath.Join(repo, m)) {
					got = append(got, m)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("markers %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRecover(t *testing.T) {
	top := t.TempDir()
	clean := []string{"repodata/repomd.xml"}
	want := []string{
		mkRepo(t, top, "9/x86_64", append(clean, DirtyMarker)...),
		mkRepo(t, top, "9/aarch64", append(clean, IndexingMarker)...),
		mkRepo(t, top, "8/x86_64"), // no metadata yet
	}
	cleanRepo := mkRepo(t, top, "8/aarch64", clean...)      // clean: not scheduled, but known (Status)
	mkRepo(t, top, ".staging/9/x86_64", DirtyMarker)        // hidden: skipped
	mkRepo(t, top, "9/x86_64/repodata/x", DirtyMarker)      // inside repodata: skipped
	mkRepo(t, top, "9/x86_64/Packages/nested", DirtyMarker) // inside Packages: skipped
	if err := os.MkdirAll(filepath.Join(top, "9", "noarch-without-packages"), 0o755); err != nil {
		t.Fatal(err)
	}

	h := newHarness(t, testOptions())
	n, err := h.s.Recover(top)
	if err != nil {
		t.Fatal(err)
	}
	var got, known []string
	for _, st := range h.s.Status() {
		known = append(known, st.Dir)
		if st.DirtySince != nil {
			got = append(got, st.Dir)
		}
	}
	slices.Sort(want)
	if n != len(want) || !slices.Equal(got, want) {
		t.Fatalf("Recover = %d %v, want %d %v", n, got, len(want), want)
	}
	if wantKnown := slices.Sorted(slices.Values(append([]string{cleanRepo}, want...))); !slices.Equal(known, wantKnown) {
		t.Errorf("Status lists %v, want %v: every repository with metadata is known at start", known, wantKnown)
	}

	// Called before Run: the runs happen once Run's workers exist.
	h.clock.Advance(30 * time.Second)
	h.start()
	for range want {
		h.complete(h.nextCall(), nil)
	}
}

func TestRecoverMissingTop(t *testing.T) {
	h := newHarness(t, testOptions())
	if n, err := h.s.Recover(filepath.Join(t.TempDir(), "absent")); err == nil || n != 0 {
		t.Fatalf("Recover = %d, %v; want 0 and an error", n, err)
	}
}
