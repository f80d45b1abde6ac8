package rpmmeta

import "os"

// Identify reads who the package in f is (name, epoch, version, release, arch, source or not, its signature
// packets) from its lead and headers only, with the same guard and decode budget as Inspect, and never reads the
// payload. It checks no digest and no size: it is for packages already in the tree, whose bytes Inspect checked
// when they came in, where hashing every stored build of a name just to order them would read gigabytes.
// Size is the file's size; SHA256, PayloadChecked and the header bytes are left empty.
//
// f must be a plain *os.File on a regular file; Identify seeks it. Errors wrap ErrInvalidPackage when the headers
// are not a valid RPM's; other errors (stat, seek, read I/O) are returned as they are.
func Identify(f *os.File) (*Package, error) {
	fi, _, pkg, err := readHeaders(f, nil, false)
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
