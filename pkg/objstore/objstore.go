// Package objstore is a small client for one S3-compatible bucket (AWS S3, Ceph RGW, MinIO, SeaweedFS, Garage):
// conditional writes (If-None-Match: *, If-Match), reads, listings, deletes and server-side copies of the keys
// under one prefix, with sentinel errors for what callers decide on and time-outs on every request.
//
// It knows nothing of repositories: pkg/lease and the S3 tree backend build on it.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Sentinel errors; every error this package returns for a request is an *Error that matches one of them (or a
// context error of the caller's context) with errors.Is.
var (
	// ErrNotFound: the key (or, for Copy, the source) does not exist; also a PutIfMatch on a missing key.
	ErrNotFound = errors.New("not found")
	// ErrExists: PutIfAbsent found the key already there (412).
	ErrExists = errors.New("already exists")
	// ErrConflict: an If-Match precondition failed (412: the object changed, or is gone on servers that answer
	// 412 for that), or the server refused a conditional write racing another one (409, as AWS does).
	ErrConflict = errors.New("precondition failed")
	// ErrDenied: the server refused the credentials or the request (401, 403).
	ErrDenied = errors.New("access denied")
	// ErrUnavailable: no answer in time, no connection, or a 5xx/429 after the retries: worth retrying later.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrInvalidKey: a key that this package refuses to send (empty, absolute, with empty, "." or ".." segments,
	// or with control characters).
	ErrInvalidKey = errors.New("invalid key")
)

// Error describes a failed operation. Kind is one of the sentinels above (nil for an unclassified answer);
// Status is the HTTP status when the server answered.
type Error struct {
	Op     string
	Key    string
	Status int
	Kind   error
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("objstore: ")
	b.WriteString(e.Op)
	if e.Key != "" {
		b.WriteString(" " + e.Key)
	}
	if e.Kind != nil {
		b.WriteString(": " + e.Kind.Error())
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap makes errors.Is see both the sentinel and the underlying SDK or network error.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Options configures a Store. They mirror the storage.s3 keys that issue 21 specifies.
type Options struct {
	Endpoint  string // e.g. https://s3.example.com; required
	Bucket    string // required
	Prefix    string // optional: every key lives under "<Prefix>/"
	Region    string // default us-east-1
	PathStyle bool   // http://host/bucket/key instead of http://bucket.host/key (MinIO, SeaweedFS, Ceph usually)

	// CredentialsFile is an AWS shared-credentials file (the [default] section, or the only section, or bare
	// key=value lines: aws_access_key_id, aws_secret_access_key, optional aws_session_token). When empty, the
	// environment's AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) are used; when those are
	// empty too, requests are anonymous.
	CredentialsFile string

	// Timeout bounds each operation that moves no object body (Head, Delete, Copy, one List page), retries
	// included. Default 30 s.
	Timeout time.Duration
	// StallTimeout fails a request attempt when a read or write on its connection makes no progress for this
	// long; the SDK then retries it (3 attempts in all). It bounds Put and Get of any size, and the PUTs that hang
	// for about 10 s after a SeaweedFS restart. Default 15 s.
	StallTimeout time.Duration
	// ListPageSize is the number of keys asked for per List page (default 1000, S3's maximum).
	ListPageSize int32

	// Getenv reads the environment for the credentials (nil: os.Getenv). A test seam.
	Getenv func(string) string
}

// Store is a client for the keys under one bucket and prefix. It is safe for concurrent use.
type Store struct {
	client       *s3.Client
	bucket       string
	prefix       string // "" or "p/" (with the slash)
	endpoint     string
	region       string
	credsSource  string // where the credentials came from, for String; never the secret
	timeout      time.Duration
	listPageSize int32
}

// Info describes a stored object. Metadata is filled by Head and Get only (S3 listings do not carry it); its keys
// are lower case.
type Info struct {
	Key          string // relative to the store's prefix
	Size         int64
	ETag         string // as the server sent it, quoted; pass it back unchanged to the *IfMatch operations
	LastModified time.Time
	Metadata     map[string]string
}

// New checks the options, reads the credentials and returns a Store. It sends no request.
func New(opts Options) (*Store, error) {
	var problems []error
	u, err := url.Parse(opts.Endpoint)
	if opts.Endpoint == "" {
		problems = append(problems, errors.New("endpoint is required"))
	} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		problems = append(problems, fmt.Errorf("endpoint %q: want http(s)://host[:port] without credentials", redactURL(opts.Endpoint)))
	}
	if opts.Bucket == "" {
		problems = append(problems, errors.New("bucket is required"))
	} else if strings.ContainsAny(opts.Bucket, "/ ") {
		problems = append(problems, fmt.Errorf("bucket %q: no slashes or spaces", opts.Bucket))
	}
	prefix := strings.Trim(opts.Prefix, "/")
	if prefix != "" {
		if err := checkKey(prefix); err != nil {
			problems = append(problems, fmt.Errorf("prefix %q: %w", opts.Prefix, err))
		}
		prefix += "/"
	}
	if opts.Timeout < 0 || opts.StallTimeout < 0 || opts.ListPageSize < 0 {
		problems = append(problems, errors.New("time-outs and page size must not be negative"))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("objstore: %w", errors.Join(problems...))
	}
	creds, source, err := loadCredentials(opts)
	if err != nil {
		return nil, fmt.Errorf("objstore: %w", err)
	}
	s := &Store{
		bucket:       opts.Bucket,
		prefix:       prefix,
		endpoint:     strings.TrimRight(opts.Endpoint, "/"),
		region:       opts.Region,
		credsSource:  source,
		timeout:      opts.Timeout,
		listPageSize: opts.ListPageSize,
	}
	if s.region == "" {
		s.region = "us-east-1"
	}
	if s.timeout == 0 {
		s.timeout = 30 * time.Second
	}
	if s.listPageSize == 0 {
		s.listPageSize = 1000
	}
	stall := opts.StallTimeout
	if stall == 0 {
		stall = 15 * time.Second
	}
	s.client = s3.New(s3.Options{
		BaseEndpoint: aws.String(s.endpoint),
		Region:       s.region,
		UsePathStyle: opts.PathStyle,
		Credentials:  creds,
		HTTPClient:   newHTTPClient(stall),
		// Since service/s3 v1.73 (2025) the SDK adds CRC32 checksums to every PUT and validates them on GETs;
		// MinIO, Ceph, R2, Hetzner and others have rejected them (XAmzContentSHA256Mismatch; aws-sdk-go-v2#2960).
		// SeaweedFS 4.53 accepts both ways (checked). Only send and check them where an operation requires them.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	return s, nil
}

// String describes the store without its credentials: safe to log.
func (s *Store) String() string {
	return fmt.Sprintf("s3 endpoint=%s bucket=%s prefix=%q region=%s credentials=%s",
		redactURL(s.endpoint), s.bucket, strings.TrimSuffix(s.prefix, "/"), s.region, s.credsSource)
}

// GoString is String, so that %#v does not print the client's fields either.
func (s *Store) GoString() string { return s.String() }

// Put stores body at key unconditionally and returns the new ETag. meta becomes the object's user metadata.
// body may be nil (an empty object); it must be seekable so that a retried attempt can send it again.
func (s *Store) Put(ctx context.Context, key string, body io.ReadSeeker, meta map[string]string) (string, error) {
	return s.put(ctx, "put", key, body, meta, nil, nil, nil)
}

// PutIfAbsent stores body at key only when no object is there (If-None-Match: *). ErrExists when there is one.
//
// A retried attempt (after a lost answer) can find the object that its own first attempt stored and report
// ErrExists: callers that must know compare the stored object (Head: its metadata) with what they wrote.
func (s *Store) PutIfAbsent(ctx context.Context, key string, body io.ReadSeeker, meta map[string]string) (string, error) {
	return s.put(ctx, "put-if-absent", key, body, meta, aws.String("*"), nil, ErrExists)
}

// PutIfMatch replaces the object at key only while its ETag is etag (If-Match). ErrConflict when it changed,
// ErrNotFound when there is none (SeaweedFS answers 404; servers that answer 412 give ErrConflict).
func (s *Store) PutIfMatch(ctx context.Context, key, etag string, body io.ReadSeeker, meta map[string]string) (string, error) {
	if etag == "" {
		return "", &Error{Op: "put-if-match", Key: key, Kind: ErrConflict, Err: errors.New("empty etag")}
	}
	return s.put(ctx, "put-if-match", key, body, meta, nil, aws.String(quoteETag(etag)), ErrConflict)
}

func (s *Store) put(ctx context.Context, op, key string, body io.ReadSeeker, meta map[string]string,
	ifNoneMatch, ifMatch *string, on412 error) (string, error) {
	full, err := s.fullKey(op, key)
	if err != nil {
		return "", err
	}
	if body == nil {
		body = strings.NewReader("")
	}
	size, err := body.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = body.Seek(0, io.SeekStart)
	}
	if err != nil {
		return "", &Error{Op: op, Key: key, Err: fmt.Errorf("seek body: %w", err)}
	}
	out, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(full),
		Body:          body,
		ContentLength: aws.Int64(size),
		Metadata:      meta,
		IfNoneMatch:   ifNoneMatch,
		IfMatch:       ifMatch,
	})
	if err != nil {
		return "", s.classify(ctx, op, key, err, on412)
	}
	return aws.ToString(out.ETag), nil
}

// Get opens the object at key. The caller reads and closes the body; a stalled read fails after StallTimeout,
// and ctx bounds the whole transfer.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	full, err := s.fullKey("get", key)
	if err != nil {
		return nil, Info{}, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(full)})
	if err != nil {
		return nil, Info{}, s.classify(ctx, "get", key, err, ErrConflict)
	}
	return out.Body, Info{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag),
		LastModified: aws.ToTime(out.LastModified), Metadata: lowerKeys(out.Metadata)}, nil
}

// Head returns the size, ETag, modification time and user metadata of the object at key; ErrNotFound without it.
func (s *Store) Head(ctx context.Context, key string) (Info, error) {
	full, err := s.fullKey("head", key)
	if err != nil {
		return Info{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(full)})
	if err != nil {
		return Info{}, s.classify(ctx, "head", key, err, ErrConflict)
	}
	return Info{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag),
		LastModified: aws.ToTime(out.LastModified), Metadata: lowerKeys(out.Metadata)}, nil
}

// List returns every object whose key starts with prefix (relative to the store's prefix; "" for all), in key
// order, following S3's pagination. Listings carry no user metadata.
func (s *Store) List(ctx context.Context, prefix string) ([]Info, error) {
	var infos []Info
	err := s.Walk(ctx, prefix, func(i Info) error { infos = append(infos, i); return nil })
	return infos, err
}

// Walk calls fn for every object whose key starts with prefix, page by page, without holding the whole listing;
// an error from fn stops the walk and is returned as is.
func (s *Store) Walk(ctx context.Context, prefix string, fn func(Info) error) error {
	if prefix != "" {
		if err := checkKey(strings.TrimSuffix(prefix, "/")); err != nil {
			return &Error{Op: "list", Key: prefix, Kind: ErrInvalidKey, Err: err}
		}
	}
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		Prefix:  aws.String(s.prefix + prefix),
		MaxKeys: aws.Int32(s.listPageSize),
	}, func(o *s3.ListObjectsV2PaginatorOptions) { o.StopOnDuplicateToken = true })
	for p.HasMorePages() {
		pctx, cancel := context.WithTimeout(ctx, s.timeout)
		page, err := p.NextPage(pctx)
		if err != nil {
			err = s.classify(pctx, "list", prefix, err, ErrConflict)
			cancel()
			return err
		}
		cancel()
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if err := fn(Info{Key: key, Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag),
				LastModified: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete removes the object at key. Deleting a missing key succeeds, as in S3.
func (s *Store) Delete(ctx context.Context, key string) error {
	return s.delete(ctx, "delete", key, nil)
}

// DeleteIfMatch removes the object at key only while its ETag is etag; ErrConflict when it changed.
func (s *Store) DeleteIfMatch(ctx context.Context, key, etag string) error {
	if etag == "" {
		return &Error{Op: "delete-if-match", Key: key, Kind: ErrConflict, Err: errors.New("empty etag")}
	}
	return s.delete(ctx, "delete-if-match", key, aws.String(quoteETag(etag)))
}

func (s *Store) delete(ctx context.Context, op, key string, ifMatch *string) error {
	full, err := s.fullKey(op, key)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(full), IfMatch: ifMatch})
	if err != nil {
		return s.classify(ctx, op, key, err, ErrConflict)
	}
	return nil
}

// Copy copies the object at src to dst inside the bucket, server-side, with its user metadata, and returns the
// new ETag. ErrNotFound when src is missing. S3 limits a single copy to 5 GiB.
func (s *Store) Copy(ctx context.Context, src, dst string) (string, error) {
	fullSrc, err := s.fullKey("copy", src)
	if err != nil {
		return "", err
	}
	fullDst, err := s.fullKey("copy", dst)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(fullDst),
		CopySource:        aws.String(escapePath(s.bucket + "/" + fullSrc)),
		MetadataDirective: types.MetadataDirectiveCopy,
	})
	if err != nil {
		return "", s.classify(ctx, "copy", src+" -> "+dst, err, ErrConflict)
	}
	if out.CopyObjectResult == nil {
		return "", nil
	}
	return aws.ToString(out.CopyObjectResult.ETag), nil
}

// fullKey validates key and puts the store's prefix in front of it.
func (s *Store) fullKey(op, key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", &Error{Op: op, Key: key, Kind: ErrInvalidKey, Err: err}
	}
	return s.prefix + key, nil
}

// checkKey refuses keys that would escape the prefix, alias another key, or carry invisible characters.
func checkKey(key string) error {
	if key == "" {
		return errors.New("empty")
	}
	if len(key) > 900 {
		return errors.New("longer than 900 bytes")
	}
	if !utf8.ValidString(key) {
		return errors.New("not UTF-8")
	}
	for _, r := range key {
		if unicode.IsControl(r) || r == '\\' {
			return fmt.Errorf("character %U", r)
		}
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return errors.New("empty path segment (leading, trailing or double slash)")
		case ".", "..":
			return fmt.Errorf("path segment %q", seg)
		}
	}
	return nil
}

// classify turns an SDK error into an *Error with a sentinel. on412 is the sentinel a 412 means for this op.
func (s *Store) classify(ctx context.Context, op, key string, err error, on412 error) error {
	e := &Error{Op: op, Key: key, Err: err}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		// Status 0: the SDK wraps a request that got no answer (refused, reset, stalled) in a ResponseError too.
		e.Status = re.HTTPStatusCode()
	}
	switch {
	case e.Status == http.StatusNotFound:
		e.Kind = ErrNotFound
	case e.Status == http.StatusPreconditionFailed:
		e.Kind = on412
	case e.Status == http.StatusConflict:
		e.Kind = ErrConflict
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		e.Kind = ErrDenied
	case e.Status == http.StatusTooManyRequests || e.Status >= 500:
		e.Kind = ErrUnavailable
	case e.Status != 0:
		// Another answer (400, 411, ...): a request this package should not have sent; no sentinel.
	case errors.Is(err, context.Canceled):
		// The caller's cancellation: no sentinel, errors.Is(err, context.Canceled) holds.
	case errors.Is(err, context.DeadlineExceeded):
		// Our own Timeout, or the caller's deadline: either way the storage did not answer in time.
		e.Kind = ErrUnavailable
	default:
		// No HTTP answer: refused or reset connections, stalls, DNS.
		var ne net.Error
		var oe *net.OpError
		if errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			e.Kind = ErrUnavailable
		}
	}
	return e
}

func quoteETag(etag string) string {
	if strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, `W/"`) {
		return etag
	}
	return `"` + etag + `"`
}

func lowerKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// escapePath URL-escapes each segment of a "bucket/key" copy source.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// redactURL drops any user:password from a URL before it is printed.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable endpoint)"
	}
	return u.Redacted()
}

// newHTTPClient is an http.Client whose connections fail any read or write that makes no progress for stall.
func newHTTPClient(stall time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: stall, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &stallConn{Conn: c, stall: stall}, nil
		},
		TLSHandshakeTimeout:   stall,
		ResponseHeaderTimeout: 0, // the stall deadline bounds the wait for the answer, after any body size
		MaxIdleConnsPerHost:   32,
		// An idle connection's background read would hit the stall deadline: close it before that.
		IdleConnTimeout: stall / 2,
	}}
}

// stallConn sets a fresh deadline before every read and write, so a transfer fails only when it stops moving.
// A write pushes the read deadline too: the answer to a request is awaited for stall after its last byte went out.
type stallConn struct {
	net.Conn
	stall time.Duration
}

func (c *stallConn) Read(b []byte) (int, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.stall))
	return c.Conn.Read(b)
}

func (c *stallConn) Write(b []byte) (int, error) {
	_ = c.Conn.SetDeadline(time.Now().Add(c.stall))
	return c.Conn.Write(b)
}

// loadCredentials picks the credentials: the file, else the environment, else anonymous. The returned source
// names where they came from and never contains a secret.
func loadCredentials(opts Options) (aws.CredentialsProvider, string, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	var c aws.Credentials
	var source string
	if opts.CredentialsFile != "" {
		data, err := os.ReadFile(opts.CredentialsFile)
		if err != nil {
			return nil, "", fmt.Errorf("credentials file: %w", err)
		}
		c, err = parseCredentials(string(data))
		if err != nil {
			return nil, "", fmt.Errorf("credentials file %s: %w", opts.CredentialsFile, err)
		}
		source = "file " + opts.CredentialsFile
	} else {
		c.AccessKeyID = getenv("AWS_ACCESS_KEY_ID")
		c.SecretAccessKey = getenv("AWS_SECRET_ACCESS_KEY")
		c.SessionToken = getenv("AWS_SESSION_TOKEN")
		switch {
		case c.AccessKeyID == "" && c.SecretAccessKey == "":
			return aws.AnonymousCredentials{}, "anonymous", nil
		case c.AccessKeyID == "" || c.SecretAccessKey == "":
			return nil, "", errors.New("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: set both or neither")
		}
		source = "environment"
	}
	c.Source = "rpm-ingestd " + source
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return c, nil }), source, nil
}

// parseCredentials reads the AWS shared-credentials format: the [default] section, or else the only section, or
// bare key = value lines. '#' and ';' start comment lines.
func parseCredentials(text string) (aws.Credentials, error) {
	sections := map[string]map[string]string{}
	var order []string
	cur := ""
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			cur = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			// Never quote the line: it may hold a secret.
			return aws.Credentials{}, fmt.Errorf("line %d: want key = value", n+1)
		}
		if sections[cur] == nil {
			sections[cur] = map[string]string{}
			order = append(order, cur)
		}
		sections[cur][strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	var sec map[string]string
	switch {
	case sections["default"] != nil:
		sec = sections["default"]
	case len(order) == 1:
		sec = sections[order[0]]
	case len(order) == 0:
		return aws.Credentials{}, errors.New("no credentials in it")
	default:
		return aws.Credentials{}, errors.New("several profiles and no [default]")
	}
	c := aws.Credentials{AccessKeyID: sec["aws_access_key_id"], SecretAccessKey: sec["aws_secret_access_key"],
		SessionToken: sec["aws_session_token"]}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return aws.Credentials{}, errors.New("aws_access_key_id and aws_secret_access_key are both required")
	}
	return c, nil
}
