package registry

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// readLines returns the file's lines, each decoded as a Record; a line that is not one fails the test.
func readLines(t *testing.T, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d is not a record: %v: %q", len(out)+1, err, sc.Text())
		}
		out = append(out, r)
	}
	return out
}

func TestAuditAppendConcurrentWholeLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	a, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// A long reason makes each line bigger than a pipe buffer, so interleaving would show.
			rec := Record{Action: ActionUpload, RequestID: fmt.Sprint(i), Reason: strings.Repeat("x", 8192), Status: 400}
			if err := a.Append(rec); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	recs := readLines(t, path)
	if len(recs) != n {
		t.Fatalf("%d lines, want %d", len(recs), n)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r.RequestID] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct request ids, want %d", len(seen), n)
	}
}

func TestAuditLineHasEveryField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	a, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Append(Record{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Action: ActionUpload, Reason: "line\nbreak"}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	data, _ := os.ReadFile(path)
	if strings.Count(string(data), "\n") != 1 {
		t.Fatalf("want exactly one line, got %q", data)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"time", "action", "request_id", "user", "client", "file_name", "nevra", "name", "arch",
		"sha256", "size", "signed_by", "repos", "paths", "status", "result", "reason"} {
		if _, ok := m[k]; !ok {
			t.Errorf("line lacks %q: %s", k, data)
		}
	}
	if _, ok := m["repos"].([]any); !ok {
		t.Errorf("repos is %v, want a list even when empty", m["repos"])
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640: the trail names users", fi.Mode().Perm())
	}
}

func TestAuditReopenAfterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	a, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Append(Record{Action: ActionUpload, RequestID: "before"})
	if err := os.Rename(path, path+".1"); err != nil { // what logrotate does
		t.Fatal(err)
	}
	a.Append(Record{Action: ActionUpload, RequestID: "still-old"}) // before the HUP: the renamed file
	if err := a.Reopen(); err != nil {
		t.Fatal(err)
	}
	a.Append(Record{Action: ActionUpload, RequestID: "after"})

	ids := func(p string) (s []string) {
		for _, r := range readLines(t, p) {
			s = append(s, r.RequestID)
		}
		return s
	}
	if got := strings.Join(ids(path+".1"), ","); got != "before,still-old" {
		t.Errorf("rotated file holds %s", got)
	}
	if got := strings.Join(ids(path), ","); got != "after" {
		t.Errorf("new file holds %s", got)
	}
}

func TestAuditReopenFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "logs")
	os.Mkdir(sub, 0o755)
	path := filepath.Join(sub, "audit.log")
	a, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// The directory goes away: the path cannot be reopened (as root, permissions would not stop us).
	os.Rename(sub, filepath.Join(dir, "moved"))
	if err := a.Reopen(); err == nil {
		t.Fatal("Reopen succeeded on a missing directory")
	}
	if err := a.Append(Record{Action: ActionUpload, RequestID: "kept"}); err != nil {
		t.Fatalf("append after a failed reopen: %v", err)
	}
	if recs := readLines(t, filepath.Join(dir, "moved", "audit.log")); len(recs) != 1 || recs[0].RequestID != "kept" {
		t.Errorf("old file holds %+v", recs)
	}
}

func TestAuditWriteFailureCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	// /dev/full fails every write with ENOSPC, as a full disk does.
	a, err := Open("/dev/full", reg)
	if err != nil {
		t.Fatalf("open /dev/full: %v", err)
	}
	defer a.Close()
	err = a.Append(Record{Action: ActionUpload})
	if err == nil {
		t.Fatal("append to /dev/full succeeded")
	}
	if !strings.Contains(err.Error(), "no space") {
		t.Errorf("error %q does not say why", err)
	}
	if got := testutil.ToFloat64(a.failures); got != 1 {
		t.Errorf("rpm_ingestd_audit_write_failures_total = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "rpm_ingestd_audit_write_failures_total"); err != nil || n != 1 {
		t.Errorf("family not registered: %d, %v", n, err)
	}
}

func TestAuditClosed(t *testing.T) {
	a, err := Open(filepath.Join(t.TempDir(), "audit.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if err := a.Append(Record{Action: ActionUpload}); !errors.Is(err, ErrClosed) {
		t.Errorf("append after close: %v, want ErrClosed", err)
	}
	if err := a.Reopen(); !errors.Is(err, ErrClosed) {
		t.Errorf("reopen after close: %v, want ErrClosed", err)
	}
}

func TestOpenFailure(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "no", "such", "dir", "audit.log"), nil); err == nil {
		t.Fatal("Open succeeded in a missing directory")
	}
}

func TestAuditCapsReason(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	a, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Append(Record{Action: ActionUpload, Reason: strings.Repeat("é", maxLine)})
	a.Close()
	recs := readLines(t, path)
	if len(recs) != 1 || len(recs[0].Reason) > maxReason+len("…") || !strings.HasSuffix(recs[0].Reason, "…") {
		t.Errorf("reason of %d bytes", len(recs[0].Reason))
	}
	ix := NewIndex(t.TempDir(), nil)
	if st, _ := ix.Build(path); st.Records != 1 || st.Bad != 0 {
		t.Errorf("read back: %+v", st)
	}
}

// A crash mid-write leaves a torn last line; the next record must start a line of its own, on Open and on Reopen.
func TestAuditSealsTornTail(t *testing.T) {
	for _, viaReopen := range []bool{false, true} {
		t.Run(fmt.Sprintf("reopen=%t", viaReopen), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "audit.log")
			torn := `{"time":"2026-01-02T03:04:05Z","action":"upload","request_id":"torn","user":"ali`
			whole, _ := marshalLine(Record{Action: ActionUpload, RequestID: "whole", Status: 201})
			reg := prometheus.NewRegistry()
			var a *Audit
			var err error
			if viaReopen {
				if a, err = Open(path, reg); err != nil {
					t.Fatal(err)
				}
				defer a.Close()
				os.Rename(path, path+".1") // logrotate; a crashed writer left a torn file at the path
			}
			if err := os.WriteFile(path, append(whole, torn...), 0o640); err != nil {
				t.Fatal(err)
			}
			if viaReopen {
				err = a.Reopen()
			} else {
				a, err = Open(path, reg)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !viaReopen {
				defer a.Close()
			}
			if err := a.Append(Record{Action: ActionUpload, RequestID: "next", User: "bob", Status: 201}); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(path)
			lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			if len(lines) != 3 || lines[1] != torn {
				t.Fatalf("want the whole line, the torn one alone, the next record; got %q", data)
			}
			var r Record
			if err := json.Unmarshal([]byte(lines[2]), &r); err != nil || r.RequestID != "next" || r.User != "bob" {
				t.Errorf("next record %q: %v", lines[2], err)
			}
			if a.TornTails() != 1 || testutil.ToFloat64(a.torn) != 1 {
				t.Errorf("torn tails counted %d / %v, want 1", a.TornTails(), testutil.ToFloat64(a.torn))
			}
			ix := NewIndex(t.TempDir(), nil)
			if st, _ := ix.Build(path); st.Records != 2 || st.Bad != 1 {
				t.Errorf("read back: %+v, want 2 records and 1 bad line", st)
			}
			// A file that ends cleanly is not touched again.
			if err := a.Reopen(); err != nil {
				t.Fatal(err)
			}
			if a.TornTails() != 1 {
				t.Errorf("a clean tail counted as torn")
			}
		})
	}
}

// TestAuditReopenFileAppearsWithTheSwap: once the new file exists after a rotation, every later record goes into
// it. What watches for the reopen (logrotate's next step, the daemon tests after a SIGHUP) can only see the file
// appear; a record appended after that and written into the rotated file instead is lost to whoever reads the
// new one. Each round renames, reopens on another goroutine, appends as soon as the file is there, and checks
// where the record went.
func TestAuditReopenFileAppearsWithTheSwap(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	a, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for round := range 100 {
		rotated := fmt.Sprintf("%s.%d", path, round)
		if err := os.Rename(path, rotated); err != nil {
			t.Fatal(err)
		}
		reopened := make(chan error, 1)
		go func() { reopened <- a.Reopen() }()
		for {
			if _, err := os.Stat(path); err == nil {
				break
			}
			select {
			case err := <-reopened:
				if err != nil {
					t.Fatal(err)
				}
				reopened <- err // Reopen is done, so the file is there: the next Stat sees it
			default:
			}
		}
		id := fmt.Sprintf("round-%d", round)
		if err := a.Append(Record{Action: ActionUpload, RequestID: id}); err != nil {
			t.Fatal(err)
		}
		if err := <-reopened; err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range readLines(t, path) {
			got = append(got, r.RequestID)
		}
		if strings.Join(got, ",") != id {
			t.Fatalf("round %d: the new file holds %v, want only %s: the record went into the rotated file", round, got, id)
		}
	}
}
