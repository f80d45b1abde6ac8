package auth

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A FIFO at the htpasswd path, with no writer, blocks an open(2) for reading until a writer comes. The reload
// opens the file with mu held, so one blocked open would stall every login. These tests run the call in a
// goroutine and give up after hangAfter: a hang detector, not a timing assertion.
const hangAfter = 10 * time.Second

// mkfifo makes a FIFO at path, which must not exist.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatalf("mkfifo %s: %v", path, err)
	}
}

// returnsWithin runs f in a goroutine and fails the test if it has not returned after hangAfter. If f blocks on the
// FIFO at fifo, writers' opens release it, one open at a time, so that it ends before the test does.
func returnsWithin(t *testing.T, fifo, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		return
	case <-time.After(hangAfter):
	}
	for {
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		select {
		case <-done:
			t.Fatalf("%s had not returned after %v: it blocked on the FIFO at the htpasswd path", what, hangAfter)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestReloadRefusesFIFO: a FIFO replaces a good user file. Logins go on with the last good users, promptly, and
// the failure is logged once, naming the file.
func TestReloadRefusesFIFO(t *testing.T) {
	path := writeFile(t, t.TempDir(), "users", htpasswdEntry(t, "alice", "a-pass", "-B", "-C", "4")+"\n")
	core, logs := observer.New(zapcore.InfoLevel)
	h, err := LoadHtpasswd(path, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	mkfifo(t, path)
	for round := range 2 {
		var right, wrong bool
		returnsWithin(t, path, "a Check", func() { right, wrong = h.Check("alice", "a-pass"), h.Check("alice", "wrong") })
		if !right || wrong {
			t.Errorf("round %d: with a FIFO at the path, alice's right password %v, a wrong one %v; want the last good users", round, right, wrong)
		}
	}
	failed := logs.FilterMessage("htpasswd reload failed; the previous users stay in force until the file is fixed").All()
	if len(failed) != 1 {
		t.Fatalf("want one reload failure logged, got %d: %v", len(failed), logs.All())
	}
	if msg := failed[0].ContextMap()["error"].(string); !strings.Contains(msg, path+": not a regular file") {
		t.Errorf("the reload failure %q does not say that %s is not a regular file", msg, path)
	}
}

// TestLoadHtpasswdFIFO: at start-up a FIFO at the path is a one-line error naming the file, at once.
func TestLoadHtpasswdFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	mkfifo(t, path)
	var err error
	returnsWithin(t, path, "LoadHtpasswd", func() { _, err = LoadHtpasswd(path, nil) })
	if err == nil || err.Error() != "htpasswd file "+path+": not a regular file" {
		t.Fatalf("LoadHtpasswd(FIFO) = %v, want the one line %q", err, "htpasswd file "+path+": not a regular file")
	}
}
