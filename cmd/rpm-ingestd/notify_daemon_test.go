package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

// jsonReceiver records the json webhook's deliveries after checking each one's HMAC independently of pkg/notify.
type jsonReceiver struct {
	mu   sync.Mutex
	msgs [][]string // the NEVRAs of each message, in arrival order
	errs []string
}

func (j *jsonReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	mac := hmac.New(sha256.New, []byte("hook-secret"))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	var p struct {
		Repo     string `json:"repo"`
		RepoURL  string `json:"repo_url"`
		Packages []struct{ NEVRA, URL string }
	}
	err := json.Unmarshal(body, &p)
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case !hmac.Equal([]byte(r.Header.Get("X-Rpm-Ingestd-Signature-256")), []byte(want)):
		j.errs = append(j.errs, "bad signature "+r.Header.Get("X-Rpm-Ingestd-Signature-256"))
	case err != nil:
		j.errs = append(j.errs, err.Error())
	case p.Repo != "9/x86_64" || p.RepoURL != "https://repo.example.com/repo/9/x86_64/":
		j.errs = append(j.errs, fmt.Sprintf("repo %q at %q", p.Repo, p.RepoURL))
	}
	var names []string
	for _, pk := range p.Packages {
		names = append(names, pk.NEVRA)
		if pk.URL != p.RepoURL+"Packages/"+pk.NEVRA+".rpm" {
			j.errs = append(j.errs, "package URL "+pk.URL)
		}
	}
	j.msgs = append(j.msgs, names)
}

func (j *jsonReceiver) snapshot() ([][]string, []string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([][]string(nil), j.msgs...), append([]string(nil), j.errs...)
}

// TestWebhooksFromTheDaemon: the real daemon sends one json message per index run naming exactly the packages
// that run made installable, signed with the secret; a receiver that hangs and one that answers 500 keep
// neither the next upload's 201 nor the next index run from happening. The hanging receiver is held until the
// test ends, so if anything waited for it, the second run would never publish and the test would time out; no
// timing is asserted.
func TestWebhooksFromTheDaemon(t *testing.T) {
	tr := newTree(t)
	rec := &jsonReceiver{}
	good := httptest.NewServer(rec)
	defer good.Close()
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hanging.Close()
	defer close(release) // runs before hanging.Close, which waits for its handlers
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer failing.Close()

	// A quiet period long enough that the two uploads in a row make one run even on a loaded machine.
	d := tr.startWith(t, "2s", fmt.Sprintf(`  public_url: https://repo.example.com
notify:
  timeout: 1h
  retries: 10
  webhooks:
    - {url: %q, format: slack}
    - {url: %q, format: telegram, chat_id: "42"}
    - {url: %q, format: json, secret: hook-secret, repos: ["9/x86_64"]}
`, hanging.URL+"/hook", failing.URL+"/bot123:tok/sendMessage", good.URL+"/hook"))
	base := "http://" + d.addr

	waitMessages := func(n int) [][]string {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second) // bounds a broken daemon only
		for {
			msgs, errs := rec.snapshot()
			if len(errs) > 0 {
				t.Fatalf("json receiver: %v", errs)
			}
			if len(msgs) >= n {
				return msgs
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d messages after 60s, want %d: %v", len(msgs), n, msgs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	d.upload(t, testrpm.Build(t, testrpm.Spec{Name: "first", Release: "1.el9", Arch: "x86_64"}))
	waitIndexed(t, d, base, "9/x86_64", 1)
	if msgs := waitMessages(1); len(msgs) != 1 || fmt.Sprint(msgs[0]) != "[first-1.0-1.el9.x86_64]" {
		t.Fatalf("after the first run: %v", msgs)
	}
	// The slack delivery is still hanging and the telegram one is retrying: neither may hold these up.
	d.upload(t, testrpm.Build(t, testrpm.Spec{Name: "second", Release: "1.el9", Arch: "x86_64"}))
	d.upload(t, testrpm.Build(t, testrpm.Spec{Name: "third", Release: "1.el9", Arch: "noarch"}))
	waitIndexed(t, d, base, "9/x86_64", 3)
	msgs := waitMessages(2)
	if len(msgs) != 2 || fmt.Sprint(msgs[1]) != "[second-1.0-1.el9.x86_64 third-1.0-1.el9.noarch]" {
		t.Fatalf("after the second run: %v (want one more message naming only second and third)", msgs)
	}
}
