package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// TestStorageCredentialsNeverShown: the S3 credentials, from storage.s3.credentials_file or from the environment,
// appear neither in --check-config's output nor in what the daemon logs when it builds the tree; a bad
// credentials file is refused without quoting it. (The configuration holds only the file's path.)
func TestStorageCredentialsNeverShown(t *testing.T) {
	const keyID, secret = "AKIDEXAMPLE4711", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRET"
	dir := t.TempDir()
	for _, d := range []string{"storage", "spool"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "s3.credentials"), []byte("[default]\naws_access_key_id = "+keyID+"\naws_secret_access_key = "+secret+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "bad.credentials"), []byte("aws_access_key_id "+keyID+"\naws_secret_access_key "+secret+"\n"), 0o600)
	write := func(name, creds string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("server:\n  spool_dir: spool\nrepo:\n  top_dir: storage\nindexer:\n  command: [sh, -c, 'true']\n"+
			"storage:\n  backend: s3\n  s3:\n    endpoint: http://127.0.0.1:1\n    bucket: repo\n    path_style: true\n"+creds), 0o644)
		return p
	}
	withFile := write("file.yml", "    credentials_file: s3.credentials\n")
	withEnv := write("env.yml", "")
	badFile := write("bad.yml", "    credentials_file: bad.credentials\n")

	check := func(t *testing.T, text string) {
		t.Helper()
		if strings.Contains(text, secret) || strings.Contains(text, keyID) {
			t.Errorf("the credentials are shown:\n%s", text)
		}
	}
	t.Setenv("AWS_ACCESS_KEY_ID", keyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	for _, cfgPath := range []string{withFile, withEnv} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"--check-config", "-c", cfgPath}, &stdout, &stderr); code != 0 {
			t.Fatalf("--check-config %s: exit %d\n%s", cfgPath, code, &stderr)
		}
		check(t, stdout.String()+stderr.String())
		if !strings.Contains(stdout.String(), "backend: s3") || !strings.Contains(stdout.String(), "bucket: repo") {
			t.Errorf("--check-config does not print the storage section:\n%s", &stdout)
		}
		if cfgPath == withFile && !strings.Contains(stdout.String(), "credentials_file: "+filepath.Join(dir, "s3.credentials")) {
			t.Errorf("--check-config does not print the resolved credentials_file:\n%s", &stdout)
		}

		// What the daemon logs when it builds the tree.
		cfg, _, err := loadConfig(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&logs), zap.DebugLevel))
		tr, _, err := openTree(cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		tr.Close()
		check(t, logs.String())
		if !strings.Contains(logs.String(), "repository tree in S3") {
			t.Errorf("no log line about the tree:\n%s", &logs)
		}
	}

	// A malformed credentials file fails the start with a line number, never the line.
	cfg, _, err := loadConfig(badFile)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = openTree(cfg, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "storage.s3") {
		t.Fatalf("bad credentials file: %v", err)
	}
	check(t, err.Error())
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-c", badFile}, &stdout, &stderr); code == 0 {
		t.Fatal("the daemon started with a malformed credentials file")
	}
	check(t, stdout.String()+stderr.String())
}
