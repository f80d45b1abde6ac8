package auth

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Attacks on the change-time identity (fileID.ctime, racyWindow judged by the ctime): writers and interleavings
// that could leave a version loaded that the file no longer holds.

// writeAt writes b at off into path in place (same inode, same size when b overwrites bytes) and puts mtime back.
func writeAt(t *testing.T, path string, b string, off int64, mtime time.Time) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(b), off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// TestAttackRenameBetweenStatAndRead: a new version is renamed over the file, and a third one over that between
// the login's stat (which saw the second) and its open (which gets the third). What is loaded is what was read,
// under the identity of what was read: the third version, whose later same-size rewrite with its mtime put back is
// seen like any other.
func TestAttackRenameBetweenStatAndRead(t *testing.T) {
	dir := t.TempDir()
	entry := func(pass string) string { return htpasswdEntry(t, "alice", pass, "-B", "-C", "4") + "\n" }
	path := writeFile(t, dir, "users", entry("first-pass"))
	h := loadRemembered(t, path, "alice", "first-pass")
	mtime := statID(t, path).mtime
	renameIn := func(content string) {
		tmp := writeFile(t, dir, "users.tmp", content)
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	renameIn(entry("second-pass"))
	third := entry("third-pass")
	raced := false
	h.fsNow = func() time.Time { // read calls it after the login's stat and before its open
		if !raced {
			raced = true
			renameIn(third)
		}
		return time.Now()
	}
	if h.Check("alice", "first-pass") {
		t.Error("the replaced, cached password still works")
	}
	if !raced {
		t.Fatal("setup: the login did not read the file")
	}
	if h.Check("alice", "second-pass") {
		t.Error("the version the login's stat saw, replaced before its open, was loaded")
	}
	if !h.Check("alice", "third-pass") {
		t.Error("the version the login read was not loaded")
	}
	if got, want := h.cur.Load().id, statID(t, path); got != want {
		t.Errorf("the loaded version's identity %+v is not the file's %+v", got, want)
	}
	settle(t, h)
	writeAt(t, path, entry("fourth-pass"), 0, mtime)
	if h.Check("alice", "third-pass") || !h.Check("alice", "fourth-pass") {
		t.Error("a same-size rewrite of the raced-in version, mtime put back, was missed")
	}
}

// TestAttackWriteAcrossALogin: a writer that rewrites the file in two write calls, putting the mtime back after
// each, with a login between them, seconds after the first (a slow writer, or one stopped). That login reads a
// mix: alice's line, written again unchanged, and bob's old line. The second write, which revokes bob's password,
// must still be seen, although the mixed version was settled and inode, size and mtime never moved.
func TestAttackWriteAcrossALogin(t *testing.T) {
	alice := htpasswdEntry(t, "alice", "a-pass", "-B", "-C", "4") + "\n"
	bobOld := htpasswdEntry(t, "bob", "b-old", "-B", "-C", "4") + "\n"
	bobNew := htpasswdEntry(t, "bob", "b-new", "-B", "-C", "4") + "\n"
	path := writeFile(t, t.TempDir(), "users", alice+bobOld)
	h := loadRemembered(t, path, "bob", "b-old")
	mtime := statID(t, path).mtime
	writeAt(t, path, alice, 0, mtime) // the first write: alice's line, unchanged
	clockAfter(t, h, path)            // the login comes seconds later
	if !h.Check("bob", "b-old") {
		t.Fatal("between the writes, bob's old password (still in the file) was refused")
	}
	if !h.cur.Load().settled.Load() {
		t.Fatal("setup: the version read between the writes is not settled")
	}
	writeAt(t, path, bobNew, int64(len(alice)), mtime) // the second write: bob's new line
	if h.Check("bob", "b-old") {
		t.Error("bob's revoked password, cached, still works after the second write")
	}
	if !h.Check("bob", "b-new") || !h.Check("alice", "a-pass") {
		t.Error("the file as written was not loaded")
	}
}

// TestAttackSettledBrokenVersionFixedKeepingMtime: an edit that does not parse is settled (read again after the
// window), then fixed in place, same size, with the mtime put back. The fix is loaded on the next login.
func TestAttackSettledBrokenVersionFixedKeepingMtime(t *testing.T) {
	first := htpasswdEntry(t, "alice", "first-pass", "-B", "-C", "4") + "\n"
	second := htpasswdEntry(t, "alice", "second-pass", "-B", "-C", "4") + "\n"
	path := writeFile(t, t.TempDir(), "users", first)
	h := loadCached(t, path)
	settle(t, h)
	mtime := statID(t, path).mtime
	setStat(t, path, broken(second), mtime)
	clockAfter(t, h, path)
	if !h.Check("alice", "first-pass") {
		t.Fatal("a broken edit did not leave the previous users in force")
	}
	if !h.seenSettled || h.failed == "" {
		t.Fatal("setup: the broken version was not tried and settled")
	}
	setStat(t, path, second, mtime)
	if h.Check("alice", "first-pass") || !h.Check("alice", "second-pass") {
		t.Error("the fix of a settled broken version, same size and mtime, was not loaded")
	}
}

// TestAttackClockSetBack: the system clock set back after the file's last change (its ctime lies in the future of
// every read). No read is then settled: every login compares the bytes, so even a rewrite that keeps every field
// of the stat (sameTick) is seen; once the clock has passed the ctime by the window, the version settles.
func TestAttackClockSetBack(t *testing.T) {
	path := racyFile(t, "first-pass")
	h := loadCached(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	back := changeTime(fi).Add(-time.Hour)
	h.fsNow = func() time.Time { return back }
	for range 2 { // checked, then remembered
		if !h.Check("alice", "first-pass") {
			t.Fatal("the first password was refused")
		}
	}
	if h.cur.Load().settled.Load() {
		t.Fatal("a version whose ctime lies an hour ahead of the clock is settled")
	}
	before := statID(t, path)
	rewriteKeepingStat(t, path, "other-pass")
	sameTick(t, h, before)
	if h.Check("alice", "first-pass") || !h.Check("alice", "other-pass") {
		t.Error("with the clock set back, a rewrite that kept the whole stat was missed")
	}
	clockAfter(t, h, path)
	if !h.Check("alice", "other-pass") || !h.cur.Load().settled.Load() {
		t.Error("the version did not settle once the clock had passed its ctime")
	}
}

// TestAttackSymlinkRetargeted: the configured path is a symlink (config management's usual layout), retargeted
// (ln -sfn: a new link renamed over it) to another existing file, settled long ago, then back to the first. Stat
// and open follow the link, so the identity is the target's: each retarget is a new identity, and a cached
// password of the target left behind stops working on the next login.
func TestAttackSymlinkRetargeted(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.users", htpasswdEntry(t, "alice", "first-pass", "-B", "-C", "4")+"\n")
	b := writeFile(t, dir, "b.users", htpasswdEntry(t, "alice", "second-pass", "-B", "-C", "4")+"\n")
	path := filepath.Join(dir, "users")
	retarget := func(target string) {
		tmp := path + ".new"
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	retarget(a)
	h := loadCached(t, path)
	clockAfter(t, h, b) // both targets settled: the clock is seconds past the later ctime
	for _, step := range []struct{ target, good, revoked string }{
		{a, "first-pass", "second-pass"},
		{b, "second-pass", "first-pass"},
		{a, "first-pass", "second-pass"},
	} {
		retarget(step.target)
		if h.Check("alice", step.revoked) {
			t.Errorf("with the link on %s, the other target's password still works", filepath.Base(step.target))
		}
		for range 2 { // checked, then remembered
			if !h.Check("alice", step.good) {
				t.Errorf("with the link on %s, its password is refused", filepath.Base(step.target))
			}
		}
		if got, want := h.cur.Load().id, statID(t, step.target); got != want || !h.cur.Load().settled.Load() {
			t.Errorf("the loaded identity %+v is not the target's %+v, or not settled", got, want)
		}
	}
}

// TestAttackNonRegularAtPath: a directory, a unix socket (whose open fails: ENXIO) and a character device (as
// /dev/null: open succeeds, reads return nothing) replace a good user file. Logins keep the last good users, the
// failure is logged once naming the file, a good file put back is loaded; at start-up each is a one-line error
// naming the file.
func TestAttackNonRegularAtPath(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{"unix socket", func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			t.Cleanup(func() { l.Close() })
		}},
		{"character device", func(t *testing.T, path string) {
			if err := syscall.Mknod(path, syscall.S_IFCHR|0o600, 1<<8|3); err != nil { // 1,3: /dev/null
				t.Fatalf("mknod (the tests run as root): %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "users", htpasswdEntry(t, "alice", "a-pass", "-B", "-C", "4")+"\n")
			core, logs := observer.New(zapcore.InfoLevel)
			h, err := LoadHtpasswd(path, zap.New(core))
			if err != nil {
				t.Fatal(err)
			}
			h.CacheVerified(time.Hour)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			tc.make(t, path)
			for range 3 {
				if !h.Check("alice", "a-pass") || h.Check("alice", "wrong") {
					t.Fatal("the last good users are not in force")
				}
			}
			failed := logs.FilterMessageSnippet("reload failed").All()
			if len(failed) != 1 || !strings.Contains(failed[0].ContextMap()["error"].(string), path) {
				t.Errorf("want one reload failure naming %s, got %v", path, failed)
			}
			if _, err := LoadHtpasswd(path, nil); err == nil || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "\n") {
				t.Errorf("start-up error %q: want one line naming the file", err)
			}
			if err := os.RemoveAll(path); err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, "users", htpasswdEntry(t, "alice", "new-pass", "-B", "-C", "4")+"\n")
			if h.Check("alice", "a-pass") || !h.Check("alice", "new-pass") {
				t.Error("the good file put back was not loaded")
			}
		})
	}
}

// TestAttackSocketNotOpenedOnEveryLogin: a unix socket at the path cannot be opened (ENXIO), so read returned no
// identity to remember, and every login tried to open it again with mu held. Once settled it is tried once.
func TestAttackSocketNotOpenedOnEveryLogin(t *testing.T) {
	path := writeFile(t, t.TempDir(), "users", htpasswdEntry(t, "alice", "a-pass", "-B", "-C", "4")+"\n")
	h, err := LoadHtpasswd(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reads := 0
	at := statID(t, path).ctime.Add(racyWindow + time.Second)
	h.fsNow = func() time.Time { reads++; return at } // read calls it once per attempt
	for range 5 {
		if !h.Check("alice", "a-pass") {
			t.Fatal("the last good users are not in force")
		}
	}
	if reads != 1 {
		t.Errorf("a settled socket at the path was tried %d times in 5 logins, want once", reads)
	}
}

// loadCached loads the file at path with the login cache on (an hour).
func loadCached(t *testing.T, path string) *Htpasswd {
	t.Helper()
	return loadWithCache(t, path, time.Hour)
}

// loadWithCache loads the file at path with server.htpasswd_cache set to cache (0: every login hashed).
func loadWithCache(t *testing.T, path string, cache time.Duration) *Htpasswd {
	t.Helper()
	h, err := LoadHtpasswd(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.CacheVerified(cache)
	return h
}

// loadRemembered loads the file at path with the login cache on, settles the version, and logs user in twice
// (hashed, then remembered), failing the test if either login is refused.
func loadRemembered(t *testing.T, path, user, pass string) *Htpasswd {
	t.Helper()
	h := loadCached(t, path)
	settle(t, h)
	for range 2 {
		if !h.Check(user, pass) {
			t.Fatalf("%s's password %q was refused", user, pass)
		}
	}
	return h
}
