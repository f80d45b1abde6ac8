package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"strconv"
	"strings"
	"time"
)

// EventPublished is Payload.Event, and the X-Rpm-Ingestd-Event header, of a FormatJSON message.
const EventPublished = "packages_published"

// Headers of a FormatJSON request. SignatureHeader follows GitHub's X-Hub-Signature-256: "sha256=" and the hex
// HMAC-SHA256 of the raw body, keyed with the webhook's secret. DeliveryHeader is random per message and stays the
// same across its retries, so a receiver can drop a repeat whose first answer was lost.
const (
	SignatureHeader = "X-Rpm-Ingestd-Signature-256"
	EventHeader     = "X-Rpm-Ingestd-Event"
	DeliveryHeader  = "X-Rpm-Ingestd-Delivery"
)

// Payload is the body of a FormatJSON message. Its fields are the schema receivers rely on: add, never rename.
type Payload struct {
	Event       string           `json:"event"`
	Repo        string           `json:"repo"`
	RepoURL     string           `json:"repo_url,omitempty"`
	PublishedAt time.Time        `json:"published_at"`
	Packages    []PayloadPackage `json:"packages"`
}

// PayloadPackage is one entry of Payload.Packages.
type PayloadPackage struct {
	NEVRA string `json:"nevra"`
	URL   string `json:"url,omitempty"`
}

// Sign returns the SignatureHeader value for body under secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body) // a hash.Hash never returns an error
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// maxChatText bounds the text of a chat message. Telegram refuses a sendMessage over 4096 characters (counted
// after its HTML is parsed, so counting our markup too stays safely under), and Slack advises 4,000; a big batch
// lists what fits and says how many more there are. The JSON format always lists every package.
const maxChatText = 3500

// textStyle is how one chat flavour writes the pieces of a message.
type textStyle struct {
	header func(title, repo, repoURL string) string // the first line
	item   func(nevra, url string) string           // one package line
	more   func(n int) string                       // the last line when not all packages fit
}

// render builds the request body for w's format.
func render(w Webhook, b Batch) ([]byte, error) {
	switch w.Format {
	case FormatJSON:
		p := Payload{Event: EventPublished, Repo: b.Repo, RepoURL: b.RepoURL, PublishedAt: b.At.UTC(),
			Packages: make([]PayloadPackage, 0, len(b.Packages))}
		for _, pkg := range b.Packages {
			p.Packages = append(p.Packages, PayloadPackage(pkg))
		}
		return json.Marshal(p)
	case FormatSlack:
		return json.Marshal(map[string]string{"text": chatText(b, slackStyle)})
	case FormatMattermost:
		return json.Marshal(map[string]string{"text": chatText(b, markdownStyle)})
	case FormatTelegram:
		return json.Marshal(telegramMessage{ChatID: telegramChatID(w.ChatID), Text: chatText(b, htmlStyle),
			ParseMode: "HTML", LinkPreview: linkPreview{IsDisabled: true}})
	}
	return nil, fmt.Errorf("%w: unknown format %q", ErrInvalidWebhook, w.Format)
}

// telegramMessage is the Bot API's sendMessage request.
type telegramMessage struct {
	ChatID    any    `json:"chat_id"`
	Text      string `json:"text"`
	ParseMode string `json:"parse_mode"`
	// Without this Telegram would attach a preview of the first link: a directory listing.
	LinkPreview linkPreview `json:"link_preview_options"`
}

type linkPreview struct {
	IsDisabled bool `json:"is_disabled"`
}

// telegramChatID sends a numeric chat id as a JSON number, as the Bot API documents it, and "@channel" as a string.
func telegramChatID(id string) any {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		return n
	}
	return id
}

// chatText writes b in style s: a header line, one line per package while they fit in maxChatText, and a line
// counting the rest.
func chatText(b Batch, s textStyle) string {
	title := "1 new package"
	if len(b.Packages) != 1 {
		title = strconv.Itoa(len(b.Packages)) + " new packages"
	}
	var sb strings.Builder
	sb.WriteString(s.header(title, b.Repo, b.RepoURL))
	// Room for the "and N more" line is kept back so it always fits.
	reserve := len(s.more(len(b.Packages))) + 1
	for i, p := range b.Packages {
		line := s.item(p.NEVRA, p.URL)
		if sb.Len()+1+len(line)+reserve > maxChatText {
			sb.WriteString("\n" + s.more(len(b.Packages)-i))
			break
		}
		sb.WriteString("\n" + line)
	}
	return sb.String()
}

// slackStyle writes Slack mrkdwn: <url|text> links, and &, <, > escaped as Slack requires.
var slackStyle = textStyle{
	header: func(title, repo, repoURL string) string {
		return "*" + title + " in " + slackLink(repoURL, repo) + "*"
	},
	item: func(nevra, url string) string { return "• " + slackLink(url, nevra) },
	more: func(n int) string { return "• … and " + strconv.Itoa(n) + " more" },
}

func slackLink(url, text string) string {
	if url == "" {
		return "`" + slackEscape(strings.ReplaceAll(text, "`", "")) + "`"
	}
	// A '|' would end the URL part early; a URL may carry it percent-encoded.
	return "<" + slackEscape(strings.ReplaceAll(url, "|", "%7C")) + "|" + slackEscape(text) + ">"
}

var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func slackEscape(s string) string { return slackEscaper.Replace(s) }

// markdownStyle writes Mattermost's Markdown. Names go in code spans so an underscore or asterisk in a package
// name is not read as emphasis.
var markdownStyle = textStyle{
	header: func(title, repo, repoURL string) string {
		return "**" + title + " in " + markdownLink(repoURL, repo) + "**"
	},
	item: func(nevra, url string) string { return "- " + markdownLink(url, nevra) },
	more: func(n int) string { return "- … and " + strconv.Itoa(n) + " more" },
}

func markdownLink(url, text string) string {
	code := "`" + strings.ReplaceAll(text, "`", "") + "`"
	if url == "" {
		return code
	}
	return "[" + code + "](" + markdownURLEscaper.Replace(url) + ")"
}

// markdownURLEscaper percent-encodes what would end a Markdown link destination early.
var markdownURLEscaper = strings.NewReplacer(" ", "%20", "(", "%28", ")", "%29", "<", "%3C", ">", "%3E")

// htmlStyle writes the HTML subset Telegram's parse_mode HTML accepts (b, a href), every text and attribute
// escaped; Telegram accepts numeric entities such as html.EscapeString's &#39;.
var htmlStyle = textStyle{
	header: func(title, repo, repoURL string) string {
		return "<b>" + html.EscapeString(title) + " in " + htmlLink(repoURL, repo) + "</b>"
	},
	item: func(nevra, url string) string { return "• " + htmlLink(url, nevra) },
	more: func(n int) string { return "• … and " + strconv.Itoa(n) + " more" },
}

func htmlLink(url, text string) string {
	if url == "" {
		return "<code>" + html.EscapeString(text) + "</code>"
	}
	return `<a href="` + html.EscapeString(url) + `">` + html.EscapeString(text) + "</a>"
}
