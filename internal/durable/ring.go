package durable

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring runs fsyncs through an io_uring (Linux 5.1+), so that the goroutine waiting for one is parked like one
// waiting for the network instead of holding an OS thread in a blocking system call. A blocking fsync costs the Go
// runtime a hand-off per call under load: sysmon takes the P from the thread in the call after 20 µs, wakes or
// starts another thread to run the other goroutines, and the thread coming back from the call must find a P again
// (futex waits and wakes, thread switches, and sysmon polling every 20 µs while any call is blocked). Through the
// ring the kernel runs the same fsync (vfs_fsync, the whole file, data and metadata) on one of its io-wq worker
// threads of this process, and the caller returns only when its completion says it has ended, with its result: a
// Ring's Fsync is exactly fsync(2), only waited for differently. An fsync with no other in flight is made
// directly (see FsyncFD).
//
// Where io_uring is not available (an old kernel, io_uring_disabled, a seccomp profile that refuses it: Docker's
// default does), NewRing fails and the caller keeps plain fsync(2).
type Ring struct {
	fd int
	ev *os.File // eventfd registered with the ring: one count per completion, read through the poller

	slots chan struct{} // at most len(slots) fsyncs in flight: the completion queue (twice that) cannot overflow

	mu      sync.Mutex // submission queue and waiters
	sqHead  *uint32
	sqTail  *uint32
	sqMask  uint32
	sqArray []uint32
	sqes    []byte
	waiters map[uint64]chan int32
	next    uint64

	cqHead *uint32
	cqTail *uint32
	cqMask uint32
	cqes   []byte

	rings     [][]byte // the mmaps, unmapped by Close
	done      chan struct{}
	closeOnce sync.Once // a second Close must not unmap or close again what may be another's by then
	closeErr  error
	fsyncs    atomic.Uint64 // every FsyncFD (Fsyncs)
	submitted atomic.Uint64 // those completed through the ring (Submitted)
	inflight  atomic.Int64  // FsyncFD calls not yet returned
	direct    int64         // up to this many in flight, fsync directly (1; tests set 0)
}

const (
	ringEntries = 64

	sysIOURingSetup    = 425
	sysIOURingEnter    = 426
	sysIOURingRegister = 427

	ioringOpFsync         = 3
	ioringRegisterEventfd = 4
	ioringFeatSingleMmap  = 1 << 0
	ioringOffSQRing       = 0
	ioringOffCQRing       = 0x8000000
	ioringOffSQEs         = 0x10000000
	sqeSize, cqeSize      = 64, 16
	ioringEnterGetEvents  = 1 << 0
)

// ioURingParams is struct io_uring_params.
type ioURingParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

// NewRing sets up a ring for fsyncs, or says why it cannot.
func NewRing() (*Ring, error) {
	var p ioURingParams
	fd, _, errno := unix.Syscall(sysIOURingSetup, ringEntries, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &Ring{fd: int(fd), waiters: map[uint64]chan int32{}, slots: make(chan struct{}, p.sqEntries), done: make(chan struct{}),
		direct: 1}
	fail := func(err error) (*Ring, error) {
		r.unmap()
		unix.Close(r.fd)
		return nil, err
	}
	unix.CloseOnExec(r.fd)
	sqLen := int(p.sqOff.array) + int(p.sqEntries)*4
	cqLen := int(p.cqOff.cqes) + int(p.cqEntries)*cqeSize
	if p.features&ioringFeatSingleMmap != 0 {
		sqLen = max(sqLen, cqLen)
		cqLen = sqLen
	}
	sq, err := unix.Mmap(r.fd, ioringOffSQRing, sqLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fail(fmt.Errorf("mmap io_uring: %w", err))
	}
	r.rings = append(r.rings, sq)
	cq := sq
	if p.features&ioringFeatSingleMmap == 0 {
		if cq, err = unix.Mmap(r.fd, ioringOffCQRing, cqLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
			return fail(fmt.Errorf("mmap io_uring: %w", err))
		}
		r.rings = append(r.rings, cq)
	}
	sqes, err := unix.Mmap(r.fd, ioringOffSQEs, int(p.sqEntries)*sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fail(fmt.Errorf("mmap io_uring: %w", err))
	}
	r.rings = append(r.rings, sqes)
	r.sqes = sqes
	r.sqHead = (*uint32)(unsafe.Pointer(&sq[p.sqOff.head]))
	r.sqTail = (*uint32)(unsafe.Pointer(&sq[p.sqOff.tail]))
	r.sqMask = *(*uint32)(unsafe.Pointer(&sq[p.sqOff.ringMask]))
	r.sqArray = unsafe.Slice((*uint32)(unsafe.Pointer(&sq[p.sqOff.array])), p.sqEntries)
	r.cqHead = (*uint32)(unsafe.Pointer(&cq[p.cqOff.head]))
	r.cqTail = (*uint32)(unsafe.Pointer(&cq[p.cqOff.tail]))
	r.cqMask = *(*uint32)(unsafe.Pointer(&cq[p.cqOff.ringMask]))
	r.cqes = cq[p.cqOff.cqes : int(p.cqOff.cqes)+int(p.cqEntries)*cqeSize]

	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fail(fmt.Errorf("eventfd: %w", err))
	}
	e := int32(efd)
	if _, _, errno := unix.Syscall6(sysIOURingRegister, uintptr(r.fd), ioringRegisterEventfd, uintptr(unsafe.Pointer(&e)), 1, 0, 0); errno != 0 {
		unix.Close(efd)
		return fail(fmt.Errorf("io_uring_register eventfd: %w", errno))
	}
	r.ev = os.NewFile(uintptr(efd), "io_uring-eventfd") // non-blocking: its reads park in the poller
	go r.reap()
	return r, nil
}

// Fsync fsyncs f: it returns when the fsync has ended, with its error. A nil Ring is f.Sync.
func (r *Ring) Fsync(f *os.File) error {
	if r == nil {
		return f.Sync()
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	// Control keeps the descriptor open (and its number unused by another file) until the fsync has ended.
	if err := rc.Control(func(fd uintptr) { serr = r.FsyncFD(int(fd)) }); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: serr}
	}
	return nil
}

// SyncDir is durable.SyncDir with the fsync through the ring; a nil Ring is plain SyncDir.
func (r *Ring) SyncDir(dir string) error {
	if r == nil {
		return SyncDir(dir)
	}
	return syncDir(dir, r.FsyncFD)
}

// FsyncFD fsyncs the open descriptor fd, which must stay open until it returns. The error is a bare errno.
//
// An fsync with no other one of this Ring in flight is made directly: the daemon is then mostly idle, an idle P
// lets the runtime leave the blocking call alone (no hand-off), and the ring's round trip (the submission, an
// io-wq worker's wake-up, the eventfd through the poller) would cost more than it saves: at one upload at a time,
// 0.54 CPU-s per 1,000 header-mode uploads through the ring against 0.42 directly.
func (r *Ring) FsyncFD(fd int) error {
	r.fsyncs.Add(1)
	if r.inflight.Add(1) <= r.direct {
		defer r.inflight.Add(-1)
		return fsyncEINTR(fd)
	}
	defer r.inflight.Add(-1)
	r.slots <- struct{}{}
	defer func() { <-r.slots }()
	ch := make(chan int32, 1)
	r.mu.Lock()
	if r.waiters == nil {
		r.mu.Unlock()
		return fsyncEINTR(fd) // closed: a plain fsync
	}
	id := r.next
	r.next++
	tail := *r.sqTail // only we write it, under mu
	idx := tail & r.sqMask
	sqe := r.sqes[idx*sqeSize : (idx+1)*sqeSize]
	clear(sqe)
	sqe[0] = ioringOpFsync
	*(*int32)(unsafe.Pointer(&sqe[4])) = int32(fd)
	*(*uint64)(unsafe.Pointer(&sqe[32])) = id
	r.sqArray[idx] = idx
	atomic.StoreUint32(r.sqTail, tail+1)
	r.waiters[id] = ch
	var (
		n     uintptr
		errno syscall.Errno
	)
	for {
		n, _, errno = unix.Syscall6(sysIOURingEnter, uintptr(r.fd), 1, 0, 0, 0, 0)
		if errno != unix.EINTR {
			break
		}
	}
	if errno != 0 || n == 0 {
		// Not submitted (the kernel takes an SQE only when it consumes it): take it back and fsync here.
		if atomic.LoadUint32(r.sqHead) == tail {
			atomic.StoreUint32(r.sqTail, tail)
			delete(r.waiters, id)
			r.mu.Unlock()
			return fsyncEINTR(fd)
		}
	}
	r.mu.Unlock()
	res := <-ch
	r.submitted.Add(1)
	if res == -int32(unix.EINTR) {
		return fsyncEINTR(fd) // as the direct path does: an interrupted fsync is made again
	}
	if res < 0 {
		return syscall.Errno(-res)
	}
	return nil
}

// reap hands each completion to its waiter.
func (r *Ring) reap() {
	var buf [8]byte
	for {
		_, err := r.ev.Read(buf[:])
		r.mu.Lock()
		head := *r.cqHead
		for tail := atomic.LoadUint32(r.cqTail); head != tail; head++ {
			cqe := r.cqes[(head&r.cqMask)*cqeSize:]
			id := *(*uint64)(unsafe.Pointer(&cqe[0]))
			res := *(*int32)(unsafe.Pointer(&cqe[8]))
			if ch, ok := r.waiters[id]; ok {
				delete(r.waiters, id)
				ch <- res
			}
		}
		atomic.StoreUint32(r.cqHead, head)
		if err != nil && errors.Is(err, os.ErrClosed) {
			r.mu.Unlock()
			close(r.done)
			return
		}
		r.mu.Unlock()
	}
}

// Close waits for the fsyncs in flight to end, then releases the ring; later calls fsync directly. Only the first
// Close releases anything: later ones return its result. Closing a nil Ring does nothing.
func (r *Ring) Close() error {
	if r == nil {
		return nil
	}
	r.closeOnce.Do(func() { r.closeErr = r.close() })
	return r.closeErr
}

func (r *Ring) close() error {
	for range cap(r.slots) {
		r.slots <- struct{}{}
	}
	r.mu.Lock()
	r.waiters = nil
	r.mu.Unlock()
	for range cap(r.slots) {
		<-r.slots
	}
	r.ev.Close()
	<-r.done
	r.unmap()
	return unix.Close(r.fd)
}

// Fsyncs is the number of fsyncs made by the Ring, directly or through the ring.
func (r *Ring) Fsyncs() uint64 { return r.fsyncs.Load() }

// Submitted is the number of fsyncs that ran through the ring (not the direct ones: alone in flight, of a closed
// ring, or of a refused submission).
func (r *Ring) Submitted() uint64 { return r.submitted.Load() }

// fsyncEINTR is fsync(2), repeated while it fails with EINTR.
func fsyncEINTR(fd int) error {
	_, err := ignoringEINTR(func() (int, error) { return 0, unix.Fsync(fd) })
	return err
}

func (r *Ring) unmap() {
	for _, m := range r.rings {
		unix.Munmap(m)
	}
}
