package ingest

import (
	"bufio"
	"context"
	"fmt"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree/fstree"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// stagingHelperEnv makes the test binary act as a second daemon's ingester (TestStagingHelperProcess).
const stagingHelperEnv = "RPM_INGESTD_STAGING_HELPER"

func helperOptions(tr *fstree.Tree, spool string) Options {
	return Options{TopDir: tr.TopDir(), SpoolDir: spool, MaxSize: 1 << 20, Arches: []string{"x86_64"}, DistTags: []string{"el"},
		Layout: func(_, _, r, a string) (string, error) { return filepath.Join(r, a), nil }, Tree: tr}
}

// TestStagingHelperProcess is not a test: run by TestCleanupSparesLiveProcess in a child process, it stages a file
// (printing its name) and then receives a direct upload from stdin that never ends, like a daemon mid-upload.
func TestStagingHelperProcess(t *testing.T) {
	dirs := os.Getenv(stagingHelperEnv)
	if dirs == "" {
		return
	}
	top, spool, _ := strings.Cut(dirs, "\n")
	tr, err := fstree.New(fstree.Options{TopDir: top})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	in, err := New(helperOptions(tr, spool), zap.NewNop())
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	name := filepath.Join(tr.StagingDir(), "stage-in-flight")
	if err := os.WriteFile(name, []byte("in flight"), 0o600); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(name)
	in.Ingest(context.Background(), Request{Body: os.Stdin}) // blocks until stdin closes or the process is killed
	os.Exit(0)
}

// Issue 18 item 15: a daemon starting on a tree (and spool) that another live daemon uses removes none of that
// daemon's staged or spooled files, and removes them once that daemon is dead.
func TestCleanupSparesLiveProcess(t *testing.T) {
	base := t.TempDir()
	top, spool := filepath.Join(base, "storage"), filepath.Join(base, "incoming")
	os.Mkdir(top, 0o755)
	os.Mkdir(spool, 0o755)

	cmd := exec.Command(os.Args[0], "-test.run=^TestStagingHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), stagingHelperEnv+"="+top+"\n"+spool)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	fmt.Fprint(stdin, "half an rpm") // received, and more to come: the upload is in flight
	line, err := bufio.NewReader(stdout).ReadString('\n')
	staged := strings.TrimSpace(line)
	if err != nil || !strings.HasPrefix(staged, filepath.Join(top, fstree.StagingName)+"/") {
		t.Fatalf("helper said %q, %v", line, err)
	}
	var part string
	for deadline := time.Now().Add(30 * time.Second); part == ""; {
		names, _ := filepath.Glob(filepath.Join(spool, spoolPattern))
		if len(names) == 1 {
			part = names[0]
		} else if time.Now().After(deadline) {
			t.Fatal("the helper's direct upload never appeared in the spool")
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}

	// The second daemon starts on the same tree and spool.
	tr := newTree(t, top, nil)
	in, err := New(helperOptions(tr, spool), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if n, err := in.Cleanup(); n != 0 || err != nil {
		t.Errorf("Cleanup with the other daemon alive = %d, %v; want 0", n, err)
	}
	for _, p := range []string{staged, part} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the live daemon's %s was removed: %v", p, err)
		}
	}

	// The other daemon dies (kill -9): its files are leftovers now.
	cmd.Process.Kill()
	cmd.Wait()
	if n, err := in.Cleanup(); n != 2 || err != nil {
		t.Errorf("Cleanup after the other daemon died = %d, %v; want 2 (its staged file and its spool file)", n, err)
	}
	for _, p := range []string{staged, part, filepath.Dir(staged)} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is still there after its daemon died", p)
		}
	}
	if _, err := os.Stat(tr.StagingDir()); err != nil {
		t.Errorf("Cleanup removed this process's own staging directory: %v", err)
	}
}
