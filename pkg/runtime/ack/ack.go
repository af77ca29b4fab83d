// Package ack tracks a source's acknowledgement across the pipeline.
//
// A source (a Firehose request, an SQS message, a replay object) creates one
// Tracker holding one token. Every batch in flight holds one token: a stage
// that turns one batch into k batches adds k tokens before publishing them and
// returns its own when it is done with the input. A terminal stage (delivery,
// dead-letter archive) returns the token once the intake accepted the records
// or the archive holds them. When the count reaches zero the source may
// acknowledge; if any fragment failed, it must not.
package ack

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrHandedBack marks a fragment given up at shutdown: the pipeline stopped
// working on it before it was delivered or dead-lettered, so the source
// must hand its unit of work back to the sender unacknowledged (Firehose
// gets a retryable status, an SQS message becomes visible again, a replay
// does not advance its checkpoint). Nothing is lost: the sender sends it
// again. Wrap it (fmt.Errorf("…: %w", ack.ErrHandedBack)) and test with
// errors.Is.
var ErrHandedBack = errors.New("handed back unacknowledged at shutdown")

// Tracker counts the outstanding fragments of one source unit of work.
type Tracker struct {
	pending atomic.Int64
	done    chan struct{}

	mu         sync.Mutex
	err        error
	onComplete []func(error)
}

// New returns a tracker holding the source's own token.
func New() *Tracker {
	t := &Tracker{done: make(chan struct{})}
	t.pending.Store(1)
	return t
}

// Add registers n more fragments in flight.
func (t *Tracker) Add(n int) {
	if t.pending.Add(int64(n)) <= int64(n) && n > 0 {
		// Adding to a tracker that already completed is a bug in a stage's
		// accounting: fail loudly rather than acknowledge early.
		select {
		case <-t.done:
			panic("ack: Add on a completed tracker")
		default:
		}
	}
}

// Done returns one fragment's token.
func (t *Tracker) Done() {
	n := t.pending.Add(-1)
	switch {
	case n == 0:
		t.complete()
	case n < 0:
		panic("ack: Done called more often than Add")
	}
}

// Fail returns one fragment's token and marks the whole unit failed: the
// source must not acknowledge it (the sender will retry it).
func (t *Tracker) Fail(err error) {
	if err == nil {
		err = errors.New("fragment failed")
	}
	t.mu.Lock()
	if t.err == nil {
		t.err = err
	}
	t.mu.Unlock()
	t.Done()
}

func (t *Tracker) complete() {
	t.mu.Lock()
	err, hooks := t.err, t.onComplete
	t.onComplete = nil
	close(t.done)
	t.mu.Unlock()
	for _, f := range hooks {
		f(err)
	}
}

// OnComplete runs f once every fragment is done (immediately if that already
// happened). f receives the first failure, or nil.
func (t *Tracker) OnComplete(f func(error)) {
	t.mu.Lock()
	select {
	case <-t.done:
		err := t.err
		t.mu.Unlock()
		f(err)
		return
	default:
	}
	t.onComplete = append(t.onComplete, f)
	t.mu.Unlock()
}

// Wait blocks until every fragment is done or ctx ends. It returns the first
// failure, or ctx's error when ctx ended first.
func (t *Tracker) Wait(ctx context.Context) error {
	select {
	case <-t.done:
		return t.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Completed is closed when every fragment is done.
func (t *Tracker) Completed() <-chan struct{} { return t.done }

// Err is the first failure recorded so far.
func (t *Tracker) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Pending is the number of fragments still in flight.
func (t *Tracker) Pending() int64 { return t.pending.Load() }

// Parent is the tracker, or any acknowledgement with the same contract
// (record.Acker), that a child reports to.
type Parent interface {
	Add(n int)
	Done()
	Fail(err error)
}

// Child returns a tracker for one part of parent's work (a batch a stage
// derived from its input) that must learn when that part alone is done: it
// holds one fragment of parent until it completes, then runs onComplete
// with the child's outcome and returns the fragment, failed if the child
// failed. Like New, it starts
// with its creator's token. parent may be nil (on a broker the input has no
// acknowledgement to report to); onComplete may be nil.
func Child(parent Parent, onComplete func(err error)) *Tracker {
	if parent != nil {
		parent.Add(1)
	}
	c := New()
	c.OnComplete(func(err error) {
		if onComplete != nil {
			onComplete(err)
		}
		switch {
		case parent == nil:
		case err != nil:
			parent.Fail(err)
		default:
			parent.Done()
		}
	})
	return c
}
