package auth

import (
	"strings"
	"testing"
)

// FuzzParseHtpasswd checks that no file content panics the parser or the password check, and that what the
// parser accepts is consistent: non-empty user names without a colon, a line break, leading blanks or a leading #, one
// entry per user, a decoy. The seed corpus in testdata/fuzz/FuzzParseHtpasswd holds real htpasswd output of
// every format and the bad lines the table tests use; it replays as an ordinary test. Run the fuzzer with:
// go test ./pkg/auth -run '^$' -fuzz FuzzParseHtpasswd -fuzztime 30s
func FuzzParseHtpasswd(f *testing.F) {
	f.Add([]byte("alice:$apr1$rqoR7Cif$m06FabbcuFKNBGN5Dq5C/.\n"), "secret")
	f.Add([]byte(""), "")
	f.Fuzz(func(t *testing.T, data []byte, pass string) {
		u, err := parseHtpasswd("fuzz", data)
		if err != nil {
			return
		}
		if u.decoy == nil {
			t.Fatal("accepted file without a decoy")
		}
		if len(pass) > 256 {
			pass = pass[:256] // md5-crypt's work grows with the password; long ones only slow the fuzzer down
		}
		checked, slows := 0, 0
		for name, v := range u.byName {
			if name == "" || strings.ContainsAny(name, ":\n\r") || strings.TrimLeft(name, " \t") != name || name[0] == '#' {
				t.Fatalf("accepted user name %q", name)
			}
			// bcrypt's cost is exponential: the fuzzer can write "$2y$17$", and a check then takes seconds; SHA-crypt
			// can ask for a million rounds. The parser's bounds have their own table tests; verify a few cheap
			// entries, at most one slow-format one at its minimum cost (a millisecond), so minimizing stays quick.
			slow := false
			switch h := v.(type) {
			case *bcryptHash:
				slow = true
				if h.cost > minBcryptCost {
					continue
				}
			case *shaCryptHash:
				slow = true
				if h.rounds > minShaRounds {
					continue
				}
			}
			if checked == 3 || (slow && slows == 1) {
				continue
			}
			if slow {
				slows++
			}
			checked++
			v.verify(pass)
		}
	})
}
