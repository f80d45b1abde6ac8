package rpmmeta

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIsMultipartStart(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"------------------------d74496d66958873e\r\nContent-Disposition: form-data; name=\"file\"", true},
		{"--b\r\n", true},
		{"--" + strings.Repeat("x", 70), true}, // the longest boundary, cut off where the read ended
		{"--" + strings.Repeat("x", 71) + "\r\n", false},
		{"--\r\n", false},    // no boundary
		{"--a b\r\n", false}, // a space inside: not a boundary line here
		{"-x\r\n", false},
		{"\xed\xab\xee\xdb", false},
	}
	for _, tc := range tests {
		if got := isMultipartStart([]byte(tc.in)); got != tc.want {
			t.Errorf("isMultipartStart(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestInspectNamesEmptyAndForms: an empty file and a multipart form are invalid packages of their own kinds.
func TestInspectNamesEmptyAndForms(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte
		kind error
	}{
		{"empty", nil, ErrEmpty},
		{"form", append([]byte("--------------------------d74496d66958873e\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.rpm\"\r\n\r\n"), bytes.Repeat([]byte{0xed}, 200)...), ErrMultipart},
	} {
		p := filepath.Join(dir, tc.name)
		os.WriteFile(p, tc.data, 0o644)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		_, err = guard(f, fi.Size())
		f.Close()
		if !errors.Is(err, tc.kind) || !errors.Is(err, ErrInvalidPackage) {
			t.Errorf("%s: err = %v, want %v (an ErrInvalidPackage)", tc.name, err, tc.kind)
		}
	}
}
