package fstree

import "sync"

// groupSync batches the fsyncs of one directory across concurrent uploads (group commit). Sync(dir) returns
// only after an fsync of dir that began after Sync was called has completed, so it covers every entry the caller
// made in dir before calling it, exactly as a private fsync would; but callers that arrive while an fsync of dir is
// running share the next one instead of each queueing their own. With 32 uploads into one repository at once,
// Packages/ is fsynced a few times instead of 32.
//
// How: callers join the directory's open batch; its first member (the leader) waits until no fsync of the
// directory is running, closes the batch to newcomers (they start the next one), runs the fsync and hands its
// result to every member. A member joins before the batch is closed and the fsync starts after that, so the fsync
// starts after every member's call.
type groupSync struct {
	sync func(dir string) error // the real fsync of a directory (Tree.SyncDir, a test seam)

	mu   sync.Mutex
	dirs map[string]*dirBatches
}

// dirBatches is one directory's state: running is held while an fsync of it runs; next is the batch still
// taking members (nil when none is).
type dirBatches struct {
	running sync.Mutex
	next    *batch
}

// batch is one shared fsync: done is closed when it has completed, with err its result.
type batch struct {
	done chan struct{}
	err  error
}

func newGroupSync(sync func(dir string) error) *groupSync {
	return &groupSync{sync: sync, dirs: map[string]*dirBatches{}}
}

// Sync fsyncs dir, or waits for a shared fsync of dir that started after this call.
func (g *groupSync) Sync(dir string) error {
	g.mu.Lock()
	d := g.dirs[dir]
	if d == nil {
		d = &dirBatches{}
		g.dirs[dir] = d
	}
	b, leader := d.next, false
	if b == nil {
		b, leader = &batch{done: make(chan struct{})}, true
		d.next = b
	}
	g.mu.Unlock()
	if !leader {
		<-b.done
		return b.err
	}
	d.running.Lock() // the previous batch's fsync is done; meanwhile more members joined this one
	g.mu.Lock()
	d.next = nil // closed: later callers start the next batch, whose fsync starts after this one ends
	g.mu.Unlock()
	b.err = g.sync(dir)
	d.running.Unlock()
	close(b.done)
	return b.err
}
