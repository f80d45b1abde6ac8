package ingest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testsign"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/signature"
)

// TestPromoteChecksSignaturePolicy: issue 18 item 3. A package copied by hand into testing (never uploaded, so never
// judged) must not reach stable through a promotion when require_signature is on: every promoted file is judged
// by the policy, one refused file refuses the whole promotion, and nothing is placed. A signed build passes and
// its signer is reported per file.
func TestPromoteChecksSignaturePolicy(t *testing.T) {
	key := testsign.NewKey(t, testsign.RSA2048)
	kr, err := signature.LoadKeyring([]string{key.ExportArmored(t)})
	if err != nil {
		t.Fatal(err)
	}
	e := newChannelEnv(t, func(o *Options) { o.Signatures = signature.Policy{Keyring: kr, Require: true} })

	// Copied by hand: an unsigned x86_64 package next to a signed noarch one of the same build.
	unsigned := testrpm.Build(t, testrpm.Spec{Name: "hand", Release: "1.el9", Arch: "x86_64"})
	dir := filepath.Join(e.top, "testing/9/x86_64/Packages")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hand-1.0-1.el9.x86_64.rpm"), unsigned, 0o644); err != nil {
		t.Fatal(err)
	}
	signedNoarch, _ := signedRPMSpec(t, testrpm.Spec{Name: "hand", Release: "1.el9", Arch: "noarch"}, &key)
	e.put(t, signedNoarch, "testing")
	e.dirty = nil

	req := PromoteRequest{From: "testing", To: "stable", Name: "hand", Version: "1.0", Release: "1.el9"}
	res, err := e.in.Promote(context.Background(), req)
	if !errors.Is(err, ErrRejected) || !errors.Is(err, signature.ErrUnsigned) ||
		!strings.Contains(err.Error(), "testing/9/x86_64/Packages/hand-1.0-1.el9.x86_64.rpm") ||
		!strings.Contains(err.Error(), "nothing was promoted") {
		t.Fatalf("Promote = %+v, %v; want ErrRejected (unsigned) naming the stored file", res, err)
	}
	for _, f := range e.treeFiles(t) {
		if strings.HasPrefix(f, "stable/") {
			t.Errorf("refused promotion placed %s", f)
		}
	}
	if len(e.dirty) != 0 {
		t.Errorf("refused promotion marked %v dirty", e.dirty)
	}

	// The signed part alone is promoted, with its signer.
	req.Arch = "noarch"
	res, err = e.in.Promote(context.Background(), req)
	if err != nil || res.Status != Created || len(res.SignedBy) != len(res.Paths) || len(res.Paths) != 2 {
		t.Fatalf("signed noarch: %+v, %v", res, err)
	}
	for i, by := range res.SignedBy {
		if by != key.KeyID || res.ClaimedKeyIDs[i] != "" {
			t.Errorf("file %s signed by %q claimed %q, want %s", res.Paths[i], by, res.ClaimedKeyIDs[i], key.KeyID)
		}
	}
}

// signedRPMSpec builds the package spec with testrpm and signs it with the real rpmsign.
func signedRPMSpec(t *testing.T, spec testrpm.Spec, signer *testsign.Key) ([]byte, string) {
	t.Helper()
	path := testrpm.WriteFile(t, t.TempDir(), spec)
	signer.SignRPM(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b, path
}

// TestPromoteAppliesTargetRetention: issue 18 item 12. With keep_versions 1 in stable, promoting 2.0 into a stable
// that holds 1.0 removes 1.0 there (a noarch build's copies in every arch, the source package too), reports what
// it removed, and leaves testing, whose rule keeps everything, alone. A promotion of something already present
// prunes nothing.
func TestPromoteAppliesTargetRetention(t *testing.T) {
	e := newChannelEnv(t, func(o *Options) {
		o.Retention.Policy = func(rel string) Retention {
			if strings.HasPrefix(rel, "stable/") {
				return Retention{KeepVersions: 1}
			}
			return Retention{}
		}
	})
	for _, v := range []string{"1.0", "2.0"} {
		for _, arch := range []string{"x86_64", "noarch"} {
			e.put(t, testrpm.Build(t, testrpm.Spec{Name: "app", Version: v, Release: "1.el9", Arch: arch}), "testing")
		}
	}
	promote := func(v string) *PromoteResult {
		t.Helper()
		res, err := e.in.Promote(context.Background(), PromoteRequest{From: "testing", To: "stable", Name: "app", Version: v, Release: "1.el9"})
		if err != nil {
			t.Fatalf("promote %s: %v", v, err)
		}
		return res
	}
	if res := promote("1.0"); len(res.Pruned) != 0 {
		t.Fatalf("first promotion pruned %v", res.Pruned)
	}
	e.dirty = nil
	res := promote("2.0")
	wantPruned := []string{
		"stable/9/aarch64/Packages/app-1.0-1.el9.noarch.rpm",
		"stable/9/x86_64/Packages/app-1.0-1.el9.noarch.rpm",
		"stable/9/x86_64/Packages/app-1.0-1.el9.x86_64.rpm",
	}
	if got := slices.Sorted(slices.Values(res.Pruned)); !slices.Equal(got, wantPruned) {
		t.Fatalf("pruned %v, want %v", got, wantPruned)
	}
	var stable, testing []string
	for _, f := range e.treeFiles(t) {
		if strings.HasPrefix(f, "stable/") {
			stable = append(stable, f)
		} else {
			testing = append(testing, f)
		}
	}
	wantStable := []string{
		"stable/9/aarch64/Packages/app-2.0-1.el9.noarch.rpm",
		"stable/9/x86_64/Packages/app-2.0-1.el9.noarch.rpm",
		"stable/9/x86_64/Packages/app-2.0-1.el9.x86_64.rpm",
	}
	if !slices.Equal(stable, wantStable) || len(testing) != 6 {
		t.Fatalf("stable holds %v (want %v), testing %d files (want all 6)", stable, wantStable, len(testing))
	}
	for _, repo := range []string{"stable/9/x86_64", "stable/9/aarch64"} {
		if !slices.Contains(res.Dirty, filepath.Join(e.top, repo)) {
			t.Errorf("%s not in Dirty %v", repo, res.Dirty)
		}
	}
	if again := promote("2.0"); again.Status != Present || len(again.Pruned) != 0 {
		t.Errorf("repeated promotion: %s, pruned %v", again.Status, again.Pruned)
	}
}
