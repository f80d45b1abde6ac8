package auth

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Attacks on the racy-read logic of Htpasswd (racyWindow, snapshot.settled, seen/seenSettled) and on the password
// check counters (Checks): edits that could be missed, interleavings that could bring back an older version, a
// cache that outlives the content it was filled from, counters that miss or double-count a path, and ways to make
// every login re-read the file.

// setStat rewrites path in place (same inode) with content and then sets its mtime to mtime: the filesystem's view
// of two writes in one clock tick, or of a writer that sets the mtime itself (cp -p, rsync -t, touch -d).
func setStat(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// statID is path's identity as Check sees it.
func statID(t *testing.T, path string) fileID {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return idOf(fi)
}

// broken returns line with the ':' after the user replaced: same length, and a line that does not parse.
func broken(line string) string { return strings.Replace(line, ":", ";", 1) }

// TestAttackRacyFailedVersionThenSameTickFix: a version that failed to parse, read within the window, is not
// remembered as "tried" for good: a same-size fix in the same tick (same inode, size and mtime as the broken
// version) is read and loaded on the next login, whether the fix brings a new password or the old content back.
func TestAttackRacyFailedVersionThenSameTickFix(t *testing.T) {
	first := htpasswdEntry(t, "alice", "first-pass", "-B", "-C", "4")
	second := htpasswdEntry(t, "alice", "second-pass", "-B", "-C", "4")
	for _, tc := range []struct {
		name    string
		fix     string
		good    string // accepted after the fix
		refused string // refused after the fix
	}{
		{"fix with a new password", second, "second-pass", "first-pass"},
		{"fix back to the loaded content", first, "first-pass", "second-pass"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "users", first+"\n")
			h := loadCached(t, path)
			settle(t, h)
			if !h.Check("alice", "first-pass") {
				t.Fatal("the first password was refused")
			}
			tick := time.Now() // the broken edit and its fix share this mtime: one clock tick
			setStat(t, path, broken(second)+"\n", tick)
			if !h.Check("alice", "first-pass") {
				t.Fatal("a broken edit did not leave the previous users in force")
			}
			if h.seenSettled {
				t.Fatal("setup: a version read right after its mtime counts as settled")
			}
			brokenID := statID(t, path)
			setStat(t, path, tc.fix+"\n", tick)
			sameTick(t, h, brokenID)
			if !h.Check("alice", tc.good) {
				t.Errorf("%s refused after a same-tick fix of a broken edit", tc.good)
			}
			if h.Check("alice", tc.refused) {
				t.Errorf("%s accepted after a same-tick fix of a broken edit", tc.refused)
			}
		})
	}
}

// TestAttackRacyReplaceKinds: a same-size edit whose writer sets the mtime back to the loaded version's, made by
// replacing the file (rename over it, or delete and create: ext4 reuses the freed inode number) or in place, of a
// racy or a settled version. A new inode, or a new change time, is seen by a stat; an edit that keeps even the
// change time (a coarse filesystem clock: sameTick) can only be racy, and its bytes are compared.
func TestAttackRacyReplaceKinds(t *testing.T) {
	first := htpasswdEntry(t, "alice", "first-pass", "-B", "-C", "4") + "\n"
	second := htpasswdEntry(t, "alice", "other-pass", "-B", "-C", "4") + "\n"
	rename := func(t *testing.T, path, content string, mtime time.Time) {
		tmp := path + ".tmp"
		setStat(t, tmp, content, mtime)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	recreate := func(t *testing.T, path, content string, mtime time.Time) {
		before := statID(t, path)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		setStat(t, path, content, mtime)
		if statID(t, path).ino != before.ino {
			t.Logf("this filesystem did not reuse the inode number: the new inode alone tells the versions apart")
		}
	}
	for _, tc := range []struct {
		name     string
		edit     func(t *testing.T, path, content string, mtime time.Time)
		settled  bool
		sameTick bool // the edit also keeps the change time (sameTick)
	}{
		{"rename, racy", rename, false, false},
		{"rename, settled", rename, true, false},
		{"in place, racy, same tick", setStat, false, true},
		{"delete and create, racy", recreate, false, false},
		{"in place, settled", setStat, true, false},
		{"delete and create, settled", recreate, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "users", first)
			mtime := time.Now()
			if tc.settled {
				mtime = mtime.Add(-time.Hour)
			}
			if err := os.Chtimes(path, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			h := loadCached(t, path)
			if tc.settled {
				settle(t, h)
			}
			if h.cur.Load().settled.Load() != tc.settled {
				t.Fatalf("setup: settled %v, want %v", !tc.settled, tc.settled)
			}
			if !h.Check("alice", "first-pass") {
				t.Fatal("the first password was refused")
			}
			before := statID(t, path)
			tc.edit(t, path, second, mtime)
			if after := statID(t, path); after.size != before.size || !after.mtime.Equal(before.mtime) {
				t.Fatal("setup: the edit changed the size or the mtime")
			}
			if tc.sameTick {
				sameTick(t, h, before)
			}
			if h.Check("alice", "first-pass") {
				t.Error("the replaced password, cached, still works")
			}
			if !h.Check("alice", "other-pass") {
				t.Error("the new password is refused")
			}
		})
	}
}

// TestAttackRacyMtimeSetByWriter: a writer that sets the mtime itself. Into the future (a copy from a host whose
// clock is ahead): the version settles like any other, by its change time, instead of being read on every login
// until that time, and a same-size rewrite that keeps the future mtime is still seen. Into the past, on a
// same-size new version: seen too.
func TestAttackRacyMtimeSetByWriter(t *testing.T) {
	users, _ := bigFile(t, 2000) // so that a re-read shows in the allocations
	first := users + htpasswdEntry(t, "alice", "first-pass", "-B", "-C", "4") + "\n"
	second := users + htpasswdEntry(t, "alice", "second-pass", "-B", "-C", "4") + "\n"
	third := users + htpasswdEntry(t, "alice", "third-pass", "-B", "-C", "4") + "\n"
	path := writeFile(t, t.TempDir(), "users", first)
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	h := loadCached(t, path)
	clockAfter(t, h, path)
	if !h.Check("alice", "first-pass") {
		t.Fatal("the first password was refused")
	}
	if !h.cur.Load().settled.Load() {
		t.Error("a version whose mtime lies in the future is not settled seconds after its last change")
	}
	if b := bytesPerCheck(h, "alice", "first-pass"); b >= uint64(len(users))/2 {
		t.Errorf("a login allocated %d bytes with a %d-byte file whose mtime lies in the future: it reads the file", b, len(users))
	}
	setStat(t, path, second, future)
	if h.Check("alice", "first-pass") || !h.Check("alice", "second-pass") {
		t.Error("a same-size rewrite that kept the future mtime was missed")
	}
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, past, past); err != nil {
		t.Fatal(err)
	}
	clockAfter(t, h, path)
	if !h.Check("alice", "second-pass") || !h.cur.Load().settled.Load() {
		t.Fatal("a touch into the past did not settle")
	}
	setStat(t, path, third, past.Add(-time.Minute)) // same size, an older mtime than the loaded version's
	if h.Check("alice", "second-pass") || !h.Check("alice", "third-pass") {
		t.Error("a same-size version whose writer set its mtime further into the past was missed")
	}
}

// TestAttackRacyConcurrentFlips: checkers run while a writer rewrites the file in place, same size, mtime put back
// (only the change time moves, if the filesystem's clock ticks between two rewrites), once per password p0, p1, ... After the writer's own
// Check of pk has passed (pk loaded), no Check that starts later may accept an older password: no snapshot older
// than a loaded version, and no cache entry of older content. Run with -race.
func TestAttackRacyConcurrentFlips(t *testing.T) {
	const versions = 12
	entries := make([]string, versions)
	for k := range entries {
		entries[k] = htpasswdEntry(t, "alice", fmt.Sprintf("pass-%02d", k), "-B", "-C", "4") + "\n"
	}
	for _, cache := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprint("cache ", cache), func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "users", entries[0])
			tick := time.Now()
			if err := os.Chtimes(path, tick, tick); err != nil {
				t.Fatal(err)
			}
			h := loadWithCache(t, path, cache)
			var loaded atomic.Int64 // the newest version whose password a finished Check accepted
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var bad atomic.Value
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						k := int(loaded.Load())
						// Every checker keeps the cache of the version it sees warm, and probes an older one.
						h.Check("alice", fmt.Sprintf("pass-%02d", k))
						if k > 0 {
							old := (g + i) % k
							if h.Check("alice", fmt.Sprintf("pass-%02d", old)) {
								bad.CompareAndSwap(nil, fmt.Sprintf("pass-%02d accepted after version %d was loaded", old, k))
							}
						}
					}
				}()
			}
			for k := 1; k < versions; k++ {
				setStat(t, path, entries[k], tick)
				if !h.Check("alice", fmt.Sprintf("pass-%02d", k)) {
					t.Errorf("version %d refused after its write completed", k)
				}
				loaded.Store(int64(k))
			}
			close(stop)
			wg.Wait()
			if msg := bad.Load(); msg != nil {
				t.Error(msg)
			}
		})
	}
}

// TestAttackCacheFollowsContent: the password cache belongs to the file's bytes. A touch, a rename of the same
// bytes over the file, and a delete-and-create of them keep it (the next login is "cached"); a change to another
// user's line drops it for everyone (the next login is "hashed"); a broken edit keeps it, as documented.
func TestAttackCacheFollowsContent(t *testing.T) {
	alice := htpasswdEntry(t, "alice", "a-pass", "-B", "-C", "4") + "\n"
	bob := htpasswdEntry(t, "bob", "b-pass", "-B", "-C", "4") + "\n"
	bob2 := htpasswdEntry(t, "bob", "b-new", "-B", "-C", "4") + "\n"
	path := writeFile(t, t.TempDir(), "users", alice+bob)
	h := loadCached(t, path)
	if !h.Check("alice", "a-pass") {
		t.Fatal("alice refused")
	}
	past := time.Now().Add(-time.Hour)
	for _, step := range []struct {
		name   string
		edit   func()
		cached bool // whether alice's next login is answered from the cache
	}{
		{"touch", func() {
			if err := os.Chtimes(path, past, past); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"rename of the same bytes", func() {
			tmp := writeFile(t, t.TempDir(), "tmp", alice+bob)
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"delete, a login, then create with the same bytes", func() {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if !h.Check("alice", "a-pass") {
				t.Fatal("alice refused while the file was missing")
			}
			writeFile(t, strings.TrimSuffix(path, "/users"), "users", alice+bob)
		}, true},
		{"a broken line added", func() { writeFile(t, strings.TrimSuffix(path, "/users"), "users", alice+bob+"junk\n") }, true},
		{"bob's password changed, alice's line kept", func() {
			writeFile(t, strings.TrimSuffix(path, "/users"), "users", alice+bob2)
		}, false},
	} {
		step.edit()
		hashed, cached := h.Checks()
		if !h.Check("alice", "a-pass") {
			t.Fatalf("%s: alice refused", step.name)
		}
		h2, c2 := h.Checks()
		if got := c2 == cached+1 && h2 == hashed; got != step.cached {
			t.Errorf("%s: alice's login answered from the cache: %v, want %v (hashed %d→%d, cached %d→%d)",
				step.name, got, step.cached, hashed, h2, cached, c2)
		}
	}
	if h.Check("bob", "b-pass") || !h.Check("bob", "b-new") {
		t.Error("bob's password change did not take effect")
	}
}

// TestAttackPasswordCheckCounters: every Check counts once, as hashed or cached, except a password over 1024 bytes,
// which is in neither.
func TestAttackPasswordCheckCounters(t *testing.T) {
	type check struct {
		user, pass     string
		ok             bool
		hashed, cached uint64
	}
	long := strings.Repeat("x", maxPasswordLen+1)
	edge := strings.Repeat("x", maxPasswordLen)
	for _, tc := range []struct {
		name   string
		cache  time.Duration
		checks []check
	}{
		{"cache off", 0, []check{
			{"alice", "a-pass", true, 1, 0},
			{"alice", "a-pass", true, 1, 0},
			{"alice", "wrong", false, 1, 0},
			{"nobody", "a-pass", false, 1, 0},
			{"alice", long, false, 0, 0},
			{"nobody", long, false, 0, 0},
			{"alice", edge, false, 1, 0},
		}},
		{"cache on", time.Hour, []check{
			{"alice", "a-pass", true, 1, 0},
			{"alice", "a-pass", true, 0, 1},
			{"alice", "wrong", false, 1, 0},
			{"alice", "wrong", false, 1, 0},
			{"alice", "a-pass", true, 0, 1},
			{"bob", "b-pass", true, 1, 0},
			{"nobody", "a-pass", false, 1, 0},
			{"nobody", "a-pass", false, 1, 0},
			{"alice", long, false, 0, 0},
			{"alice", edge, false, 1, 0},
			{"alice", "a-pass", true, 0, 1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _, now := cachedHtpasswd(t, tc.cache)
			for i, c := range tc.checks {
				h0, c0 := h.Checks()
				if got := h.Check(c.user, c.pass); got != c.ok {
					t.Fatalf("check %d (%s): %v, want %v", i, c.user, got, c.ok)
				}
				h1, c1 := h.Checks()
				if h1-h0 != c.hashed || c1-c0 != c.cached {
					t.Errorf("check %d (%s, %d bytes): counted hashed +%d cached +%d, want +%d +%d",
						i, c.user, len(c.pass), h1-h0, c1-c0, c.hashed, c.cached)
				}
			}
			if tc.cache > 0 {
				*now = now.Add(tc.cache) // expired: hashed again, then cached again
				h0, c0 := h.Checks()
				h.Check("alice", "a-pass")
				h.Check("alice", "a-pass")
				if h1, c1 := h.Checks(); h1-h0 != 1 || c1-c0 != 1 {
					t.Errorf("after expiry: hashed +%d cached +%d, want +1 +1", h1-h0, c1-c0)
				}
			}
		})
	}
}

// bigFile returns an htpasswd file of n users (the same bcrypt hash each, cost 4) and alice with a-pass: a re-read
// of it allocates at least its size in bytes, which is how the tests below see whether a Check read the file.
func bigFile(t *testing.T, n int) (content, aliceLine string) {
	t.Helper()
	aliceLine = htpasswdEntry(t, "alice", "a-pass", "-B", "-C", "4")
	_, hash, _ := strings.Cut(aliceLine, ":")
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "user%04d:%s\n", i, hash)
	}
	return b.String(), aliceLine
}

// bytesPerCheck is the bytes allocated by one Check of user and pass, on average over 10: a re-read of a file
// allocates at least its size; a bcrypt check, a few KiB.
func bytesPerCheck(h *Htpasswd, user, pass string) uint64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	h.Check(user, pass)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		h.Check(user, pass)
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / 10
}

// TestAttackClientCannotKeepFileRacy: whatever a client sends (a cached login, a wrong password, an unknown user,
// an over-long password), a settled file is not read again; the probe itself is checked on a racy version, which
// every Check reads.
func TestAttackClientCannotKeepFileRacy(t *testing.T) {
	users, alice := bigFile(t, 4000)
	size := uint64(len(users))
	path := writeFile(t, t.TempDir(), "users", users+alice+"\n")
	h := loadCached(t, path)
	if !h.Check("alice", "a-pass") {
		t.Fatal("alice refused")
	}
	if h.cur.Load().settled.Load() {
		t.Fatal("setup: a version written just now is settled")
	}
	if b := bytesPerCheck(h, "alice", "a-pass"); b < size {
		t.Fatalf("probe: a Check of a racy version allocated %d bytes, want at least the file's %d (a re-read)", b, size)
	}
	settle(t, h) // one read, a few seconds after the file's last change
	for _, c := range []struct{ user, pass string }{
		{"alice", "a-pass"}, {"alice", "wrong"}, {"nobody", "x"}, {"alice", strings.Repeat("x", 5000)}, {"", ""},
	} {
		if b := bytesPerCheck(h, c.user, c.pass); b >= size/2 {
			t.Errorf("a Check of %q (%d-byte password) on a settled file allocated %d bytes: it read the file", c.user, len(c.pass), b)
		}
	}
}

// TestAttackRacySettledBrokenVersionIsNotReparsed: a version loaded within the window, then rewritten in the same
// tick into one that does not parse (same inode, size and mtime). Once a read after the window has found the broken
// bytes again, that version is settled: nothing can change it without changing its stat, so logins must not read
// and parse it again (the comment on Htpasswd.seen: "keep a broken file from being re-parsed ... on every
// request"). The previous users stay in force meanwhile.
func TestAttackRacySettledBrokenVersionIsNotReparsed(t *testing.T) {
	users, alice := bigFile(t, 4000)
	size := uint64(len(users))
	path := writeFile(t, t.TempDir(), "users", users+alice+"\n")
	h := loadCached(t, path)
	if !h.Check("alice", "a-pass") {
		t.Fatal("alice refused")
	}
	before := statID(t, path)
	setStat(t, path, users+broken(alice)+"\n", before.mtime)
	sameTick(t, h, before)
	if h.cur.Load().settled.Load() || !h.Check("alice", "a-pass") {
		t.Fatal("setup: the version settled too early, or the broken edit did not keep alice")
	}
	clockAfter(t, h, path)
	if !h.Check("alice", "a-pass") { // reads the broken bytes after the window: settled, and failed
		t.Fatal("alice refused while the file is broken")
	}
	if !h.seenSettled || h.seen != h.cur.Load().id {
		t.Fatalf("setup: the broken version was not recorded as settled under the loaded identity")
	}
	if b := bytesPerCheck(h, "alice", "a-pass"); b >= size/2 {
		t.Errorf("a login allocated %d bytes with a settled broken %d-byte file: it is read and parsed on every login", b, size)
	}
	if !h.Check("alice", "a-pass") || h.Check("alice", "wrong") {
		t.Error("the previous users are not in force")
	}
}
