package web

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// funcs are the helpers the templates call. They format; they never decide what to show.
func (h *Handler) funcs() template.FuncMap {
	return template.FuncMap{
		"when":        h.when,
		"duration":    duration,
		"size":        size,
		"stateClass":  stateClass,
		"statusClass": statusClass,
		"pkgURL":      pkgURL,
		"resultWord":  resultWord,
	}
}

// when formats a time as UTC with how long ago it was: an admin compares it with other logs (UTC) and wants
// to see staleness at a glance (ago). It takes a time.Time or a *time.Time; nil and zero are "never".
func (h *Handler) when(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x != nil {
			t = *x
		}
	}
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC") + " (" + ago(h.now().Sub(t)) + ")"
}

// ago says roughly how long d is, in the largest unit that fits.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "in the future"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// duration rounds d for a reader: a createrepo_c run takes seconds, and "1.234567s" is noise.
func duration(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// size formats n bytes in binary units, with the exact count for anyone comparing with ls -l.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n), 0
	for v >= unit && u < 4 {
		v /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", v, "KMGT"[u-1], n)
}

// stateClass is the CSS class of a repository state. An unknown state gets its own grey class rather than a
// colour that would claim something.
func stateClass(state string) string {
	switch state {
	case StateClean, StateDirty, StateRunning, StateFailing:
		return "state-" + state
	}
	return "state-unknown"
}

// statusClass colours an upload by its HTTP status class.
func statusClass(status int) string {
	switch {
	case status >= 200 && status < 300:
		return "state-clean"
	case status >= 400 && status < 500:
		return "state-dirty"
	case status >= 500:
		return "state-failing"
	}
	return "state-unknown"
}

// resultWord is the word shown for an upload: the registry's own when it has one, else the status text.
func resultWord(u Upload) string {
	if u.Result != "" {
		return u.Result
	}
	return strings.ToLower(http.StatusText(u.Status))
}

// pkgURL is the link to a package page. Each segment is escaped on its own so that a "?" or "#" in a file name
// stays part of the path; html/template would leave those alone in a URL.
func pkgURL(p string) template.URL {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return template.URL("/packages/" + strings.Join(segs, "/"))
}

// fileURL escapes each path segment of a download link, as pkgURL does; an absolute URL (scheme://host/...)
// keeps its scheme and host. Anything else (javascript:, data:) becomes no link.
func fileURL(u string) template.URL {
	prefix := ""
	if i := strings.Index(u, "://"); i > 0 {
		scheme := strings.ToLower(u[:i])
		if scheme != "http" && scheme != "https" {
			return ""
		}
		rest := u[i+3:]
		host, p, _ := strings.Cut(rest, "/")
		prefix, u = scheme+"://"+url.PathEscape(host), "/"+p
	}
	if !strings.HasPrefix(u, "/") {
		return ""
	}
	segs := strings.Split(u, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return template.URL(prefix + strings.Join(segs, "/"))
}
