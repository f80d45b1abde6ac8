package e2e

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/seaweed"
)

// sharedWeed is the one SeaweedFS that the S3 tests of this binary share: started by the first test that asks
// (about 10 s until it takes writes), stopped by TestMain after every test. Each test works in buckets of its own
// (NewBucketFor), so the tests stay independent and may run in parallel. A test that stops, kills or restarts its
// S3 server starts a private one instead (seaweed.Start).
var sharedWeed struct {
	once sync.Once
	srv  *seaweed.Server
	err  error
}

// sharedSeaweed returns the shared server, starting it on first use; it fails t when the server cannot start.
func sharedSeaweed(t *testing.T) *seaweed.Server {
	t.Helper()
	sharedWeed.once.Do(func() {
		dir := filepath.Join(workRoot, "weed")
		if sharedWeed.err = os.Mkdir(dir, 0o755); sharedWeed.err == nil {
			sharedWeed.srv, sharedWeed.err = seaweed.Launch(dir, seaweed.Options{})
		}
	})
	if sharedWeed.err != nil {
		t.Fatal(sharedWeed.err)
	}
	srv := sharedWeed.srv
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("shared seaweed: last lines of %s:\n%s", srv.LogPath(), tail(readFile(srv.LogPath()), 30))
		}
	})
	return srv
}

// stopSharedSeaweed stops the shared server if a test started it; TestMain calls it after the tests.
func stopSharedSeaweed() {
	if sharedWeed.srv != nil {
		sharedWeed.srv.Stop()
	}
}
