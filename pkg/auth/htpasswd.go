package auth

import (
	"fmt"
	"io"
	"os"
	"slices"
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
	// seen is the identity of the last version of the file we tried, parsed or not, and failed its error text;
	// together they keep a broken file from being re-parsed (and logged) on every request. Guarded by mu.
	seen   fileID
	failed string
}

// snapshot is one successfully parsed version of the file.
type snapshot struct {
	users *users
	id    fileID
}

// fileID tells versions of the file apart without reading it: editors and htpasswd replace the file (new
// inode) or rewrite it (new mtime, usually new size). Nanosecond mtimes make a same-second edit visible.
type fileID struct {
	ino   uint64
	dev   uint64
	size  int64
	mtime time.Time
}

// LoadHtpasswd reads and parses the htpasswd file at path. An error names the file and each bad line; it is
// meant to stop start-up. log receives the reload messages (a nil log discards them); start-up warnings about
// Weak users are the caller's to log.
func LoadHtpasswd(path string, log *zap.Logger) (*Htpasswd, error) {
	if log == nil {
		log = zap.NewNop()
	}
	h := &Htpasswd{path: path, log: log}
	s, err := h.read()
	if err != nil {
		return nil, err
	}
	h.cur.Store(s)
	h.seen = s.id
	return h, nil
}

// read stats, reads and parses the file. The stat comes first so that a write racing with the read makes the
// recorded identity older than the content, and the next Check reads the file again.
func (h *Htpasswd) read() (*snapshot, error) {
	f, err := os.Open(h.path)
	if err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	id := idOf(fi)
	if !fi.Mode().IsRegular() {
		return &snapshot{id: id}, fmt.Errorf("%w file %s: not a regular file", errHtpasswd, h.path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxHtpasswdSize+1))
	if err != nil {
		return &snapshot{id: id}, fmt.Errorf("htpasswd: read %s: %w", h.path, err)
	}
	u, err := parseHtpasswd(h.path, data)
	if err != nil {
		return &snapshot{id: id}, err
	}
	return &snapshot{users: u, id: id}, nil
}

func idOf(fi os.FileInfo) fileID {
	id := fileID{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino, id.dev = st.Ino, uint64(st.Dev) //nolint:unconvert // Dev is uint32 on some platforms
	}
	return id
}

// maxPasswordLen bounds the work one request can cause: md5-crypt and SHA-crypt hash the password thousands of
// times, and SHA-crypt's P sequence is quadratic in its length, so a megabyte Authorization header would cost
// seconds of CPU. The htpasswd tool itself refuses passwords over 256 bytes.
const maxPasswordLen = 1024

// Check reports whether pass is user's password. A password longer than 1024 bytes is refused unchecked. Before checking it stats the file and, if it changed since it
// was last read, reloads it (see the type's comment for failed reloads). An unknown user costs about as much
// as a wrong password (see decoyFor), so timing does not tell which user names exist. Check never logs
// credentials; it may log a reload failure.
func (h *Htpasswd) Check(user, pass string) bool {
	if len(pass) > maxPasswordLen {
		return false // whoever the user is: the refusal tells nothing about the file
	}
	u := h.current().users
	v, ok := u.byName[user]
	if !ok {
		u.decoy.verify(pass)
		return false
	}
	return v.verify(pass)
}

// current returns the snapshot to check against, reloading first if the file changed. A stat per call costs
// about a microsecond, negligible beside a bcrypt check, and means an edit takes effect on the next request.
func (h *Htpasswd) current() *snapshot {
	s := h.cur.Load()
	fi, err := os.Stat(h.path)
	if err == nil && idOf(fi) == s.id {
		return s
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		// Deleted or unreadable: keep the users we have. An admin who wants nobody to upload empties the file.
		h.reportOnce(fileID{}, err)
		return h.cur.Load()
	}
	if id := idOf(fi); id == h.seen || id == h.cur.Load().id {
		return h.cur.Load() // another request reloaded it, or this version already failed and was logged
	}
	next, err := h.read()
	if err != nil {
		id := fileID{}
		if next != nil {
			id = next.id
		}
		h.reportOnce(id, err)
		return h.cur.Load()
	}
	h.cur.Store(next)
	h.seen, h.failed = next.id, ""
	h.log.Info("htpasswd reloaded", zap.String("file", h.path), zap.Int("users", len(next.users.byName)))
	if weak := weakUsers(next.users); len(weak) > 0 {
		h.log.Warn("htpasswd has weak password hashes; re-create these entries with htpasswd -B",
			zap.String("file", h.path), zap.Strings("users", weak))
	}
	return next
}

// reportOnce logs a reload failure unless it is the one already logged for this version of the file. Called
// with mu held.
func (h *Htpasswd) reportOnce(id fileID, err error) {
	h.seen = id
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
