package main

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/registry"
	pkgtree "github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
)

// openCountingTree counts Open (on s3 a download of the whole object) and can hold one in progress.
type openCountingTree struct {
	pkgtree.Tree
	opens   atomic.Int32
	hold    atomic.Bool // the next Open signals on entered and waits for release
	entered chan struct{}
	release chan struct{}
}

func (c *openCountingTree) Open(ctx context.Context, ref pkgtree.Ref) (pkgtree.Object, error) {
	c.opens.Add(1)
	if c.hold.CompareAndSwap(true, false) {
		c.entered <- struct{}{}
		<-c.release
	}
	return c.Tree.Open(ctx, ref)
}

// TestPackagePageSummaryReadsBounded: the package page is open to anyone, and reading a summary opens the package
// through the tree (on s3 a GET of the whole object, up to summaryMaxSize, spooled to local disk). A page shown
// again for the same stored bytes reads nothing again, and while one read runs another page shows no summary
// instead of starting a second download: a client reloading pages cannot turn each into a download.
func TestPackagePageSummaryReadsBounded(t *testing.T) {
	top := t.TempDir()
	pk := filepath.Join(top, "9", "x86_64", "Packages")
	if err := os.MkdirAll(pk, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c"} {
		data := testrpm.Build(t, testrpm.Spec{Name: n, Release: "1.el9", Arch: "x86_64"})
		if err := os.WriteFile(filepath.Join(pk, n+"-1.0-1.el9.x86_64.rpm"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ix := registry.NewIndex(top, nil)
	if _, err := ix.Build(""); err != nil {
		t.Fatal(err)
	}
	fs, err := fstree.New(fstree.Options{TopDir: top})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	tr := &openCountingTree{Tree: fs}
	cfg := &config.Config{}
	cfg.Server.RepoURL = "/repo"
	src := webSource{cfg: cfg, index: ix, tree: tr, summaries: newSummaryCache()}
	page := func(n string) string {
		p, ok := src.Package("9/x86_64/Packages/" + n + "-1.0-1.el9.x86_64.rpm")
		if !ok {
			t.Fatalf("no page for %s", n)
		}
		return p.Summary
	}

	for range 3 {
		if got := page("a"); got != "rpm-ingestd test package a" {
			t.Fatalf("summary %q", got)
		}
	}
	if n := tr.opens.Load(); n != 1 {
		t.Fatalf("three views of one unchanged package opened it %d times, want 1", n)
	}

	tr.entered, tr.release = make(chan struct{}), make(chan struct{})
	tr.hold.Store(true)
	done := make(chan string)
	go func() { done <- page("b") }()
	<-tr.entered // b's read is under way
	if got := page("c"); got != "" || tr.opens.Load() != 2 {
		t.Errorf("a page during another's read: summary %q, %d opens; want no summary and no second open", got, tr.opens.Load())
	}
	close(tr.release)
	if got := <-done; got != "rpm-ingestd test package b" {
		t.Errorf("summary of b %q", got)
	}
	if got := page("c"); got != "rpm-ingestd test package c" {
		t.Errorf("c once no read runs: %q", got)
	}
}
