package config

import (
	"fmt"
	"net/url"
	"path"
	"time"
)

// Notify configures the chat and webhook messages sent after each successful index run (see package notify).
type Notify struct {
	// Webhooks are the receivers; none by default.
	Webhooks []Webhook `yaml:"webhooks"`
	// Timeout bounds one delivery attempt.
	Timeout Duration `yaml:"timeout"`
	// Retries is how many times a failed attempt is repeated, with exponential backoff from 1s up to 1m.
	Retries int `yaml:"retries"`
	// Queue is how many messages each webhook holds while it is busy; more are dropped and counted.
	Queue int `yaml:"queue"`
}

// Webhook is one entry of notify.webhooks.
type Webhook struct {
	// URL receives the POST. Slack, Mattermost and Telegram put the token in it: it is never logged.
	URL string `yaml:"url"`
	// Format is json, slack, mattermost or telegram.
	Format string `yaml:"format"`
	// Repos are globs over repository paths relative to top_dir ('*' stays within one path segment); empty
	// means every repository.
	Repos []string `yaml:"repos,omitempty"`
	// Secret, for format json only, keys the HMAC-SHA256 of the body sent in X-Rpm-Ingestd-Signature-256.
	Secret string `yaml:"secret,omitempty"`
	// ChatID is the Telegram chat (a number, or @channelname); telegram only, and required there.
	ChatID string `yaml:"chat_id,omitempty"`
}

// Limits on notify keys: beyond them a message would be retried, or queued, long after anyone cares.
const (
	maxNotifyRetries = 10
	maxNotifyQueue   = 10000
)

// DefaultNotify is the notify section when the file leaves it out: no webhooks.
func DefaultNotify() Notify {
	return Notify{Timeout: Duration(10 * time.Second), Retries: 3, Queue: 100}
}

// MarshalYAML prints a webhook for --check-config without its secret or the token-bearing part of its URL,
// since that output ends up in terminals and CI logs.
func (w Webhook) MarshalYAML() (any, error) {
	type plain Webhook // without the method, so encoding does not recurse
	p := plain(w)
	p.URL = redactURL(w.URL)
	if p.Secret != "" {
		p.Secret = "<redacted>"
	}
	return p, nil
}

// redactURL keeps scheme://host of u and hides the rest, where tokens live.
func redactURL(u string) string {
	parsed, err := url.Parse(u)
	if err != nil || parsed.Host == "" {
		return "<redacted>"
	}
	if parsed.User == nil && (parsed.Path == "" || parsed.Path == "/") && parsed.RawQuery == "" && parsed.Fragment == "" {
		return u
	}
	return parsed.Scheme + "://" + parsed.Host + "/<redacted>"
}

// validateNotify reports problems in the notify section through bad. Messages name a webhook by its index (the
// same index as the webhook label of the rpm_ingestd_notify_* metrics) and scheme://host, never its full URL.
func (c *Config) validateNotify(bad func(key, format string, args ...any)) {
	n := &c.Notify
	if n.Timeout <= 0 {
		bad("notify.timeout", "must be a positive duration, like 10s")
	}
	if n.Retries < 0 || n.Retries > maxNotifyRetries {
		bad("notify.retries", "%d is out of range: use 0 (one attempt only) to %d", n.Retries, maxNotifyRetries)
	}
	if n.Queue < 1 || n.Queue > maxNotifyQueue {
		bad("notify.queue", "%d is out of range: use 1 to %d messages per webhook", n.Queue, maxNotifyQueue)
	}
	// Messages link each repository and package below the URL clients use; the daemon cannot guess the host
	// name clients reach nginx by.
	if len(n.Webhooks) > 0 && c.ClientURL() == "" {
		bad("notify.webhooks", "need server.public_url, the URL clients reach the repository host at (like https://repo.example.com), for the links in messages")
	}
	seen := map[string]int{}
	for i, w := range n.Webhooks {
		at := func(format string, args ...any) {
			bad(fmt.Sprintf("notify.webhooks[%d]", i), "(%s): %s", redactURL(w.URL), fmt.Sprintf(format, args...))
		}
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			at("url must be an absolute http:// or https:// URL")
		}
		if j, dup := seen[w.URL+"\x00"+w.ChatID]; dup {
			at("same url as notify.webhooks[%d]: every message would be sent twice", j)
		} else {
			seen[w.URL+"\x00"+w.ChatID] = i
		}
		switch w.Format {
		case "json", "slack", "mattermost":
			if w.ChatID != "" {
				at("chat_id is for format telegram only")
			}
		case "telegram":
			if w.ChatID == "" {
				at("format telegram needs chat_id: the numeric chat id (see getUpdates) or @channelname")
			}
		case "":
			at("format is missing: one of json, slack, mattermost, telegram")
		default:
			at("format %q is not one of json, slack, mattermost, telegram", w.Format)
		}
		if w.Secret != "" && w.Format != "json" {
			at("secret signs format json only; %s authenticates by the token in its url", w.Format)
		}
		for _, g := range w.Repos {
			if _, err := path.Match(g, ""); err != nil {
				at("repos: %q is not a valid glob (%v); write it like 9/* or */x86_64", g, err)
			}
		}
	}
}
