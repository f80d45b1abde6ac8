package rpmmeta

import (
	"errors"
	"os"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
)

func TestIdentify(t *testing.T) {
	data := testrpm.Build(t, testrpm.Spec{Name: "hello", Version: "1.2^git3", Release: "4.el9", Arch: "x86_64", Epoch: u32(2)})
	want, err := inspectBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	// The last byte is payload: Identify must not notice it changed, since it never reads the payload.
	corrupt := append([]byte(nil), data...)
	corrupt[len(corrupt)-1] ^= 0xff
	if _, err := inspectBytes(t, corrupt); !errors.Is(err, ErrInvalidPackage) {
		t.Fatalf("Inspect of a corrupted payload: %v, want ErrInvalidPackage (else this test proves nothing)", err)
	}
	for name, b := range map[string][]byte{"intact": data, "payload corrupted": corrupt} {
		t.Run(name, func(t *testing.T) {
			got, err := Identify(writeOpen(t, t.TempDir(), b))
			if err != nil {
				t.Fatal(err)
			}
			if got.NEVRA() != want.NEVRA() || got.Source != want.Source || got.Size != int64(len(b)) {
				t.Errorf("Identify = %s source=%v size=%d, want %s source=%v size=%d", got.NEVRA(), got.Source, got.Size,
					want.NEVRA(), want.Source, len(b))
			}
		})
	}
}

func TestIdentifyRejects(t *testing.T) {
	data := testrpm.Build(t, testrpm.Spec{Name: "hello", Arch: "x86_64"})
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not an rpm", []byte("#!/bin/sh\necho this is a shell script, not a package, padded to be long enough to hold a lead ........................................\n")},
		{"truncated after 200 bytes", data[:200]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Identify(writeOpen(t, t.TempDir(), tc.data)); !errors.Is(err, ErrInvalidPackage) {
				t.Errorf("Identify = %v, want ErrInvalidPackage", err)
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		d, err := os.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if _, err := Identify(d); err == nil || errors.Is(err, ErrInvalidPackage) {
			t.Errorf("Identify(directory) = %v, want a non-package error", err)
		}
	})
}
