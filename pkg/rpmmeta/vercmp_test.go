package rpmmeta

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// vercmpCase is one comparison with the answer rpm gives.
type vercmpCase struct {
	a, b string
	want int
	line int // in testdata/rpmvercmp.at, 0 for our own cases
}

// rpmTestRe matches one RPMVERCMP(a, b, result) line of rpm's test suite; a "dnl " prefix marks the cases rpm
// documents as its oddities but does not run.
var rpmTestRe = regexp.MustCompile(`^(dnl )?RPMVERCMP\(([^,]*), ([^,]*), (-?\d)\)$`)

// rpmSuiteCases reads testdata/rpmvercmp.at, rpm's own table (tests/rpmvercmp.at of rpm-software-management/rpm
// at commit 5dae33c3d0c51c97d5834fe2ecf768b6f5483b81, copied unchanged). Active cases come first; the commented
// oddities are returned separately.
func rpmSuiteCases(t *testing.T) (active, oddities []vercmpCase) {
	t.Helper()
	data, err := os.ReadFile("testdata/rpmvercmp.at")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		m := rpmTestRe.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		want, _ := strconv.Atoi(m[4]) // the regexp admits only -1..9
		c := vercmpCase{a: m[2], b: m[3], want: want, line: n}
		if m[1] != "" {
			oddities = append(oddities, c)
		} else {
			active = append(active, c)
		}
	}
	// A parse that silently found nothing would make every test below pass.
	if len(active) < 80 || len(oddities) < 10 {
		t.Fatalf("found %d active cases and %d oddities in rpmvercmp.at; the file or the pattern changed", len(active), len(oddities))
	}
	return active, oddities
}

func TestVercmpRPMSuite(t *testing.T) {
	active, oddities := rpmSuiteCases(t)
	for _, c := range append(active, oddities...) {
		if got := Vercmp(c.a, c.b); got != c.want {
			t.Errorf("rpmvercmp.at:%d: Vercmp(%q, %q) = %d, want %d", c.line, c.a, c.b, got, c.want)
		}
	}
}

// TestVercmpEdges covers what rpm's table does not: empty strings, NUL bytes, numbers longer than any integer
// type, and a tilde or caret against the end of the other string.
func TestVercmpEdges(t *testing.T) {
	tests := []vercmpCase{
		{a: "", b: "", want: 0},
		{a: "", b: "1", want: -1},
		{a: "1", b: "", want: 1},
		{a: "", b: "~", want: 1},  // the tilde sorts before the end of a string
		{a: "", b: "^", want: -1}, // the caret after it
		{a: "1.0", b: "1.0.", want: 0},
		{a: "1.0\x00junk", b: "1.0", want: 0}, // C stops at the NUL
		{a: "123456789012345678901234567890", b: "123456789012345678901234567891", want: -1},
		{a: "0000000000000000000000000000001", b: "1", want: 0},
		{a: "1.é", b: "1", want: 0}, // non-ASCII bytes are separators
		{a: "a", b: "B", want: 1},   // byte order: lower case after upper case
		{a: "1~~", b: "1~", want: -1},
		{a: "1^^", b: "1^", want: 1},
		{a: "1~", b: "1^", want: -1},
		{a: "1.0a", b: "1.0.a", want: 0},
		{a: "1.0a", b: "1.0.1", want: -1},
	}
	for _, c := range tests {
		if got := Vercmp(c.a, c.b); got != c.want {
			t.Errorf("Vercmp(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := Vercmp(c.b, c.a); got != -c.want {
			t.Errorf("Vercmp(%q, %q) = %d, want %d (swapped)", c.b, c.a, got, -c.want)
		}
	}
}

func TestCompareEVR(t *testing.T) {
	tests := []struct {
		name       string
		e1, v1, r1 string
		e2, v2, r2 string
		want       int
	}{
		{"equal", "", "1.0", "1.el9", "", "1.0", "1.el9", 0},
		{"missing epoch is 0", "", "1.0", "1", "0", "1.0", "1", 0},
		{"epoch beats version", "1", "1.0", "1", "", "2.0", "1", 1},
		{"epoch numeric", "10", "1", "1", "9", "1", "1", 1},
		{"epoch leading zero", "007", "1", "1", "7", "1", "1", 0},
		{"version before release", "", "1.10", "1", "", "1.9", "99", 1},
		{"release decides", "", "1.0", "2.el9", "", "1.0", "10.el9", -1},
		{"tilde release", "", "1.0", "1~beta.el9", "", "1.0", "1.el9", -1},
		{"caret version", "", "1.0^git1", "1", "", "1.0", "1", 1},
		{"dist tag oddity", "", "1", "1b.fc17", "", "1", "1.fc17", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := CompareEVR(tc.e1, tc.v1, tc.r1, tc.e2, tc.v2, tc.r2); got != tc.want {
				t.Errorf("CompareEVR = %d, want %d", got, tc.want)
			}
			if got := CompareEVR(tc.e2, tc.v2, tc.r2, tc.e1, tc.v1, tc.r1); got != -tc.want {
				t.Errorf("CompareEVR swapped = %d, want %d", got, -tc.want)
			}
		})
	}
}

// rpmVercmp asks the real rpm to compare every pair, in one process: rpm.vercmp in its Lua interpreter. rpm ≥
// 4.16 parses each argument as [epoch:]version[-release] (rpmverCmp: missing epoch "0", a missing release older
// than any), so plain versions must not contain ':' or '-'; CompareEVR's pairs are written as E:V-R.
func rpmVercmp(t *testing.T, pairs [][2]string) []int {
	t.Helper()
	rpm := requireTool(t, "rpm")
	var lua strings.Builder
	// rpm joins what print writes without separators, so the results are collected and printed once.
	lua.WriteString("%{lua:\nlocal r = {}\n")
	for _, p := range pairs {
		// Long brackets need no escaping; the generators never produce "]]", "{", "}" or "%".
		fmt.Fprintf(&lua, "r[#r+1] = rpm.vercmp([[%s]], [[%s]])\n", p[0], p[1])
	}
	lua.WriteString("print(table.concat(r, ' '))\n}")
	cmd := exec.Command(rpm, "--eval", lua.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rpm --eval: %v: %s", err, stderr.String())
	}
	fields := strings.Fields(string(out))
	if len(fields) != len(pairs) {
		t.Fatalf("rpm printed %d results for %d pairs: %s %s", len(fields), len(pairs), out, stderr.String())
	}
	res := make([]int, len(fields))
	for i, f := range fields {
		if res[i], err = strconv.Atoi(f); err != nil {
			t.Fatalf("rpm printed %q for pair %d", f, i)
		}
	}
	return res
}

// versionPieces are what generated versions are made of: numbers with and without leading zeros, letters of both
// cases, every kind of separator, tilde, caret and a non-ASCII letter.
var versionPieces = []string{"0", "1", "2", "9", "10", "01", "001", "0010", "99999999999999999999", "a", "b", "rc",
	"RC", "z", "git", "p", "fc", ".", ".", ".", "_", "+", "~", "^", "é"}

// genVersion returns a random non-empty version from versionPieces.
func genVersion(r *rand.Rand) string {
	var b strings.Builder
	for n := 1 + r.IntN(6); b.Len() == 0 || n > 0; n-- {
		b.WriteString(versionPieces[r.IntN(len(versionPieces))])
	}
	return b.String()
}

// mutate changes one piece of v, so that pairs are often nearly equal, where the rules matter most.
func mutate(r *rand.Rand, v string) string {
	i := r.IntN(len(v) + 1)
	switch r.IntN(3) {
	case 0: // insert a piece
		return v[:i] + versionPieces[r.IntN(len(versionPieces))] + v[i:]
	case 1: // drop a byte (may split é: an invalid byte is a separator to both sides)
		if i < len(v) {
			return v[:i] + v[i+1:]
		}
	}
	return v + versionPieces[r.IntN(len(versionPieces))] // append
}

// genPairs returns n pairs: half independent, half a version and a mutation of it, plus every pair with itself.
func genPairs(r *rand.Rand, n int, gen func(*rand.Rand) string) [][2]string {
	pairs := make([][2]string, 0, n)
	for len(pairs) < n {
		a := gen(r)
		switch r.IntN(5) {
		case 0:
			pairs = append(pairs, [2]string{a, a})
		case 1, 2:
			pairs = append(pairs, [2]string{a, gen(r)})
		default:
			b := mutate(r, a)
			if b == "" || strings.ContainsAny(b, "-:") {
				continue
			}
			pairs = append(pairs, [2]string{a, b})
		}
	}
	return pairs
}

// TestVercmpAgainstRPM compares Vercmp with the real rpm on rpm's own table (the oddities included) and on a few
// hundred generated pairs, in one rpm process.
func TestVercmpAgainstRPM(t *testing.T) {
	active, oddities := rpmSuiteCases(t)
	var pairs [][2]string
	for _, c := range append(active, oddities...) {
		pairs = append(pairs, [2]string{c.a, c.b})
	}
	pairs = append(pairs, genPairs(rand.New(rand.NewPCG(12, 2026)), 600, genVersion)...)
	want := rpmVercmp(t, pairs)
	var differ, nonzero int
	for i, p := range pairs {
		got := Vercmp(p[0], p[1])
		if got != want[i] {
			differ++
			t.Errorf("Vercmp(%q, %q) = %d, rpm says %d", p[0], p[1], got, want[i])
		}
		if want[i] != 0 {
			nonzero++
		}
	}
	// The table must exercise both outcomes, or it would agree with a function that returns a constant.
	if nonzero < len(pairs)/3 || nonzero > len(pairs)-len(pairs)/10 {
		t.Errorf("only %d of %d generated comparisons are unequal: the generator is too narrow", nonzero, len(pairs))
	}
	t.Logf("%d pairs compared with rpm, %d unequal, %d disagreements", len(pairs), nonzero, differ)
}

// genEVR returns "[epoch:]version-release" with parts from versionPieces (no '-' or ':' inside a part).
func genEVR(r *rand.Rand) string {
	evr := genVersion(r) + "-" + genVersion(r)
	if r.IntN(2) == 0 {
		evr = []string{"0", "1", "2", "10", "01"}[r.IntN(5)] + ":" + evr
	}
	return evr
}

// splitEVR splits what genEVR made.
func splitEVR(s string) (e, v, r string) {
	if i := strings.IndexByte(s, ':'); i >= 0 {
		e, s = s[:i], s[i+1:]
	}
	i := strings.LastIndexByte(s, '-')
	return e, s[:i], s[i+1:]
}

// TestCompareEVRAgainstRPM compares CompareEVR with rpm's EVR comparison on generated epoch:version-release pairs.
func TestCompareEVRAgainstRPM(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 2026))
	var pairs [][2]string
	for len(pairs) < 300 {
		a := genEVR(r)
		b := genEVR(r)
		if r.IntN(2) == 0 { // same epoch and version, so the release decides
			e, v, _ := splitEVR(a)
			_, _, rel := splitEVR(b)
			if e != "" {
				v = e + ":" + v
			}
			b = v + "-" + rel
		}
		pairs = append(pairs, [2]string{a, b})
	}
	want := rpmVercmp(t, pairs)
	for i, p := range pairs {
		e1, v1, r1 := splitEVR(p[0])
		e2, v2, r2 := splitEVR(p[1])
		if got := CompareEVR(e1, v1, r1, e2, v2, r2); got != want[i] {
			t.Errorf("CompareEVR(%q, %q) = %d, rpm says %d", p[0], p[1], got, want[i])
		}
	}
}
