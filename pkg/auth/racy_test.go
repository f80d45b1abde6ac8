package auth

import (
	"os"
	"testing"
	"time"
)

// racyFile writes alice with password pass (bcrypt, cost 4) to a new file and returns its path; every such line
// has the same length, so rewriting it in place keeps the size.
func racyFile(t *testing.T, pass string) string {
	t.Helper()
	return writeFile(t, t.TempDir(), "users", htpasswdEntry(t, "alice", pass, "-B", "-C", "4")+"\n")
}

// rewriteKeepingStat rewrites the file in place (same inode) with alice's new password and puts the mtime back:
// inode, size and mtime are those of the version before. (The change time moves, unless both writes land in one
// tick of a coarse filesystem clock: see sameTick.)
func rewriteKeepingStat(t *testing.T, path, pass string) {
	t.Helper()
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(htpasswdEntry(t, "alice", pass, "-B", "-C", "4")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, before.ModTime(), before.ModTime()); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, a := idOf(before), idOf(after); a.ino != b.ino || a.dev != b.dev || a.size != b.size || !a.mtime.Equal(b.mtime) {
		t.Fatalf("setup: the rewrite changed the file's inode, size or mtime (%+v → %+v)", b, a)
	}
}

// clockAfter sets the clock that judges reads (fsNow) to racyWindow and a second after path's last change, as a
// login that comes a few seconds later would find it.
func clockAfter(t *testing.T, h *Htpasswd, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	at := changeTime(fi).Add(racyWindow + time.Second)
	h.fsNow = func() time.Time { return at }
}

// settle makes the loaded version settled, as the first login a few seconds after the file's last change does:
// a read past the window that finds the same bytes. The clock is the real one again afterwards.
func settle(t *testing.T, h *Htpasswd) {
	t.Helper()
	clockAfter(t, h, h.path)
	h.current()
	h.fsNow = time.Now
	if !h.cur.Load().settled.Load() {
		t.Fatal("setup: a version read seconds after its last change is not settled")
	}
}

// sameTick is for a rewrite that kept the file's inode, size and mtime (before is its identity as stat-ed before):
// it gives the versions Htpasswd holds under that identity (the loaded one, the last one tried) the file's identity
// now. That is the filesystem's view when both writes land in one tick of its clock, change time included (whole
// seconds on ext4 with 128-byte inodes and on some network filesystems), which a test on a filesystem that gives
// each write a change time of its own cannot produce.
func sameTick(t *testing.T, h *Htpasswd, before fileID) {
	t.Helper()
	now := statID(t, h.path)
	if now.ino != before.ino || now.dev != before.dev || now.size != before.size || !now.mtime.Equal(before.mtime) {
		t.Fatalf("setup: the rewrite changed the file's inode, size or mtime (%+v → %+v)", before, now)
	}
	if s := h.cur.Load(); s.id == before {
		s.id = now
	}
	if h.seen == before {
		h.seen = now
	}
}

// TestReloadSameTickRewrite: `htpasswd -B` run twice in a row (a password changed twice, the second time to
// revoke the first) rewrites the file in place with the same size, and both writes can carry one mtime. The
// second password must take effect on the next login, and the first, although cached, must stop working.
func TestReloadSameTickRewrite(t *testing.T) {
	for _, cache := range []time.Duration{0, time.Hour} {
		path := racyFile(t, "first-pass")
		h := loadWithCache(t, path, cache)
		if !h.Check("alice", "first-pass") {
			t.Fatal("the first password was refused")
		}
		before := statID(t, path)
		rewriteKeepingStat(t, path, "other-pass")
		sameTick(t, h, before)
		if h.Check("alice", "first-pass") {
			t.Errorf("cache %v: the replaced password still works after a rewrite in the same clock tick", cache)
		}
		if !h.Check("alice", "other-pass") {
			t.Errorf("cache %v: the new password is refused after a rewrite in the same clock tick", cache)
		}
	}
}

// TestSettledRewriteKeepingMtimeIsSeen: once a version was read more than racyWindow after its last change, a
// stat alone identifies it. A same-size rewrite in place that puts the old mtime back (touch -d, cp -p) keeps
// inode, size and mtime, but not the change time, which no writer can set: the revoked password is refused at
// once, also when it was cached.
func TestSettledRewriteKeepingMtimeIsSeen(t *testing.T) {
	for _, cache := range []time.Duration{0, time.Hour} {
		path := racyFile(t, "first-pass")
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
		h := loadWithCache(t, path, cache)
		settle(t, h)
		for range 2 { // checked, then (with the cache) remembered
			if !h.Check("alice", "first-pass") {
				t.Fatal("the first password was refused")
			}
		}
		rewriteKeepingStat(t, path, "other-pass")
		if h.Check("alice", "first-pass") {
			t.Errorf("cache %v: the revoked password still works after a same-size rewrite that put the mtime back", cache)
		}
		if !h.Check("alice", "other-pass") {
			t.Errorf("cache %v: the new password is refused after a same-size rewrite that put the mtime back", cache)
		}
	}
}

// TestRacyVersionSettles: a version first read within racyWindow of its last change is read again by the logins
// that follow; once one of them comes later than the window, with the same bytes, the version is settled and keeps
// its users and cached passwords (no reload). A touch (new mtime, same bytes) keeps them too.
func TestRacyVersionSettles(t *testing.T) {
	path := racyFile(t, "first-pass")
	h := loadCached(t, path)
	s := h.cur.Load()
	if s.settled.Load() {
		t.Fatal("a version read right after its last change is settled")
	}
	if !h.Check("alice", "first-pass") || h.cur.Load() != s || s.settled.Load() {
		t.Fatal("a re-read of the same bytes within the window replaced the snapshot or settled it")
	}
	clockAfter(t, h, path) // past the window: the next read settles it
	if !h.Check("alice", "first-pass") {
		t.Fatal("the password was refused")
	}
	if h.cur.Load() != s || !s.settled.Load() {
		t.Fatal("the version did not settle in place after the window")
	}
	touched := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, touched, touched); err != nil {
		t.Fatal(err)
	}
	clockAfter(t, h, path)
	if !h.Check("alice", "first-pass") {
		t.Fatal("the password was refused after a touch")
	}
	if n := h.cur.Load(); n == s || n.users != s.users || n.verified != s.verified || !n.settled.Load() {
		t.Error("a touch (same bytes) did not keep the users and the cache under the new, settled identity")
	}
}
