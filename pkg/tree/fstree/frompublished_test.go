package fstree

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// writeRepomd publishes, in repoDir/repodata, a repomd.xml with one entry per type (href repodata/<type>.xml.gz, or
// the href itself when the type is given as "type=href") and those files.
func writeRepomd(t *testing.T, repoDir string, types ...string) {
	t.Helper()
	rd := filepath.Join(repoDir, "repodata")
	if err := os.MkdirAll(rd, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<repomd xmlns="http://linux.duke.edu/metadata/repo">` + "\n")
	for _, typ := range types {
		href := "repodata/" + typ + ".xml.gz"
		if ty, h, ok := strings.Cut(typ, "="); ok {
			typ, href = ty, h
		}
		fmt.Fprintf(&b, "  <data type=%q><location href=%q/></data>\n", typ, href)
		if name, ok := tree.RepodataName(href); ok {
			if err := os.WriteFile(filepath.Join(rd, name), []byte(typ), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	b.WriteString("</repomd>\n")
	if err := os.WriteFile(filepath.Join(rd, "repomd.xml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

type previousMetadata interface{ PreviousMetadata() string }

// TestBeginFromPublished: Output is left empty, and the Work names the repository for createrepo_c's
// --update-md-path, only when the published generation is package metadata alone (primary, filelists, other and
// their variants at plain repodata/ names); additional metadata (which --keep-all-metadata carries only from
// Output), an href elsewhere or an unreadable repomd.xml seed Output as BeginRetaining does. A repository never
// published has nothing to load.
func TestBeginFromPublished(t *testing.T) {
	tests := []struct {
		name       string
		repomd     []string // nil: no repomd.xml; {"garbage"}: not XML
		wantSeeded bool
		wantPrev   bool
	}{
		{"package metadata only", []string{"primary", "filelists", "other", "primary_db", "other_zck"}, false, true},
		{"updateinfo", []string{"primary", "filelists", "other", "updateinfo"}, true, false},
		{"comps group", []string{"primary", "filelists", "other", "group_gz"}, true, false},
		{"modules", []string{"primary", "filelists", "other", "modules"}, true, false},
		{"href outside repodata/", []string{"primary=../primary.xml.gz", "filelists", "other"}, true, false},
		{"no repomd.xml", nil, false, false},
		{"unreadable repomd.xml", []string{"garbage"}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, pkgs := newMarkRepo(t)
			dir := filepath.Dir(pkgs)
			switch {
			case len(tc.repomd) == 1 && tc.repomd[0] == "garbage":
				writeRepomd(t, dir)
				if err := os.WriteFile(filepath.Join(dir, "repodata", "repomd.xml"), []byte("<repomd"), 0o644); err != nil {
					t.Fatal(err)
				}
			case tc.repomd != nil:
				writeRepomd(t, dir, tc.repomd...)
			}
			ctx := context.Background()
			l, err := tr.TryLock(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release()
			w, err := tr.BeginFromPublished(ctx, l, 10*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			_, statErr := os.Stat(filepath.Join(w.Output(), "repodata"))
			if seeded := statErr == nil; seeded != tc.wantSeeded {
				t.Errorf("Output/repodata exists: %t, want %t", seeded, tc.wantSeeded)
			}
			if _, err := os.Stat(w.Output()); err != nil {
				t.Errorf("no Output directory for createrepo_c: %v", err)
			}
			want := ""
			if tc.wantPrev {
				want = dir
			}
			if got := w.(previousMetadata).PreviousMetadata(); got != want {
				t.Errorf("PreviousMetadata() = %q, want %q", got, want)
			}
			if len(w.Packages()) != 3 {
				t.Errorf("Packages() = %+v, want the 3 of Packages/", w.Packages())
			}
		})
	}
}

// TestBeginFromPublishedMark: with Output left empty, the mark Publish judges changes by is still taken before the
// listing: a package added during the run leaves a pending change, none added leaves none.
func TestBeginFromPublishedMark(t *testing.T) {
	for _, change := range []bool{false, true} {
		t.Run(fmt.Sprintf("changed=%t", change), func(t *testing.T) {
			tr, pkgs := newMarkRepo(t)
			dir := filepath.Dir(pkgs)
			writeRepomd(t, dir, "primary", "filelists", "other")
			ctx := context.Background()
			l, err := tr.TryLock(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release()
			w, err := tr.BeginFromPublished(ctx, l, 10*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if w.(previousMetadata).PreviousMetadata() != dir {
				t.Fatal("Output was seeded; this test is about the unseeded Work")
			}
			if change {
				if err := os.WriteFile(filepath.Join(pkgs, "c.rpm"), []byte("c"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// What createrepo_c leaves: the new generation in Output/repodata.
			writeRepomd(t, w.Output(), "primary", "filelists", "other")
			if err := w.Publish(ctx); err != nil {
				t.Fatal(err)
			}
			if got := HasMarker(dir); got != change {
				t.Errorf("pending change recorded: %t, want %t", got, change)
			}
		})
	}
}
