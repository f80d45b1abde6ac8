package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// maxDrain bounds how much of an answer is read (and thrown away) so the connection can be reused; webhook
// answers are a few bytes, and a receiver streaming more is cut off by the attempt's timeout anyway.
const maxDrain = 64 << 10

// userAgent names us to receivers.
const userAgent = "rpm-ingestd-notify"

// statusError is an answer other than 2xx.
type statusError struct {
	code      int
	permanent bool // a 4xx other than 429: repeating the same request cannot help
}

func (e *statusError) Error() string {
	return "answered " + strconv.Itoa(e.code) + " " + http.StatusText(e.code)
}

// deliver sends b to h with retries and reports whether a receiver accepted it. The outcome is counted; a message
// given up is also counted as dropped. Only ctx ending cuts the retries short.
func (n *Notifier) deliver(ctx context.Context, h *hook, b Batch) bool {
	log := h.log.With(zap.String("repo", b.Repo), zap.Int("packages", len(b.Packages)))
	body, err := render(h.Webhook, b)
	if err != nil {
		// Only a format New refused could get here, so this is a bug, not a receiver's fault.
		log.Error("cannot render notification", zap.Error(err))
		n.m.failed(h)
		return false
	}
	id := deliveryID()
	log = log.With(zap.String("delivery", id))
	backoff := n.opts.Backoff
	attempts := 0
	for {
		attempts++
		retryAfter, err := n.attempt(ctx, h, body, id)
		if err == nil {
			n.m.delivered(h)
			log.Debug("notification delivered", zap.Int("attempts", attempts))
			return true
		}
		var se *statusError
		if (errors.As(err, &se) && se.permanent) || attempts > n.opts.Retries || ctx.Err() != nil {
			// Error strings pass through scrub: a transport error could quote the URL.
			log.Warn("notification failed", zap.String("error", h.scrub(err.Error())), zap.Int("attempts", attempts))
			n.m.failed(h)
			return false
		}
		wait := backoff
		if retryAfter > 0 {
			wait = retryAfter // the receiver's own Retry-After, already capped at MaxBackoff
		}
		backoff = min(2*backoff, MaxBackoff)
		log.Info("notification attempt failed", zap.String("error", h.scrub(err.Error())),
			zap.Int("attempt", attempts), zap.Duration("retry_in", wait))
		if n.opts.Sleep(ctx, wait) != nil {
			log.Warn("notification failed", zap.String("error", "shutting down"), zap.Int("attempts", attempts))
			n.m.failed(h)
			return false
		}
	}
}

// attempt makes one POST bounded by Options.Timeout. It returns nil for a 2xx answer, a *statusError for any
// other, or a transport error without the URL in it. retryAfter is a 429's or 503's Retry-After, capped.
func (n *Notifier) attempt(ctx context.Context, h *hook, body []byte, id string) (retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("cannot build the request") // its error would quote the URL
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if h.Format == FormatJSON {
		req.Header.Set(EventHeader, EventPublished)
		req.Header.Set(DeliveryHeader, id)
		if h.Secret != "" {
			req.Header.Set(SignatureHeader, Sign(h.Secret, body))
		}
	}
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		// *url.Error prefixes `Post "<the whole URL>": `; keep only what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return 0, fmt.Errorf("no answer within %s", n.opts.Timeout)
		}
		return 0, err
	}
	defer resp.Body.Close()
	// Reading the rest lets the connection be reused; a receiver that never ends its body is cut at the timeout.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return 0, nil
	case c == http.StatusTooManyRequests || c >= 500:
		return parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), &statusError{code: c}
	default:
		// 3xx is permanent too: we do not follow redirects, and the next attempt would be redirected again.
		return 0, &statusError{code: c, permanent: true}
	}
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date, capped at MaxBackoff; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, MaxBackoff))
}

// scrub removes from s every part of the webhook's URL beyond scheme://host, and the secret, in case an error
// quotes them: Slack and Telegram carry their token in the path, others in the query or user info.
func (h *hook) scrub(s string) string {
	u, err := url.Parse(h.URL)
	if err != nil {
		return s
	}
	var secrets []string
	for _, part := range []string{h.URL, u.RawQuery, u.RawPath, u.Path, u.Fragment, h.Secret} {
		if part != "" && part != "/" {
			secrets = append(secrets, part)
		}
	}
	if u.User != nil {
		secrets = append(secrets, u.User.String())
	}
	// Long path segments alone too, since an error may quote a piece of the path.
	for seg := range strings.SplitSeq(u.Path, "/") {
		if len(seg) >= 8 {
			secrets = append(secrets, seg)
		}
	}
	for _, x := range secrets {
		s = strings.ReplaceAll(s, x, "[redacted]")
	}
	return s
}

// deliveryID returns a random id for DeliveryHeader.
func deliveryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
