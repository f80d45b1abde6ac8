package fstree

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// snapEntry identifies a directory entry of Packages/ well enough to notice an upload.
type snapEntry struct {
	size    int64
	modTime time.Time
	mode    fs.FileMode // of the entry itself (a symlink is not followed)
	// ctime is the inode's change time: every change to the file (its bytes, its metadata, a rename or a link
	// to it) sets it to the filesystem's clock, and no process can set it back (see changedSince).
	ctime time.Time
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
				entries[i], found[i] = snapEntry{size: st.Size, modTime: time.Unix(st.Mtim.Unix()), mode: fileMode(st.Mode),
					ctime: time.Unix(st.Ctim.Unix())}, true
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

// kind is the part of a mode snapshot and a names listing both tell: regular, symlink, directory or other.
func kind(m fs.FileMode) fs.FileMode {
	switch {
	case m.IsRegular():
		return 0
	case m&fs.ModeSymlink != 0:
		return fs.ModeSymlink
	case m.IsDir():
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

// names is a listing of a directory by name and entry type only, as getdents(2) returns them (no stat per
// entry), sorted by name.
type names struct {
	dev     uint64 // the directory's device: what the begin mark must be on (see BeginRetaining)
	entries []dirent
}

// dirent is one directory entry: its name and its kind (see kind).
type dirent struct {
	name string
	kind fs.FileMode
}

// direntBuf is the size of listNames' getdents buffer. A 1,000-entry Packages/ is about 56 KB of records, read in
// one call; a 10,000-entry one (about 550 KB) takes nine. The buffer is scratch, reused from direntBufs: the names
// are copied out of it, one string per call. (It was a fresh 256 KB per listing, half of what a publish allocated
// before createrepo_c starts, cleared by the runtime each time.)
const direntBuf = 64 << 10

// direntBufs holds listNames' scratch buffers.
var direntBufs = sync.Pool{New: func() any { b := make([]byte, direntBuf); return &b }}

// listNames lists dir without looking at the entries themselves: the directory's own records give names and
// types (d_type; an entry whose filesystem does not record it costs one lstat). A missing dir is empty. It reads
// the records itself rather than through os.ReadDir, which costs an allocation and an interface per entry: at
// 10,000 packages that halves the listing (about 5 → 2.5 ms here, most of the rest being the kernel's).
func listNames(dir string) (names, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return names{}, nil
	}
	if err != nil {
		return names{}, fmt.Errorf("list %s: %w", dir, &fs.PathError{Op: "open", Path: dir, Err: err})
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return names{}, fmt.Errorf("list %s: %w", dir, &fs.PathError{Op: "fstat", Path: dir, Err: err})
	}
	// Room for the entries up front (grown by append, a 1,000-entry listing reallocated the slice ten times): an
	// ext4 directory's size is its blocks, at least 32 bytes per entry of package names; elsewhere (tmpfs counts 20
	// per entry) this is a floor and append grows it as before. Capped at 65,536 entries (1.5 MB): a directory that
	// once held far more keeps its size after they are gone.
	out := names{dev: st.Dev, entries: make([]dirent, 0, min(max(st.Size/32, 16), 1<<16))}
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	buf := *bp
	for {
		n, err := unix.Getdents(fd, buf)
		for err == unix.EINTR {
			n, err = unix.Getdents(fd, buf)
		}
		if err != nil {
			return names{}, fmt.Errorf("list %s: %w", dir, &fs.PathError{Op: "getdents", Path: dir, Err: err})
		}
		if n <= 0 {
			break
		}
		// One string for the whole batch; the names are slices of it, not an allocation each.
		batch := string(buf[:n])
		for off := 0; off < n; {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, then the NUL-terminated name.
			if off+19 > n {
				return names{}, fmt.Errorf("list %s: short getdents record", dir)
			}
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			if reclen <= 19 || off+reclen > n {
				return names{}, fmt.Errorf("list %s: bad getdents record length %d", dir, reclen)
			}
			typ := buf[off+18]
			name := batch[off+19 : off+reclen]
			if i := strings.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			off += reclen
			if name == "." || name == ".." {
				continue
			}
			k, err := direntKind(dir, name, typ)
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed meanwhile
			}
			if err != nil {
				return names{}, fmt.Errorf("list %s: %w", dir, err)
			}
			out.entries = append(out.entries, dirent{name: name, kind: k})
		}
	}
	slices.SortFunc(out.entries, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// direntKind is the kind of a directory entry from its d_type, or from an lstat when the filesystem left it
// unknown.
func direntKind(dir, name string, typ uint8) (fs.FileMode, error) {
	switch typ {
	case unix.DT_REG:
		return 0, nil
	case unix.DT_LNK:
		return fs.ModeSymlink, nil
	case unix.DT_DIR:
		return fs.ModeDir, nil
	case unix.DT_UNKNOWN:
		info, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			return 0, err
		}
		return kind(info.Mode()), nil
	}
	return fs.ModeIrregular, nil
}

// packageNames is what createrepo_c indexes in a names listing of dir (a Packages/), sorted: the *.rpm entries
// that are regular files, and symlinks whose target is one (createrepo_c follows them; only they cost a stat,
// which also gives their stamps). Regular files get no stamp here.
func packageNames(dir string, l names) ([]tree.Entry, error) {
	out := make([]tree.Entry, 0, len(l.entries))
	for _, e := range l.entries {
		name := e.name
		if !strings.HasSuffix(name, ".rpm") {
			continue
		}
		var st tree.Stamp
		switch e.kind {
		case 0:
		case fs.ModeSymlink:
			info, err := os.Stat(filepath.Join(dir, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue // dangling: createrepo_c skips it too
			}
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", dir, err)
			}
			if !info.Mode().IsRegular() {
				continue
			}
			st = stampOf(info)
		default:
			continue
		}
		out = append(out, tree.Entry{Name: name, Stamp: st})
	}
	return out, nil
}

// changedSince reports whether dir changed after a names listing of it was taken, judged by a snapshot taken
// later: an entry appeared, vanished or changed type, or an entry (or a symlinked package's target) has a change
// time at or after mark. mark is a change time the same filesystem gave after the listing, so a change after
// it, whatever it was (new bytes under the old name, size and mtime included), has a change time at or after it:
// the filesystem's clock does not go back, and no system call sets a ctime. Equal counts as changed (the clock's
// resolution may be coarse), which may flag a file placed just before the listing; that costs one more run.
func changedSince(dir string, l names, after map[string]snapEntry, mark time.Time) (bool, error) {
	if len(after) != len(l.entries) {
		return true, nil
	}
	for _, e := range l.entries {
		a, ok := after[e.name]
		if !ok || kind(a.mode) != e.kind || !a.ctime.Before(mark) {
			return true, nil
		}
		if a.mode&fs.ModeSymlink != 0 && strings.HasSuffix(e.name, ".rpm") {
			var st unix.Stat_t
			err := unix.Stat(filepath.Join(dir, e.name), &st)
			if err != nil && !errors.Is(err, unix.ENOENT) {
				return false, fmt.Errorf("list %s: %w", dir, &fs.PathError{Op: "stat", Path: filepath.Join(dir, e.name), Err: err})
			}
			if err != nil || !time.Unix(st.Ctim.Unix()).Before(mark) {
				return true, nil
			}
		}
	}
	return false, nil
}
