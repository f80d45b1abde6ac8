package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
)

// osReleaseRe is what one entry of repo.os_releases may look like: the bare release an upload is routed by
// ("9", "10", "2023"), a directory name and a URL path segment, so no slash and no leading dot. It is the
// uploads' own os_release rule (ingest), so every listed release can be reached.
var osReleaseRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._]*$`)

// distLikeRe catches an entry written with its dist tag ("el9"): uploads are routed by the bare release (an el9
// package, or os_release=el9, goes to release "9"), so such an entry would never match anything.
var distLikeRe = regexp.MustCompile(`^([a-z]+)([0-9].*)$`)

// validateOSReleases checks repo.os_releases: each a non-empty safe path segment, listed once, and not a dist
// tag in disguise.
func (c *Config) validateOSReleases(bad func(key, format string, args ...any)) {
	const key = "repo.os_releases"
	seen := map[string]bool{}
	for _, r := range c.Repo.OSReleases {
		switch {
		case r == "":
			bad(key, "an entry is empty: list releases like [\"8\", \"9\", \"10\"]")
		case !osReleaseRe.MatchString(r):
			bad(key, "%q is not a release: use letters, digits, . and _ (not starting with .), like 9 or 10", r)
		case seen[r]:
			bad(key, "%q is listed twice", r)
		}
		if m := distLikeRe.FindStringSubmatch(r); m != nil && slices.Contains(c.Repo.DistTags, m[1]) {
			bad(key, "%q is a dist tag: uploads are routed by the bare release (an %s package goes to %q), so list %q", r, r, m[2], m[2])
		}
		seen[r] = true
	}
}

// ConfiguredRepo is one repository that repo.os_releases makes the daemon create at start.
type ConfiguredRepo struct {
	Rel                      string // directory relative to top_dir, like "testing/9/x86_64"
	Channel, OSRelease, Arch string // Arch is "SRPMS" for the source repository
}

// ConfiguredRepos lists every repository clients may be pointed at when repo.os_releases is set: each channel
// (or none) × each listed release × each of repo.arches and SRPMS. noarch packages are filed into every arch,
// so there is no noarch repository. It returns nil when os_releases is empty, and ErrNoOSAbbr when the layout
// needs a dist tag abbreviation: which distribution families a release exists for is not known then.
func (c *Config) ConfiguredRepos() ([]ConfiguredRepo, error) {
	if len(c.Repo.OSReleases) == 0 {
		return nil, nil
	}
	channels := c.Repo.Channels
	if len(channels) == 0 {
		channels = []string{""}
	}
	var out []ConfiguredRepo
	seen := map[string]bool{}
	for _, ch := range channels {
		for _, rel := range c.Repo.OSReleases {
			for _, arch := range append(slices.Clone(c.Repo.Arches), "SRPMS") {
				dir, err := c.RenderLayout(LayoutFields{OSRelease: rel, Arch: arch, Channel: ch})
				if err != nil {
					if errors.Is(err, ErrNoOSAbbr) {
						return nil, err
					}
					return nil, fmt.Errorf("repo.os_releases: render the layout for channel %q, release %q, arch %s: %w", ch, rel, arch, err)
				}
				if !seen[dir] {
					seen[dir] = true
					out = append(out, ConfiguredRepo{Rel: dir, Channel: ch, OSRelease: rel, Arch: arch})
				}
			}
		}
	}
	return out, nil
}
