package config

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"text/template"
)

// channelRe is what a channel name may look like: it becomes a URL path segment (PUT /upload/stable/) and a
// directory name, so no slashes, no leading dot (hidden, and "." or "..") and nothing that needs escaping.
var channelRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ErrUnknownChannel is returned (wrapped) by RenderLayout for a channel that repo.channels does not list, or for
// any channel when none are configured.
var ErrUnknownChannel = errors.New("unknown channel")

// sampleChannel is the channel Validate and Notes render the layout with: the first configured one, or none.
func (c *Config) sampleChannel() string {
	if len(c.Repo.Channels) == 0 {
		return ""
	}
	return c.Repo.Channels[0]
}

// checkChannel refuses a channel the configuration does not have. Without channels only "" is valid; with
// them, "" is refused too: a caller that forgot to resolve default_channel would otherwise render a path
// without its channel segment ("/9/x86_64" or, worse, a shorter path that is valid).
func (c *Config) checkChannel(ch string) error {
	switch {
	case len(c.Repo.Channels) == 0 && ch == "":
		return nil
	case len(c.Repo.Channels) == 0:
		return fmt.Errorf("%w %q: repo.channels lists no channel", ErrUnknownChannel, ch)
	case !slices.Contains(c.Repo.Channels, ch):
		return fmt.Errorf("%w %q: repo.channels lists %s", ErrUnknownChannel, ch, strings.Join(c.Repo.Channels, ", "))
	}
	return nil
}

// validateChannels checks repo.channels and repo.default_channel, and that repo.layout uses {{.Channel}}
// exactly when channels are configured: with channels but without it, every channel would share one directory;
// with it but without channels, it would render empty and silently shorten every path.
func (c *Config) validateChannels(bad func(key, format string, args ...any)) {
	r := &c.Repo
	uses, known := c.layoutUses(func(f *LayoutFields, v string) { f.Channel = v })
	if len(r.Channels) == 0 {
		if r.DefaultChannel != "" {
			bad("repo.default_channel", "is %q but repo.channels lists no channel: list them (channels: [testing, stable]) or remove default_channel", r.DefaultChannel)
		}
		if known && uses {
			bad("repo.layout", "%q uses {{.Channel}} but repo.channels lists no channel: list the channels, or take {{.Channel}} out of the layout", r.Layout)
		}
		return
	}
	seen := map[string]bool{}
	for _, ch := range r.Channels {
		switch {
		case !channelRe.MatchString(ch):
			bad("repo.channels", "%q is not a valid channel name: use letters, digits and ._- (not starting with . or -)", ch)
		case strings.HasSuffix(strings.ToLower(ch), ".rpm"):
			// PUT /upload/x.rpm names a file, so a channel called x.rpm could never be chosen.
			bad("repo.channels", "%q ends in .rpm, which the upload path reads as a file name: rename the channel", ch)
		case seen[ch]:
			bad("repo.channels", "%q is listed twice", ch)
		}
		seen[ch] = true
	}
	switch {
	case r.DefaultChannel == "":
		bad("repo.default_channel", "must be set when repo.channels is: name the channel (one of %s) that uploads without a channel in their path go to", strings.Join(r.Channels, ", "))
	case !slices.Contains(r.Channels, r.DefaultChannel):
		bad("repo.default_channel", "%q is not one of repo.channels (%s)", r.DefaultChannel, strings.Join(r.Channels, ", "))
	}
	if known && !uses {
		bad("repo.layout", "%q does not use {{.Channel}}, so every channel would share one directory: put it in, like {{.Channel}}/{{.OSRelease}}/{{.Arch}}", r.Layout)
	}
}

// layoutUses reports whether the layout's output depends on the field that set writes, by rendering it twice with
// two different values (which catches every spelling: direct, in an {{if}}, through a variable). known is false
// when the layout does not render at all; that problem is reported on its own.
func (c *Config) layoutUses(set func(f *LayoutFields, v string)) (uses, known bool) {
	tmpl, err := c.layoutTemplate()
	if err != nil {
		return false, false
	}
	var outs [2]string
	for i, v := range []string{"probe-a", "probe-b"} {
		f := LayoutFields{OSAbbr: "el", OSRelease: "9", Arch: "x86_64", Channel: c.sampleChannel()}
		set(&f, v)
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, f); err != nil {
			return false, false
		}
		outs[i] = buf.String()
	}
	return outs[0] != outs[1], true
}

// layoutTemplate parses repo.layout as RenderLayout does.
func (c *Config) layoutTemplate() (*template.Template, error) {
	return template.New("layout").Option("missingkey=error").Parse(c.Repo.Layout)
}

// releaseMark stands in for .OSRelease when LocateRepo inverts the layout. NUL cannot occur in a path, so it
// cannot be mistaken for anything the template wrote itself.
const releaseMark = "\x00osrelease\x00"

// releasePart is what an OS release may look like in a path: what ingest accepts as os_release.
const releasePart = `([A-Za-z0-9][A-Za-z0-9._]*)`

// LocateRepo inverts repo.layout: given a repository directory relative to top_dir ("stable/9/x86_64"), it
// returns the channel ("" without channels), OS release and arch ("SRPMS" for sources) that RenderLayout
// renders to it. ok is false when no combination renders it, or when two different ones do (a layout without
// {{.Arch}}, say), since then the directory's identity is not known.
//
// The layout is rendered for every configured channel, arch (and SRPMS) and dist tag, with a unique placeholder
// for the OS release, and each result is turned into a regexp: the OS release is the one open value, the rest
// come from the configuration, so layouts that branch on the arch or the channel ({{if eq .Arch "SRPMS"}})
// invert too. A layout that branches on the OS release is not inverted. It parses the template on each call
// (microseconds to a millisecond): callers locate repositories per publish, never per package.
func (c *Config) LocateRepo(repoRel string) (channel, osRelease, arch string, ok bool) {
	tmpl, err := c.layoutTemplate()
	if err != nil || repoRel == "" {
		return "", "", "", false
	}
	repoRel = path.Clean(strings.Trim(repoRel, "/"))
	channels := c.Repo.Channels
	if len(channels) == 0 {
		channels = []string{""}
	}
	arches := append(slices.Clone(c.Repo.Arches), "SRPMS")
	abbrs := c.Repo.DistTags
	if len(abbrs) == 0 {
		abbrs = []string{""}
	}
	type hit struct{ channel, osRelease, arch string }
	var found []hit
	tried := map[string]bool{} // rendered pattern + channel + arch: abbreviations often render the same
	for _, ch := range channels {
		for _, a := range arches {
			for _, abbr := range abbrs {
				var buf bytes.Buffer
				if tmpl.Execute(&buf, LayoutFields{OSAbbr: abbr, OSRelease: releaseMark, Arch: a, Channel: ch}) != nil {
					continue
				}
				pattern := path.Clean(buf.String())
				key := pattern + "\x00" + ch + "\x00" + a
				if tried[key] {
					continue
				}
				tried[key] = true
				rel, matched := matchRelease(pattern, repoRel)
				if matched && !slices.Contains(found, hit{ch, rel, a}) {
					found = append(found, hit{ch, rel, a})
				}
			}
		}
	}
	if len(found) != 1 {
		return "", "", "", false
	}
	return found[0].channel, found[0].osRelease, found[0].arch, true
}

// matchRelease matches dir against pattern, a rendered layout in which releaseMark stands for the OS release,
// and returns the release. Every occurrence of the mark must capture the same text (Go's regexp has no
// backreferences, so they are compared after the match).
func matchRelease(pattern, dir string) (string, bool) {
	parts := strings.Split(pattern, releaseMark)
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	re, err := regexp.Compile("^" + strings.Join(parts, releasePart) + "$")
	if err != nil {
		return "", false
	}
	m := re.FindStringSubmatch(dir)
	if m == nil {
		return "", false
	}
	if len(m) == 1 {
		return "", true // the layout does not use the OS release
	}
	for _, v := range m[2:] {
		if v != m[1] {
			return "", false
		}
	}
	return m[1], true
}
