// Package lease is the per-repository publish lease on S3-compatible storage: one small JSON object per
// repository, {holder, token, expires}, written only with conditional requests, so that at most one daemon at a
// time believes it may publish a repository, and a holder that died is replaced once its lease has expired.
//
//	acquire:  PUT If-None-Match: *           (no lease yet)
//	          PUT If-Match: <its ETag>        (take over a lease whose expiry has passed)
//	renew:    PUT If-Match: <our ETag>        (412/404: someone took over, or it is gone: ErrLost)
//	release:  DELETE If-Match: <our ETag>
//
// Expiry is judged by the clocks of the daemons: a holder must stop acting on its lease some margin before
// Expires (see Lease.Remaining), and the daemons' clocks must agree to well within that margin (NTP).
package lease

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
)

var (
	// ErrHeld: Acquire found an unexpired lease of another holder (the error is a *HeldError).
	ErrHeld = errors.New("lease: held by another holder")
	// ErrLost: Renew or Release found that the lease is no longer ours: it expired and was taken over, or it was
	// removed. The holder must stop at once.
	ErrLost = errors.New("lease: lost")
)

// HeldError says who holds the lease and until when.
type HeldError struct {
	Key     string
	Holder  string
	Expires time.Time
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("lease %s: held by %q until %s", e.Key, e.Holder, e.Expires.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Store is the part of *objstore.Store that leases use.
type Store interface {
	PutIfAbsent(ctx context.Context, key string, body io.ReadSeeker, meta map[string]string) (string, error)
	PutIfMatch(ctx context.Context, key, etag string, body io.ReadSeeker, meta map[string]string) (string, error)
	Get(ctx context.Context, key string) (io.ReadCloser, objstore.Info, error)
	DeleteIfMatch(ctx context.Context, key, etag string) error
}

// Record is the lease object's JSON body. Token is new for every acquisition, so that a holder recognises its
// own write after a retried request, and a restarted daemon with the same holder name does not mistake its
// predecessor's lease for its own.
type Record struct {
	Holder  string    `json:"holder"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// Options configures a Manager.
type Options struct {
	Holder string        // who this daemon is, e.g. "host:pid"; required
	TTL    time.Duration // how long an acquisition or renewal lasts; required
	// Now is the clock (nil: time.Now). A test seam.
	Now func() time.Time
	// Token makes acquisition tokens (nil: 16 random bytes in hex). A test seam.
	Token func() string
}

// Manager acquires leases for one holder. It is safe for concurrent use.
type Manager struct {
	store  Store
	holder string
	ttl    time.Duration
	now    func() time.Time
	token  func() string

	mu sync.Mutex
	// unsure holds, per repository, the token of an Acquire that failed in a way that may have written the lease
	// all the same (ErrUnavailable after a request that took effect): the next Acquire tries it again, and so
	// recognises that lease as its own instead of waiting a whole TTL for it.
	unsure map[string]string
}

// New returns a Manager for the holder in opts.
func New(store Store, opts Options) (*Manager, error) {
	if store == nil || opts.Holder == "" || opts.TTL <= 0 {
		return nil, errors.New("lease: a store, a holder and a positive TTL are required")
	}
	m := &Manager{store: store, holder: opts.Holder, ttl: opts.TTL, now: opts.Now, token: opts.Token,
		unsure: map[string]string{}}
	if m.now == nil {
		m.now = time.Now
	}
	if m.token == nil {
		m.token = randomToken
	}
	return m, nil
}

// Key is the object that holds the lease of a repository, e.g. "9/x86_64/.rpm-ingestd/lease.json".
func Key(repo string) string { return repo + "/.rpm-ingestd/lease.json" }

// Lease is one acquisition. Its methods are for one goroutine at a time.
type Lease struct {
	m    *Manager
	key  string
	etag string
	rec  Record
}

// maxRounds bounds Acquire's loop over races (a lease deleted or replaced between our read and our write).
const maxRounds = 8

// Acquire takes the lease of repo: it creates the lease object, or takes over one whose expiry has passed. It
// returns a *HeldError (errors.Is ErrHeld) while another holder's lease is valid, and objstore errors (e.g.
// ErrUnavailable) as they come.
func (m *Manager) Acquire(ctx context.Context, repo string) (l *Lease, err error) {
	key := Key(repo)
	m.mu.Lock()
	token, ok := m.unsure[repo]
	delete(m.unsure, repo)
	m.mu.Unlock()
	if !ok {
		token = m.token()
	}
	defer func() {
		if err != nil && !errors.Is(err, ErrHeld) {
			m.mu.Lock()
			m.unsure[repo] = token
			m.mu.Unlock()
		}
	}()
	rec := Record{Holder: m.holder, Token: token}
	for range maxRounds {
		rec.Expires = m.now().Add(m.ttl).UTC()
		body, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		etag, err := m.store.PutIfAbsent(ctx, key, bytes.NewReader(body), nil)
		if err == nil {
			return &Lease{m: m, key: key, etag: etag, rec: rec}, nil
		}
		if errors.Is(err, objstore.ErrConflict) {
			continue // 409: a conditional write on the key raced ours (AWS); look again
		}
		if !errors.Is(err, objstore.ErrExists) {
			return nil, err
		}
		cur, curETag, modified, err := m.read(ctx, key)
		if errors.Is(err, objstore.ErrNotFound) {
			continue // released meanwhile: try to create it again
		}
		if err != nil {
			return nil, err
		}
		ours := cur != nil && cur.Token == rec.Token
		// ours: our own PUT landed and only its answer was lost (a retry met our object), or an earlier Acquire
		// that failed had in fact written it. Its expiry may be old: refresh it below like a takeover.
		expires := modified.Add(m.ttl) // an unreadable lease counts from its last write
		if cur != nil {
			expires = cur.Expires
		}
		if !ours && m.now().Before(expires) {
			h := &HeldError{Key: key, Expires: expires}
			if cur != nil {
				h.Holder = cur.Holder
			}
			return nil, h
		}
		rec.Expires = m.now().Add(m.ttl).UTC()
		if body, err = json.Marshal(rec); err != nil {
			return nil, err
		}
		etag, err = m.store.PutIfMatch(ctx, key, curETag, bytes.NewReader(body), nil)
		if err == nil {
			return &Lease{m: m, key: key, etag: etag, rec: rec}, nil
		}
		if !errors.Is(err, objstore.ErrConflict) && !errors.Is(err, objstore.ErrNotFound) {
			return nil, err
		}
		// Someone else renewed, took over or released in between: look again. A lost answer to our own
		// write shows up as our token in the next round.
	}
	return nil, fmt.Errorf("lease %s: still contended after %d rounds", key, maxRounds)
}

// read returns the lease record (nil if its body is not a lease), its ETag and its modification time.
func (m *Manager) read(ctx context.Context, key string) (*Record, string, time.Time, error) {
	body, info, err := m.store.Get(ctx, key)
	if err != nil {
		return nil, "", time.Time{}, err
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, 64<<10))
	if err != nil {
		return nil, "", time.Time{}, fmt.Errorf("lease %s: read: %w", key, err)
	}
	var rec Record
	if json.Unmarshal(data, &rec) != nil || rec.Token == "" || rec.Expires.IsZero() {
		return nil, info.ETag, info.LastModified, nil
	}
	return &rec, info.ETag, info.LastModified, nil
}

// Holder is the holder name written in the lease.
func (l *Lease) Holder() string { return l.rec.Holder }

// Expires is the expiry written in the lease by the last acquisition or renewal.
func (l *Lease) Expires() time.Time { return l.rec.Expires }

// Remaining is how long the lease lasts from now by this holder's clock (negative when expired). A holder
// stops acting on it when Remaining falls below its safety margin, and renews well before that.
func (l *Lease) Remaining() time.Duration { return l.rec.Expires.Sub(l.m.now()) }

// Renew extends the lease to now+TTL, if it is still ours. ErrLost when another holder took it over or it was
// removed. Renewing after the expiry is safe: If-Match succeeds only when nobody wrote the lease since.
//
// The lease is ours while the stored token is ours: nobody else writes it. So when the If-Match fails and the
// stored record still carries our token, an earlier write of ours landed unseen (a lost answer, or a request that
// hung, failed with ErrUnavailable and took effect later): Renew adopts its ETag and writes again.
func (l *Lease) Renew(ctx context.Context) error {
	rec := l.rec
	rec.Expires = l.m.now().Add(l.m.ttl).UTC()
	body, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	for range maxRounds {
		etag, err := l.m.store.PutIfMatch(ctx, l.key, l.etag, bytes.NewReader(body), nil)
		if err == nil {
			l.etag, l.rec = etag, rec
			return nil
		}
		if !errors.Is(err, objstore.ErrConflict) && !errors.Is(err, objstore.ErrNotFound) {
			return err
		}
		cur, curETag, _, rerr := l.m.read(ctx, l.key)
		switch {
		case rerr == nil && cur != nil && same(*cur, rec):
			l.etag, l.rec = curETag, rec // the retry met its own first attempt
			return nil
		case rerr == nil && cur != nil && cur.Token == l.rec.Token:
			l.etag = curETag // an earlier renewal of ours landed unseen: still ours, write again
		case rerr != nil && !errors.Is(rerr, objstore.ErrNotFound):
			return rerr
		default:
			return fmt.Errorf("%w: %s: %w", ErrLost, l.key, err)
		}
	}
	return fmt.Errorf("lease %s: renewal still contended after %d rounds", l.key, maxRounds)
}

// Release deletes the lease if it is still ours. ErrLost when another holder has it now (it is left alone).
func (l *Lease) Release(ctx context.Context) error {
	for range maxRounds {
		err := l.m.store.DeleteIfMatch(ctx, l.key, l.etag)
		if err == nil {
			return nil
		}
		if !errors.Is(err, objstore.ErrConflict) && !errors.Is(err, objstore.ErrNotFound) {
			return err
		}
		cur, curETag, _, rerr := l.m.read(ctx, l.key)
		switch {
		case errors.Is(rerr, objstore.ErrNotFound):
			return nil // gone: by our own retried delete, or by its next holder's release; nothing is ours to undo
		case rerr != nil:
			return rerr
		case cur != nil && cur.Token == l.rec.Token:
			l.etag = curETag // a renewal of ours landed unseen: still ours, delete that
		default:
			holder := ""
			if cur != nil {
				holder = cur.Holder
			}
			return fmt.Errorf("%w: %s: now held by %q", ErrLost, l.key, holder)
		}
	}
	return fmt.Errorf("lease %s: release still contended after %d rounds", l.key, maxRounds)
}

func same(a, b Record) bool {
	return a.Holder == b.Holder && a.Token == b.Token && a.Expires.Equal(b.Expires)
}

func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return hex.EncodeToString(b[:])
}
