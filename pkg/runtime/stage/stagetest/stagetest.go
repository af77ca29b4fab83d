// Package stagetest helps test stage handlers without a runtime.
package stagetest

import (
	"context"
	"sync"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// Output is a stage.Output that keeps what it is given. Err, when set,
// fails every call instead.
type Output struct {
	Err error

	mu      sync.Mutex
	emitted []*record.Batch
	dead    []*record.Batch
}

func (o *Output) Emit(_ context.Context, b *record.Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.Err != nil {
		return o.Err
	}
	o.emitted = append(o.emitted, b)
	return nil
}

func (o *Output) DeadLetter(_ context.Context, b *record.Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.Err != nil {
		return o.Err
	}
	o.dead = append(o.dead, b)
	return nil
}

// Emitted returns the batches emitted so far.
func (o *Output) Emitted() []*record.Batch {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*record.Batch(nil), o.emitted...)
}

// Dead returns the batches dead-lettered so far.
func (o *Output) Dead() []*record.Batch {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*record.Batch(nil), o.dead...)
}
