package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNotifyDefaults(t *testing.T) {
	n := Default().Notify
	if len(n.Webhooks) != 0 || n.Timeout != Duration(10*time.Second) || n.Retries != 3 || n.Queue != 100 {
		t.Errorf("defaults %+v", n)
	}
}

func TestLoadNotify(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "testdata", "config", "notify.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Notify
	if n.Timeout != Duration(5*time.Second) || n.Retries != 0 || n.Queue != 10 || len(n.Webhooks) != 5 {
		t.Fatalf("notify %+v", n)
	}
	want := Webhook{URL: "https://ci.example.com/hooks/rpm?token=QUERYTOKEN", Format: "json", Secret: "HMACSECRET", Repos: []string{"stable/*/*", "9/x86_64"}}
	if got := n.Webhooks[0]; got.URL != want.URL || got.Format != want.Format || got.Secret != want.Secret || strings.Join(got.Repos, " ") != strings.Join(want.Repos, " ") {
		t.Errorf("webhook 0 = %+v, want %+v", got, want)
	}
	if n.Webhooks[3].ChatID != "-1001234567890" {
		t.Errorf("chat_id %q", n.Webhooks[3].ChatID)
	}

	// --check-config output shows the hosts but none of the tokens or the secret.
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"QUERYTOKEN", "HMACSECRET", "SLACKTOKEN", "MMTOKEN", "TGTOKEN"} {
		if strings.Contains(string(out), s) {
			t.Errorf("YAML output shows %s:\n%s", s, out)
		}
	}
	for _, s := range []string{"url: https://hooks.slack.com/<redacted>", "secret: <redacted>", "chat_id: '@releases'"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("YAML output lacks %q:\n%s", s, out)
		}
	}
}

func TestLoadRejectsBadNotify(t *testing.T) {
	_, err := Load(filepath.Join("..", "..", "testdata", "config", "bad-notify.yaml"))
	if err == nil {
		t.Fatal("Load succeeded")
	}
	for _, w := range []string{
		"line 25: notify.webhooks[5].webhok: unknown key",
		"line 7: notify.timeout: must be a positive duration",
		"line 8: notify.retries: 11 is out of range: use 0 (one attempt only) to 10",
		"line 9: notify.queue: 0 is out of range",
		"line 10: notify.webhooks: need server.public_url, the URL clients reach the repository host at",
		"line 11: notify.webhooks[0]: (<redacted>): url must be an absolute http:// or https:// URL",
		`line 13: notify.webhooks[1]: (https://hooks.slack.com/<redacted>): format "slak" is not one of json, slack, mattermost, telegram`,
		"notify.webhooks[2]: (https://hooks.slack.com/<redacted>): chat_id is for format telegram only",
		"notify.webhooks[2]: (https://hooks.slack.com/<redacted>): secret signs format json only; slack authenticates by the token in its url",
		"notify.webhooks[3]: (https://api.telegram.org/<redacted>): format telegram needs chat_id",
		"notify.webhooks[4]: (https://ci.example.com/<redacted>): format is missing",
		`notify.webhooks[4]: (https://ci.example.com/<redacted>): repos: "9/[" is not a valid glob`,
		"notify.webhooks[5]: (https://ci.example.com/<redacted>): same url as notify.webhooks[4]",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q", w)
		}
	}
	for _, s := range []string{"NOSCHEME", "SLACKTOKEN", "TGTOKEN", "HMACSECRET"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error quotes %s", s)
		}
	}
	if t.Failed() {
		t.Logf("error:\n%v", err)
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ give, want string }{
		{"https://h.example", "https://h.example"},
		{"https://h.example/", "https://h.example/"},
		{"https://h.example:8443/x", "https://h.example:8443/<redacted>"},
		{"https://h.example?t=1", "https://h.example/<redacted>"},
		{"https://u:p@h.example", "https://h.example/<redacted>"},
		{"no-host/secret", "<redacted>"},
		{"https://h\x7f/secret", "<redacted>"},
	}
	for _, tc := range tests {
		if got := redactURL(tc.give); got != tc.want {
			t.Errorf("redactURL(%q) = %q, want %q", tc.give, got, tc.want)
		}
	}
}
