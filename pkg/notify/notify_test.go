package notify

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestFormatsReachReceiver sends one batch to a local receiver in each format and decodes what arrived: the
// package names, their URLs and the repository URL must all be there, in the format's own syntax.
func TestFormatsReachReceiver(t *testing.T) {
	b := batch("9/x86_64")
	tests := []struct {
		name  string
		hook  Webhook
		path  string
		check func(t *testing.T, r request)
	}{
		{"json signed", Webhook{Format: FormatJSON, Secret: "s3cr3t"}, "/hook", func(t *testing.T, r request) {
			if got, want := r.Header.Get(SignatureHeader), Sign("s3cr3t", r.Body); got != want {
				t.Errorf("signature %q, want %q", got, want)
			}
			checkJSON(t, r, b)
		}},
		{"json unsigned", Webhook{Format: FormatJSON}, "/hook", func(t *testing.T, r request) {
			if v, ok := r.Header[SignatureHeader]; ok {
				t.Errorf("signature header %q sent without a secret", v)
			}
			checkJSON(t, r, b)
		}},
		{"slack", Webhook{Format: FormatSlack}, "/services/T000/B000/XXXX", func(t *testing.T, r request) {
			text := decodeText(t, r.Body)
			want := []string{"*2 new packages in <https://repo.example.com/repo/9/x86_64/|9/x86_64>*"}
			for _, p := range b.Packages {
				want = append(want, "• <"+p.URL+"|"+p.NEVRA+">")
			}
			if text != strings.Join(want, "\n") {
				t.Errorf("text\n%s\nwant\n%s", text, strings.Join(want, "\n"))
			}
		}},
		{"mattermost", Webhook{Format: FormatMattermost}, "/hooks/xyz", func(t *testing.T, r request) {
			text := decodeText(t, r.Body)
			want := []string{"**2 new packages in [`9/x86_64`](https://repo.example.com/repo/9/x86_64/)**"}
			for _, p := range b.Packages {
				want = append(want, "- [`"+p.NEVRA+"`]("+p.URL+")")
			}
			if text != strings.Join(want, "\n") {
				t.Errorf("text\n%s\nwant\n%s", text, strings.Join(want, "\n"))
			}
		}},
		{"telegram", Webhook{Format: FormatTelegram, ChatID: "-1001234567890"}, "/bot123:ABC/sendMessage", func(t *testing.T, r request) {
			var m struct {
				ChatID      int64  `json:"chat_id"`
				Text        string `json:"text"`
				ParseMode   string `json:"parse_mode"`
				LinkPreview struct {
					IsDisabled bool `json:"is_disabled"`
				} `json:"link_preview_options"`
			}
			strictDecode(t, r.Body, &m)
			if m.ChatID != -1001234567890 || m.ParseMode != "HTML" || !m.LinkPreview.IsDisabled {
				t.Errorf("message %+v: want chat_id -1001234567890, parse_mode HTML, previews off", m)
			}
			links := htmlLinks(t, m.Text)
			want := []string{b.RepoURL + " " + b.Repo}
			for _, p := range b.Packages {
				want = append(want, p.URL+" "+p.NEVRA)
			}
			if fmt.Sprint(links) != fmt.Sprint(want) {
				t.Errorf("links %q, want %q", links, want)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, status(http.StatusOK))
			tc.hook.URL = rc.URL + tc.path
			h := newHarness(t, []Webhook{tc.hook}, Options{})
			h.start(t)
			h.Notify(b)
			r := rc.next(t)
			if o := h.wait(t); !o.delivered {
				t.Fatalf("not delivered")
			}
			if r.Path != tc.path || r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("path %q content type %q", r.Path, r.Header.Get("Content-Type"))
			}
			tc.check(t, r)
			if got := h.delivered(t, "0", string(tc.hook.Format), "delivered"); got != 1 {
				t.Errorf("delivered counter %v, want 1", got)
			}
		})
	}
}

func checkJSON(t *testing.T, r request, b Batch) {
	t.Helper()
	var p Payload
	strictDecode(t, r.Body, &p)
	want := Payload{Event: EventPublished, Repo: b.Repo, RepoURL: b.RepoURL, PublishedAt: b.At}
	for _, pkg := range b.Packages {
		want.Packages = append(want.Packages, PayloadPackage(pkg))
	}
	if fmt.Sprintf("%+v", p) != fmt.Sprintf("%+v", want) {
		t.Errorf("payload\n%+v\nwant\n%+v", p, want)
	}
	if r.Header.Get(EventHeader) != EventPublished || len(r.Header.Get(DeliveryHeader)) != 32 {
		t.Errorf("event %q delivery %q", r.Header.Get(EventHeader), r.Header.Get(DeliveryHeader))
	}
}

func strictDecode(t *testing.T, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}

func decodeText(t *testing.T, body []byte) string {
	t.Helper()
	var m struct {
		Text string `json:"text"`
	}
	strictDecode(t, body, &m)
	return m.Text
}

// htmlLinks parses Telegram HTML strictly (as XML, which rejects any unescaped < or &) and returns each
// <a href> as "href text".
func htmlLinks(t *testing.T, text string) []string {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader("<m>" + text + "</m>"))
	dec.Strict = true
	var links []string
	var href string
	var in bool
	var sb strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return links
		}
		if err != nil {
			t.Fatalf("telegram text is not well-formed HTML: %v\n%s", err, text)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local == "a" {
				in, href = true, tok.Attr[0].Value
				sb.Reset()
			}
		case xml.CharData:
			if in {
				sb.Write(tok)
			}
		case xml.EndElement:
			if tok.Name.Local == "a" {
				in = false
				links = append(links, href+" "+sb.String())
			}
		}
	}
}

// TestSignMatchesGitHub checks Sign against the example in GitHub's "Validating webhook deliveries".
func TestSignMatchesGitHub(t *testing.T) {
	got := Sign("It's a Secret to Everybody", []byte("Hello, World!"))
	want := "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

// TestEscaping puts markup characters in every field and checks each chat format keeps them as text.
func TestEscaping(t *testing.T) {
	b := Batch{Repo: "a<b>&c", RepoURL: "https://r.example/x?a=1&b=(2)|3",
		Packages: []Package{{NEVRA: "x<y>&z`q\"'", URL: "https://r.example/p<1>"}, {NEVRA: "no-url_pkg"}}}
	tests := []struct {
		name string
		w    Webhook
		want string
	}{
		{"slack", Webhook{Format: FormatSlack},
			"*2 new packages in <https://r.example/x?a=1&amp;b=(2)%7C3|a&lt;b&gt;&amp;c>*\n• <https://r.example/p&lt;1&gt;|x&lt;y&gt;&amp;z`q\"'>\n• `no-url_pkg`"},
		{"mattermost", Webhook{Format: FormatMattermost},
			"**2 new packages in [`a<b>&c`](https://r.example/x?a=1&b=%282%29|3)**\n- [`x<y>&zq\"'`](https://r.example/p%3C1%3E)\n- `no-url_pkg`"},
		{"telegram", Webhook{Format: FormatTelegram, ChatID: "@chan"},
			"<b>2 new packages in <a href=\"https://r.example/x?a=1&amp;b=(2)|3\">a&lt;b&gt;&amp;c</a></b>\n• <a href=\"https://r.example/p&lt;1&gt;\">x&lt;y&gt;&amp;z`q&#34;&#39;</a>\n• <code>no-url_pkg</code>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, err := render(tc.w, b)
			if err != nil {
				t.Fatal(err)
			}
			var m struct {
				Text   string `json:"text"`
				ChatID any    `json:"chat_id"`
			}
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			if m.Text != tc.want {
				t.Errorf("text\n%s\nwant\n%s", m.Text, tc.want)
			}
		})
	}
	t.Run("telegram channel name stays a string", func(t *testing.T) {
		body, _ := render(Webhook{Format: FormatTelegram, ChatID: "@chan"}, b)
		if !strings.Contains(string(body), `"chat_id":"@chan"`) {
			t.Errorf("body %s", body)
		}
	})
}

// TestChatTextIsBounded lists a batch far too big for one chat message: the text stays under maxChatText and
// the listed lines plus the "and N more" count add up to the batch.
func TestChatTextIsBounded(t *testing.T) {
	b := Batch{Repo: "9/x86_64", RepoURL: "https://repo.example.com/repo/9/x86_64/"}
	for i := range 500 {
		nevra := fmt.Sprintf("package-number-%03d-1.0-1.el9.x86_64", i)
		b.Packages = append(b.Packages, Package{NEVRA: nevra, URL: b.RepoURL + "Packages/" + nevra + ".rpm"})
	}
	more := regexp.MustCompile(`… and (\d+) more$`)
	for _, s := range []struct {
		name  string
		style textStyle
	}{{"slack", slackStyle}, {"mattermost", markdownStyle}, {"telegram", htmlStyle}} {
		t.Run(s.name, func(t *testing.T) {
			text := chatText(b, s.style)
			if len(text) > maxChatText {
				t.Errorf("text is %d bytes, over %d", len(text), maxChatText)
			}
			lines := strings.Split(text, "\n")
			m := more.FindStringSubmatch(lines[len(lines)-1])
			if m == nil {
				t.Fatalf("last line %q does not count the rest", lines[len(lines)-1])
			}
			var rest int
			fmt.Sscan(m[1], &rest)
			if listed := len(lines) - 2; listed+rest != 500 || listed == 0 {
				t.Errorf("%d listed + %d more, want 500 with some listed", listed, rest)
			}
		})
	}
}

// TestRetries answers with a sequence of status codes and checks how many attempts are made, the backoff
// between them, and the final outcome in the counters.
func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		codes     []int // the answer to attempt 1, 2, ...; the last one repeats
		retryAt   string
		attempts  int
		sleeps    []time.Duration
		delivered bool
	}{
		{"200 once", []int{200}, "", 1, nil, true},
		{"204 is success", []int{204}, "", 1, nil, true},
		{"500 retried until given up", []int{500}, "", 4, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, false},
		{"502 then 200", []int{502, 200}, "", 2, []time.Duration{time.Second}, true},
		{"429 retried", []int{429, 429, 200}, "", 3, []time.Duration{time.Second, 2 * time.Second}, true},
		{"429 Retry-After honoured", []int{429, 200}, "7", 2, []time.Duration{7 * time.Second}, true},
		{"503 Retry-After capped", []int{503, 200}, "86400", 2, []time.Duration{MaxBackoff}, true},
		{"400 not retried", []int{400}, "", 1, nil, false},
		{"401 not retried", []int{401}, "", 1, nil, false},
		{"404 not retried", []int{404}, "", 1, nil, false},
		{"302 not followed", []int{302}, "", 1, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
				if tc.retryAt != "" {
					w.Header().Set("Retry-After", tc.retryAt)
				}
				if n == 1 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.codes[min(n, len(tc.codes))-1])
			})
			h := newHarness(t, []Webhook{{URL: rc.URL + "/hook", Format: FormatJSON}}, Options{Retries: 3, Backoff: time.Second})
			h.start(t)
			h.Notify(batch("9/x86_64"))
			o := h.wait(t)
			if o.delivered != tc.delivered || rc.count() != tc.attempts {
				t.Errorf("delivered %v after %d attempts, want %v after %d", o.delivered, rc.count(), tc.delivered, tc.attempts)
			}
			var sleeps []time.Duration
			for len(h.sleeps) > 0 {
				sleeps = append(sleeps, <-h.sleeps)
			}
			if fmt.Sprint(sleeps) != fmt.Sprint(tc.sleeps) {
				t.Errorf("backoff %v, want %v", sleeps, tc.sleeps)
			}
			want := [3]float64{1, 0, 0} // delivered, failed, dropped
			if !tc.delivered {
				want = [3]float64{0, 1, 1}
			}
			got := [3]float64{h.delivered(t, "0", "json", "delivered"), h.delivered(t, "0", "json", "failed"), h.dropped(t, "0", "json")}
			if got != want {
				t.Errorf("counters delivered, failed, dropped = %v, want %v", got, want)
			}
		})
	}
}

// TestBackoffIsCapped retries many times and checks the doubling stops at MaxBackoff.
func TestBackoffIsCapped(t *testing.T) {
	rc := newReceiver(t, status(500))
	h := newHarness(t, []Webhook{{URL: rc.URL, Format: FormatSlack}}, Options{Retries: 9, Backoff: 10 * time.Second})
	h.start(t)
	h.Notify(batch("9/x86_64"))
	h.wait(t)
	var sleeps []time.Duration
	for len(h.sleeps) > 0 {
		sleeps = append(sleeps, <-h.sleeps)
	}
	want := "[10s 20s 40s 1m0s 1m0s 1m0s 1m0s 1m0s 1m0s]"
	if fmt.Sprint(sleeps) != want || rc.count() != 10 {
		t.Errorf("%d attempts, backoff %v; want 10 attempts, %s", rc.count(), sleeps, want)
	}
}

// TestHangingReceiver never answers: each attempt ends at Options.Timeout, the retries are bounded, and the
// message is counted failed and dropped. Notify itself only enqueues.
func TestHangingReceiver(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	rc := newReceiver(t, hang(release))
	h := newHarness(t, []Webhook{{URL: rc.URL + "/bot1:TOKEN/sendMessage", Format: FormatTelegram, ChatID: "1"}},
		Options{Retries: 2, Timeout: 50 * time.Millisecond})
	h.start(t)
	h.Notify(batch("9/x86_64"))
	if o := h.wait(t); o.delivered {
		t.Fatal("delivered to a receiver that never answers")
	}
	if got := rc.count(); got != 3 {
		t.Errorf("%d attempts, want 3 (Retries 2)", got)
	}
	if f, d := h.delivered(t, "0", "telegram", "failed"), h.dropped(t, "0", "telegram"); f != 1 || d != 1 {
		t.Errorf("failed %v dropped %v, want 1 and 1", f, d)
	}
	if got := h.logs.FilterMessage("notification failed").All(); len(got) != 1 || !strings.Contains(fmt.Sprint(got[0].ContextMap()), "no answer within 50ms") {
		t.Errorf("failure log %v", got)
	}
}

// TestQueueFull holds the worker on its first message and checks exactly Queue more are kept and the rest dropped.
func TestQueueFull(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, hang(release))
	h := newHarness(t, []Webhook{{URL: rc.URL, Format: FormatMattermost}}, Options{Queue: 2})
	h.start(t)
	h.Notify(batch("9/x86_64"))
	rc.next(t) // the worker is now stuck in its first attempt
	for range 5 {
		h.Notify(batch("9/x86_64"))
	}
	if got := h.dropped(t, "0", "mattermost"); got != 3 {
		t.Errorf("dropped %v, want 3 (5 notified, queue 2)", got)
	}
	if got := h.logs.FilterField(zapString("reason", "queue full")).Len(); got != 3 {
		t.Errorf("%d queue-full log lines, want 3", got)
	}
	close(release)
	for range 3 {
		if o := h.wait(t); !o.delivered {
			t.Error("a queued message was not delivered")
		}
	}
	if got := h.delivered(t, "0", "mattermost", "delivered"); got != 3 {
		t.Errorf("delivered %v, want 3", got)
	}
}

// TestNotifyNeverBlocks gets every worker stuck on a receiver that never answers and then notifies far more than
// the queues hold: Notify must return every time. The watchdog only detects a deadlock; it measures nothing.
func TestNotifyNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var hooks []Webhook
	var rcs []*receiver
	for _, f := range Formats() {
		rc := newReceiver(t, hang(release))
		rcs = append(rcs, rc)
		w := Webhook{URL: rc.URL, Format: f}
		if f == FormatTelegram {
			w.ChatID = "42"
		}
		hooks = append(hooks, w)
	}
	h := newHarness(t, hooks, Options{Queue: 3, Timeout: time.Hour})
	h.start(t)
	h.Notify(batch("9/x86_64"))
	for _, rc := range rcs {
		rc.next(t)
	}
	returned := make(chan struct{})
	go func() {
		for range 1000 {
			h.Notify(batch("9/x86_64"))
		}
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(30 * time.Second):
		t.Fatal("Notify blocked while every worker was stuck")
	}
	for i, f := range Formats() {
		if got := h.dropped(t, fmt.Sprint(i), string(f)); got != 1000-3 {
			t.Errorf("webhook %d dropped %v, want 997", i, got)
		}
	}
}

// TestStopDropsQueued stops Run while a worker is stuck: Run returns, the attempt in flight fails, the queued
// messages are dropped, and Notify after Run drops at once.
func TestStopDropsQueued(t *testing.T) {
	rc := newReceiver(t, hang(nil))
	h := newHarness(t, []Webhook{{URL: rc.URL, Format: FormatJSON}}, Options{Timeout: time.Hour})
	h.start(t)
	for range 3 {
		h.Notify(batch("9/x86_64"))
	}
	rc.next(t)
	h.stop(t)
	if o := h.wait(t); o.delivered {
		t.Error("the cancelled attempt counted as delivered")
	}
	if f, d := h.delivered(t, "0", "json", "failed"), h.dropped(t, "0", "json"); f != 1 || d != 3 {
		t.Errorf("failed %v dropped %v, want 1 and 3", f, d)
	}
	h.Notify(batch("9/x86_64"))
	if d := h.dropped(t, "0", "json"); d != 4 {
		t.Errorf("dropped %v after a Notify past Run, want 4", d)
	}
	if err := h.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded")
	}
}

// TestNotifyBeforeRun queues: a message notified before Run starts is delivered once it does.
func TestNotifyBeforeRun(t *testing.T) {
	rc := newReceiver(t, status(200))
	h := newHarness(t, []Webhook{{URL: rc.URL, Format: FormatSlack}}, Options{})
	h.Notify(batch("9/x86_64"))
	h.start(t)
	if o := h.wait(t); !o.delivered {
		t.Error("not delivered")
	}
}

// TestReposGlobs routes batches by repository: only matching webhooks get a message, and a batch without
// packages sends nothing.
func TestReposGlobs(t *testing.T) {
	tests := []struct {
		name  string
		globs []string
		repo  string
		want  bool
	}{
		{"no globs match all", nil, "stable/9/x86_64", true},
		{"exact", []string{"9/x86_64"}, "9/x86_64", true},
		{"star in a segment", []string{"*/x86_64"}, "9/x86_64", true},
		{"star does not cross slash", []string{"*/x86_64"}, "stable/9/x86_64", false},
		{"second glob", []string{"8/*", "stable/*/*"}, "stable/9/aarch64", true},
		{"other arch", []string{"9/x86_64"}, "9/aarch64", false},
		{"class", []string{"[89]/x86_64"}, "8/x86_64", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &hook{Webhook: Webhook{Repos: tc.globs}}
			if got := h.matches(tc.repo); got != tc.want {
				t.Errorf("matches(%q) = %v, want %v", tc.repo, got, tc.want)
			}
		})
	}

	t.Run("routing", func(t *testing.T) {
		stable, testing := newReceiver(t, status(200)), newReceiver(t, status(200))
		h := newHarness(t, []Webhook{
			{URL: stable.URL, Format: FormatJSON, Repos: []string{"stable/*/*"}},
			{URL: testing.URL, Format: FormatJSON, Repos: []string{"testing/*/*"}},
		}, Options{})
		h.start(t)
		h.Notify(Batch{Repo: "stable/9/x86_64"}) // nothing new: no message
		h.Notify(batch("testing/9/x86_64"))
		h.Notify(batch("stable/9/x86_64"))
		h.Notify(batch("stable/8/aarch64"))
		for range 3 {
			h.wait(t)
		}
		var repos []string
		for range 2 {
			var p Payload
			strictDecode(t, stable.next(t).Body, &p)
			repos = append(repos, p.Repo)
		}
		if fmt.Sprint(repos) != "[stable/9/x86_64 stable/8/aarch64]" || testing.count() != 1 {
			t.Errorf("stable got %v, testing %d messages", repos, testing.count())
		}
	})
}

// TestNewRejects lists every webhook New refuses; no message may quote the URL's path or query.
func TestNewRejects(t *testing.T) {
	const tok = "/bot123:SECRET-TOKEN/sendMessage?k=QUERYSECRET"
	tests := []struct {
		name string
		w    Webhook
		want string
	}{
		{"no scheme", Webhook{URL: "api.telegram.org" + tok, Format: FormatTelegram, ChatID: "1"}, "absolute http"},
		{"ftp", Webhook{URL: "ftp://h" + tok, Format: FormatJSON}, "absolute http"},
		{"no host", Webhook{URL: "https://" + tok, Format: FormatJSON}, "absolute http"},
		{"unparsable", Webhook{URL: "https://h\x7f" + tok, Format: FormatJSON}, "does not parse"},
		{"unknown format", Webhook{URL: "https://h" + tok, Format: "discord"}, `unknown format "discord"`},
		{"empty format", Webhook{URL: "https://h" + tok}, `unknown format ""`},
		{"telegram without chat_id", Webhook{URL: "https://h" + tok, Format: FormatTelegram}, "needs a chat_id"},
		{"chat_id on slack", Webhook{URL: "https://h" + tok, Format: FormatSlack, ChatID: "1"}, "telegram only"},
		{"secret on slack", Webhook{URL: "https://h" + tok, Format: FormatSlack, Secret: "x"}, "format json only"},
		{"secret on telegram", Webhook{URL: "https://h" + tok, Format: FormatTelegram, ChatID: "1", Secret: "x"}, "format json only"},
		{"bad glob", Webhook{URL: "https://h" + tok, Format: FormatJSON, Repos: []string{"9/["}}, `glob "9/["`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New([]Webhook{{URL: "https://ok", Format: FormatJSON}, tc.w}, Options{}, zapNop())
			if !errors.Is(err, ErrInvalidWebhook) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "webhook 1") {
				t.Fatalf("error %v, want ErrInvalidWebhook for webhook 1 with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error quotes the URL: %v", err)
			}
		})
	}
}

// TestLogsHideTokens drives every logged path (retry, failure, transport error, queue full) with tokens in the
// URL's path, query and user info and a secret, and checks no log line carries any of them.
func TestLogsHideTokens(t *testing.T) {
	failing := newReceiver(t, status(500))
	refused := newReceiver(t, status(200))
	refused.Close() // connection refused: net/http's error would quote the whole URL
	rejecting := newReceiver(t, status(403))
	secrets := []string{"PATHTOKEN", "QUERYTOKEN", "USERTOKEN", "HMACSECRET", "sendMessage"}
	hooks := []Webhook{
		{URL: failing.URL + "/botPATHTOKEN/sendMessage?x=QUERYTOKEN", Format: FormatTelegram, ChatID: "7"},
		{URL: strings.Replace(refused.URL, "://", "://u:USERTOKEN@", 1) + "/h?token=QUERYTOKEN", Format: FormatJSON, Secret: "HMACSECRET"},
		{URL: rejecting.URL + "/services/PATHTOKEN", Format: FormatSlack},
	}
	h := newHarness(t, hooks, Options{Retries: 1, Queue: 1})
	h.start(t)
	for range 3 {
		h.Notify(batch("9/x86_64"))
	}
	for range 9 - h.logs.FilterMessage("notification dropped").Len() {
		h.wait(t) // every message that was queued leaves its worker
	}
	h.stop(t)
	entries := h.logs.All()
	if len(entries) == 0 {
		t.Fatal("nothing logged")
	}
	var failed int
	for _, e := range entries {
		line := e.Message + fmt.Sprint(e.ContextMap())
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("log line carries %q: %s", s, line)
			}
		}
		if e.Message == "notification failed" {
			failed++
			if host := e.ContextMap()["host"]; !strings.HasPrefix(fmt.Sprint(host), "http://127.0.0.1:") {
				t.Errorf("host field %q, want scheme://host", host)
			}
		}
	}
	if failed == 0 {
		t.Error("no failure was logged")
	}
}

// TestParseRetryAfter reads both forms of Retry-After and refuses nonsense.
func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		give string
		want time.Duration
	}{
		{"", 0},
		{"5", 5 * time.Second},
		{"-5", 0},
		{"soon", 0},
		{"3600", MaxBackoff},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	}
	for _, tc := range tests {
		if got := parseRetryAfter(tc.give, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.give, got, tc.want)
		}
	}
}

// TestMetricsExistAtStart: both families have a zero series per webhook before any message, and a second
// Notifier on the same registry is refused rather than silently unregistered.
func TestMetricsExistAtStart(t *testing.T) {
	h := newHarness(t, []Webhook{{URL: "https://a", Format: FormatJSON}, {URL: "https://b", Format: FormatTelegram, ChatID: "1"}}, Options{})
	for _, s := range []struct{ w, f string }{{"0", "json"}, {"1", "telegram"}} {
		if h.delivered(t, s.w, s.f, "delivered")+h.delivered(t, s.w, s.f, "failed")+h.dropped(t, s.w, s.f) != 0 {
			t.Errorf("webhook %s starts above zero", s.w)
		}
	}
	if _, err := New(nil, Options{Registerer: h.reg}, zapNop()); err == nil {
		t.Error("registering twice succeeded")
	}
}
