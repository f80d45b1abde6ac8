package rpmmeta

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/internal/testsign"
)

// TestInspectRPM6Package: a package shaped like rpm 6's builds (testrpm.BuildRPM6), signed with a header signature
// and a header+payload signature, has a payload digest (tag 5092) but no PAYLOADDIGESTALGO (5093) and no size tag
// in its signature header. rpm 4.18 checks tag 5092 as SHA-256 whatever 5093 says (the test asks the real rpm), and
// so must we: the package is accepted with its payload checked, and a flipped payload byte, which no size tag
// would catch here, is refused, as are truncation and trailing bytes.
func TestInspectRPM6Package(t *testing.T) {
	rpmBin := requireTool(t, "rpm")
	key := testsign.NewKey(t, testsign.RSA2048)
	data := testrpm.SignBoth(t, testrpm.BuildRPM6(t, testrpm.Spec{Name: "rpm6test"}),
		func(b []byte) []byte { return key.SignBytes(t, b) })
	path := filepath.Join(t.TempDir(), "rpm6test-1.0-1.noarch.rpm")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(rpmBin, "--dbpath", t.TempDir(), "-Kv", "--nosignature", path).CombinedOutput()
	if s := string(out); !strings.Contains(s, "Payload SHA256 digest: OK") || strings.Contains(s, "BAD") {
		t.Fatalf("rpm -Kv --nosignature %s:\n%s\nwant the payload SHA256 digest OK", path, out)
	}
	lay := layoutOf(t, data)
	pkg, err := parse(lay.reader())
	if err != nil {
		t.Fatal(err)
	}
	if pkg.Header.GetTag(tagPayloadDigestAlgo) != nil || pkg.Header.GetTag(tagPayloadDigest) == nil ||
		pkg.Signature.GetTag(sigTagSize) != nil || pkg.Signature.GetTag(sigTagLongSize) != nil ||
		pkg.Signature.GetTag(sigTagMD5) != nil {
		t.Fatal("the fixture is here for its tags: 5092 without 5093 in the header, no size or MD5 tag in the signature")
	}

	p, err := inspectBytes(t, data)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if p.NEVRA() != "rpm6test-1.0-1.noarch" || p.PayloadChecked != "sha256" || p.Source ||
		len(p.HeaderSigs) != 1 || len(p.LegacySigs) != 1 {
		t.Fatalf("Inspect = %s PayloadChecked=%q Source=%v %d header sigs, %d legacy sigs; want rpm6test-1.0-1.noarch, sha256, binary, 1 and 1",
			p.NEVRA(), p.PayloadChecked, p.Source, len(p.HeaderSigs), len(p.LegacySigs))
	}

	for name, mutate := range map[string]func([]byte) []byte{
		"flipped payload byte": func(b []byte) []byte { b[len(b)-5] ^= 1; return b },
		"truncated":            func(b []byte) []byte { return b[:len(b)-1] },
		"appended garbage":     func(b []byte) []byte { return append(b, "garbage"...) },
	} {
		t.Run(name, func(t *testing.T) {
			_, err := inspectBytes(t, mutate(bytes.Clone(data)))
			if !errors.Is(err, ErrInvalidPackage) || !strings.Contains(err.Error(), "payload sha256 digest mismatch") {
				t.Fatalf("Inspect error = %v, want a payload sha256 digest mismatch", err)
			}
		})
	}
}
