// Package repofile owns the .repo file that sets a client up in one line
// (curl -o /etc/yum.repos.d/x.repo URL): which sections it holds, what each says, and how it is written into the
// tree so that nginx and serve_repo publish it. It knows nothing of the configuration file: the caller passes a
// function that renders the repository layout.
package repofile

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/rpm-ingestd/rpm-ingestd/internal/durable"
)

// dnf's own variables: each client substitutes its release ("9") and base architecture ("x86_64"), so one file
// serves every release and arch the tree holds.
const (
	ReleaseVer = "$releasever"
	BaseArch   = "$basearch"
)

// sourceArch is the layout's Arch for source packages (as ingest passes it).
const sourceArch = "SRPMS"

// Fields are the values the layout is rendered with; they mirror config.LayoutFields plus the channel.
type Fields struct {
	Channel   string // "" when channels are not in use
	OSAbbr    string // "" unless the layout needs a dist tag abbreviation
	OSRelease string // always ReleaseVer here
	Arch      string // BaseArch, or "SRPMS" for the source section
}

// LayoutFunc renders repo.layout for f and returns the repository directory relative to top_dir, slash- or
// OS-separated. An error for an empty OSAbbr means the layout needs one (config.ErrNoOSAbbr); Render then makes
// one section per dist tag.
type LayoutFunc func(f Fields) (string, error)

// Options describe the file.
type Options struct {
	// FileName is the file's name in top_dir, like "rpm-ingestd.repo".
	FileName string
	// BaseURL is the URL clients reach top_dir at: server.public_url + server.repo_url, without a trailing slash.
	BaseURL string
	// ID prefixes every section id; "" means "rpm-ingestd".
	ID string
	// Layout renders the repository layout.
	Layout LayoutFunc
	// Channels lists the channels, each of which gets its own sections; none means one set of sections.
	Channels []string
	// DefaultChannel is repo.default_channel: the only channel whose sections are enabled. The others are
	// written with enabled=0, for a client to turn on (dnf --enablerepo=ID, or dnf config-manager
	// --set-enabled ID). "" enables every channel.
	DefaultChannel string
	// DistTags are the abbreviations ("el", "fc") to make sections for when the layout needs an OSAbbr.
	DistTags []string
	// GPGKeyURL is the URL of the public key that signs repomd.xml; "" when metadata is not signed. With it, the
	// sections turn on repo_gpgcheck.
	GPGKeyURL string
	// PackageGPGCheck turns on gpgcheck (package signatures). Only for trees where every package is signed by a
	// key in PackageKeyURLs (repo.require_signature): dnf refuses every other package.
	PackageGPGCheck bool
	// PackageKeyURLs are the URLs of the package signing keys, listed in gpgkey beside GPGKeyURL.
	PackageKeyURLs []string
}

// DefaultID is the section id prefix when Options.ID is empty.
const DefaultID = "rpm-ingestd"

// section is one [id] of the file.
type section struct {
	id, name, baseURL string
	enabled           bool
	optional          bool // skip_if_unavailable: a client uses only one of several dist families
}

// Render returns the file's content. It fails when the layout cannot be rendered for some channel, or renders
// something that is no URL path.
func Render(o Options) ([]byte, error) {
	if o.ID == "" {
		o.ID = DefaultID
	}
	secs, err := sections(o)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by rpm-ingestd at every start; edits here are lost. Set up a client with:\n")
	fmt.Fprintf(&b, "#   curl -o /etc/yum.repos.d/%s %s/%s\n", o.FileName, o.BaseURL, o.FileName)
	if o.DefaultChannel != "" && len(o.Channels) > 1 && usesChannel(o) {
		fmt.Fprintf(&b, "# Only channel %s is enabled. Use another with dnf --enablerepo=ID, or for good with\n", o.DefaultChannel)
		fmt.Fprintf(&b, "#   dnf config-manager --set-enabled ID\n")
	}
	for _, s := range secs {
		fmt.Fprintf(&b, "\n[%s]\n", s.id)
		fmt.Fprintf(&b, "name=%s\n", s.name)
		fmt.Fprintf(&b, "baseurl=%s\n", s.baseURL)
		fmt.Fprintf(&b, "enabled=%d\n", btoi(s.enabled))
		// Packages arrive all day: dnf's default 48 h metadata cache would hide them. A minute keeps a
		// "dnf install" right after an upload correct without refetching repomd.xml on every command.
		fmt.Fprintf(&b, "metadata_expire=60\n")
		// Said either way, because the default differs between distributions (Debian's dnf skips): a client
		// must fail loudly when its one repository is broken or its signature does not verify, and must not
		// fail when another dist family's section has nothing for its release.
		fmt.Fprintf(&b, "skip_if_unavailable=%d\n", btoi(s.optional))
		fmt.Fprintf(&b, "gpgcheck=%d\n", btoi(o.PackageGPGCheck))
		fmt.Fprintf(&b, "repo_gpgcheck=%d\n", btoi(o.GPGKeyURL != ""))
		if keys := gpgKeys(o); len(keys) > 0 {
			fmt.Fprintf(&b, "gpgkey=%s\n", strings.Join(keys, " "))
		}
	}
	return b.Bytes(), nil
}

// gpgKeys lists the keys dnf may import for these sections: the metadata key, then the package keys.
func gpgKeys(o Options) []string {
	var keys []string
	if o.GPGKeyURL != "" {
		keys = append(keys, o.GPGKeyURL)
	}
	if o.PackageGPGCheck {
		keys = append(keys, o.PackageKeyURLs...)
	}
	return keys
}

// sections works out the file's sections: per channel, per dist tag when the layout needs one, a binary section
// and a disabled source section. Two sections with the same baseurl (a layout that ignores the channel) are
// written once.
func sections(o Options) ([]section, error) {
	channels := o.Channels
	if len(channels) == 0 || !usesChannel(o) {
		channels = []string{""}
	}
	var out []section
	seen := map[string]bool{}
	for _, ch := range channels {
		abbrs := []string{""}
		if _, err := o.Layout(Fields{Channel: ch, OSRelease: ReleaseVer, Arch: BaseArch}); err != nil {
			// The layout needs a dist tag (or is broken, which the first dist tag will report).
			if len(o.DistTags) == 0 {
				return nil, fmt.Errorf("render the layout for channel %q without a dist tag (and no dist tags are configured): %w", ch, err)
			}
			abbrs = o.DistTags
		}
		for _, abbr := range abbrs {
			id := joinID(o.ID, ch, abbr)
			label := strings.TrimSpace(strings.Join([]string{ch, abbr}, " "))
			for _, src := range []bool{false, true} {
				f := Fields{Channel: ch, OSAbbr: abbr, OSRelease: ReleaseVer, Arch: BaseArch}
				// Only the default channel is on: a client that enabled every channel would fail on the
				// first one that lacks its release or arch (skip_if_unavailable=0), and would mix testing
				// builds into its upgrades.
				on := ch == "" || o.DefaultChannel == "" || ch == o.DefaultChannel
				s := section{id: id, name: o.ID, enabled: on, optional: abbr != ""}
				if src {
					f.Arch, s.id, s.enabled = sourceArch, id+"-source", false
				}
				rel, err := o.Layout(f)
				if err != nil {
					return nil, fmt.Errorf("render the layout for channel %q, dist tag %q, arch %s: %w", ch, abbr, f.Arch, err)
				}
				if s.baseURL, err = baseURL(o.BaseURL, rel); err != nil {
					return nil, err
				}
				if seen[s.baseURL] {
					continue
				}
				seen[s.baseURL] = true
				if label != "" {
					s.name += " " + label
				}
				s.name += " " + ReleaseVer + " - " + f.Arch
				if src {
					s.name = strings.Replace(s.name, " - "+sourceArch, " - Source", 1)
				}
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// usesChannel reports whether the layout's output depends on the channel, by rendering it for the first channel
// and for a stand-in. Without that, a layout without {{.Channel}} would get sections named after one channel.
func usesChannel(o Options) bool {
	f := Fields{OSRelease: ReleaseVer, Arch: BaseArch, OSAbbr: firstOr(o.DistTags)}
	f.Channel = o.Channels[0]
	a, errA := o.Layout(f)
	f.Channel = o.Channels[0] + "-probe"
	b, errB := o.Layout(f)
	return errA != nil || errB != nil || a != b
}

func firstOr(list []string) string {
	if len(list) == 0 {
		return ""
	}
	return list[0]
}

// baseURL joins base and the rendered directory, escaping each path segment; dnf's variables pass through
// unescaped ('$' is legal in a path segment).
func baseURL(base, rel string) (string, error) {
	rel = filepath.ToSlash(rel)
	if strings.ContainsAny(rel, "\r\n") {
		return "", fmt.Errorf("the layout renders %q, which spans lines", rel)
	}
	segs := strings.Split(rel, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return base + "/" + strings.Join(segs, "/") + "/", nil
}

// joinID builds a section id from the non-empty parts, keeping only the characters dnf allows in a repo id.
func joinID(parts ...string) string {
	var keep []string
	for _, p := range parts {
		if p != "" {
			keep = append(keep, p)
		}
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("-_.:", r):
			return r
		}
		return '_'
	}, strings.Join(keep, "-"))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Write renders the file and puts it into dir (top_dir) atomically: a reader (nginx, dnf) sees the old file or
// the new one, never a part. The temporary name starts with a dot, so neither nginx's dotfile rule nor
// serve_repo ever serves it, and a crash leaves nothing a client could fetch.
func Write(dir string, o Options) error {
	data, err := Render(o)
	if err != nil {
		return err
	}
	if filepath.Base(o.FileName) != o.FileName || strings.HasPrefix(o.FileName, ".") {
		return fmt.Errorf("repo file name %q is not a plain file name", o.FileName)
	}
	// A crash between CreateTemp and Rename leaves a temporary file; the next start removes it. Only one
	// daemon writes into top_dir (the indexer's locks ensure it), so none of these can be in use.
	if old, _ := filepath.Glob(filepath.Join(dir, "."+o.FileName+".tmp-*")); len(old) > 0 {
		for _, p := range old {
			os.Remove(p)
		}
	}
	tmp, err := os.CreateTemp(dir, "."+o.FileName+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", o.FileName, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	// CreateTemp makes 0600; the web server's user must read it.
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	dst := filepath.Join(dir, o.FileName)
	if err := os.Rename(tmp.Name(), dst); err != nil {
		os.Remove(tmp.Name())
		done = true
		return fmt.Errorf("rename %s: %w", dst, err)
	}
	done = true
	return durable.SyncDir(dir)
}
