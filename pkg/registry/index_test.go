package registry

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
)

// fakeLocate reads "<os_release>/<arch>", the default layout.
func fakeLocate(repo string) (string, string, bool) {
	rel, arch, ok := strings.Cut(repo, "/")
	if !ok || strings.Contains(arch, "/") {
		return "", "", false
	}
	return rel, arch, true
}

// put writes a file of size bytes at rel below top.
func put(t testing.TB, top, rel string, size int) {
	t.Helper()
	p := filepath.Join(top, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func upload(user, sum string, size int64, at time.Time, result string, paths ...string) Record {
	repos := make([]string, len(paths))
	for i, p := range paths {
		repos[i] = path.Dir(path.Dir(p))
	}
	return Record{Time: at, Action: ActionUpload, User: user, SHA256: sum, Size: size, Repos: repos, Paths: paths,
		Status: 201, Result: result, NEVRA: PackageName(path.Base(paths[0])) + "-x"}
}

// writeAudit writes records, and the raw lines in between, to an audit file through Audit itself.
func writeAudit(t *testing.T, file string, recs []Record, junk ...string) {
	t.Helper()
	a, err := Open(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := a.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	f, _ := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
	for _, j := range junk {
		f.WriteString(j)
	}
	f.Close()
}

func paths(es []Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Path)
	}
	return out
}

// TestBuildTreePlusRecords: the index lists what is in the tree now, with the record of each file where the
// audit trail has one that still fits.
func TestBuildTreePlusRecords(t *testing.T) { bothWays(t, testBuildTreePlusRecords) }

func testBuildTreePlusRecords(t *testing.T, viaTree bool) {
	dir := t.TempDir()
	top := filepath.Join(dir, "storage")
	const (
		a    = "9/x86_64/Packages/a-1.0-1.el9.x86_64.rpm"
		b    = "9/x86_64/Packages/b-1.0-1.el9.x86_64.rpm" // copied by hand: no record
		c    = "9/aarch64/Packages/c-2-1.el9.noarch.rpm"
		cx   = "9/x86_64/Packages/c-2-1.el9.noarch.rpm"
		d    = "8/x86_64/Packages/d-1-1.el8.x86_64.rpm" // recorded, then replaced by hand with other bytes
		gone = "8/x86_64/Packages/gone-1-1.el8.x86_64.rpm"
	)
	put(t, top, a, 10)
	put(t, top, b, 20)
	put(t, top, c, 30)
	put(t, top, cx, 30)
	put(t, top, d, 41)
	put(t, top, "9/x86_64/Packages/.staged.rpm", 1)              // hidden: createrepo's and our temporaries
	put(t, top, ".rpm-ingestd-tmp/Packages/x-1-1.x86_64.rpm", 1) // inside a dot directory
	put(t, top, "9/x86_64/repodata/Packages/y-1-1.x86_64.rpm", 1)
	put(t, top, "9/x86_64/Packages/notes.txt", 1)

	audit := filepath.Join(dir, "audit.log")
	writeAudit(t, audit, []Record{
		upload("alice", "aaa", 10, t0, ResultCreated, a),
		{Time: t0, Action: ActionUpload, Status: 409, Result: "conflict", Paths: []string{a}, SHA256: "zzz"}, // refused: changes nothing
		upload("bob", "ccc", 30, t0.Add(time.Hour), ResultCreated, cx, c),
		upload("carol", "ccc", 30, t0.Add(2*time.Hour), ResultExists, cx, c), // a retry: the first record stays
		upload("dave", "ddd", 40, t0, ResultCreated, d),
		upload("erin", "ggg", 5, t0, ResultCreated, gone),
	}, "{\"action\":\"upload\",\"time\":\"2026-11-01T1", "\n", "not json\n")

	ix := newIndex(t, top, fakeLocate, viaTree)
	st, err := ix.Build(audit)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 5 || st.Records != 6 || st.Bad != 2 || st.Attached != 3 {
		t.Errorf("stats %+v, want 5 files, 6 records, 2 bad lines, 3 attached", st)
	}
	page, err := ix.List(Query{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := paths(page.Items), []string{d, c, a, b, cx}; !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	byPath := map[string]Entry{}
	for _, e := range page.Items {
		byPath[e.Path] = e
	}
	ea := byPath[a]
	if ea.UploadedBy == nil || *ea.UploadedBy != "alice" || *ea.SHA256 != "aaa" || !ea.UploadedAt.Equal(t0) ||
		ea.OSRelease != "9" || ea.Arch != "x86_64" || ea.Name != "a" || ea.Repo != "9/x86_64" || ea.Size != 10 {
		t.Errorf("a: %+v", ea)
	}
	if e := byPath[c]; e.UploadedBy == nil || *e.UploadedBy != "bob" || !slices.Equal(e.Paths, []string{cx, c}) {
		t.Errorf("c keeps its first upload's record: %+v", e)
	}
	for _, p := range []string{b, d} {
		e := byPath[p]
		if e.UploadedBy != nil || e.UploadedAt != nil || e.SHA256 != nil || e.Paths != nil {
			t.Errorf("%s has a record, want none: %+v", p, e)
		}
	}
	if recent := ix.Recent(2); len(recent) != 2 || recent[0].User != "erin" || recent[1].User != "dave" {
		t.Errorf("recent %+v, want erin then dave", recent)
	}
}

func TestBuildWithoutAuditFile(t *testing.T) {
	top := t.TempDir()
	put(t, top, "9/x86_64/Packages/a-1-1.el9.x86_64.rpm", 1)
	for _, audit := range []string{"", filepath.Join(top, "..", "absent.log")} {
		ix := NewIndex(top, fakeLocate)
		st, err := ix.Build(audit)
		if err != nil || st.Files != 1 || st.Records != 0 {
			t.Errorf("Build(%q) = %+v, %v", audit, st, err)
		}
	}
	if _, err := NewIndex(filepath.Join(top, "absent"), nil).Build(""); err == nil {
		t.Error("Build of a missing top_dir succeeded")
	}
}

// listIndex builds an index over a small tree, with records for some files.
func listIndex(t *testing.T) *Index {
	t.Helper()
	top := t.TempDir()
	ix := NewIndex(top, fakeLocate)
	if _, err := ix.Build(""); err != nil {
		t.Fatal(err)
	}
	for i, p := range []string{
		"9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm",
		"9/x86_64/Packages/hello-1.1-1.el9.x86_64.rpm",
		"9/aarch64/Packages/hello-1.0-1.el9.aarch64.rpm",
		"8/x86_64/Packages/hello-1.0-1.el8.x86_64.rpm",
		"9/x86_64/Packages/world-2-1.el9.x86_64.rpm",
		"9/SRPMS/Packages/hello-1.0-1.el9.src.rpm",
	} {
		put(t, top, p, i+1)
		ix.Placed(upload("u", fmt.Sprint(i), int64(i+1), t0.Add(time.Duration(i)*time.Hour), ResultCreated, p))
	}
	return ix
}

func TestListFilters(t *testing.T) {
	ix := listIndex(t)
	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"all", Query{}, []string{
			"8/x86_64/Packages/hello-1.0-1.el8.x86_64.rpm",
			"9/SRPMS/Packages/hello-1.0-1.el9.src.rpm",
			"9/aarch64/Packages/hello-1.0-1.el9.aarch64.rpm",
			"9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm",
			"9/x86_64/Packages/hello-1.1-1.el9.x86_64.rpm",
			"9/x86_64/Packages/world-2-1.el9.x86_64.rpm"}},
		{"name", Query{Name: "world"}, []string{"9/x86_64/Packages/world-2-1.el9.x86_64.rpm"}},
		{"name is exact", Query{Name: "hell"}, []string{}},
		{"os_release", Query{OSRelease: "8"}, []string{"8/x86_64/Packages/hello-1.0-1.el8.x86_64.rpm"}},
		{"arch", Query{Arch: "SRPMS"}, []string{"9/SRPMS/Packages/hello-1.0-1.el9.src.rpm"}},
		{"name, os_release and arch", Query{Name: "hello", OSRelease: "9", Arch: "x86_64"}, []string{
			"9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm",
			"9/x86_64/Packages/hello-1.1-1.el9.x86_64.rpm"}},
		{"since is inclusive", Query{Since: t0.Add(4 * time.Hour)}, []string{
			"9/SRPMS/Packages/hello-1.0-1.el9.src.rpm",
			"9/x86_64/Packages/world-2-1.el9.x86_64.rpm"}},
		{"nothing", Query{OSRelease: "7"}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, err := ix.List(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := paths(page.Items); !slices.Equal(got, tc.want) || page.NextCursor != "" {
				t.Errorf("got %v (next %q), want %v", got, page.NextCursor, tc.want)
			}
		})
	}
}

// TestListPages: pages of 2 walk the whole list once, also when a package is added and one removed between pages.
func TestListPages(t *testing.T) {
	ix := listIndex(t)
	all, _ := ix.List(Query{})
	var got []string
	q := Query{Limit: 2}
	for pages := 0; ; pages++ {
		page, err := ix.List(q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) > 2 {
			t.Fatalf("page of %d items, limit 2", len(page.Items))
		}
		got = append(got, paths(page.Items)...)
		if page.NextCursor == "" {
			break
		}
		if pages == 0 {
			// Behind the cursor, and ahead of it: only the one ahead may show.
			ix.Placed(upload("u", "new0", 1, t0, ResultCreated, "0/x86_64/Packages/early-1-1.x86_64.rpm"))
			ix.Placed(upload("u", "new9", 1, t0, ResultCreated, "9/x86_64/Packages/zz-1-1.el9.x86_64.rpm"))
			ix.Removed("9/x86_64/Packages/hello-1.1-1.el9.x86_64.rpm")
		}
		q.Cursor = page.NextCursor
	}
	want := slices.DeleteFunc(paths(all.Items), func(p string) bool { return p == "9/x86_64/Packages/hello-1.1-1.el9.x86_64.rpm" })
	want = append(want, "9/x86_64/Packages/zz-1-1.el9.x86_64.rpm")
	if !slices.Equal(got, want) {
		t.Errorf("paged through %v\nwant %v", got, want)
	}

	// A page that ends exactly at the last match has no next cursor.
	if page, _ := ix.List(Query{Name: "hello", OSRelease: "9", Arch: "x86_64", Limit: 1}); page.NextCursor != "" {
		t.Errorf("single match: next cursor %q", page.NextCursor)
	}
	for _, bad := range []string{"!!!", "", "Zm9v\x00"} {
		if bad == "" {
			continue
		}
		if _, err := ix.List(Query{Cursor: bad}); !errors.Is(err, ErrBadCursor) {
			t.Errorf("cursor %q: %v, want ErrBadCursor", bad, err)
		}
	}
}

func TestListLimits(t *testing.T) {
	ix := NewIndex(t.TempDir(), fakeLocate)
	for i := range MaxLimit + 5 {
		ix.Placed(upload("u", fmt.Sprint(i), 1, t0, ResultCreated, fmt.Sprintf("9/x86_64/Packages/p%04d-1-1.el9.x86_64.rpm", i)))
	}
	for _, tc := range []struct{ limit, want int }{{0, DefaultLimit}, {-3, DefaultLimit}, {7, 7}, {MaxLimit + 1, MaxLimit}} {
		if page, _ := ix.List(Query{Limit: tc.limit}); len(page.Items) != tc.want || page.NextCursor == "" {
			t.Errorf("limit %d: %d items (next %q), want %d", tc.limit, len(page.Items), page.NextCursor, tc.want)
		}
	}
}

func TestPlacedKeepsFirstUploadOfSameBytes(t *testing.T) {
	top := t.TempDir()
	const p = "9/x86_64/Packages/a-1-1.el9.x86_64.rpm"
	put(t, top, p, 3)
	ix := NewIndex(top, fakeLocate)
	ix.Build("")
	if e, _ := ix.Get(p); e.UploadedBy != nil {
		t.Fatalf("hand-copied file has a record: %+v", e)
	}
	// A retry of the same bytes as a file copied by hand: the upload is now its record.
	ix.Placed(upload("first", "s1", 3, t0, ResultExists, p))
	ix.Placed(upload("second", "s1", 3, t0.Add(time.Hour), ResultExists, p))
	if e, _ := ix.Get(p); e.UploadedBy == nil || *e.UploadedBy != "first" || !e.UploadedAt.Equal(t0) {
		t.Errorf("after two uploads of the same bytes: %+v", e)
	}
	ix.Placed(upload("third", "s2", 4, t0.Add(2*time.Hour), ResultReplaced, p)) // overwrite
	if e, _ := ix.Get(p); *e.UploadedBy != "third" || e.Size != 4 {
		t.Errorf("after a replacement: %+v", e)
	}
	if got := ix.BySHA256("s2"); len(got) != 1 || got[0].Path != p {
		t.Errorf("BySHA256(s2) = %+v", got)
	}
	if got := ix.BySHA256("s1"); len(got) != 0 {
		t.Errorf("BySHA256(s1) = %+v, want none: replaced", got)
	}
	// Refusals change nothing.
	ix.Placed(Record{Action: ActionUpload, Status: 409, Result: "conflict", Paths: []string{"9/x86_64/Packages/z-1-1.el9.x86_64.rpm"}})
	if ix.Len() != 1 {
		t.Errorf("a refusal added an entry: %d", ix.Len())
	}
}

// TestSyncRepo: a publish event drops files gone from the tree, adds files copied in by hand (no record), and
// leaves alone a file placed after createrepo_c's scan (not in the event, but on disk).
func TestSyncRepo(t *testing.T) { bothWays(t, testSyncRepo) }

func testSyncRepo(t *testing.T, viaTree bool) {
	top := t.TempDir()
	const (
		kept    = "9/x86_64/Packages/kept-1-1.el9.x86_64.rpm"
		deleted = "9/x86_64/Packages/deleted-1-1.el9.x86_64.rpm"
		late    = "9/x86_64/Packages/late-1-1.el9.x86_64.rpm"
		manual  = "9/x86_64/Packages/manual-1-1.el9.x86_64.rpm"
		grown   = "9/x86_64/Packages/grown-1-1.el9.x86_64.rpm"
		other   = "9/aarch64/Packages/other-1-1.el9.aarch64.rpm"
	)
	for _, p := range []string{kept, deleted, late, grown, other} {
		put(t, top, p, 5)
	}
	ix := newIndex(t, top, fakeLocate, viaTree)
	ix.Build("")
	for _, p := range []string{kept, deleted, late, grown, other} {
		ix.Placed(upload("u", p, 5, t0, ResultCreated, p))
	}
	os.Remove(filepath.Join(top, deleted))
	put(t, top, manual, 7)
	put(t, top, grown, 9) // replaced by hand with other bytes
	ix.SyncRepo("9/x86_64", []string{"Packages/kept-1-1.el9.x86_64.rpm", "Packages/deleted-1-1.el9.x86_64.rpm",
		"Packages/manual-1-1.el9.x86_64.rpm", "Packages/grown-1-1.el9.x86_64.rpm", "Packages/.hidden.rpm", "../escape.rpm"})

	page, _ := ix.List(Query{})
	if got, want := paths(page.Items), []string{other, grown, kept, late, manual}; !slices.Equal(got, want) {
		t.Fatalf("after sync: %v, want %v", got, want)
	}
	for _, tc := range []struct {
		path   string
		record bool
	}{{kept, true}, {late, true}, {other, true}, {manual, false}, {grown, false}} {
		e, _ := ix.Get(tc.path)
		if (e.UploadedBy != nil) != tc.record {
			t.Errorf("%s: record %v, want %v", tc.path, e.UploadedBy != nil, tc.record)
		}
	}
	if e, _ := ix.Get(manual); e.Size != 7 || e.OSRelease != "9" || e.Name != "manual" {
		t.Errorf("manual: %+v", e)
	}
}

func TestRecentRing(t *testing.T) {
	ix := NewIndex(t.TempDir(), nil)
	if got := ix.Recent(5); len(got) != 0 {
		t.Fatalf("empty: %v", got)
	}
	for i := range recentMax + 10 {
		ix.Noted(Record{RequestID: fmt.Sprint(i)})
	}
	got := ix.Recent(3)
	if len(got) != 3 || got[0].RequestID != fmt.Sprint(recentMax+9) || got[2].RequestID != fmt.Sprint(recentMax+7) {
		t.Errorf("Recent(3) = %+v", got)
	}
	if all := ix.Recent(1000); len(all) != recentMax || all[recentMax-1].RequestID != "10" {
		t.Errorf("Recent(1000): %d records, oldest %q", len(all), all[len(all)-1].RequestID)
	}
}

func TestPackageName(t *testing.T) {
	for give, want := range map[string]string{
		"hello-1.0-1.el9.x86_64.rpm":            "hello",
		"python3-foo-bar-2.1-3.fc40.noarch.rpm": "python3-foo-bar",
		"kernel-5.14.0-1.el9.src.rpm":           "kernel",
		"odd.rpm":                               "odd",
		"a-1.x86_64.rpm":                        "a-1.x86_64",
		"-1-1.x86_64.rpm":                       "-1-1.x86_64",
	} {
		if got := PackageName(give); got != want {
			t.Errorf("PackageName(%q) = %q, want %q", give, got, want)
		}
	}
}

func TestRegistryRecordsOnlyWhatTheAuditWrote(t *testing.T) {
	top := t.TempDir()
	ix := NewIndex(top, fakeLocate)
	full, err := Open("/dev/full", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	rec := upload("u", "s", 1, t0, ResultCreated, "9/x86_64/Packages/a-1-1.el9.x86_64.rpm")
	if err := New(full, ix).Record(rec); err == nil {
		t.Fatal("Record succeeded with a failing audit file")
	}
	if ix.Len() != 0 || len(ix.Recent(1)) != 0 {
		t.Error("an unrecorded decision reached the index")
	}
	if err := New(nil, ix).Record(rec); err != nil || ix.Len() != 1 {
		t.Errorf("without an audit file: %v, %d entries", err, ix.Len())
	}
}

// BenchmarkList50k: queries against 50,000 packages in 200 repositories.
func BenchmarkList50k(b *testing.B) {
	ix := NewIndex(b.TempDir(), fakeLocate)
	const n = 50_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	for i := range n {
		p := fmt.Sprintf("%d/%s/Packages/pkg%05d-1.0-1.el9.x86_64.rpm", 7+i%4, []string{"x86_64", "aarch64"}[i%2], i/4)
		ix.Placed(upload("u", fmt.Sprint(i), 1000, t0.Add(time.Duration(i)*time.Second), ResultCreated, p))
	}
	took := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	// Logged, not asserted: a benchmark with sub-benchmarks cannot report its own metrics.
	b.Logf("50,000 Placed calls took %s; the index holds about %d heap bytes per package", took, (after.HeapAlloc-before.HeapAlloc)/n)
	if ix.Len() != n {
		b.Fatalf("%d entries", ix.Len())
	}
	for _, tc := range []struct {
		name string
		q    Query
	}{
		{"first-page", Query{}},
		{"name", Query{Name: "pkg04321"}},
		{"os_release+arch", Query{OSRelease: "9", Arch: "aarch64"}},
		{"since-late", Query{Since: t0.Add((n - 50) * time.Second)}},
		{"no-match", Query{OSRelease: "6"}},
		{"max-page", Query{Limit: MaxLimit}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := ix.List(tc.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBuild50k: the start-up walk over 50,000 package files plus a 50,000-line audit file.
func BenchmarkBuild50k(b *testing.B) {
	dir := b.TempDir()
	top := filepath.Join(dir, "storage")
	const n = 50_000
	var recs []Record
	for i := range n {
		p := fmt.Sprintf("%d/x86_64/Packages/pkg%05d-1.0-1.el9.x86_64.rpm", 7+i%4, i)
		put(b, top, p, 0)
		recs = append(recs, upload("u", fmt.Sprint(i), 0, t0, ResultCreated, p))
	}
	audit := filepath.Join(dir, "audit.log")
	a, _ := Open(audit, nil)
	for _, r := range recs {
		line, _ := marshalLine(r)
		a.f.Write(line) // without a sync per line: only the reading is measured
	}
	a.Close()
	tr, err := fstree.New(fstree.Options{TopDir: top})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	for _, viaTree := range []bool{false, true} {
		b.Run(map[bool]string{false: "walk", true: "tree"}[viaTree], func(b *testing.B) {
			for b.Loop() {
				ix := NewIndex(top, fakeLocate)
				if viaTree {
					ix.UseTree(tr)
				}
				st, err := ix.Build(audit)
				if err != nil || st.Attached != n {
					b.Fatalf("%+v, %v", st, err)
				}
			}
		})
	}
}

// TestEntryClaimedKeyID: an upload whose signature did not verify is listed with its claimed key id and an empty
// signed_by, and one that verified the other way round; both survive a rebuild from the audit file (item 5).
func TestEntryClaimedKeyID(t *testing.T) {
	top := t.TempDir()
	const a, b = "9/x86_64/Packages/a-1-1.el9.x86_64.rpm", "9/x86_64/Packages/b-1-1.el9.x86_64.rpm"
	put(t, top, a, 3)
	put(t, top, b, 3)
	ra, rb := upload("u", "sa", 3, t0, ResultCreated, a), upload("u", "sb", 3, t0, ResultCreated, b)
	ra.ClaimedKeyID = "84e76196298676bb"
	rb.SignedBy = "0123456789abcdef"
	file := filepath.Join(t.TempDir(), "audit.log")
	writeAudit(t, file, []Record{ra, rb})
	ix := NewIndex(top, fakeLocate)
	ix.Build(file)
	ea, _ := ix.Get(a)
	eb, _ := ix.Get(b)
	if ea.SignedBy == nil || *ea.SignedBy != "" || ea.ClaimedKeyID == nil || *ea.ClaimedKeyID != "84e76196298676bb" {
		t.Errorf("unverified: signed_by %v claimed %v", ea.SignedBy, ea.ClaimedKeyID)
	}
	if eb.SignedBy == nil || *eb.SignedBy != "0123456789abcdef" || eb.ClaimedKeyID == nil || *eb.ClaimedKeyID != "" {
		t.Errorf("verified: signed_by %v claimed %v", eb.SignedBy, eb.ClaimedKeyID)
	}
}

// bothWays runs test on an index of the files under top and on one reading the fs tree (UseTree).
func bothWays(t *testing.T, test func(t *testing.T, viaTree bool)) {
	t.Run("files", func(t *testing.T) { test(t, false) })
	t.Run("tree", func(t *testing.T) { test(t, true) })
}

// newIndex is NewIndex, reading the fs tree on top when viaTree.
func newIndex(t *testing.T, top string, locate LocateFunc, viaTree bool) *Index {
	t.Helper()
	ix := NewIndex(top, locate)
	if viaTree {
		tr, err := fstree.New(fstree.Options{TopDir: top})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		ix.UseTree(tr)
	}
	return ix
}

// TestBuildReadsTheTree: with UseTree the index is what the tree holds, not what is under top: a tree kept
// elsewhere (as an s3 one is) is listed, hidden names left out, and SyncRepo drops what the tree lost.
func TestBuildReadsTheTree(t *testing.T) {
	top, remote := t.TempDir(), t.TempDir()
	const a = "9/x86_64/Packages/a-1-1.el9.x86_64.rpm"
	put(t, remote, a, 3)
	put(t, remote, "9/x86_64/Packages/.tmp-1-1.el9.x86_64.rpm", 1)
	put(t, top, "9/x86_64/Packages/local-1-1.el9.x86_64.rpm", 1) // not in the tree
	tr, err := fstree.New(fstree.Options{TopDir: remote})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ix := NewIndex(top, fakeLocate)
	ix.UseTree(tr)
	if st, err := ix.Build(""); err != nil || st.Files != 1 {
		t.Fatalf("Build = %+v, %v; want the tree's one package", st, err)
	}
	if e, ok := ix.Get(a); !ok || e.Size != 3 || e.Arch != "x86_64" {
		t.Fatalf("Get(%s) = %+v, %t", a, e, ok)
	}
	os.Remove(filepath.Join(remote, a))
	ix.SyncRepo("9/x86_64", nil)
	if _, ok := ix.Get(a); ok {
		t.Fatal("a package gone from the tree is still indexed after SyncRepo")
	}
}
