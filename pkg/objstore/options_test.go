package objstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestNewValidatesOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string // substring of the error; "" for success
	}{
		{"minimal", Options{Endpoint: "http://127.0.0.1:9000", Bucket: "b"}, ""},
		{"no endpoint", Options{Bucket: "b"}, "endpoint is required"},
		{"no scheme", Options{Endpoint: "127.0.0.1:9000", Bucket: "b"}, "want http(s)://"},
		{"ftp", Options{Endpoint: "ftp://h", Bucket: "b"}, "want http(s)://"},
		{"userinfo", Options{Endpoint: "https://AKID:s3cr3tvalue@h", Bucket: "b"}, "without credentials"},
		{"no bucket", Options{Endpoint: "http://h"}, "bucket is required"},
		{"slash in bucket", Options{Endpoint: "http://h", Bucket: "a/b"}, "no slashes"},
		{"dotdot prefix", Options{Endpoint: "http://h", Bucket: "b", Prefix: "el/../x"}, `path segment ".."`},
		{"negative timeout", Options{Endpoint: "http://h", Bucket: "b", Timeout: -1}, "negative"},
		{"half env credentials", Options{Endpoint: "http://h", Bucket: "b",
			Getenv: env(map[string]string{"AWS_ACCESS_KEY_ID": "AKID"})}, "set both or neither"},
		{"missing credentials file", Options{Endpoint: "http://h", Bucket: "b", CredentialsFile: "/nonexistent/c"},
			"no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.Getenv == nil {
				tc.opts.Getenv = env(nil)
			}
			_, err := New(tc.opts)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3tvalue") {
				t.Fatalf("error shows the secret: %v", err)
			}
		})
	}
}

func TestParseCredentials(t *testing.T) {
	for _, tc := range []struct {
		name, text, id, secret, token, err string
	}{
		{"default section", "[other]\naws_access_key_id=X\naws_secret_access_key=Y\n[default]\n" +
			"aws_access_key_id = AK\naws_secret_access_key = SK\naws_session_token = ST\n", "AK", "SK", "ST", ""},
		{"only section", "# c\n[ci]\naws_access_key_id=AK\naws_secret_access_key=SK\n", "AK", "SK", "", ""},
		{"bare lines", "AWS_ACCESS_KEY_ID=AK\n; c\naws_secret_access_key=SK=with=equals\n", "AK", "SK=with=equals", "", ""},
		{"no secret", "[default]\naws_access_key_id=AK\n", "", "", "", "both required"},
		{"two profiles", "[a]\naws_access_key_id=A\n[b]\naws_access_key_id=B\n", "", "", "", "no [default]"},
		{"empty", "\n# nothing\n", "", "", "", "no credentials"},
		{"garbage line", "[default]\nSUPERSECRET\n", "", "", "", "line 2: want key = value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseCredentials(tc.text)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "SUPERSECRET") {
					t.Fatalf("error quotes the line: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.AccessKeyID != tc.id || c.SecretAccessKey != tc.secret || c.SessionToken != tc.token {
				t.Fatalf("got %q %q %q", c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
			}
		})
	}
}

// TestStringRedactsCredentials: what a log line or --check-config would print never holds the secret, whatever
// the verb.
func TestStringRedactsCredentials(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "s3.credentials")
	if err := os.WriteFile(file, []byte("[default]\naws_access_key_id=AKIDFILE\naws_secret_access_key=SECRETFILE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromEnv := env(map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "SECRETENV"})
	for _, tc := range []struct {
		opts   Options
		source string
	}{
		{Options{Endpoint: "http://h:1", Bucket: "b", Prefix: "/el/", CredentialsFile: file}, "credentials=file " + file},
		{Options{Endpoint: "http://h:1", Bucket: "b", Getenv: fromEnv}, "credentials=environment"},
		{Options{Endpoint: "http://h:1", Bucket: "b", Getenv: env(nil)}, "credentials=anonymous"},
	} {
		s, err := New(tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, out := range []string{s.String(), fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s)} {
			if !strings.Contains(out, tc.source) {
				t.Errorf("%q lacks %q", out, tc.source)
			}
			for _, secret := range []string{"SECRETFILE", "SECRETENV", "AKIDFILE", "AKIDENV"} {
				if strings.Contains(out, secret) {
					t.Errorf("%q shows %s", out, secret)
				}
			}
		}
		if tc.opts.Prefix != "" && !strings.Contains(s.String(), `prefix="el"`) {
			t.Errorf("prefix not normalised: %s", s)
		}
	}
}

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"a", "9/x86_64/Packages/hello-1.0-1.el9.x86_64.rpm", "a/.rpm-ingestd/lease.json",
		"with space/ü+%.rpm"} {
		if err := checkKey(k); err != nil {
			t.Errorf("checkKey(%q): %v", k, err)
		}
	}
	for _, k := range []string{"", "/a", "a/", "a//b", "./a", "a/../b", "..", "a\x00b", "a\nb", "a\\b",
		string([]byte{0xff}), strings.Repeat("a", 901)} {
		if err := checkKey(k); err == nil {
			t.Errorf("checkKey(%q) accepted", k)
		}
	}
	s, err := New(Options{Endpoint: "http://127.0.0.1:1", Bucket: "b", Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	// Refused before any request: the endpoint's port 1 is never dialled.
	if _, err := s.Put(context.Background(), "../escape", nil, nil); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Put(../escape): %v", err)
	}
	if _, err := s.List(context.Background(), "a//"); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("List(a//): %v", err)
	}
}

// TestStallTimeout: a server that accepts the request and never answers (as SeaweedFS does for PUTs right after
// a restart) fails the request with ErrUnavailable after the retries, instead of hanging forever.
func TestStallTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16) // more than the SDK's 3 attempts
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c // read nothing, answer nothing
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-stopped
		close(accepted)
		for c := range accepted {
			_ = c.Close()
		}
	})
	s, err := New(Options{Endpoint: "http://" + l.Addr().String(), Bucket: "b", PathStyle: true,
		StallTimeout: 200 * time.Millisecond, Timeout: time.Hour, Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = s.Put(ctx, "k", strings.NewReader("body"), nil)
	if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
		t.Fatalf("Put to a silent server: %v (ctx %v), want ErrUnavailable from the stall time-out", err, ctx.Err())
	}
	if len(accepted) < 2 {
		t.Fatalf("%d connections: the stalled attempt was not retried", len(accepted))
	}
}

func TestClassifyStatuses(t *testing.T) {
	// Against a plain HTTP server that answers each path with a fixed status: the sentinel each status maps to.
	statuses := map[string]int{"/b/nf": 404, "/b/pf": 412, "/b/cf": 409, "/b/dn": 403, "/b/ua": 401,
		"/b/ue": 503, "/b/tm": 429, "/b/br": 400}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(statuses[r.URL.Path])
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	s, err := New(Options{Endpoint: "http://" + l.Addr().String(), Bucket: "b", PathStyle: true, Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		key    string
		ifNone bool
		want   error
	}{
		{"nf", false, ErrNotFound}, {"pf", true, ErrExists}, {"pf", false, ErrConflict}, {"cf", true, ErrConflict},
		{"dn", false, ErrDenied}, {"ua", false, ErrDenied}, {"ue", false, ErrUnavailable},
		{"tm", false, ErrUnavailable}, {"br", false, nil},
	} {
		var err error
		if tc.ifNone {
			_, err = s.PutIfAbsent(ctx, tc.key, nil, nil)
		} else {
			_, err = s.PutIfMatch(ctx, tc.key, "abc", nil, nil)
		}
		var oe *Error
		if !errors.As(err, &oe) || oe.Status != statuses["/b/"+tc.key] {
			t.Errorf("%s: %v: not an *Error with status %d", tc.key, err, statuses["/b/"+tc.key])
			continue
		}
		if tc.want == nil {
			for _, s := range []error{ErrNotFound, ErrExists, ErrConflict, ErrDenied, ErrUnavailable} {
				if errors.Is(err, s) {
					t.Errorf("%s: %v matches %v", tc.key, err, s)
				}
			}
		} else if !errors.Is(err, tc.want) {
			t.Errorf("%s (if-none-match %v): %v, want %v", tc.key, tc.ifNone, err, tc.want)
		}
	}
}
