package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Htpasswd is a user file in the format of Apache's htpasswd, the same file nginx's auth_basic_user_file
// reads. It accepts bcrypt (`htpasswd -B`), SHA-crypt ($5$ and $6$, `htpasswd -2` and `-5`), apr1 (`htpasswd
// -m`, the tool's default), md5-crypt ($1$) and {SHA} (`htpasswd -s`) entries, and refuses crypt(3) DES,
// plain text and anything else at load.
//
// Check re-reads the file when it changes, so users are added, removed and re-keyed with the htpasswd tool and
// no restart. A change that does not parse is logged and the previous users stay in force: a half-saved file
// must neither lock everyone out nor let anyone in.
//
// An *Htpasswd is safe for concurrent use. It starts no goroutine.
type Htpasswd struct {
	path string
	log  *zap.Logger

	cur atomic.Pointer[snapshot] // what Check uses; replaced whole on reload
	// mu serialises reloads, so a burst of requests after an edit parses the file once. Check itself only
	// takes it when the file looks changed.
	mu sync.Mutex
	// seen is the identity of the last version of the file we tried, parsed or not, seenSettled whether that
	// identity was settled when read (racyWindow), and failed the error text of the last failure; together they
	// keep a broken file from being re-parsed (and logged) on every request. Guarded by mu.
	seen        fileID
	seenSettled bool
	failed      string

	// cacheFor is how long a password that passed its hash check is accepted again without the check (0: never;
	// see CacheVerified). key is the HMAC key that stands in for the password in the cache, made at load and
	// never written anywhere. now is the clock (a fake one in tests).
	cacheFor time.Duration
	key      [32]byte
	now      func() time.Time
	// fsNow is the clock that read judges a version's age by (see racyWindow): the real one, as the filesystem's
	// ctimes are, not now. A test sets it to show a version read seconds after its last change.
	fsNow func() time.Time

	// hashed counts the password checks that ran a hash (a known user's, or the decoy of an unknown one), cached
	// those answered from the cache; see Checks.
	hashed, cached atomic.Uint64
}

// snapshot is one successfully parsed version of the file.
type snapshot struct {
	users *users
	id    fileID
	sum   [sha256.Size]byte // of the file's bytes, so that a re-read can tell whether the content changed
	// settled is whether id alone tells this version from any later one (see racyWindow); until then every
	// Check reads the file again. Set at most once, from false to true.
	settled atomic.Bool
	// verified is the cache of passwords that passed their check against these users. A new content starts an
	// empty one, so a changed or removed entry is checked against its hash again at once; a re-read that finds
	// the same bytes (a touch, a rewrite with the same content) keeps it.
	verified *verifiedCache
}

// verifiedCache holds, per user, the last password that passed its check, as an HMAC under Htpasswd.key (never
// the password), and when it passed. One entry per user of the file bounds its size by the file's.
type verifiedCache struct {
	mu sync.Mutex
	m  map[string]verifiedEntry
}

type verifiedEntry struct {
	mac [sha256.Size]byte
	at  time.Time
}

// hit reports whether mac is user's cached password and was checked within maxAge before now.
func (c *verifiedCache) hit(user string, mac [sha256.Size]byte, now time.Time, maxAge time.Duration) bool {
	c.mu.Lock()
	e, ok := c.m[user]
	c.mu.Unlock()
	return ok && hmac.Equal(e.mac[:], mac[:]) && now.Sub(e.at) < maxAge && !now.Before(e.at)
}

// put remembers mac as user's password. The key is a copy of user: the caller's string is typically a substring of
// the decoded "user:password" of a Basic header (net/http's BasicAuth), and keeping it would keep the password.
func (c *verifiedCache) put(user string, mac [sha256.Size]byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]verifiedEntry{}
	}
	c.m[strings.Clone(user)] = verifiedEntry{mac: mac, at: now} // (assigning to an existing string key stores the new key too)
}

// fileID tells versions of the file apart without reading it: editors and htpasswd replace the file (new
// inode) or rewrite it (new mtime, usually new size). The change time (ctime) is there for writers that put the
// mtime back (touch -d, cp -p, rsync -t) and for an inode number reused by a delete and create: no process can set
// it, and every write, chmod, utimes and rename sets it to the current time. Nanosecond times make a same-second
// edit visible where the filesystem keeps them. (Outside Linux ctime is the mtime again: see changeTime.)
type fileID struct {
	ino   uint64
	dev   uint64
	size  int64
	mtime time.Time
	ctime time.Time
}

// LoadHtpasswd reads and parses the htpasswd file at path. An error names the file and each bad line; it is
// meant to stop start-up. log receives the reload messages (a nil log discards them); start-up warnings about
// Weak users are the caller's to log.
func LoadHtpasswd(path string, log *zap.Logger) (*Htpasswd, error) {
	if log == nil {
		log = zap.NewNop()
	}
	h := &Htpasswd{path: path, log: log, now: time.Now, fsNow: time.Now}
	if _, err := rand.Read(h.key[:]); err != nil {
		return nil, fmt.Errorf("htpasswd: random key for the password cache: %w", err)
	}
	v, err := h.read()
	if err != nil {
		return nil, err
	}
	s, err := h.parse(v)
	if err != nil {
		return nil, err
	}
	h.cur.Store(s)
	h.seen, h.seenSettled = v.id, v.settled
	return h, nil
}

// racyWindow is how long after a file's last change (its ctime) a read of it is "racy", as git calls it: a later
// write within the same tick of the filesystem's clock (coarse: milliseconds; whole seconds on some filesystems)
// can leave inode, size, mtime and ctime all unchanged, as `htpasswd -B` run twice in a row on one user can (an
// in-place rewrite of the same length). A version read less than racyWindow after its ctime is read again on
// every Check, and its bytes compared, until a read comes later than that; from then on any write sets a later
// ctime, and a stat suffices. The ctime, not the mtime, because a writer can set the mtime to anything: an old
// mtime put back (touch -d) would otherwise hide a same-size rewrite of a settled version, and an mtime in the
// future would keep a version racy, its bytes read on every login, until that time. What is left: a system clock
// set back to within a tick of a settled version's ctime can give a later write that same ctime (with a coarse
// filesystem clock, a same-size rewrite that keeps the mtime is then missed); and a version whose ctime lies in the
// future (the clock was set back) is read on every login until that time has passed; and a write through a shared
// mmap to a page still dirty from an earlier one sets no time at all (the kernel stamps the first write to a clean
// page only), so it is missed until the next change. Outside Linux the mtime stands in for the ctime (changeTime),
// with the limits above.
const racyWindow = 2 * time.Second

// version is one read of the file: its identity as fstat-ed before the read, its bytes and their SHA-256, and
// whether the identity was settled (read more than racyWindow after the ctime).
type version struct {
	id      fileID
	data    []byte
	sum     [sha256.Size]byte
	settled bool
}

// read opens, fstats and reads the file; anything but a regular file is refused, without blocking on a FIFO. The
// clock is read first and the fstat comes before the read, so that a write racing with the read makes the recorded
// identity older than the content (the next Check reads the file again), and a write after it has a ctime no
// earlier than the clock's reading, less one tick (see racyWindow). An error may come with the identity (a version
// to remember as tried) or without (id zero).
func (h *Htpasswd) read() (version, error) {
	at := h.fsNow()
	// O_NONBLOCK: an open(2) of a FIFO with no writer would otherwise wait for one, with mu held, and every login
	// with it; the fstat below then refuses the FIFO. A regular file's reads ignore the flag. O_NOCTTY: a terminal
	// at the path does not become the daemon's controlling terminal.
	f, err := os.OpenFile(h.path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		// Something not a regular file that could not be opened (a unix socket: ENXIO) is remembered as tried, so
		// that a settled one is not opened again, mu held, on every login; it would be refused anyway. Only that:
		// this stat comes after the open, and a symlink retargeted between them to an old regular file must be read.
		var v version
		if fi, serr := os.Stat(h.path); serr == nil && !fi.Mode().IsRegular() {
			v = versionOf(fi, at)
		}
		return v, fmt.Errorf("htpasswd: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return version{}, fmt.Errorf("htpasswd: %w", err)
	}
	v := versionOf(fi, at)
	if !fi.Mode().IsRegular() {
		return v, fmt.Errorf("%w file %s: not a regular file", errHtpasswd, h.path)
	}
	if v.data, err = io.ReadAll(io.LimitReader(f, maxHtpasswdSize+1)); err != nil {
		return v, fmt.Errorf("htpasswd: read %s: %w", h.path, err)
	}
	v.sum = sha256.Sum256(v.data)
	return v, nil
}

// versionOf is the version fi describes, read at the time at (see racyWindow), without its bytes.
func versionOf(fi os.FileInfo, at time.Time) version {
	v := version{id: idOf(fi)}
	v.settled = at.Sub(v.id.ctime) > racyWindow
	return v
}

// parse makes a snapshot of v, with an empty password cache.
func (h *Htpasswd) parse(v version) (*snapshot, error) {
	u, err := parseHtpasswd(h.path, v.data)
	if err != nil {
		return nil, err
	}
	return newSnapshot(u, v, &verifiedCache{}), nil
}

func newSnapshot(u *users, v version, c *verifiedCache) *snapshot {
	s := &snapshot{users: u, id: v.id, sum: v.sum, verified: c}
	s.settled.Store(v.settled)
	return s
}

func idOf(fi os.FileInfo) fileID {
	id := fileID{size: fi.Size(), mtime: fi.ModTime(), ctime: changeTime(fi)}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino, id.dev = st.Ino, uint64(st.Dev) //nolint:unconvert // Dev is uint32 on some platforms
	}
	return id
}

// CacheVerified makes Check accept a password that passed its hash check again, for d after that check, without
// hashing it again (0, the default, hashes every time). A bcrypt check costs milliseconds of CPU by design, and a
// CI job's uploads, or nginx's login check of each one, repeat the same password many times a minute. The cache
// holds one entry per user: an HMAC of the password under a key made at load, never the password. Only a
// password that passed is cached; a wrong one is hashed every time, as is every login after the file's content
// changed (the cache belongs to the content it was filled from). Call it before the first Check.
func (h *Htpasswd) CacheVerified(d time.Duration) { h.cacheFor = d }

// maxPasswordLen bounds the work one request can cause: md5-crypt and SHA-crypt hash the password thousands of
// times, and SHA-crypt's P sequence is quadratic in its length, so a megabyte Authorization header would cost
// seconds of CPU. The htpasswd tool itself refuses passwords over 256 bytes.
const maxPasswordLen = 1024

// Check reports whether pass is user's password. A password longer than 1024 bytes is refused unchecked. Before
// checking it stats the file and, if it changed since it was last read, reloads it (see the type's comment for
// failed reloads). An unknown user costs about as much as a wrong password (see decoyFor), so timing does not
// tell which user names exist; with CacheVerified, a password that passed within its time answers faster, which
// tells only someone who sent the right password that it is right. Check never logs credentials; it may log a
// reload failure.
func (h *Htpasswd) Check(user, pass string) bool {
	if len(pass) > maxPasswordLen {
		return false // whoever the user is: the refusal tells nothing about the file
	}
	s := h.current()
	v, ok := s.users.byName[user]
	if !ok {
		h.hashed.Add(1)
		s.users.decoy.verify(pass)
		return false
	}
	if h.cacheFor <= 0 {
		h.hashed.Add(1)
		return v.verify(pass)
	}
	mac := h.mac(user, pass)
	if s.verified.hit(user, mac, h.now(), h.cacheFor) {
		h.cached.Add(1)
		return true
	}
	h.hashed.Add(1)
	if !v.verify(pass) {
		return false
	}
	s.verified.put(user, mac, h.now())
	return true
}

// Checks returns how many password checks Check has made since load: those that ran a hash (right, wrong, or the
// decoy of an unknown user) and those answered from the cache (CacheVerified). A password refused unchecked (over
// 1024 bytes) is in neither.
func (h *Htpasswd) Checks() (hashed, cached uint64) { return h.hashed.Load(), h.cached.Load() }

// mac is the cache's stand-in for user's password pass: HMAC-SHA256 under h.key of both, the user first and
// length-prefixed so that no two (user, password) pairs share an input.
func (h *Htpasswd) mac(user, pass string) [sha256.Size]byte {
	m := hmac.New(sha256.New, h.key[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(user)))
	m.Write(n[:])
	m.Write([]byte(user))
	m.Write([]byte(pass))
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

// current returns the snapshot to check against, reloading first if the file changed. A stat per call costs
// about a microsecond, negligible beside a bcrypt check, and means an edit takes effect on the next request;
// for racyWindow after an edit each call also reads the file and compares its bytes.
func (h *Htpasswd) current() *snapshot {
	s := h.cur.Load()
	fi, err := os.Stat(h.path)
	if err == nil && idOf(fi) == s.id && s.settled.Load() {
		return s
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		// Deleted or unreadable: keep the users we have. An admin who wants nobody to upload empties the file.
		h.reportOnce(fileID{}, false, err)
		return h.cur.Load()
	}
	cur := h.cur.Load()
	// A settled identity that was tried last holds the bytes tried then: another request loaded them, or they
	// failed (and were logged), also when it is the loaded version's identity rewritten in its racy window.
	if id := idOf(fi); (id == cur.id && cur.settled.Load()) || (id == h.seen && h.seenSettled) {
		return cur
	}
	v, err := h.read()
	if err != nil {
		h.reportOnce(v.id, v.settled, err)
		return cur
	}
	if v.sum == cur.sum {
		// The same bytes (a racy version read again, a touch, a rewrite with the same content): the users and
		// their cached passwords stay; only the identity, and whether it is settled, may have moved on.
		if v.id == cur.id {
			if v.settled {
				cur.settled.Store(true)
			}
		} else {
			cur = newSnapshot(cur.users, v, cur.verified)
			h.cur.Store(cur)
		}
		h.seen, h.seenSettled, h.failed = v.id, v.settled, ""
		return cur
	}
	next, err := h.parse(v)
	if err != nil {
		h.reportOnce(v.id, v.settled, err)
		return cur
	}
	h.cur.Store(next)
	h.seen, h.seenSettled, h.failed = v.id, v.settled, ""
	h.log.Info("htpasswd reloaded", zap.String("file", h.path), zap.Int("users", len(next.users.byName)))
	if weak := weakUsers(next.users); len(weak) > 0 {
		h.log.Warn("htpasswd has weak password hashes; re-create these entries with htpasswd -B",
			zap.String("file", h.path), zap.Strings("users", weak))
	}
	return next
}

// reportOnce logs a reload failure unless it is the one already logged for this version of the file. Called
// with mu held.
func (h *Htpasswd) reportOnce(id fileID, settled bool, err error) {
	h.seen, h.seenSettled = id, settled
	if msg := err.Error(); msg != h.failed {
		h.failed = msg
		h.log.Error("htpasswd reload failed; the previous users stay in force until the file is fixed",
			zap.String("file", h.path), zap.Error(err))
	}
}

// Weak returns, sorted, the users whose entries use a weak format (apr1, md5-crypt or {SHA}), so that start-up
// can name them in a warning. It reflects the file as last loaded.
func (h *Htpasswd) Weak() []string { return weakUsers(h.cur.Load().users) }

// Users returns the number of users in the file as last loaded, for the start-up log line.
func (h *Htpasswd) Users() int { return len(h.cur.Load().users.byName) }

// Path returns the file's path as given to LoadHtpasswd.
func (h *Htpasswd) Path() string { return h.path }

// Has reports whether the file, as last read, names user: for the start-up check of server.permissions.
func (h *Htpasswd) Has(user string) bool {
	_, ok := h.cur.Load().users.byName[user]
	return ok
}

func weakUsers(u *users) []string {
	var out []string
	for name, v := range u.byName {
		if v.weak() {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
