package fstree

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// snapEntry identifies a directory entry of Packages/ well enough to notice an upload.
type snapEntry struct {
	size    int64
	modTime time.Time
	mode    fs.FileMode // of the entry itself (a symlink is not followed)
}

func (e snapEntry) equal(o snapEntry) bool { return e.size == o.size && e.modTime.Equal(o.modTime) }

// snapshotsEqual reports whether two snapshots name the same entries with the same sizes and mtimes.
func snapshotsEqual(a, b map[string]snapEntry) bool { return maps.EqualFunc(a, b, snapEntry.equal) }

// parallelStatFrom is the directory size from which snapshot stats on two goroutines.
const parallelStatFrom = 4096

// snapshot lists dir (name, size, mtime, type of every entry, symlinks not followed; a missing dir is empty).
// Each entry is stat'ed relative to the open directory (fstatat), and a big directory on two goroutines: at
// 50,000 packages the listing a publish takes before createrepo_c starts is most of the daemon's own part of it.
func snapshot(dir string) (map[string]snapEntry, error) {
	d, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]snapEntry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	rc, err := d.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	entries := make([]snapEntry, len(names))
	found := make([]bool, len(names))
	var statErr error
	cerr := rc.Control(func(fd uintptr) {
		stat := func(lo, hi int) error {
			for i := lo; i < hi; i++ {
				var st unix.Stat_t
				err := unix.Fstatat(int(fd), names[i], &st, unix.AT_SYMLINK_NOFOLLOW)
				for err == unix.EINTR {
					err = unix.Fstatat(int(fd), names[i], &st, unix.AT_SYMLINK_NOFOLLOW)
				}
				if err == unix.ENOENT {
					continue // removed meanwhile; the second snapshot sees the change
				}
				if err != nil {
					return &fs.PathError{Op: "lstat", Path: filepath.Join(dir, names[i]), Err: err}
				}
				entries[i], found[i] = snapEntry{size: st.Size, modTime: time.Unix(st.Mtim.Unix()), mode: fileMode(st.Mode)}, true
			}
			return nil
		}
		if len(names) < parallelStatFrom {
			statErr = stat(0, len(names))
			return
		}
		half := len(names) / 2
		errc := make(chan error, 1)
		go func() { errc <- stat(half, len(names)) }()
		statErr = errors.Join(stat(0, half), <-errc)
	})
	if err := errors.Join(cerr, statErr); err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	m := make(map[string]snapEntry, len(names))
	for i, name := range names {
		if found[i] {
			m[name] = entries[i]
		}
	}
	return m, nil
}

// fileMode is the type part of an fs.FileMode for a stat mode: all snapshot tells apart.
func fileMode(m uint32) fs.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFDIR:
		return fs.ModeDir
	}
	return fs.ModeIrregular
}

// packageEntries turns a snapshot of dir (a Packages/) into what createrepo_c indexes there: the *.rpm entries
// that are regular files, symlinks by their target (createrepo_c follows them), hidden ones included; dangling
// symlinks and anything else are left out. Only symlinks cost a stat.
func packageEntries(dir string, snap map[string]snapEntry) ([]tree.Entry, error) {
	out := make([]tree.Entry, 0, len(snap))
	for name, e := range snap {
		if !strings.HasSuffix(name, ".rpm") {
			continue
		}
		size, mtime, mode := e.size, e.modTime, e.mode
		if mode&fs.ModeSymlink != 0 {
			info, err := os.Stat(filepath.Join(dir, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue // dangling: createrepo_c skips it too
			}
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", dir, err)
			}
			size, mtime, mode = info.Size(), info.ModTime(), info.Mode()
		}
		if !mode.IsRegular() {
			continue
		}
		out = append(out, tree.Entry{Name: name, Stamp: tree.Stamp{Size: size, ModTime: mtime}})
	}
	return out, nil
}
