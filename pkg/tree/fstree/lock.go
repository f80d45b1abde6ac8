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
type nameLocks struct {
	dir string
	mu  [lockBuckets]sync.Mutex
}

func newNameLocks(dir string) (*nameLocks, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create lock dir: %w", err)
	}
	// Every bucket's file exists from the start, so a disk that fills up later (out of inodes) cannot keep a
	// placement or removal from taking its lock.
	for b := range uint32(lockBuckets) {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("place-%02d.lock", b)), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create lock file: %w", err)
		}
		f.Close()
	}
	return &nameLocks{dir: dir}, nil
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
	path := filepath.Join(l.dir, fmt.Sprintf("place-%02d.lock", b))
	// A bare descriptor: os.OpenFile would also try to register the file with the poller, three more system
	// calls per upload. The file is opened on every lock, so a lock file removed by hand is simply recreated.
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err == nil {
		for {
			if err = unix.Flock(fd, unix.LOCK_EX); err != unix.EINTR {
				break
			}
		}
		if err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		l.mu[b].Unlock()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		unix.Close(fd) // releases the flock
		l.mu[b].Unlock()
	}, nil
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
