package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// Attacks on the cache of verified passwords (Htpasswd.CacheVerified): ways a hostile client, an unlucky
// interleaving or an admin's edit could get a password accepted that the file does not accept, or get more out
// of the daemon's memory than the docs say.

// TestAttackCacheKeepsNoPassword: net/http's BasicAuth returns the user and the password as two substrings of one
// decoded "user:password" string. A cache keyed by that user string keeps the whole string, the plain password
// included, reachable for as long as the entry lives (until the file changes, however long ago it expired), which
// is not "an HMAC of the password, never the password" (docs/security.md).
func TestAttackCacheKeepsNoPassword(t *testing.T) {
	h, _, now := cachedHtpasswd(t, time.Hour)
	if !h.Check("alice", "a-pass") {
		t.Fatal("the right password was refused")
	}
	// Once it expired, the same login is checked and remembered again: the entry exists, and assigning to an
	// existing string key of a Go map stores the new key too.
	*now = now.Add(time.Hour)
	cred := strings.Clone("alice:a-pass") // as r.BasicAuth decodes it: one allocation
	user, pass, _ := strings.Cut(cred, ":")
	if !h.Check(user, pass) {
		t.Fatal("the right password was refused")
	}
	s := h.cur.Load()
	s.verified.mu.Lock()
	defer s.verified.mu.Unlock()
	if len(s.verified.m) != 1 {
		t.Fatalf("the cache holds %d entries after one login, want 1", len(s.verified.m))
	}
	base, end := uintptr(unsafe.Pointer(unsafe.StringData(cred))), uintptr(unsafe.Pointer(unsafe.StringData(cred)))+uintptr(len(cred))
	for k := range s.verified.m {
		if p := uintptr(unsafe.Pointer(unsafe.StringData(k))); p >= base && p < end {
			t.Error("the cache's key for alice shares memory with the decoded credentials, password included")
		}
	}
}

// TestAttackAuthorizeKeepsNoPassword: the user Authorize returns goes into the request's context, the audit
// record and the registry's in-memory index, which lives until restart. If it is a substring of the decoded
// credentials, every uploader's password stays in the heap with it. Measured with live heap after a GC: 2,000
// logins with a 250-byte password keep 500 KB reachable through substrings, 16 KB through copies.
func TestAttackAuthorizeKeepsNoPassword(t *testing.T) {
	pass := strings.Repeat("p", 250) // htpasswd takes up to 255 bytes; SHA-crypt, since bcrypt stops at 72
	h, err := LoadHtpasswd(writeFile(t, t.TempDir(), "users", htpasswdEntry(t, "alice", pass, "-5")+"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	h.CacheVerified(time.Hour) // one bcrypt check, then cache hits: the test stays fast
	tr, err := NewTrust(DefaultTrustedProxies(), ownUID)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAuthenticator(h, tr, nil)
	const n = 2000
	users := make([]string, 0, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		user, err := a.Authorize(request(&remotePeer, "alice", pass))
		if err != nil || user != "alice" {
			t.Fatalf("Authorize = %q, %v; want alice", user, err)
		}
		users = append(users, user)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(users)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > int64(n*len(pass)/2) {
		t.Errorf("keeping %d authenticated user names keeps %d bytes of heap: each holds its login's password", n, grew)
	}
}

// TestAttackLimitedAddressWithCachedPassword: a cached right password is no way around the login limiter. An
// address that failed too often is refused even with a password the cache would answer at once, and the cached
// success of another address neither lifts nor resets that count.
func TestAttackLimitedAddressWithCachedPassword(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	a := newAuthenticator(t, true, clk)
	a.htpasswd.CacheVerified(time.Hour)
	friend := Peer{Addr: netip.MustParseAddr("198.51.100.7")}
	attacker := Peer{Addr: netip.MustParseAddr("198.51.100.66")}
	if _, err := a.Authorize(request(&friend, "alice", "a-pass")); err != nil {
		t.Fatalf("the right password was refused: %v", err)
	}
	// From here alice's hash refuses everything: only the cache can let her in.
	spy := spyOn(t, a.htpasswd, "alice", false)
	if _, err := a.Authorize(request(&friend, "alice", "a-pass")); err != nil || spy.calls != 0 {
		t.Fatalf("setup: the cached password was not answered from the cache (%v, %d hash checks)", err, spy.calls)
	}
	for i := range 3 {
		if _, err := a.Authorize(request(&attacker, "alice", "guess")); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("wrong password %d: %v, want ErrUnauthorized", i, err)
		}
		// A cached success in between, from the same address, does not clear the count.
		if i == 1 {
			if _, err := a.Authorize(request(&attacker, "alice", "a-pass")); err != nil {
				t.Fatalf("the cached password was refused before the limit: %v", err)
			}
		}
	}
	calls := spy.calls
	for _, p := range []Peer{attacker, {Addr: netip.MustParseAddr("198.51.100.66")}} {
		if _, err := a.Authorize(request(&p, "alice", "a-pass")); !errors.Is(err, ErrTooManyFailures) {
			t.Errorf("a limited address with the cached right password: %v, want ErrTooManyFailures", err)
		}
	}
	if spy.calls != calls {
		t.Error("a limited address's password was checked at all")
	}
	if _, err := a.Authorize(request(&friend, "alice", "a-pass")); err != nil {
		t.Errorf("another address was refused its cached password: %v", err)
	}
	clk.advance(time.Minute)
	if _, err := a.Authorize(request(&attacker, "alice", "a-pass")); err != nil {
		t.Errorf("after the window, the cached password was refused: %v", err)
	}
}

// TestAttackBrokenEditAndDeletedFile: an edit that does not parse, or a deleted file, leaves the previous users
// in force (docs/security.md). That includes their cached passwords, which is no more than their hashes accept:
// with and without the cache the old password is accepted and the new one refused, and a fixed file forgets both.
func TestAttackBrokenEditAndDeletedFile(t *testing.T) {
	aliceNew := htpasswdEntry(t, "alice", "new-pass", "-B", "-C", "4")
	for _, ttl := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprint("cache ", ttl), func(t *testing.T) {
			h, path, _ := cachedHtpasswd(t, ttl)
			if !h.Check("alice", "a-pass") || !h.Check("bob", "b-pass") {
				t.Fatal("the right passwords were refused")
			}
			replace := func(content string) {
				t.Helper()
				tmp := writeFile(t, t.TempDir(), "users.tmp", content)
				if err := os.Rename(tmp, path); err != nil {
					t.Fatal(err)
				}
			}
			// The admin meant to change alice's password and drop bob; a stray line breaks the file.
			replace(aliceNew + "\nnot an entry\n")
			for range 2 {
				if !h.Check("alice", "a-pass") || !h.Check("bob", "b-pass") {
					t.Error("a broken edit did not leave the previous users in force")
				}
				if h.Check("alice", "new-pass") {
					t.Error("the new password of a broken edit was accepted")
				}
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if !h.Check("alice", "a-pass") || h.Check("alice", "new-pass") {
				t.Error("a deleted file did not leave the previous users in force")
			}
			replace(aliceNew + "\n")
			if h.Check("alice", "a-pass") || h.Check("bob", "b-pass") {
				t.Error("once the file was fixed, an old password or a removed user was still accepted")
			}
			if !h.Check("alice", "new-pass") {
				t.Error("once the file was fixed, the new password was refused")
			}
		})
	}
}

// TestAttackSameSizeInPlaceRewrite: htpasswd -B changing a password at the same cost rewrites the file in place
// (same inode) with the same size; only the mtime and the ctime tell. The cached old password must go with it.
func TestAttackSameSizeInPlaceRewrite(t *testing.T) {
	h, path, _ := cachedHtpasswd(t, time.Hour)
	old := time.Now().Add(-time.Hour) // so the rewrite's own mtime differs whatever the filesystem clock's grain
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	for range 2 { // checked, then remembered
		if !h.Check("alice", "a-pass") {
			t.Fatal("the right password was refused")
		}
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	content := htpasswdEntry(t, "alice", "z-pass", "-B", "-C", "4") + "\n" + htpasswdEntry(t, "bob", "b-pass", "-B", "-C", "4") + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if after.Size() != before.Size() || after.Sys().(*syscall.Stat_t).Ino != before.Sys().(*syscall.Stat_t).Ino {
		t.Fatalf("setup: not a same-size in-place rewrite (%d -> %d bytes)", before.Size(), after.Size())
	}
	if h.Check("alice", "a-pass") {
		t.Error("the old cached password was accepted after a same-size in-place rewrite")
	}
	if !h.Check("alice", "z-pass") {
		t.Error("the new password was refused")
	}
}

// TestAttackRaceWithReplacement: while the file is replaced again and again, alternating alice's password,
// other goroutines log in with both passwords, so Checks that loaded the previous snapshot fill its cache with
// the password it accepted. None of that may reach the new version: right after each replacement the password
// it dropped is refused.
func TestAttackRaceWithReplacement(t *testing.T) {
	h, path, _ := cachedHtpasswd(t, time.Hour)
	h.now = time.Now // the fake clock is not safe for concurrent use with nothing moving it; the real one is
	versions := [2]string{
		htpasswdEntry(t, "alice", "one", "-B", "-C", "4") + "\n",
		htpasswdEntry(t, "alice", "two", "-B", "-C", "4") + "\n",
	}
	passwords := [2]string{"one", "two"}
	dir := t.TempDir()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				h.Check("alice", passwords[(g+i)%2])
			}
		}()
	}
	for round := range 30 {
		v := round % 2
		tmp := writeFile(t, dir, "users.tmp", versions[v])
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		if h.Check("alice", passwords[1-v]) {
			t.Errorf("round %d: the replaced password %q was accepted", round, passwords[1-v])
		}
		if !h.Check("alice", passwords[v]) {
			t.Errorf("round %d: the current password %q was refused", round, passwords[v])
		}
	}
	stop.Store(true)
	wg.Wait()
}

// TestAttackCacheSizeAndKeys: unknown users and wrong passwords add nothing to the cache, so a client cannot grow
// it; and the HMAC tells apart pairs that concatenate alike.
func TestAttackCacheSizeAndKeys(t *testing.T) {
	h, _, _ := cachedHtpasswd(t, time.Hour)
	for i := range 50 {
		h.Check(fmt.Sprintf("user%d", i), "a-pass")
		h.Check("alice", fmt.Sprintf("wrong%d", i))
	}
	s := h.cur.Load()
	s.verified.mu.Lock()
	n := len(s.verified.m)
	s.verified.mu.Unlock()
	if n != 0 {
		t.Errorf("failed logins left %d cache entries, want 0", n)
	}
	if h.mac("ab", "c") == h.mac("a", "bc") || h.mac("alice", "x") == h.mac("alice", "x ") {
		t.Error("two different (user, password) pairs have the same cache key")
	}
}
