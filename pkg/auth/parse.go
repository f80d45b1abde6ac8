package auth

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // {SHA} entries are SHA-1 by definition; they are accepted as weak and named at start-up.
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// maxHtpasswdSize caps the file read into memory. A bcrypt line is about 70 bytes, so this is over 100,000
// users; anything larger is a mistake (the wrong file), not an htpasswd file.
const maxHtpasswdSize = 8 << 20

// bcrypt costs outside what `htpasswd -C` writes (4 to 17) are refused: each Check of a cost-31 entry would
// take days of CPU, and the file is read on every change, so a typo there must not become a denial of service.
const (
	minBcryptCost = 4
	maxBcryptCost = 17
)

// maxLineErrors is how many bad lines one error names before it only counts the rest.
const maxLineErrors = 10

// itoa64 is the alphabet of crypt(3)'s base-64 encoding, shared by md5-crypt, apr1, SHA-crypt and DES crypt.
const itoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// errHtpasswd marks every parse error, so tests and callers can tell a bad file from an I/O error.
var errHtpasswd = errors.New("htpasswd")

// verifier checks one password against one stored hash. Implementations compare the final hashes in constant
// time, and their work depends only on the stored hash and the password's length, never on its content.
type verifier interface {
	verify(pass string) bool
	scheme() string // for tests and logs: "bcrypt", "sha512-crypt", "apr1", "md5-crypt", "sha1"...
	weak() bool
}

// users is one parsed htpasswd file.
type users struct {
	byName map[string]verifier
	// decoy is checked for an unknown user so the answer takes about as long as for a known one; see decoyFor.
	decoy verifier
}

// parseHtpasswd parses an htpasswd file's contents. name is only used in error messages. It never panics and
// never echoes a password hash: a line that cannot be parsed is named by number, and the user name only when
// the line had a colon (a line without one may be a pasted password).
func parseHtpasswd(name string, data []byte) (*users, error) {
	if len(data) > maxHtpasswdSize {
		return nil, fmt.Errorf("%w file %s: larger than %d bytes; is it the right file?", errHtpasswd, name, maxHtpasswdSize)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a byte-order mark from a Windows editor
	u := &users{byName: map[string]verifier{}}
	firstLine := map[string]int{}
	var errs []error
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		// Apache trims whitespace around each line; nginx does not, but no hash format contains blanks, so
		// trimming only ever helps (a CRLF file, a trailing space from copy and paste).
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		user, v, err := parseLine(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w file %s line %d: %w", errHtpasswd, name, n, err))
			continue
		}
		if prev, dup := firstLine[user]; dup {
			// nginx and Apache silently use the first entry; a second one is almost always a forgotten old
			// password that the admin believes replaced.
			errs = append(errs, fmt.Errorf("%w file %s line %d: user %q is already defined on line %d; delete one of the lines",
				errHtpasswd, name, n, user, prev))
			continue
		}
		firstLine[user] = n
		u.byName[user] = v
	}
	if len(errs) > maxLineErrors {
		// A binary or wrong file would otherwise produce one error per line in the start-up log.
		errs = append(errs[:maxLineErrors], fmt.Errorf("%w file %s: %d more bad lines", errHtpasswd, name, len(errs)-maxLineErrors))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	u.decoy = decoyFor(u.byName)
	return u, nil
}

// parseLine parses "user:hash" or nginx's "user:hash:comment".
func parseLine(line string) (string, verifier, error) {
	user, rest, ok := strings.Cut(line, ":")
	if !ok {
		return "", nil, errors.New(`not "user:hash"; create entries with htpasswd -B FILE USER`)
	}
	if user == "" {
		return "", nil, errors.New("empty user name")
	}
	if strings.ContainsFunc(user, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", nil, errors.New("control character in the user name")
	}
	// nginx allows a third, comment field; no supported hash contains a colon, so cutting again is safe.
	hash, _, _ := strings.Cut(rest, ":")
	v, err := parseHash(hash)
	if err != nil {
		return "", nil, fmt.Errorf("user %q: %w", user, err)
	}
	return user, v, nil
}

// parseHash recognises the stored hash formats. The messages say how to fix the entry because the daemon
// refuses to start until it is fixed.
func parseHash(h string) (verifier, error) {
	const fix = "re-create the entry with htpasswd -B FILE USER"
	switch {
	case strings.HasPrefix(h, "$2y$"), strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"):
		return parseBcrypt(h)
	case strings.HasPrefix(h, "$apr1$"):
		return parseMD5Crypt(h, apr1Magic)
	case strings.HasPrefix(h, "$1$"):
		return parseMD5Crypt(h, md5Magic)
	case strings.HasPrefix(h, "{SHA}"):
		sum, err := base64.StdEncoding.Strict().DecodeString(h[len("{SHA}"):])
		if err != nil || len(sum) != sha1.Size {
			return nil, errors.New("malformed {SHA} hash: want base64 of 20 bytes; " + fix)
		}
		return &sha1Hash{sum: sum}, nil
	case strings.HasPrefix(h, sha256Crypt.magic):
		return parseShaCrypt(h, sha256Crypt)
	case strings.HasPrefix(h, sha512Crypt.magic):
		return parseShaCrypt(h, sha512Crypt)
	case len(h) == 13 && strings.Trim(h, itoa64) == "":
		// crypt(3) DES: `htpasswd -d`. It uses only the first 8 characters of the password.
		return nil, errors.New("crypt(3) DES hash, which uses only 8 password characters and is refused; " + fix)
	case h == "":
		return nil, errors.New("empty password hash; " + fix)
	}
	return nil, errors.New("unrecognised password hash (bcrypt, SHA-crypt, apr1, md5-crypt and {SHA} are accepted); " + fix)
}

// bcryptHash is a $2y$/$2a$/$2b$ entry, as `htpasswd -B` writes.
type bcryptHash struct {
	hash []byte
	cost int
}

func parseBcrypt(h string) (verifier, error) {
	// "$2y$" cost "$" 22 salt chars, 31 hash chars: 60 bytes. The library accepts shorter and longer strings
	// and only fails (or never matches) when a password is checked; validate fully here so that a bad entry
	// is a start-up error, not a user who can never log in.
	const fix = "; re-create the entry with htpasswd -B FILE USER"
	if len(h) != 60 || h[6] != '$' {
		return nil, errors.New("malformed bcrypt hash" + fix)
	}
	cost, err := strconv.Atoi(h[4:6])
	if err != nil || h[4] == '+' || h[4] == '-' {
		return nil, errors.New("malformed bcrypt hash: bad cost" + fix)
	}
	if cost < minBcryptCost || cost > maxBcryptCost {
		return nil, fmt.Errorf("bcrypt cost %d is outside %d..%d (htpasswd -C range)%s", cost, minBcryptCost, maxBcryptCost, fix)
	}
	if strings.Trim(h[7:], bcryptAlphabet) != "" {
		return nil, errors.New("malformed bcrypt hash: bad character" + fix)
	}
	// The library's own parse as a last check: both must agree that this is a hash it can compare.
	if c, err := bcrypt.Cost([]byte(h)); err != nil || c != cost {
		return nil, errors.New("malformed bcrypt hash" + fix)
	}
	return &bcryptHash{hash: []byte(h), cost: cost}, nil
}

// bcryptAlphabet is bcrypt's own base-64 alphabet (same characters as itoa64, different order).
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func (b *bcryptHash) verify(pass string) bool {
	// CompareHashAndPassword compares the final hashes with subtle.ConstantTimeCompare. Passwords longer than
	// 72 bytes are compared on their first 72, as Apache and nginx (through crypt(3)) do.
	return bcrypt.CompareHashAndPassword(b.hash, []byte(pass)) == nil
}

func (*bcryptHash) scheme() string { return "bcrypt" }
func (*bcryptHash) weak() bool     { return false }

// md5CryptHash is an apr1 ($apr1$, htpasswd's default) or md5-crypt ($1$) entry: the same algorithm with a
// different magic string. Weak: 1,000 MD5 rounds are cheap to brute-force on a GPU.
type md5CryptHash struct {
	magic string
	salt  string
	sum   string // the 22-character encoded hash
}

func parseMD5Crypt(h, magic string) (verifier, error) {
	salt, sum, ok := strings.Cut(h[len(magic):], "$")
	switch {
	case !ok || len(salt) > 8 || strings.Trim(salt, itoa64) != "":
		return nil, errors.New("malformed " + strings.Trim(magic, "$") + " hash: bad salt; re-create the entry with htpasswd -B FILE USER")
	case len(sum) != 22 || strings.Trim(sum, itoa64) != "":
		return nil, errors.New("malformed " + strings.Trim(magic, "$") + " hash; re-create the entry with htpasswd -B FILE USER")
	}
	return &md5CryptHash{magic: magic, salt: salt, sum: sum}, nil
}

func (m *md5CryptHash) verify(pass string) bool {
	got := md5Crypt([]byte(pass), m.magic, m.salt)
	return subtle.ConstantTimeCompare(got, []byte(m.sum)) == 1
}

func (m *md5CryptHash) scheme() string {
	if m.magic == apr1Magic {
		return "apr1"
	}
	return "md5-crypt"
}

func (*md5CryptHash) weak() bool { return true }

// shaCryptHash is a SHA-crypt entry, $5$ (SHA-256, `htpasswd -2`) or $6$ (SHA-512, `htpasswd -5`), which
// nginx reads through glibc's crypt(3). Not weak at its default 5000 rounds.
type shaCryptHash struct {
	v      shaCryptVariant
	rounds int
	salt   string
	sum    string
}

func parseShaCrypt(h string, v shaCryptVariant) (verifier, error) {
	name := "SHA-crypt " + v.magic
	const fix = "; re-create the entry with htpasswd -B FILE USER"
	rest := h[len(v.magic):]
	rounds := defaultShaRounds
	if r, ok := strings.CutPrefix(rest, "rounds="); ok {
		digits, after, found := strings.Cut(r, "$")
		n, err := strconv.Atoi(digits)
		if !found || err != nil || digits == "" || strings.Trim(digits, "0123456789") != "" {
			return nil, errors.New("malformed " + name + " hash: bad rounds" + fix)
		}
		if n > maxShaRounds {
			return nil, fmt.Errorf("%s rounds %d is above %d, too slow to check per request%s", name, n, maxShaRounds, fix)
		}
		rounds, rest = max(n, minShaRounds), after // below the minimum, crypt(3) uses the minimum
	}
	salt, sum, ok := strings.Cut(rest, "$")
	switch {
	case !ok || len(salt) > maxShaSalt:
		return nil, errors.New("malformed " + name + " hash: bad salt" + fix)
	case len(sum) != v.encodedLen || strings.Trim(sum, itoa64) != "":
		return nil, errors.New("malformed " + name + " hash" + fix)
	}
	return &shaCryptHash{v: v, rounds: rounds, salt: salt, sum: sum}, nil
}

func (s *shaCryptHash) verify(pass string) bool {
	return subtle.ConstantTimeCompare(shaCrypt(s.v, []byte(pass), s.salt, s.rounds), []byte(s.sum)) == 1
}

func (s *shaCryptHash) scheme() string { return s.v.name }
func (*shaCryptHash) weak() bool       { return false }

// sha1Hash is a {SHA} entry (`htpasswd -s`): one unsalted SHA-1. Weak: identical passwords have identical
// hashes and rainbow tables exist.
type sha1Hash struct{ sum []byte }

func (s *sha1Hash) verify(pass string) bool {
	got := sha1.Sum([]byte(pass)) //nolint:gosec // the stored format is SHA-1
	return subtle.ConstantTimeCompare(got[:], s.sum) == 1
}

func (*sha1Hash) scheme() string { return "sha1" }
func (*sha1Hash) weak() bool     { return true }

// decoyFor picks the entry an unknown user's password is checked against, with the result ignored. Checking
// a real entry makes "no such user" cost exactly what a wrong password for the slowest (highest-cost bcrypt)
// user costs, without generating a hash at every load. With no entries at all there is nothing to hide, and
// in a file that mixes formats, timing can still tell a fast-format user from an unknown one; Weak() already
// asks the admin to re-create those entries with bcrypt.
func decoyFor(byName map[string]verifier) verifier {
	var decoy verifier = noUsers{}
	best := -1
	for _, v := range byName {
		cost := 0 // any non-bcrypt entry beats "no decoy"; a bcrypt one beats every fast format
		if b, ok := v.(*bcryptHash); ok {
			cost = b.cost
		}
		if cost > best {
			decoy, best = v, cost
		}
	}
	return decoy
}

// noUsers is the decoy of an empty file.
type noUsers struct{}

func (noUsers) verify(string) bool { return false }
func (noUsers) scheme() string     { return "none" }
func (noUsers) weak() bool         { return false }
