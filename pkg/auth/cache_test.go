package auth

import (
	"os"
	"testing"
	"time"
)

// spyVerifier stands in for a user's hash after a login was cached: it answers ok and counts how often it was
// asked, so a test sees whether Check answered from the cache or hashed.
type spyVerifier struct {
	ok    bool
	calls int
}

func (s *spyVerifier) verify(string) bool { s.calls++; return s.ok }
func (*spyVerifier) scheme() string       { return "test" }
func (*spyVerifier) weak() bool           { return false }

// cachedHtpasswd loads a file with alice (a-pass) and bob (b-pass), real bcrypt entries, with the cache on for
// ttl and a fake clock the test moves.
func cachedHtpasswd(t *testing.T, ttl time.Duration) (h *Htpasswd, path string, now *time.Time) {
	t.Helper()
	dir := t.TempDir()
	path = writeFile(t, dir, "users", htpasswdEntry(t, "alice", "a-pass", "-B", "-C", "4")+"\n"+
		htpasswdEntry(t, "bob", "b-pass", "-B", "-C", "4")+"\n")
	h, err := LoadHtpasswd(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return clock }
	h.CacheVerified(ttl)
	return h, path, &clock
}

// spyOn replaces user's hash in the current snapshot (keeping its cache) with a spy answering ok.
func spyOn(t *testing.T, h *Htpasswd, user string, ok bool) *spyVerifier {
	t.Helper()
	s := &spyVerifier{ok: ok}
	h.cur.Load().users.byName[user] = s
	return s
}

// TestCacheAnswersARightPasswordWithoutHashing: a password that passed is accepted from the cache until its time
// runs out, then hashed again.
func TestCacheAnswersARightPasswordWithoutHashing(t *testing.T) {
	h, _, now := cachedHtpasswd(t, time.Minute)
	if !h.Check("alice", "a-pass") {
		t.Fatal("the right password was refused")
	}
	// From here alice's hash refuses everything: only the cache can let her in.
	spy := spyOn(t, h, "alice", false)
	*now = now.Add(59 * time.Second)
	if ok := h.Check("alice", "a-pass"); !ok || spy.calls != 0 {
		t.Fatalf("within the cache time: accepted %v after %d hash checks, want true after 0", ok, spy.calls)
	}
	*now = now.Add(time.Second)
	if h.Check("alice", "a-pass") || spy.calls != 1 {
		t.Errorf("at the cache time: accepted, or %d hash checks, want refused by the hash (1 check)", spy.calls)
	}
}

// TestCacheNeverRemembersAWrongPassword: wrong passwords are hashed every time, a cached user's other passwords
// and another user's are not hits, and a clock that went back is not one either.
func TestCacheNeverRemembersAWrongPassword(t *testing.T) {
	h, _, now := cachedHtpasswd(t, time.Hour)
	for range 2 { // twice: a first refusal must not make the second one a hit
		if h.Check("alice", "wrong") {
			t.Fatal("a wrong password was accepted")
		}
	}
	spy := spyOn(t, h, "alice", false)
	for range 3 {
		if h.Check("alice", "wrong") {
			t.Fatal("a wrong password was accepted")
		}
	}
	if spy.calls != 3 {
		t.Errorf("a wrong password was hashed %d times in 3 logins, want 3", spy.calls)
	}

	// alice's right password is cached; near misses and bob with alice's password are not hits.
	spyOn(t, h, "alice", true)
	if !h.Check("alice", "a-pass") {
		t.Fatal("setup: the spy refused")
	}
	alice := spyOn(t, h, "alice", false)
	bob := spyOn(t, h, "bob", false)
	for _, c := range []struct{ user, pass string }{
		{"alice", "a-pas"}, {"alice", "a-pass "}, {"alice", "A-pass"}, {"alice", ""}, {"bob", "a-pass"},
	} {
		if h.Check(c.user, c.pass) {
			t.Errorf("%s with %q was accepted from alice's cached password", c.user, c.pass)
		}
	}
	if alice.calls != 4 || bob.calls != 1 {
		t.Errorf("hash checks: alice %d, bob %d; want 4 and 1 (every miss is hashed)", alice.calls, bob.calls)
	}
	*now = now.Add(-time.Second)
	if h.Check("alice", "a-pass") {
		t.Error("a cached password was accepted with the clock before the time it was cached")
	}
}

// TestCacheForgetsOnFileChange: a new password or a removed user takes effect on the next login, cached or not.
func TestCacheForgetsOnFileChange(t *testing.T) {
	h, path, _ := cachedHtpasswd(t, time.Hour)
	if !h.Check("alice", "a-pass") || !h.Check("bob", "b-pass") {
		t.Fatal("the right passwords were refused")
	}
	replace := func(content string) {
		t.Helper()
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	// alice gets a new password, bob is removed.
	replace(htpasswdEntry(t, "alice", "new-pass", "-B", "-C", "4") + "\n")
	if h.Check("alice", "a-pass") {
		t.Error("alice's old password, cached, was accepted after the file gave her a new one")
	}
	if h.Check("bob", "b-pass") {
		t.Error("bob, cached, was accepted after the file removed him")
	}
	if !h.Check("alice", "new-pass") {
		t.Error("alice's new password was refused")
	}
}

// TestCacheOff: with 0 (and before CacheVerified) every login is hashed.
func TestCacheOff(t *testing.T) {
	h, _, _ := cachedHtpasswd(t, 0)
	if !h.Check("alice", "a-pass") {
		t.Fatal("the right password was refused")
	}
	spy := spyOn(t, h, "alice", false)
	if h.Check("alice", "a-pass") || spy.calls != 1 {
		t.Errorf("with the cache off a right password was answered without its hash (%d checks)", spy.calls)
	}
}

// TestCacheConcurrent: logins of several users at once, right and wrong, under the race detector.
func TestCacheConcurrent(t *testing.T) {
	h, _, _ := cachedHtpasswd(t, time.Hour)
	done := make(chan bool)
	for range 8 {
		go func() {
			ok := true
			for range 20 {
				ok = ok && h.Check("alice", "a-pass") && h.Check("bob", "b-pass") && !h.Check("alice", "b-pass")
			}
			done <- ok
		}()
	}
	for range 8 {
		if !<-done {
			t.Error("a concurrent login got the wrong answer")
		}
	}
}
