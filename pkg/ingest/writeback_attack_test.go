package ingest

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// oddReader hands out its bytes in pieces of random sizes (a network body), so that receive's writes and its
// writeback ranges fall anywhere relative to the 2 MiB steps.
type oddReader struct {
	b   []byte
	rng *rand.Rand
}

func (r *oddReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1+r.rng.IntN(300000))], r.b)
	r.b = r.b[n:]
	return n, nil
}

// TestReceiveAroundWritebackSteps: the writeback started every writebackEvery bytes and at the end never changes
// what is spooled or hashed, for sizes just below, at and above its steps and the writebackFrom threshold: the
// file holds the body and the Digester's size and SHA-256 are the body's.
func TestReceiveAroundWritebackSteps(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	data := make([]byte, 3*writebackEvery+4096)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, n := range []int{0, 1, writebackFrom - 1, writebackFrom, writebackFrom + 1, writebackEvery - 1, writebackEvery,
		writebackEvery + 1, 2*writebackEvery - 1, 2 * writebackEvery, 2*writebackEvery + 17, 3*writebackEvery + 4096} {
		f, err := os.Create(filepath.Join(t.TempDir(), "body"))
		if err != nil {
			t.Fatal(err)
		}
		sp, err := receive(f, &oddReader{b: data[:n], rng: rng})
		f.Close()
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		got, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(data[:n])
		if sp.size != int64(n) || !bytes.Equal(got, data[:n]) || !bytes.Equal(sp.digests.SHA256(), want[:]) || sp.digests.Size() != int64(n) {
			t.Errorf("%d bytes: spooled size %d, file %d bytes (equal %v), digest %x want %x", n, sp.size, len(got),
				bytes.Equal(got, data[:n]), sp.digests.SHA256(), want)
		}
	}
}
