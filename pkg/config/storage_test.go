package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStorageValidation(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"storage", "incoming", "creds.d"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "s3.credentials"), []byte("[default]\naws_access_key_id = AKID\naws_secret_access_key = SECRETKEY\n"), 0o600)
	const head = "server:\n  spool_dir: incoming\nrepo:\n  top_dir: storage\n"
	tests := []struct {
		name    string
		storage string
		want    []string // every problem, in order; nil: valid
	}{
		{"default fs", "", nil},
		{"fs explicit", "storage:\n  backend: fs\n", nil},
		{"s3 minimal", "storage:\n  backend: s3\n  s3:\n    endpoint: http://127.0.0.1:8333\n    bucket: repo\n", nil},
		{"s3 full", "storage:\n  backend: s3\n  s3:\n    endpoint: https://s3.example.com\n    bucket: repo\n    prefix: el/prod\n    region: eu-west-1\n    path_style: true\n    credentials_file: s3.credentials\n", nil},
		{"unknown backend", "storage:\n  backend: gcs\n", []string{`line 6: storage.backend: "gcs" is not one of fs, s3`}},
		{"s3 section with fs", "storage:\n  backend: fs\n  s3:\n    bucket: x\n", []string{"line 7: storage.s3: is set but storage.backend is fs"}},
		{"s3 without section", "storage:\n  backend: s3\n", []string{"line 5: storage.s3: is required with backend s3"}},
		{"every problem at once",
			"storage:\n  backend: s3\n  s3:\n    endpoint: ftp://x\n    bucket: a\n    prefix: ../up\n    region: Mars 1\n    credentials_file: missing.creds\n    buckett: y\n",
			[]string{
				`line 8: storage.s3.endpoint: "ftp://x" is not an http(s)://host[:port] URL without a path`,
				`line 9: storage.s3.bucket: "a" is not a bucket name`,
				`line 10: storage.s3.prefix: "../up" is not a key prefix`,
				`line 11: storage.s3.region: "Mars 1" is not a region name`,
				"line 12: storage.s3.credentials_file: " + filepath.Join(dir, "missing.creds") + " does not exist",
				"line 13: storage.s3.buckett: unknown key",
			}},
		{"missing endpoint and bucket", "storage:\n  backend: s3\n  s3:\n    region: us-east-1\n",
			[]string{"line 7: storage.s3.endpoint: must be set", "line 7: storage.s3.bucket: must be set"}},
		{"endpoint with a path", "storage:\n  backend: s3\n  s3:\n    endpoint: http://h:1/bucket\n    bucket: repo\n", []string{"line 8: storage.s3.endpoint:"}},
		{"credentials file a directory", "storage:\n  backend: s3\n  s3:\n    endpoint: http://h:1\n    bucket: repo\n    credentials_file: creds.d\n", []string{"is not a regular file"}},
		{"lease_ttl too short", "storage:\n  backend: s3\n  s3:\n    endpoint: http://h:1\n    bucket: repo\n    lease_ttl: 1s\n", []string{"line 10: storage.s3.lease_ttl: 1s is not between 5s and 1h0m0s"}},
		{"lease_ttl too long", "storage:\n  backend: s3\n  s3:\n    endpoint: http://h:1\n    bucket: repo\n    lease_ttl: 2h\n", []string{"storage.s3.lease_ttl: 2h0m0s is not between"}},
		{"lease_ttl negative", "storage:\n  backend: s3\n  s3:\n    endpoint: http://h:1\n    bucket: repo\n    lease_ttl: -5s\n", []string{"storage.s3.lease_ttl: -5s is not between"}},
		{"lease_ttl short ok", "storage:\n  backend: s3\n  s3:\n    endpoint: http://h:1\n    bucket: repo\n    lease_ttl: 10s\n", nil},
		{"hidden prefix", "storage:\n  backend: s3\n  s3:\n    endpoint: http://h:1\n    bucket: repo\n    prefix: .x\n", []string{"storage.s3.prefix"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, "config.yml")
			os.WriteFile(cfg, []byte(head+tc.storage), 0o644)
			c, err := Load(cfg)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if c.Storage.Backend == BackendS3 {
					if c.Storage.S3.Region == "" {
						t.Error("region default not filled")
					}
					if want := DefaultLeaseTTL; !strings.Contains(tc.storage, "lease_ttl") && c.Storage.S3.LeaseTTL != want {
						t.Errorf("lease_ttl default %v, want %v", c.Storage.S3.LeaseTTL, want)
					}
					if f := c.Storage.S3.CredentialsFile; f != "" && f != filepath.Join(dir, "s3.credentials") {
						t.Errorf("credentials_file %q, want it resolved against the config dir", f)
					}
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("%d problems, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("problem %d: %q, want %q", i, lines[i], w)
				}
			}
		})
	}
	if Default().Storage.Backend != BackendFS || Default().Storage.S3 != nil {
		t.Error("default storage is not fs")
	}
}

// TestStorageEndpointCredentialsNotRepeated: credentials written into the endpoint URL are refused without
// repeating them.
func TestStorageEndpointCredentialsNotRepeated(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "storage"), 0o755)
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	for _, ep := range []string{"https://AKID:SECRETKEY@s3.example.com", "https://AKID:SECRETKEY@s3.example.com/path", "ftp://AKID:SECRETKEY@x"} {
		cfg := filepath.Join(dir, "config.yml")
		os.WriteFile(cfg, []byte("server:\n  spool_dir: incoming\nrepo:\n  top_dir: storage\nstorage:\n  backend: s3\n  s3:\n    endpoint: "+ep+"\n    bucket: repo\n"), 0o644)
		_, err := Load(cfg)
		if err == nil || !strings.Contains(err.Error(), "storage.s3.endpoint") {
			t.Fatalf("%s: error %v", ep, err)
		}
		if strings.Contains(err.Error(), "SECRETKEY") {
			t.Errorf("%s: the error repeats the secret: %v", ep, err)
		}
	}
}
