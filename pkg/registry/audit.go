// Package registry owns the upload registry: the audit trail (one JSON line per decision in log.audit_file,
// appended and fsynced before the client hears the answer, reopened for logrotate) and the in-memory index of the
// packages in the tree that answers GET /api/v1/packages. It knows nothing of HTTP, the ingester or the indexer:
// the server hands it records, and main feeds it publish events.
package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// The actions a Record describes. Only uploads exist today; the others are reserved for delete, promote and
// retention, so that readers of the trail can switch on them from the start.
const (
	ActionUpload  = "upload"
	ActionDelete  = "delete"
	ActionPromote = "promote"
	ActionPrune   = "prune"
)

// The results of an accepted upload. A refused one carries its rejection reason class instead (see the server's
// result classes, like "conflict" or "invalid").
const (
	ResultCreated  = "created"  // stored where it was missing
	ResultReplaced = "replaced" // different bytes replaced (repo.overwrite)
	ResultExists   = "exists"   // identical bytes were already stored: a safe retry
)

// Record is one decision, one line of the audit file. Every field is always written (empty rather than absent),
// so that a line reads the same whatever the outcome and jq filters need no defaults.
type Record struct {
	Time      time.Time `json:"time"`
	Action    string    `json:"action"`
	RequestID string    `json:"request_id"`
	User      string    `json:"user"`   // as the authorizer saw it: htpasswd or proxy user; "" for a local peer
	Client    string    `json:"client"` // the client's address, as a trusted proxy reports it or the peer's
	// ForwardedFor is the address a trusted proxy reported where it is not believed as Client (a Basic-auth
	// promotion or deletion through nginx, whose Client is nginx): for the record only; "" otherwise.
	ForwardedFor string `json:"forwarded_for"`
	FileName     string `json:"file_name"` // as sent: the URL's last segment, "" when the client named none
	NEVRA        string `json:"nevra"`
	Name         string `json:"name"`
	Arch         string `json:"arch"` // the package's arch ("noarch", "src" for sources)
	SHA256       string `json:"sha256"`
	Size         int64  `json:"size"`
	SignedBy     string `json:"signed_by"` // key id of a signature verified against repo.keyring
	// ClaimedKeyID is the key id an unverified signature names (require_signature off: a key not in the
	// keyring, a signature that does not verify, or no keyring); "" when SignedBy is set or it is unsigned.
	ClaimedKeyID string   `json:"claimed_key_id"`
	Repos        []string `json:"repos"` // repository directories relative to top_dir
	Paths        []string `json:"paths"` // package paths relative to top_dir, parallel to Repos
	Status       int      `json:"status"`
	Result       string   `json:"result"`
	Reason       string   `json:"reason"`
	// Stamps, when set, is parallel to Paths: the size and mtime of each file the placement created as the tree
	// knew them (ingest.Result.Stamps), a zero Stamp where unknown. Index.Placed describes a new entry from it
	// instead of a stat. Not written to the audit file, and not kept by the index.
	Stamps []tree.Stamp `json:"-"`
}

// Removed reports whether r took the files at r.Paths out of the tree: a deletion or a prune that succeeded.
func (r *Record) Removed() bool {
	return (r.Action == ActionDelete || r.Action == ActionPrune) && r.Status/100 == 2
}

// Placed reports whether r put (or found) its package at r.Paths: an accepted upload, or a promotion.
func (r *Record) Placed() bool {
	switch r.Action {
	case ActionUpload:
		return r.Result == ResultCreated || r.Result == ResultReplaced || r.Result == ResultExists
	case ActionPromote:
		return r.Status/100 == 2
	}
	return false
}

// Audit is the append-only audit file. It is safe for concurrent use: lines are written whole, one at a time,
// each fsynced before Append returns, so an answered request's line survives a power loss.
type Audit struct {
	path     string
	failures prometheus.Counter // nil without a registerer
	torn     prometheus.Counter // nil without a registerer
	tornN    atomic.Int64       // torn tails sealed since Open, for the log

	mu sync.Mutex
	f  *os.File // nil after Close
}

// Open opens (creating it 0640) the audit file at path for appending, sealing a torn last line (see
// sealTail). reg, when not nil, gets the counters rpm_ingestd_audit_write_failures_total and
// rpm_ingestd_audit_torn_lines_total.
func Open(path string, reg prometheus.Registerer) (*Audit, error) {
	a := &Audit{path: path}
	if reg != nil {
		a.failures = prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rpm_ingestd_audit_write_failures_total",
			Help: "Audit records that could not be written; each failed the decision it recorded (500, nothing kept).",
		})
		a.torn = prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rpm_ingestd_audit_torn_lines_total",
			Help: "Torn last lines (a crash or full disk mid-write) found on opening the audit file and ended with a newline.",
		})
		for _, c := range []prometheus.Collector{a.failures, a.torn} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register audit metrics: %w", err)
			}
		}
	}
	f, err := a.openAppend()
	if err != nil {
		return nil, err
	}
	a.f = f
	return a, nil
}

// openAppend opens the path for appending and seals a torn tail. O_APPEND makes every write land at the end
// even if logrotate (or an admin) truncates or appends meanwhile; 0640 because the trail names users and
// clients. Read access is only for the last byte (sealTail).
func (a *Audit) openAppend() (*os.File, error) {
	f, err := os.OpenFile(a.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open audit file: %w", err)
	}
	if err := a.sealTail(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("open audit file %s: %w", a.path, err)
	}
	return f, nil
}

// sealTail ends a torn last line with a newline: a crash (or a failed truncate after a short write) can leave
// the file ending mid-record, and the next record would then continue that line, so that a reader drops both.
// Sealed, the torn fragment is one bad line of its own (the index counts it and reads on) and the next record
// starts clean. Each sealed tail is counted (TornTails, rpm_ingestd_audit_torn_lines_total). A file that is
// empty or not a regular file (a device) is left alone.
func (a *Audit) sealTail(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Size() == 0 {
		return nil
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, fi.Size()-1); err != nil {
		return fmt.Errorf("read last byte: %w", err)
	}
	if last[0] == '\n' {
		return nil
	}
	if _, err := f.Write([]byte{'\n'}); err != nil {
		return fmt.Errorf("end torn last line: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("end torn last line: %w", err)
	}
	a.tornN.Add(1)
	if a.torn != nil {
		a.torn.Inc()
	}
	return nil
}

// TornTails is how many torn last lines Open and Reopen have ended with a newline so far (main logs it).
func (a *Audit) TornTails() int64 { return a.tornN.Load() }

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit file closed")

// Append writes rec as one JSON line and fsyncs it. On an error nothing of the line is left in the file (as far
// as truncating back allows), the failure counter goes up, and the caller must not act on the decision: an
// upload the registry cannot record does not happen.
func (a *Audit) Append(rec Record) error {
	line, err := marshalLine(rec)
	if err != nil {
		a.failed()
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		a.failed()
		return ErrClosed
	}
	if err := a.write(line); err != nil {
		a.failed()
		return fmt.Errorf("write audit record to %s: %w", a.path, err)
	}
	return nil
}

// write appends line and syncs; the caller holds a.mu. A short write (a full disk) is cut back off, so the next
// record does not continue a broken line; if that fails too, the reader's JSON decoder reports that one line.
func (a *Audit) write(line []byte) error {
	fi, statErr := a.f.Stat()
	n, err := a.f.Write(line)
	if err == nil {
		err = a.f.Sync()
		if err == nil {
			return nil
		}
	}
	if n > 0 && statErr == nil {
		a.f.Truncate(fi.Size()) // best effort; the write error is what matters
	}
	return err
}

func (a *Audit) failed() {
	if a.failures != nil {
		a.failures.Inc()
	}
}

// maxReason caps Record.Reason in the file.
const maxReason = 16 << 10

// marshalLine renders rec as one line. Nil slices become [], so that "repos" is always a list.
func marshalLine(rec Record) ([]byte, error) {
	if rec.Repos == nil {
		rec.Repos = []string{}
	}
	if rec.Paths == nil {
		rec.Paths = []string{}
	}
	if len(rec.Reason) > maxReason {
		// Reasons are one line for a person; a cap keeps every line readable back (maxLine) whatever an error says.
		rec.Reason = strings.ToValidUTF8(rec.Reason[:maxReason], "") + "…"
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // Encode ends the line with \n; the encoder escapes \n inside strings
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		return nil, fmt.Errorf("encode audit record: %w", err)
	}
	return buf.Bytes(), nil
}

// Reopen opens the audit file's path afresh and switches to it: after logrotate renamed the file, new lines go to
// a new file at the configured path. Call it on SIGHUP. If the path cannot be opened, Append keeps writing to the
// old file, which is never lost, and the error says why. The file is created under the lock Append takes, so
// once it exists every later record goes into it (logrotate, or a test, can only watch the file appear).
func (a *Audit) Reopen() error {
	a.mu.Lock()
	f, err := a.openAppend()
	if err != nil {
		a.mu.Unlock()
		return err
	}
	old := a.f
	if old != nil { // not closed meanwhile: a closed Audit stays closed
		a.f = f
	}
	a.mu.Unlock()
	if old == nil {
		f.Close()
		return ErrClosed
	}
	return old.Close()
}

// Path is the audit file's configured path.
func (a *Audit) Path() string { return a.path }

// Close closes the file; later Appends fail with ErrClosed.
func (a *Audit) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}
