package indexer

import "time"

// Clock is the scheduler's source of time. It exists so tests can drive the
// debounce, backoff, run-timeout and shutdown timers without sleeping; the
// zero Options use the real clock.
//
// AfterFunc must call f on its own goroutine (or, for a fake clock, from the
// goroutine that advances time) and never while the caller of AfterFunc still
// holds a lock: the scheduler calls AfterFunc with its mutex held and f takes
// that mutex.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call. Stop reports whether it prevented the
// call, like (*time.Timer).Stop; the scheduler does not rely on the result
// because it also tags every timer with a generation number.
type Timer interface {
	Stop() bool
}

// realClock is the production Clock, backed by package time.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
