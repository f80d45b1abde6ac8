// Package notify owns the chat and webhook notifications sent after an index run: it renders one message per
// repository and batch of newly installable packages in one of four formats (our own JSON with an HMAC signature,
// Slack and Mattermost incoming webhooks, Telegram's Bot API sendMessage), and delivers it in the background with
// a per-attempt timeout and bounded retries with exponential backoff. A dead endpoint never delays the caller:
// Notify only enqueues, and a full queue drops the message and counts it.
//
// The package knows neither the configuration nor the indexer: main converts both into Webhook, Options and Batch.
package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Format names a webhook payload format.
type Format string

// The supported formats.
const (
	// FormatJSON is rpm-ingestd's own JSON document (see Payload), signed with HMAC-SHA256 when a secret is set.
	FormatJSON Format = "json"
	// FormatSlack is a Slack incoming-webhook payload: {"text": ...} in Slack's mrkdwn.
	FormatSlack Format = "slack"
	// FormatMattermost is a Mattermost incoming-webhook payload: {"text": ...} in Markdown.
	FormatMattermost Format = "mattermost"
	// FormatTelegram is a Telegram Bot API sendMessage request with parse_mode HTML.
	FormatTelegram Format = "telegram"
)

// Formats lists every supported format, in the order the documentation names them.
func Formats() []Format { return []Format{FormatJSON, FormatSlack, FormatMattermost, FormatTelegram} }

// Defaults applied by New to zero Options fields; they match the documented configuration.
const (
	DefaultTimeout = 10 * time.Second
	DefaultRetries = 3
	DefaultBackoff = time.Second
	DefaultQueue   = 100
	// MaxBackoff caps the exponential backoff and any Retry-After a receiver asks for, so a message is given up
	// within a bounded time: at most (Retries+1)*Timeout + Retries*MaxBackoff after it reached the front of its queue.
	MaxBackoff = time.Minute
)

// ErrInvalidWebhook is returned (wrapped) by New for a webhook it cannot deliver to.
var ErrInvalidWebhook = errors.New("invalid webhook")

// Webhook is one receiver of notifications.
type Webhook struct {
	// URL receives the POST. For Slack, Mattermost and Telegram it holds the token, so it is never logged: logs
	// and errors name the webhook by its index and scheme://host only.
	URL string
	// Format selects the payload.
	Format Format
	// Repos are path.Match globs over the repository path relative to top_dir ("9/x86_64"); '*' does not cross
	// '/', so "*/x86_64" matches "9/x86_64" but not "stable/9/x86_64". An empty list matches every repository.
	Repos []string
	// Secret, for FormatJSON only, signs the body: header X-Rpm-Ingestd-Signature-256: sha256=<hex HMAC-SHA256>.
	Secret string
	// ChatID is Telegram's chat_id (a number, or "@channelname"); required for FormatTelegram only.
	ChatID string
}

// Options tunes a Notifier. Zero fields get the Default* values.
type Options struct {
	// Timeout bounds one delivery attempt, from connecting to reading the answer.
	Timeout time.Duration
	// Retries is how many times a failed attempt is repeated; a message gets at most Retries+1 attempts. Negative
	// means the default; 0 means a single attempt.
	Retries int
	// Backoff is the wait before the first retry; each further retry doubles it, up to MaxBackoff.
	Backoff time.Duration
	// Queue is the number of messages each webhook holds while its worker is busy; the next one is dropped.
	Queue int
	// Client sends the requests. nil means a client that does not follow redirects (a redirected webhook is a
	// configuration error, and following it would resend the body, and the signature, elsewhere).
	Client *http.Client
	// Registerer receives the rpm_ingestd_notify_* collectors; nil means no metrics.
	Registerer prometheus.Registerer
	// Sleep waits d or until ctx ends, returning ctx's error then. nil means a timer; tests inject one that
	// records the backoff and returns at once.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Package is one package that became installable.
type Package struct {
	// NEVRA identifies the package, like "foo-1.0-1.el9.x86_64".
	NEVRA string
	// URL is where the package can be downloaded; may be empty.
	URL string
}

// Batch is what one index run of one repository made installable.
type Batch struct {
	// Repo is the repository path relative to top_dir, slash-separated, like "9/x86_64".
	Repo string
	// RepoURL is the repository's public URL (its baseurl for dnf); may be empty.
	RepoURL string
	// Packages are the packages that became installable, in the order they are listed.
	Packages []Package
	// At is when the metadata was published.
	At time.Time
}

// Notifier delivers Batches to webhooks. Notify may be called from any goroutine, before, during or after Run;
// each webhook has its own queue and worker, so a slow receiver delays only its own messages, which it receives
// in order.
type Notifier struct {
	hooks []*hook
	opts  Options
	log   *zap.Logger
	m     *metrics

	running atomic.Bool // Run was called

	// stopMu orders Notify's enqueue against Run's end: Notify holds it shared while it checks stopped and sends
	// (a non-blocking send, so it is held for moments), and Run holds it exclusively to set stopped. Everything
	// enqueued before that is found by Run's final discard; everything after is dropped by Notify itself.
	stopMu  sync.RWMutex
	stopped bool // Run returned: Notify drops at once instead of filling queues nobody reads

	// done, when set by a test, is called after each message leaves a worker, delivered or not.
	done func(index int, delivered bool)
}

// hook is a Webhook with its queue and the labels and redacted name used in metrics and logs.
type hook struct {
	Webhook
	index int
	label string     // metric label: the index as text
	host  string     // scheme://host, the only part of the URL ever logged
	queue chan Batch // buffered to Options.Queue; when full, Notify drops (see Notify)
	log   *zap.Logger
}

// New checks the webhooks and returns a Notifier; nothing is sent until Run. An error wraps ErrInvalidWebhook and
// names the webhook by index and scheme://host, never by its full URL.
func New(hooks []Webhook, opts Options, log *zap.Logger) (*Notifier, error) {
	opts = opts.withDefaults()
	n := &Notifier{opts: opts, log: log}
	var errs []error
	for i, w := range hooks {
		h, err := newHook(i, w, opts.Queue, log)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n.hooks = append(n.hooks, h)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer, n.hooks)
	if err != nil {
		return nil, err
	}
	n.m = m
	return n, nil
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Retries < 0 {
		o.Retries = DefaultRetries
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.Client == nil {
		o.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	return o
}

// newHook validates w. Messages name the webhook as "webhook N" plus scheme://host at most.
func newHook(i int, w Webhook, queue int, log *zap.Logger) (*hook, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("webhook %d: %w: %s", i, ErrInvalidWebhook, fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(w.URL)
	if err != nil {
		// url.Parse's error quotes the whole URL, token and all.
		return nil, bad("the url does not parse")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, bad("the url must be absolute http:// or https://")
	}
	host := u.Scheme + "://" + u.Host
	switch w.Format {
	case FormatJSON, FormatSlack, FormatMattermost:
		if w.ChatID != "" {
			return nil, bad("%s: chat_id is for telegram only", host)
		}
	case FormatTelegram:
		if w.ChatID == "" {
			return nil, bad("%s: telegram needs a chat_id", host)
		}
	default:
		return nil, bad("%s: unknown format %q", host, w.Format)
	}
	if w.Secret != "" && w.Format != FormatJSON {
		return nil, bad("%s: a secret signs format json only", host)
	}
	for _, g := range w.Repos {
		if _, err := path.Match(g, ""); err != nil {
			return nil, bad("%s: repos glob %q: %v", host, g, err)
		}
	}
	label := strconv.Itoa(i)
	return &hook{
		Webhook: w,
		index:   i,
		label:   label,
		host:    host,
		queue:   make(chan Batch, queue),
		log:     log.With(zap.String("webhook", label), zap.String("format", string(w.Format)), zap.String("host", host)),
	}, nil
}

// matches reports whether the webhook wants messages about repo.
func (h *hook) matches(repo string) bool {
	if len(h.Repos) == 0 {
		return true
	}
	for _, g := range h.Repos {
		if ok, _ := path.Match(g, repo); ok { // patterns were checked in New
			return true
		}
	}
	return false
}

// Notify queues b for every webhook whose repos match b.Repo. It never blocks: when a webhook's queue is full,
// or Run has returned, the message for that webhook is dropped and counted in rpm_ingestd_notify_dropped_total.
// A batch without packages sends nothing. b is not retained beyond its Packages slice, which must not be
// modified afterwards.
func (n *Notifier) Notify(b Batch) {
	if len(b.Packages) == 0 {
		return
	}
	n.stopMu.RLock()
	defer n.stopMu.RUnlock()
	for _, h := range n.hooks {
		if !h.matches(b.Repo) {
			continue
		}
		if n.stopped {
			n.drop(h, b, "notifier stopped")
			continue
		}
		select {
		case h.queue <- b:
		default:
			n.drop(h, b, "queue full")
		}
	}
}

// drop counts and logs a message that will not be delivered.
func (n *Notifier) drop(h *hook, b Batch, why string) {
	n.m.dropped(h)
	h.log.Warn("notification dropped", zap.String("repo", b.Repo), zap.Int("packages", len(b.Packages)), zap.String("reason", why))
}

// Run delivers queued messages, one worker per webhook, until ctx ends; it returns only after every worker has
// stopped. Attempts in flight are cancelled, and messages still queued are dropped and counted: a stopping
// daemon does not wait on a slow receiver. Run may be called once; it returns nil, or an error if called again.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return errors.New("notify: Run called twice")
	}
	var wg sync.WaitGroup
	for _, h := range n.hooks {
		wg.Go(func() { n.work(ctx, h) })
	}
	wg.Wait()
	n.stopMu.Lock()
	n.stopped = true
	n.stopMu.Unlock()
	// A Notify that ran between a worker's exit and the line above may have queued one more message.
	for _, h := range n.hooks {
		n.discard(h)
	}
	return nil
}

// work is one webhook's delivery loop.
func (n *Notifier) work(ctx context.Context, h *hook) {
	for {
		select {
		case <-ctx.Done():
			n.discard(h)
			return
		case b := <-h.queue:
			if ctx.Err() != nil {
				// select picks at random among ready cases; a message taken after the end is dropped unsent.
				n.drop(h, b, "shutting down")
				n.discard(h)
				return
			}
			ok := n.deliver(ctx, h, b)
			if n.done != nil {
				n.done(h.index, ok)
			}
		}
	}
}

// discard drops everything left in h's queue.
func (n *Notifier) discard(h *hook) {
	for {
		select {
		case b := <-h.queue:
			n.drop(h, b, "shutting down")
		default:
			return
		}
	}
}

// sleep is the production Options.Sleep.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
