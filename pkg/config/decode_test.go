package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadReportsEveryProblemInFileOrder is the golden test of the error format: every problem of a bad file,
// decoding and validation alike, one per line, "line N: key.path: message", in file order, and nothing else.
func TestLoadReportsEveryProblemInFileOrder(t *testing.T) {
	tests := []struct {
		file string
		want []string // the lines of the error after the file name, in order; each must contain its entry
	}{
		{"four-mistakes.yaml", []string{
			`line 2: server.listen: "localhost" is neither host:port nor unix:/path`,
			"line 4: server.max_uplaod_size: unknown key; did you mean max_upload_size?",
			`line 7: repo.arches: "x86_64" is listed twice`,
			`line 9: indexer.quiet_period: "30 parsecs" is not a duration: write it like 30s, 5m or 1h30m`,
		}},
		{"misplaced-keys.yaml", []string{
			"line 3: server.top_dir: unknown key; did you mean repo.top_dir? (it belongs in another section)",
			"line 5: server.max_upload_size: is set twice (first on line 4)",
			"line 8: repo.arche: unknown key; did you mean arches?",
			`line 9: repo.overwrite: "perhaps" is not true or false`,
			"line 10: indexr: unknown key; did you mean indexer?",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("..", "..", "testdata", "config", tc.file)
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			got := strings.Split(strings.TrimPrefix(err.Error(), path+": "), "\n")
			if len(got) != len(tc.want) {
				t.Errorf("%d problems reported, want %d:\n%v", len(got), len(tc.want), err)
			}
			for i, w := range tc.want {
				if i >= len(got) || !strings.Contains(got[i], w) {
					t.Errorf("problem %d: want %q; got:\n%v", i+1, w, err)
				}
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"listen", "listen", 0},
		{"max_uplaod_size", "max_upload_size", 1}, // a swap of neighbours is one typo
		{"listn", "listen", 1},
		{"arche", "arches", 1},
		{"keep_builds", "keep_days", 5},
		{"abc", "", 3},
	}
	for _, tc := range tests {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestParseMergeKeys: YAML merge keys and aliases decode as yaml.v3 itself does, the section's own keys winning,
// and a wrong key brought in by a merge is still reported.
func TestParseMergeKeys(t *testing.T) {
	cfg, err := Parse([]byte("x-limits: &limits\n  workers: 3\n  quiet_period: 5s\nindexer:\n  <<: *limits\n  workers: 4\n"))
	if err == nil || !strings.Contains(err.Error(), "line 1: x-limits: unknown key") {
		t.Fatalf("err = %v, want the unknown top-level key reported", err)
	}
	if cfg.Indexer.Workers != 4 || cfg.Indexer.QuietPeriod.String() != "5s" {
		t.Errorf("workers %d, quiet_period %s; want 4 and 5s", cfg.Indexer.Workers, cfg.Indexer.QuietPeriod)
	}
	_, err = Parse([]byte("base: &b\n  wrkers: 3\nindexer:\n  <<: *b\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2: indexer.wrkers: unknown key; did you mean workers?") {
		t.Errorf("err = %v, want the merged typo reported", err)
	}
}
