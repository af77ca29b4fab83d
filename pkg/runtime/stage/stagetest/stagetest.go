// Package stagetest helps test stage handlers and sources without a
// runtime.
package stagetest

import (
	"context"
	"sync"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// Batches keeps the batches handed to it, for a test to look at while
// the code under test may still be adding to it.
type Batches struct {
	mu   sync.Mutex
	list []*record.Batch
}

// Add keeps b.
func (bs *Batches) Add(b *record.Batch) {
	bs.mu.Lock()
	bs.list = append(bs.list, b)
	bs.mu.Unlock()
}

// All returns the batches kept so far, in the order they came.
func (bs *Batches) All() []*record.Batch {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return append([]*record.Batch(nil), bs.list...)
}

// Records counts the records of the batches kept so far.
func (bs *Batches) Records() int {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	n := 0
	for _, b := range bs.list {
		n += b.Len()
	}
	return n
}

// Output is a stage.Output that keeps what it is given. Err, set before
// the output is used, fails every call instead.
type Output struct {
	Err error

	emitted, dead Batches
}

func (o *Output) Emit(_ context.Context, b *record.Batch) error {
	if o.Err != nil {
		return o.Err
	}
	o.emitted.Add(b)
	return nil
}

func (o *Output) DeadLetter(_ context.Context, b *record.Batch) error {
	if o.Err != nil {
		return o.Err
	}
	o.dead.Add(b)
	return nil
}

// Emitted returns the batches emitted so far.
func (o *Output) Emitted() []*record.Batch { return o.emitted.All() }

// Dead returns the batches dead-lettered so far.
func (o *Output) Dead() []*record.Batch { return o.dead.All() }
