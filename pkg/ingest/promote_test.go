package ingest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// newChannelEnv is an env with the channels testing (the default) and stable, and the layout
// {{.Channel}}/{{.OSRelease}}/{{.Arch}}.
func newChannelEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	return newEnv(t, func(o *Options) {
		o.Channels, o.DefaultChannel = []string{"testing", "stable"}, "testing"
		o.Layout = func(channel, _, release, arch string) (string, error) {
			return filepath.Join(channel, release, arch), nil
		}
		o.Locate = func(rel string) (string, string, string, bool) {
			parts := strings.Split(rel, "/")
			if len(parts) != 3 {
				return "", "", "", false
			}
			return parts[0], parts[1], parts[2], true
		}
		if mod != nil {
			mod(o)
		}
	})
}

// put uploads data to channel ("" for the default) as a streamed body.
func (e *env) put(t *testing.T, data []byte, channel string) *Result {
	t.Helper()
	res, err := e.in.Ingest(context.Background(), Request{Body: bytes.NewReader(data), Channel: channel})
	if err != nil {
		t.Fatalf("upload to %q: %v", channel, err)
	}
	return res
}

func TestUploadChannels(t *testing.T) {
	e := newChannelEnv(t, nil)
	tests := []struct {
		channel string
		want    string // path, or the error's text
		kind    error
	}{
		{"", "testing/9/x86_64/Packages/a-1.0-1.el9.x86_64.rpm", nil},
		{"testing", "testing/9/x86_64/Packages/b-1.0-1.el9.x86_64.rpm", nil},
		{"stable", "stable/9/x86_64/Packages/c-1.0-1.el9.x86_64.rpm", nil},
		{"prod", `channel "prod" is not configured: use one of testing, stable`, ErrUnknownChannel},
		{"../stable", `channel "../stable" is not configured`, ErrUnknownChannel},
	}
	for i, tc := range tests {
		t.Run(tc.channel, func(t *testing.T) {
			data := testrpm.Build(t, testrpm.Spec{Name: string(rune('a' + i)), Release: "1.el9", Arch: "x86_64"})
			res, err := e.in.Ingest(context.Background(), Request{SpoolPath: e.spoolFile(t, data), Channel: tc.channel})
			if tc.kind != nil {
				if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %v saying %q", err, tc.kind, tc.want)
				}
				return
			}
			if err != nil || res.Paths[0] != tc.want || res.Channel != strings.Split(tc.want, "/")[0] {
				t.Fatalf("got %+v, %v; want %s", res, err, tc.want)
			}
		})
	}
	e.assertSpoolEmpty(t) // the refused uploads' spool files too

	// Without channels, a channel in the request is ignored, as the upload path's extra segment always was.
	plain := newEnv(t, nil)
	res, err := plain.in.Ingest(context.Background(), Request{Body: bytes.NewReader(testrpm.Build(t, testrpm.Spec{Name: "p", Release: "1.el9", Arch: "x86_64"})), Channel: "whatever"})
	if err != nil || res.Paths[0] != "9/x86_64/Packages/p-1.0-1.el9.x86_64.rpm" || res.Channel != "" {
		t.Fatalf("without channels: %+v, %v", res, err)
	}
}

// build uploads the build hello-1.0-1.el9 to testing: the real rpmbuild x86_64 and source packages, an aarch64
// one, and a noarch package of the same name (filed into both arches).
func (e *env) build(t *testing.T) {
	t.Helper()
	e.put(t, fixture(t, "hello-1.0-1.el9.x86_64.rpm"), "testing")
	e.put(t, fixture(t, "hello-1.0-1.el9.aarch64.rpm"), "testing")
	e.put(t, fixture(t, "hello-1.0-1.el9.src.rpm"), "testing")
	e.put(t, testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "noarch"}), "testing")
}

// buildFiles are the files of that build, below a channel.
var buildFiles = []string{
	"9/SRPMS/Packages/hello-1.0-1.el9.src.rpm",
	"9/aarch64/Packages/hello-1.0-1.el9.aarch64.rpm",
	"9/aarch64/Packages/hello-1.0-1.el9.noarch.rpm",
	"9/x86_64/Packages/hello-1.0-1.el9.noarch.rpm",
	"9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm",
}

func inChannel(channel string, files []string) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = channel + "/" + f
	}
	return out
}

var helloBuild = PromoteRequest{From: "testing", To: "stable", Name: "hello", Version: "1.0", Release: "1.el9"}

func TestPromoteBuild(t *testing.T) {
	e := newChannelEnv(t, nil)
	e.build(t)
	e.dirty = nil

	res, err := e.in.Promote(context.Background(), helloBuild)
	if err != nil {
		t.Fatal(err)
	}
	want := inChannel("stable", buildFiles)
	if got := slices.Sorted(slices.Values(res.Paths)); !slices.Equal(got, want) || res.Status != Created {
		t.Fatalf("promoted %v (%s), want %v created", got, res.Status, want)
	}
	if got := e.treeFiles(t); !slices.Equal(got, append(slices.Clone(want), inChannel("testing", buildFiles)...)) {
		t.Errorf("tree:\n%s", strings.Join(got, "\n"))
	}
	for i, src := range res.Sources {
		a, _ := os.Stat(filepath.Join(e.top, src))
		b, _ := os.Stat(filepath.Join(e.top, res.Paths[i]))
		if !os.SameFile(a, b) { // hard links: promotion costs no space
			t.Errorf("%s is not a hard link of %s", res.Paths[i], src)
		}
		if !strings.HasPrefix(res.NEVRAs[i], "hello-1.0-1.el9.") || res.Repos[i] != filepath.Join(e.top, filepath.Dir(filepath.Dir(res.Paths[i]))) {
			t.Errorf("entry %d: %s %s", i, res.NEVRAs[i], res.Repos[i])
		}
	}
	wantDirty := []string{filepath.Join(e.top, "stable/9/SRPMS"), filepath.Join(e.top, "stable/9/aarch64"), filepath.Join(e.top, "stable/9/x86_64")}
	if got := slices.Sorted(slices.Values(res.Dirty)); !slices.Equal(got, wantDirty) {
		t.Errorf("Dirty %v, want %v", got, wantDirty)
	}
	if got := slices.Compact(slices.Sorted(slices.Values(e.dirty))); !slices.Equal(got, wantDirty) {
		t.Errorf("MarkDirty called for %v, want %v", got, wantDirty)
	}
	e.assertSpoolEmpty(t)

	// Again: everything is there, identical. A safe retry.
	res, err = e.in.Promote(context.Background(), helloBuild)
	if err != nil || res.Status != Present || len(res.Paths) != len(buildFiles) {
		t.Fatalf("second promotion: %+v, %v; want present", res, err)
	}
}

func TestPromoteArch(t *testing.T) {
	tests := []struct {
		arch string
		want []string
	}{
		{"src", []string{"stable/9/SRPMS/Packages/hello-1.0-1.el9.src.rpm"}},
		{"SRPMS", []string{"stable/9/SRPMS/Packages/hello-1.0-1.el9.src.rpm"}},
		{"noarch", []string{"stable/9/aarch64/Packages/hello-1.0-1.el9.noarch.rpm", "stable/9/x86_64/Packages/hello-1.0-1.el9.noarch.rpm"}},
		{"aarch64", []string{"stable/9/aarch64/Packages/hello-1.0-1.el9.aarch64.rpm"}},
	}
	for _, tc := range tests {
		t.Run(tc.arch, func(t *testing.T) {
			e := newChannelEnv(t, nil)
			e.build(t)
			req := helloBuild
			req.Arch = tc.arch
			res, err := e.in.Promote(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Sorted(slices.Values(res.Paths)); !slices.Equal(got, tc.want) {
				t.Errorf("promoted %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPromoteConflict: one file of the build already stored in stable with other bytes refuses the whole
// promotion with ErrExists, and nothing changes anywhere.
func TestPromoteConflict(t *testing.T) {
	e := newChannelEnv(t, nil)
	e.build(t)
	e.put(t, testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "noarch", Salt: "rebuilt"}), "stable")
	before := e.treeFiles(t)
	sums := map[string]string{}
	for _, f := range before {
		sum, _, err := fileSHA256(filepath.Join(e.top, f))
		if err != nil {
			t.Fatal(err)
		}
		sums[f] = sum
	}
	_, err := e.in.Promote(context.Background(), helloBuild)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "hello-1.0-1.el9.noarch.rpm is already stored with different content") {
		t.Fatalf("err = %v, want ErrExists naming the noarch package", err)
	}
	after := e.treeFiles(t)
	if !slices.Equal(after, before) {
		t.Errorf("the tree changed:\nbefore %v\nafter  %v", before, after)
	}
	for f, sum := range sums {
		if got, _, _ := fileSHA256(filepath.Join(e.top, f)); got != sum {
			t.Errorf("%s changed", f)
		}
	}
	e.assertSpoolEmpty(t)

	// With overwrite on, the same promotion replaces the conflicting file and places the rest.
	e2 := newChannelEnv(t, func(o *Options) { o.Overwrite = true })
	e2.build(t)
	e2.put(t, testrpm.Build(t, testrpm.Spec{Name: "hello", Release: "1.el9", Arch: "noarch", Salt: "rebuilt"}), "stable")
	res, err := e2.in.Promote(context.Background(), helloBuild)
	if err != nil || res.Status != Replaced {
		t.Fatalf("overwrite: %+v, %v", res, err)
	}
}

func TestPromoteRefusals(t *testing.T) {
	e := newChannelEnv(t, nil)
	e.build(t)
	outside := filepath.Join(filepath.Dir(e.top), "outside.rpm")
	if err := os.WriteFile(outside, testrpm.Build(t, testrpm.Spec{Name: "evil", Release: "1.el9", Arch: "x86_64"}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(e.top, "testing/9/x86_64/Packages/evil-1.0-1.el9.x86_64.rpm")); err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(filepath.Dir(e.top), "elsewhere")
	if err := os.MkdirAll(filepath.Join(outDir, "x86_64", "Packages"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outDir, "x86_64/Packages/hello-1.0-1.el9.x86_64.rpm"), fixture(t, "hello-1.0-1.el9.x86_64.rpm"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outDir, filepath.Join(e.top, "testing/7")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("hello-1.0-1.el9.x86_64.rpm", filepath.Join(e.top, "testing/9/x86_64/Packages/alias-1.0-1.el9.x86_64.rpm")); err != nil {
		t.Fatal(err)
	}
	// A file whose name claims another build than it holds (copied in by hand).
	if err := os.WriteFile(filepath.Join(e.top, "testing/9/x86_64/Packages/liar-1.0-1.el9.x86_64.rpm"), fixture(t, "hello-1.0-1.el9.x86_64.rpm"), 0o644); err != nil {
		t.Fatal(err)
	}
	epoch := uint32(3)
	with := func(f func(*PromoteRequest)) PromoteRequest { r := helloBuild; f(&r); return r }
	tests := []struct {
		name string
		req  PromoteRequest
		kind error
		msg  string
	}{
		{"unknown target", with(func(r *PromoteRequest) { r.To = "prod" }), ErrUnknownChannel, `channel "prod" is not configured: use one of testing, stable`},
		{"unknown source", with(func(r *PromoteRequest) { r.From = "../x" }), ErrUnknownChannel, `channel "../x" is not configured`},
		{"no source", with(func(r *PromoteRequest) { r.From = "" }), ErrBadUpload, `"from" is missing`},
		{"same channel", with(func(r *PromoteRequest) { r.To = "testing" }), ErrBadUpload, "from and to are both"},
		{"name climbs", with(func(r *PromoteRequest) { r.Name = "../../x" }), ErrBadUpload, "is not a valid package name"},
		{"release is ..", with(func(r *PromoteRequest) { r.Release = ".." }), ErrBadUpload, "is not a valid package release"},
		{"bad arch", with(func(r *PromoteRequest) { r.Arch = "ppc64le" }), ErrBadUpload, "is not one of repo.arches"},
		{"no dist tag", with(func(r *PromoteRequest) { r.Release = "1" }), ErrBadUpload, "has no dist tag"},
		{"not there", with(func(r *PromoteRequest) { r.Version = "2.0" }), ErrNotFound, "hello-2.0-1.el9 is not in channel testing"},
		{"not in that channel", with(func(r *PromoteRequest) { r.From, r.To = "stable", "testing" }), ErrNotFound, "is not in channel stable"},
		{"epoch differs", with(func(r *PromoteRequest) { r.Epoch = &epoch }), ErrNotFound, "has epoch 0, not 3"},
		{"symlink out of the tree", with(func(r *PromoteRequest) { r.Name = "evil" }), ErrForbidden, "is a symbolic link, not a stored package"},
		{"directory symlink out of the tree", with(func(r *PromoteRequest) { r.OSRelease = "7"; r.Arch = "x86_64" }), ErrForbidden, "cannot be opened inside repo.top_dir: path escapes from parent"},
		{"symlink inside the tree", with(func(r *PromoteRequest) { r.Name = "alias"; r.Arch = "x86_64" }), ErrForbidden, "is a symbolic link, not a stored package"},
		{"name lies", with(func(r *PromoteRequest) { r.Name = "liar"; r.Arch = "x86_64" }), ErrRejected, "holds hello-1.0-1.el9.x86_64, not what its name says"},
	}
	before := e.treeFiles(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.in.Promote(context.Background(), tc.req)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v saying %q", err, tc.kind, tc.msg)
			}
		})
	}
	if after := e.treeFiles(t); !slices.Equal(after, before) {
		t.Errorf("a refused promotion changed the tree:\nbefore %v\nafter  %v", before, after)
	}
	e.assertSpoolEmpty(t)

	noChannels := newEnv(t, nil)
	if _, err := noChannels.in.Promote(context.Background(), helloBuild); !errors.Is(err, ErrUnknownChannel) || !strings.Contains(err.Error(), "repo.channels lists none") {
		t.Errorf("without channels: %v", err)
	}
}

// TestPromoteAcrossFilesystems: where a link into the target fails with EXDEV (the channel is mounted on its
// own), the file is copied in, whole, under its final name, and no temporary copy is left.
func TestPromoteAcrossFilesystems(t *testing.T) {
	e := newChannelEnv(t, nil)
	e.build(t)
	stable := filepath.Join(e.top, "stable")
	e.tree.Link = func(oldname, newname string) error {
		// Only the staging directory is "on another filesystem" than stable/.
		if strings.HasPrefix(oldname, e.tree.StagingDir()) && strings.HasPrefix(newname, stable) {
			return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EXDEV}
		}
		return os.Link(oldname, newname)
	}
	res, err := e.in.Promote(context.Background(), helloBuild)
	if err != nil || res.Status != Created {
		t.Fatalf("%+v, %v", res, err)
	}
	for i, src := range res.Sources {
		a, _ := os.Stat(filepath.Join(e.top, src))
		b, _ := os.Stat(filepath.Join(e.top, res.Paths[i]))
		sa, _, _ := fileSHA256(filepath.Join(e.top, src))
		sb, _, _ := fileSHA256(filepath.Join(e.top, res.Paths[i]))
		if os.SameFile(a, b) || sa != sb || b.Mode().Perm() != 0o644 {
			t.Errorf("%s: want a 0644 copy of %s, got same inode %v, equal %v, mode %v", res.Paths[i], src, os.SameFile(a, b), sa == sb, b.Mode())
		}
	}
	if got := e.treeFiles(t); len(got) != 2*len(buildFiles) {
		t.Errorf("tree (a temporary copy left?):\n%s", strings.Join(got, "\n"))
	}
}
