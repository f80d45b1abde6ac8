package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/config"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/notify"
)

// TestNewNotifierAcceptsValidConfig: whatever config.Validate lets through, notify.New accepts too, so a daemon
// that passed --check-config does not fail at start on its webhooks.
func TestNewNotifierAcceptsValidConfig(t *testing.T) {
	cfg, err := config.Load(filepath.Join("..", "..", "testdata", "config", "notify.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if _, err := newNotifier(cfg.Notify, reg, zap.NewNop()); err != nil {
		t.Fatalf("newNotifier: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var series int
	for _, mf := range mfs {
		series += len(mf.GetMetric())
	}
	if series != 5*3 { // per webhook: delivered, failed, dropped
		t.Errorf("%d series, want 15", series)
	}
	if _, err := newNotifier(config.Default().Notify, nil, zap.NewNop()); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// TestNotifierRefusesWhatConfigRefuses feeds webhooks config.Validate refuses straight to newNotifier: it refuses
// them too, so the two checks cannot drift apart unnoticed.
func TestNotifierRefusesWhatConfigRefuses(t *testing.T) {
	tests := []struct {
		name string
		w    config.Webhook
	}{
		{"no scheme", config.Webhook{URL: "hooks.example.com/x", Format: "slack"}},
		{"unknown format", config.Webhook{URL: "https://h/x", Format: "slak"}},
		{"telegram without chat", config.Webhook{URL: "https://h/x", Format: "telegram"}},
		{"chat on json", config.Webhook{URL: "https://h/x", Format: "json", ChatID: "1"}},
		{"secret on slack", config.Webhook{URL: "https://h/x", Format: "slack", Secret: "s"}},
		{"bad glob", config.Webhook{URL: "https://h/x", Format: "json", Repos: []string{"["}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := config.DefaultNotify()
			n.Webhooks = []config.Webhook{tc.w}
			cfg := config.Default()
			cfg.Notify = n
			if err := cfg.Validate(); err == nil || !containsKey(err, "notify.webhooks") {
				t.Errorf("config.Validate did not refuse it: %v", err)
			}
			if _, err := newNotifier(n, nil, zap.NewNop()); !errors.Is(err, notify.ErrInvalidWebhook) {
				t.Errorf("newNotifier: %v, want ErrInvalidWebhook", err)
			}
		})
	}
}

func containsKey(err error, key string) bool {
	return err != nil && strings.Contains(err.Error(), key)
}

func TestNotifyBatch(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	b := notifyBatch("https://repo.example.com/repo/", "stable/9/x86_64",
		[]string{"Packages/hello-2.12-1.el9.x86_64.rpm", "Packages/gcc-c++-11.4^git1-1.el9.x86_64.rpm"}, at)
	want := notify.Batch{Repo: "stable/9/x86_64", RepoURL: "https://repo.example.com/repo/stable/9/x86_64/", At: at,
		Packages: []notify.Package{
			{NEVRA: "hello-2.12-1.el9.x86_64", URL: "https://repo.example.com/repo/stable/9/x86_64/Packages/hello-2.12-1.el9.x86_64.rpm"},
			{NEVRA: "gcc-c++-11.4^git1-1.el9.x86_64", URL: "https://repo.example.com/repo/stable/9/x86_64/Packages/gcc-c++-11.4%5Egit1-1.el9.x86_64.rpm"},
		}}
	if fmt.Sprintf("%+v", b) != fmt.Sprintf("%+v", want) {
		t.Errorf("batch\n%+v\nwant\n%+v", b, want)
	}
}
