package auth

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// htpasswdEntry runs the real htpasswd tool to hash pass for user with the given flags (-B, -m, -s, ...) and
// returns the "user:hash" line. The password goes through stdin (-i), so any bytes reach the tool unchanged.
func htpasswdEntry(t testing.TB, user, pass string, flags ...string) string {
	t.Helper()
	bin, err := exec.LookPath("htpasswd")
	if err != nil {
		t.Fatalf("htpasswd not found (%v); install it: apt-get install -y --no-install-recommends apache2-utils (deploy/deps.sh does)", err)
	}
	cmd := exec.Command(bin, append(append([]string{"-n", "-i"}, flags...), user)...)
	cmd.Stdin = strings.NewReader(pass)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("htpasswd %v %s: %v", flags, user, err)
	}
	return strings.TrimSpace(string(out))
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRealHtpasswdFormats checks every format the real tool writes that we accept: it parses, the right
// password matches, and near misses (wrong, truncated, extended, different case) do not. The password is longer
// than 16 bytes and non-ASCII, to run md5-crypt's length loops past one block.
func TestRealHtpasswdFormats(t *testing.T) {
	const pass = "correct horse battery stäple €"
	tests := []struct {
		name   string
		flags  []string
		scheme string
		weak   bool
	}{
		{"bcrypt default cost", []string{"-B"}, "bcrypt", false},
		{"bcrypt cost 4", []string{"-B", "-C", "4"}, "bcrypt", false},
		{"apr1 default", nil, "apr1", true},
		{"apr1 -m", []string{"-m"}, "apr1", true},
		{"sha1", []string{"-s"}, "sha1", true},
		{"sha256-crypt", []string{"-2"}, "sha256-crypt", false},
		{"sha512-crypt", []string{"-5"}, "sha512-crypt", false},
		{"sha512-crypt with rounds", []string{"-5", "-r", "12345"}, "sha512-crypt", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := htpasswdEntry(t, "alice", pass, tc.flags...)
			u, err := parseHtpasswd("test", []byte(line+"\n"))
			if err != nil {
				t.Fatalf("parse %q: %v", line, err)
			}
			v := u.byName["alice"]
			if v == nil || v.scheme() != tc.scheme || v.weak() != tc.weak {
				t.Fatalf("entry %q parsed as %#v, want scheme %s weak %v", line, v, tc.scheme, tc.weak)
			}
			if !v.verify(pass) {
				t.Errorf("the right password does not verify against %q", line)
			}
			for _, wrong := range []string{"", "correct horse", pass[:len(pass)-1], pass + " ", strings.ToUpper(pass)} {
				if v.verify(wrong) {
					t.Errorf("wrong password %q verifies against %q", wrong, line)
				}
			}
		})
	}
}

// TestRealApr1Lengths compares our md5-crypt with htpasswd over passwords of every length from 0 to 40, which
// covers both branches of each bit of the length and the alternate sum repeated over several blocks.
func TestRealApr1Lengths(t *testing.T) {
	for n := range 41 {
		pass := strings.Repeat("aZ9$:é", 8)[:n]
		line := htpasswdEntry(t, "u", pass, "-m")
		v, err := parseHash(strings.TrimPrefix(line, "u:"))
		if err != nil {
			t.Fatalf("length %d: parse %q: %v", n, line, err)
		}
		if !v.verify(pass) {
			t.Errorf("length %d: password %q does not verify against htpasswd's %q", n, pass, line)
		}
	}
}

// TestRealShaCryptLengths compares our SHA-crypt with htpasswd -2 and -5 over passwords of every length from 0
// to 70, past one SHA-512 block, at the minimum rounds to keep it quick.
func TestRealShaCryptLengths(t *testing.T) {
	for _, flag := range []string{"-2", "-5"} {
		for n := range 71 {
			pass := strings.Repeat("aZ9$:é", 12)[:n]
			line := htpasswdEntry(t, "u", pass, flag, "-r", "1000")
			v, err := parseHash(strings.TrimPrefix(line, "u:"))
			if err != nil {
				t.Fatalf("%s length %d: parse %q: %v", flag, n, line, err)
			}
			if !v.verify(pass) || v.verify(pass+"x") {
				t.Errorf("%s length %d: password %q: right one verifies %v, wrong one %v, against htpasswd's %q",
					flag, n, pass, v.verify(pass), v.verify(pass+"x"), line)
			}
		}
	}
}

// TestMD5CryptVector checks fixed vectors, made with `openssl passwd` (OpenSSL 3.0): the $1$ variant (the
// magic string must enter the hash), and SHA-crypt with short salts and explicit rounds.
func TestMD5CryptVector(t *testing.T) {
	tests := []struct{ hash, pass string }{
		{"$1$saltstr$jt4dMUtB952ERKJcUbm6W1", "password"},
		{"$apr1$saltstr$eaFFXp.WAyy3TdCdMgjvx.", "password"}, // openssl passwd -apr1 -salt saltstr password
		// openssl passwd -5 / -6 -salt saltstring 'Hello world!': Drepper's own test vectors, which have a
		// salt shorter than htpasswd's 16 characters.
		{"$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", "Hello world!"},
		{"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", "Hello world!"},
		// Rounds below the minimum are raised to it, as crypt(3) does: for "rounds=10" openssl writes the hash
		// below with rounds=1000.
		{"$5$rounds=10$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC", "the minimum number is still observed"},
	}
	for _, tc := range tests {
		t.Run(tc.hash, func(t *testing.T) {
			v, err := parseHash(tc.hash)
			if err != nil {
				t.Fatal(err)
			}
			if !v.verify(tc.pass) || v.verify(tc.pass+"x") {
				t.Errorf("%s: right password verifies %v, wrong one %v", tc.hash, v.verify(tc.pass), v.verify(tc.pass+"x"))
			}
		})
	}
}

// TestLoadHtpasswdFile builds a file the way an admin does (htpasswd -c, then more users) and checks Check and
// Weak on it.
func TestLoadHtpasswdFile(t *testing.T) {
	dir := t.TempDir()
	content := "# uploaders\n\n" +
		htpasswdEntry(t, "alice", "a-pass", "-B", "-C", "4") + "\n" +
		htpasswdEntry(t, "bob", "b-pass", "-m") + "\r\n" + // a CRLF line, as from a Windows editor
		"   " + htpasswdEntry(t, "carol", "c-pass", "-s") + "  \n" +
		htpasswdEntry(t, "dave", "d-pass", "-B", "-C", "4") + ":nginx comment field\n"
	h, err := LoadHtpasswd(writeFile(t, dir, "users", content), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user, pass string
		want       bool
	}{
		{"alice", "a-pass", true},
		{"bob", "b-pass", true},
		{"carol", "c-pass", true},
		{"dave", "d-pass", true},
		{"alice", "b-pass", false},
		{"bob", "a-pass", false},
		{"carol", "", false},
		{"mallory", "a-pass", false},
		{"", "", false},
		{"Alice", "a-pass", false}, // user names are case-sensitive, as in nginx
	}
	for _, tc := range tests {
		if got := h.Check(tc.user, tc.pass); got != tc.want {
			t.Errorf("Check(%q, %q) = %v, want %v", tc.user, tc.pass, got, tc.want)
		}
	}
	if got, want := h.Weak(), []string{"bob", "carol"}; !slices.Equal(got, want) {
		t.Errorf("Weak() = %v, want %v", got, want)
	}
	if h.Users() != 4 {
		t.Errorf("Users() = %d, want 4", h.Users())
	}
}

// TestCheckLongPassword checks the bound on password length: a long password is refused before any hashing,
// even when it is right.
func TestCheckLongPassword(t *testing.T) {
	ok := strings.Repeat("p", maxPasswordLen)
	long := ok + "p"
	content := "short:{SHA}" + sha1Base64(ok) + "\nlong:{SHA}" + sha1Base64(long) + "\n"
	h, err := LoadHtpasswd(writeFile(t, t.TempDir(), "u", content), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Check("short", ok) {
		t.Errorf("a %d-byte password was refused", len(ok))
	}
	if h.Check("long", long) {
		t.Errorf("a %d-byte password was checked", len(long))
	}
}

func sha1Base64(s string) string {
	sum := sha1.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// TestParseErrors checks that every kind of bad line stops the load with the file, the line number and a fix,
// and that the error never repeats a hash (or a line that may be a pasted password).
func TestParseErrors(t *testing.T) {
	des := htpasswdEntry(t, "dave", "secret", "-d")
	sha512 := htpasswdEntry(t, "sam", "secret", "-5")
	if !strings.HasPrefix(sha512, "sam:$6$") {
		t.Fatalf("htpasswd -5 wrote %q", sha512)
	}
	good := htpasswdEntry(t, "alice", "secret", "-B", "-C", "4")
	goodHash := strings.TrimPrefix(good, "alice:")
	tests := []struct {
		name    string
		content string
		want    []string // substrings of the error
		secret  string   // must not appear in the error
	}{
		{"no colon", "# c\n" + good + "\nhunter2\n", []string{"line 3", `not "user:hash"`, "htpasswd -B"}, "hunter2"},
		{"empty user", ":" + goodHash + "\n", []string{"line 1", "empty user name"}, goodHash},
		{"empty hash", "bob:\n", []string{"line 1", `"bob"`, "empty password hash"}, ""},
		{"des crypt", good + "\n" + des + "\n", []string{"line 2", `"dave"`, "crypt(3) DES", "htpasswd -B"}, strings.TrimPrefix(des, "dave:")},
		{"sha-crypt too many rounds", "sam:$6$rounds=1000001$abc$" + strings.Repeat("a", 86) + "\n", []string{"line 1", "rounds 1000001", "htpasswd -B"}, ""},
		{"sha-crypt bad rounds", "sam:$5$rounds=-5$abc$" + strings.Repeat("a", 43) + "\n", []string{"bad rounds"}, ""},
		{"sha-crypt long salt", "sam:$5$abcdefghijklmnopq$" + strings.Repeat("a", 43) + "\n", []string{"bad salt"}, ""},
		{"sha-crypt short hash", strings.TrimSuffix(sha512, sha512[len(sha512)-1:]) + "\n", []string{"malformed SHA-crypt $6$"}, sha512[10:30]},
		{"plain text", "bob:secret\n", []string{"line 1", "unrecognised password hash"}, "secret"},
		{"truncated bcrypt", "bob:" + goodHash[:59] + "\n", []string{"line 1", "malformed bcrypt"}, goodHash[:59]},
		{"bcrypt cost too high", "bob:$2y$31$" + goodHash[7:] + "\n", []string{"cost 31", "4..17"}, goodHash[7:]},
		{"bcrypt cost too low", "bob:$2y$03$" + goodHash[7:] + "\n", []string{"cost 3"}, goodHash[7:]},
		{"bcrypt bad char", "bob:" + goodHash[:59] + "!\n", []string{"bad character"}, ""},
		{"bcrypt signed cost", "bob:$2y$+5$" + goodHash[7:] + "\n", []string{"bad cost"}, goodHash[7:]},
		{"apr1 short", "bob:$apr1$abcdefgh$tooshort\n", []string{"malformed apr1"}, "tooshort"},
		{"apr1 no salt end", "bob:$apr1$abcdefgh\n", []string{"bad salt"}, "abcdefgh"},
		{"apr1 long salt", "bob:$apr1$abcdefghi$m06FabbcuFKNBGN5Dq5C/.\n", []string{"bad salt"}, "m06Fabbcu"},
		{"sha wrong length", "bob:{SHA}AAAA\n", []string{"malformed {SHA}"}, ""},
		{"sha not base64", "bob:{SHA}!!!!!!!!!!!!!!!!!!!!!!!!!!!=\n", []string{"malformed {SHA}"}, "!!!!"},
		{"control char in user", "b\x01b:" + goodHash + "\n", []string{"control character"}, goodHash},
		{"duplicate user", good + "\n\n" + good + "\n", []string{"line 3", `"alice" is already defined on line 1`}, goodHash},
		{"two bad lines", "x\ny\n", []string{"line 1", "line 2"}, ""},
		{"many bad lines", strings.Repeat("x\n", 25), []string{"line 10:", "15 more bad lines"}, ""},
		{"too large", strings.Repeat("#", maxHtpasswdSize+1), []string{"larger than"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "users", tc.content)
			_, err := LoadHtpasswd(p, nil)
			if err == nil {
				t.Fatalf("LoadHtpasswd accepted %q", tc.content)
			}
			if !errors.Is(err, errHtpasswd) {
				t.Errorf("error %v does not wrap errHtpasswd", err)
			}
			msg := err.Error()
			for _, w := range append(tc.want, p) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if tc.secret != "" && strings.Contains(msg, tc.secret) {
				t.Errorf("error %q repeats %q", msg, tc.secret)
			}
		})
	}
}

func TestLoadHtpasswdMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope")
	_, err := LoadHtpasswd(p, nil)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), p) {
		t.Fatalf("LoadHtpasswd(missing) = %v, want a not-exist error naming %s", err, p)
	}
	if _, err := LoadHtpasswd(t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("LoadHtpasswd(directory) = %v, want 'not a regular file'", err)
	}
}

// TestParseAccepts checks inputs that look odd but are valid files.
func TestParseAccepts(t *testing.T) {
	good := "alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="
	tests := []struct {
		name, content string
		users         int
	}{
		{"empty file", "", 0},
		{"only comments", "# a\n   # b\n\n\t\n", 0},
		{"no final newline", good, 1},
		{"byte order mark", "\xef\xbb\xbf" + good + "\n", 1},
		{"crlf", good + "\r\n", 1},
		{"comment field", good + ":Alice Example\n", 1},
		{"md5-crypt $1$", "bob:$1$saltstr$jt4dMUtB952ERKJcUbm6W1\n", 1},
		{"apr1 empty salt", "bob:$apr1$$m06FabbcuFKNBGN5Dq5C/.\n", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := parseHtpasswd("f", []byte(tc.content))
			if err != nil {
				t.Fatal(err)
			}
			if len(u.byName) != tc.users {
				t.Errorf("%d users, want %d", len(u.byName), tc.users)
			}
		})
	}
}

// TestDecoy checks that an unknown user is checked against the most expensive entry (so it costs what a
// wrong password does), and still never matches, not even with that entry's password.
func TestDecoy(t *testing.T) {
	cheap := htpasswdEntry(t, "cheap", "pw-cheap", "-B", "-C", "4")
	dear := htpasswdEntry(t, "dear", "pw-dear", "-B", "-C", "6")
	apr := htpasswdEntry(t, "apr", "pw-apr", "-m")
	tests := []struct {
		name, content, want string
	}{
		{"highest bcrypt cost", cheap + "\n" + dear + "\n" + apr + "\n", "dear"},
		{"bcrypt beats apr1", apr + "\n" + cheap + "\n", "cheap"},
		{"only apr1", apr + "\n", "apr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := parseHtpasswd("f", []byte(tc.content))
			if err != nil {
				t.Fatal(err)
			}
			if u.decoy != u.byName[tc.want] {
				t.Errorf("decoy is %#v, want %s's entry", u.decoy, tc.want)
			}
		})
	}
	h, err := LoadHtpasswd(writeFile(t, t.TempDir(), "u", dear+"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.Check("nobody", "pw-dear") {
		t.Error("an unknown user matched the decoy's password")
	}
	empty, err := LoadHtpasswd(writeFile(t, t.TempDir(), "u", ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if empty.Check("", "") || empty.Check("a", "b") {
		t.Error("an empty file let someone in")
	}
}

// TestReload checks that edits take effect on the next Check with no restart, whether the file is replaced
// (new inode, as editors and htpasswd do) or rewritten in place; that a broken edit keeps the old users and
// is logged once; and that a deleted file keeps the old users.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	alice := htpasswdEntry(t, "alice", "a-pass", "-B", "-C", "4")
	bob := htpasswdEntry(t, "bob", "b-pass", "-m")
	p := writeFile(t, dir, "users", alice+"\n")
	core, logs := observer.New(zapcore.InfoLevel)
	h, err := LoadHtpasswd(p, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	replace := func(content string) {
		t.Helper()
		tmp := writeFile(t, dir, "users.tmp", content)
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
	inPlace := func(content string) {
		t.Helper()
		// Same size as before is the hard case for change detection; the mtime must tell it apart. Set it
		// explicitly: a coarse filesystem clock could give both writes the same timestamp.
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Hour)
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}
	check := func(step string, wantAlice, wantBob bool) {
		t.Helper()
		if got := h.Check("alice", "a-pass"); got != wantAlice {
			t.Errorf("%s: alice %v, want %v", step, got, wantAlice)
		}
		if got := h.Check("bob", "b-pass"); got != wantBob {
			t.Errorf("%s: bob %v, want %v", step, got, wantBob)
		}
	}

	check("initial", true, false)
	replace(alice + "\n" + bob + "\n")
	check("bob added by rename", true, true)
	if got := h.Weak(); !slices.Equal(got, []string{"bob"}) {
		t.Errorf("Weak() after reload = %v, want [bob]", got)
	}
	if logs.FilterMessage("htpasswd has weak password hashes; re-create these entries with htpasswd -B").Len() != 1 {
		t.Errorf("the reload did not warn about bob's weak hash: %v", logs.All())
	}

	replace(bob + "\n" + "garbage line\n")
	check("broken edit", true, true)
	check("broken edit, again", true, true)
	failed := logs.FilterMessage("htpasswd reload failed; the previous users stay in force until the file is fixed")
	if failed.Len() != 1 || !strings.Contains(failed.All()[0].ContextMap()["error"].(string), "line 2") {
		t.Errorf("want one reload failure naming line 2, got %v", failed.All())
	}

	replace(bob + "\n")
	check("fixed: alice removed", false, true)

	inPlace(strings.Replace(bob, "bob:", "bib:", 1) + "\n")
	check("rewritten in place: bob renamed", false, false)
	if !h.Check("bib", "b-pass") {
		t.Error("bib was not loaded from the in-place rewrite")
	}

	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if !h.Check("bib", "b-pass") {
			t.Error("deleting the file dropped the loaded users")
		}
	}
	if logs.FilterMessage("htpasswd reload failed; the previous users stay in force until the file is fixed").Len() != 2 {
		t.Errorf("the missing file was not logged once: %v", logs.All())
	}
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok && (strings.Contains(s, "-pass") || strings.Contains(s, "$2y$") || strings.Contains(s, "$apr1$")) {
				t.Errorf("log %q field %s = %q carries a credential", e.Message, k, s)
			}
		}
	}
}

// TestCheckConcurrentReload runs Checks from several goroutines across a reload, for the race detector.
func TestCheckConcurrentReload(t *testing.T) {
	dir := t.TempDir()
	alice := htpasswdEntry(t, "alice", "a-pass", "-m")
	p := writeFile(t, dir, "users", alice+"\n")
	h, err := LoadHtpasswd(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan bool)
	for range 4 {
		go func() {
			ok := true
			for range 50 {
				ok = ok && h.Check("alice", "a-pass")
			}
			done <- ok
		}()
	}
	tmp := writeFile(t, dir, "tmp", alice+"\n# edited\n")
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if !<-done {
			t.Error("alice was refused during a reload of a file that keeps her")
		}
	}
}

// countingVerifier records how often it was asked.
type countingVerifier struct{ calls int }

func (c *countingVerifier) verify(string) bool { c.calls++; return true }
func (*countingVerifier) scheme() string       { return "test" }
func (*countingVerifier) weak() bool           { return false }

// TestUnknownUserPaysForADecoy checks, without measuring time, that an unknown user's password is hashed once
// (against the decoy) and that even a decoy that "matches" lets nobody in.
func TestUnknownUserPaysForADecoy(t *testing.T) {
	h, err := LoadHtpasswd(writeFile(t, t.TempDir(), "u", "alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	decoy := &countingVerifier{}
	h.cur.Load().users.decoy = decoy
	if h.Check("nobody", "secret") {
		t.Error("an unknown user was let in")
	}
	if decoy.calls != 1 {
		t.Errorf("decoy checked %d times for an unknown user, want 1", decoy.calls)
	}
	if !h.Check("alice", "secret") || decoy.calls != 1 {
		t.Errorf("a known user: decoy checked %d times in all, want still 1", decoy.calls)
	}
}
