package rpmmeta

import (
	"fmt"
	"io"
	"os"
)

// Identify reads who the package in f is (name, epoch, version, release, arch, source or not, its signature
// packets) from its lead and headers only, with the same guard and decode budget as Inspect, and never reads the
// payload. It checks no digest and no size: it is for packages already in the tree, whose bytes Inspect checked
// when they came in, where hashing every stored build of a name just to order them would read gigabytes.
// Size is the file's size; SHA256, PayloadChecked and the header bytes are left empty.
//
// f must be a plain *os.File on a regular file; Identify seeks it. Errors wrap ErrInvalidPackage when the headers
// are not a valid RPM's; other errors (stat, seek, read I/O) are returned as they are.
func Identify(f *os.File) (*Package, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("rpmmeta: stat: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("rpmmeta: %s is not a regular file", f.Name())
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rpmmeta: seek: %w", err)
	}
	lay, err := guard(f, fi.Size())
	if err != nil {
		return nil, err
	}
	pkg, err := parse(lay.reader())
	if err != nil {
		return nil, err
	}
	p, err := metadata(pkg)
	if err != nil {
		return nil, err
	}
	p.Size = fi.Size()
	return p, nil
}
