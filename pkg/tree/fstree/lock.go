package fstree

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// lockBuckets is how many locks file names hash into. Uploads of different names rarely share one, and when they
// do they only wait for each other's links and renames (milliseconds), never for a copy or a hash of the body.
const lockBuckets = 64

// nameLocks serialises the placement of one canonical file name, so that judging the targets and placing into
// all of them is atomic as a whole: two different builds of one noarch package uploaded at once (overwrite on)
// can no longer end up split across arches. Inside the process a mutex per bucket does it; across processes
// sharing the tree, flock(2) on a bucket file in dir. The mutex is taken first, so this process never holds two
// flocks on one file (they would exclude each other like separate processes).
//
// Each bucket's file stays open (fds, guarded by the bucket's mutex): a lock is flock(LOCK_EX) and stat, an
// unlock flock(LOCK_UN), instead of an open, a flock and a close per placement (issue 20). A lock file removed,
// replaced or moved away by hand (mv place-07.lock elsewhere, or the whole directory: the moved file keeps its
// name, so its link count alone would not tell) is noticed on the next lock of its bucket: once the flock is
// held, the file at the path must still be the descriptor's (stat of the path against the identity taken at
// open), else the flock is dropped and the file at the path is opened (created) and locked instead. Every holder of the old file does the same before it proceeds, so all of them meet on the
// file at the path again, as they did when the file was reopened on every lock. The window is the same as then:
// a placement that holds the old file while it is removed excludes only those still waiting on the old file.
type nameLocks struct {
	dir string
	mu  [lockBuckets]sync.Mutex
	fds [lockBuckets]int    // each bucket's open lock file (-1: none), used under mu[b]
	ids [lockBuckets]fileID // the identity of fds[b]'s file, taken when it was opened
}

// fileID is a file's device and inode.
type fileID struct{ dev, ino uint64 }

func newNameLocks(dir string) (*nameLocks, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create lock dir: %w", err)
	}
	l := &nameLocks{dir: dir}
	for b := range l.fds {
		l.fds[b] = -1
	}
	// Every bucket's file exists (and is open) from the start, so a disk that fills up later (out of inodes)
	// cannot keep a placement or removal from taking its lock.
	for b := range uint32(lockBuckets) {
		fd, id, err := l.open(b)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("create lock file: %w", err)
		}
		l.fds[b], l.ids[b] = fd, id
	}
	return l, nil
}

// open opens (creates) bucket b's lock file. A bare descriptor: os.OpenFile would also try to register the file
// with the poller. Read-only, as the staging lock (StagingLock): flock needs no write access, and a file kept open
// for writing would keep an operator from remounting the tree read-only.
func (l *nameLocks) open(b uint32) (int, fileID, error) {
	fd, err := unix.Open(l.path(b), unix.O_RDONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err == unix.ENOENT {
		// The directory itself was removed by hand (rm -r): make it again rather than fail every placement of
		// the bucket until a restart.
		if err = os.MkdirAll(l.dir, 0o700); err == nil {
			fd, err = unix.Open(l.path(b), unix.O_RDONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
		}
	}
	if err != nil {
		return -1, fileID{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fileID{}, err
	}
	return fd, fileID{dev: uint64(st.Dev), ino: st.Ino}, nil
}

func (l *nameLocks) path(b uint32) string {
	return filepath.Join(l.dir, fmt.Sprintf("place-%02d.lock", b))
}

// close closes every lock file (no lock may be held).
func (l *nameLocks) close() {
	for b, fd := range l.fds {
		if fd >= 0 {
			unix.Close(fd)
		}
		l.fds[b] = -1
	}
}

// bucketOf is the lock bucket of a file name.
func bucketOf(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32() % lockBuckets
}

// lockBucket blocks until bucket b is free and returns the function that frees it.
func (l *nameLocks) lockBucket(b uint32) (unlock func(), err error) {
	l.mu[b].Lock()
	fd, err := l.flock(b)
	if err != nil {
		l.mu[b].Unlock()
		return nil, fmt.Errorf("lock %s: %w", l.path(b), err)
	}
	return func() {
		if unix.Flock(fd, unix.LOCK_UN) != nil {
			unix.Close(fd) // closing releases it too
			l.fds[b] = -1
		}
		l.mu[b].Unlock()
	}, nil
}

// flock takes the flock of bucket b's lock file (under mu[b]) and returns its descriptor: the open one, unless
// the file at the path is no longer that one (removed, replaced or moved away by hand), then the one at the
// path, opened anew.
func (l *nameLocks) flock(b uint32) (int, error) {
	path := l.path(b)
	for {
		fd := l.fds[b]
		if fd < 0 {
			var err error
			var id fileID
			if fd, id, err = l.open(b); err != nil {
				return -1, err
			}
			l.fds[b], l.ids[b] = fd, id
		}
		err := ignoringEINTR(func() error { return unix.Flock(fd, unix.LOCK_EX) })
		var st unix.Stat_t
		if err == nil {
			// The path, not the descriptor: a file moved away keeps a name (nlink > 0) but is not where a
			// daemon started since (or this one, reopening) meets the others.
			if err = unix.Stat(path, &st); err == unix.ENOENT {
				err = nil // gone: reopen (create) below
			}
		}
		if err == nil && (fileID{dev: uint64(st.Dev), ino: st.Ino}) == l.ids[b] {
			return fd, nil
		}
		unix.Close(fd) // releases the flock, if taken
		l.fds[b] = -1
		if err != nil {
			return -1, err
		}
	}
}

// lockAll locks the buckets of all names, each once and in bucket order, so that two callers holding several
// never wait for each other in a cycle (and one name hashing into another's bucket cannot deadlock the caller).
// It returns the function that frees them all.
func (l *nameLocks) lockAll(names []string) (unlock func(), err error) {
	buckets := make([]uint32, 0, len(names))
	for _, n := range names {
		buckets = append(buckets, bucketOf(n))
	}
	slices.Sort(buckets)
	buckets = slices.Compact(buckets)
	var unlocks []func()
	unlockAll := func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
	for _, b := range buckets {
		u, err := l.lockBucket(b)
		if err != nil {
			unlockAll()
			return nil, err
		}
		unlocks = append(unlocks, u)
	}
	return unlockAll, nil
}

// LockBucket is the placement lock bucket a file name hashes into: names in different buckets never wait for each
// other's placement (tests choose names by it).
func LockBucket(name string) uint32 { return bucketOf(name) }
