package config

import (
	"errors"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// Storage is where the repository tree lives: "fs" (the default) keeps it under repo.top_dir; "s3" keeps it in one
// bucket of an S3-compatible object store, with repo.top_dir as the local work directory.
type Storage struct {
	Backend string `yaml:"backend"`
	// S3 configures the bucket; required (and only allowed) with backend s3.
	S3 *S3 `yaml:"s3,omitempty"`
}

// S3 is storage.s3. It holds no secret: the credentials come from CredentialsFile (resolved against the config
// file's directory) or from the environment, so printing the configuration prints none.
type S3 struct {
	Endpoint        string `yaml:"endpoint"`
	Bucket          string `yaml:"bucket"`
	Prefix          string `yaml:"prefix"`
	Region          string `yaml:"region"`
	PathStyle       bool   `yaml:"path_style"`
	CredentialsFile string `yaml:"credentials_file"`
	// LeaseTTL is how long a repository's publish lease lasts without renewal: a daemon that dies holding it
	// blocks that repository's publishes this long. Left out: DefaultLeaseTTL.
	LeaseTTL Duration `yaml:"lease_ttl"`
}

// The storage backends.
const (
	BackendFS = "fs"
	BackendS3 = "s3"
)

// DefaultLeaseTTL is storage.s3.lease_ttl when left out; MinLeaseTTL and MaxLeaseTTL bound it. The holder renews
// its lease every third of the TTL while createrepo_c runs, so the TTL must leave room for a slow request.
const (
	DefaultLeaseTTL = Duration(2 * time.Minute)
	MinLeaseTTL     = Duration(5 * time.Second)
	MaxLeaseTTL     = Duration(time.Hour)
)

// DefaultS3Region is storage.s3.region when left out.
const DefaultS3Region = "us-east-1"

var (
	// bucketRe is S3's bucket naming rule (3–63 characters of lowercase letters, digits, dots and hyphens),
	// loosened to allow underscores and capitals, which some servers (Ceph, SeaweedFS) accept.
	bucketRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$`)
	// prefixSegRe is one segment of storage.s3.prefix.
	prefixSegRe = regexp.MustCompile(`^[A-Za-z0-9_+][A-Za-z0-9._+~-]*$`)
	regionRe    = regexp.MustCompile(`^[a-z0-9-]+$`)
)

// validateStorage checks the storage section. The endpoint is never quoted with its user information: an admin
// who wrote https://KEY:SECRET@host gets an error that does not repeat the secret.
func (c *Config) validateStorage(bad func(key, format string, args ...any)) {
	st := &c.Storage
	switch st.Backend {
	case BackendFS:
		if st.S3 != nil {
			bad("storage.s3", "is set but storage.backend is fs: remove it, or set backend: s3")
		}
		return
	case BackendS3:
	default:
		bad("storage.backend", "%q is not one of fs, s3", st.Backend)
		return
	}
	s := st.S3
	if s == nil {
		bad("storage.s3", "is required with backend s3: set endpoint and bucket at least")
		return
	}
	if s.Endpoint == "" {
		bad("storage.s3.endpoint", "must be set, like https://s3.example.com")
	} else if u, err := url.Parse(s.Endpoint); err != nil || u.User != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		switch {
		case err == nil && u.User != nil:
			bad("storage.s3.endpoint", "must not hold credentials (user:password@): put them in storage.s3.credentials_file")
		default:
			bad("storage.s3.endpoint", "%q is not an http(s)://host[:port] URL without a path", redactEndpoint(s.Endpoint))
		}
	}
	if s.Bucket == "" {
		bad("storage.s3.bucket", "must be set to the bucket's name")
	} else if !bucketRe.MatchString(s.Bucket) || strings.Contains(s.Bucket, "..") {
		bad("storage.s3.bucket", "%q is not a bucket name: 3 to 63 letters, digits, dots, hyphens or underscores, starting and ending with a letter or digit", s.Bucket)
	}
	if p := strings.Trim(s.Prefix, "/"); p != "" {
		for _, seg := range strings.Split(p, "/") {
			if !prefixSegRe.MatchString(seg) {
				bad("storage.s3.prefix", "%q is not a key prefix: plain segments (letters, digits, ._+~-, not starting with . or -) separated by /", s.Prefix)
				break
			}
		}
	}
	if s.Region == "" {
		s.Region = DefaultS3Region // a default for a section that only exists when set
	} else if !regionRe.MatchString(s.Region) {
		bad("storage.s3.region", "%q is not a region name, like us-east-1", s.Region)
	}
	switch {
	case s.LeaseTTL == 0:
		s.LeaseTTL = DefaultLeaseTTL
	case s.LeaseTTL < MinLeaseTTL || s.LeaseTTL > MaxLeaseTTL:
		bad("storage.s3.lease_ttl", "%s is not between %s and %s", time.Duration(s.LeaseTTL), time.Duration(MinLeaseTTL), time.Duration(MaxLeaseTTL))
	}
	if f := s.CredentialsFile; f != "" {
		switch fi, err := os.Stat(f); {
		case errors.Is(err, os.ErrNotExist):
			bad("storage.s3.credentials_file", "%s does not exist: write aws_access_key_id and aws_secret_access_key into it (mode 0600), or leave it out to use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", f)
		case err != nil:
			bad("storage.s3.credentials_file", "%v", err)
		case !fi.Mode().IsRegular():
			bad("storage.s3.credentials_file", "%s is not a regular file", f)
		}
	}
}

// redactEndpoint is the endpoint without user information, for messages.
func redactEndpoint(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	if i := strings.LastIndex(raw, "@"); i >= 0 {
		return "…" + raw[i:]
	}
	return raw
}
