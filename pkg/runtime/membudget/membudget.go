// Package membudget bounds the memory a gwpipe process holds for event data:
// one budget of bytes, shared by the sources that admit new work and by the
// stages that turn it into decoded events.
//
// Bytes are held in one of two ways, with two ceilings:
//
//   - Admitted bytes (request bodies as they arrive, raw batches until their
//     source unit is acknowledged, decode's buffers for one large record)
//     are taken only while the budget is below its high-water mark. A source
//     that is refused pushes back: the Firehose endpoint answers 429, the
//     SQS source stops polling.
//   - Flowing bytes (decoded batches, from decode until every terminal
//     consumer handled them or a broker holds them) may use the budget up to
//     its limit. Acquire waits, in order of arrival: decode stops, and the
//     runtime's bounded slots carry that back to the sources.
//
// The budget cannot deadlock. Flowing bytes drain without needing the
// budget (parse, enrich and delivery never wait on it), and admitted bytes
// are released only after what was decoded from them drained. So the first
// waiter is granted as soon as no flowing bytes are held, whatever its size
// and however much is admitted: a piece larger than the room left, or a
// budget full of admitted work, delays decode but never stops it. Sources
// never wait while a stage does, so new work cannot overtake work already
// admitted.
//
// A nil *Budget grants everything, for components used without one.
package membudget

import (
	"container/list"
	"context"
	"fmt"
	"sync"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
)

// Budget is a process-wide budget of bytes. Its methods are safe for
// concurrent use.
type Budget struct {
	limit, high int64

	mu       sync.Mutex
	admitted int64
	flowing  int64
	peak     int64
	stages   list.List // *waiter, first come first served
	sources  list.List // *waiter, served while no stage waits

	refused int64
	waits   int64
}

type waiter struct {
	n     int64
	ready chan struct{}
}

// New returns a budget of limit bytes whose sources are admitted below
// highWater (0 < highWater < limit).
func New(limit, highWater int64) (*Budget, error) {
	if limit <= 0 || highWater <= 0 || highWater >= limit {
		return nil, fmt.Errorf("membudget: need 0 < high-water (%d) < limit (%d)", highWater, limit)
	}
	return &Budget{limit: limit, high: highWater}, nil
}

// TryAdmit takes n admitted bytes if the budget stays at or below its
// high-water mark, and no stage is waiting for the budget. own is what the
// caller's unit of work (one request) already holds: a unit larger than
// the high-water mark is admitted when it is all the budget holds, so that
// it is delayed under load rather than refused for ever.
func (b *Budget) TryAdmit(n, own int64) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	held := b.admitted + b.flowing
	if b.stages.Len() == 0 && b.sources.Len() == 0 && (held+n <= b.high || held == own) {
		b.take(&b.admitted, n)
		return true
	}
	b.refused++
	return false
}

// Admit takes n admitted bytes, waiting until the budget is at or below
// its high-water mark with them (or holds nothing, for n larger than that)
// and no stage waits. It fails only when ctx ends.
func (b *Budget) Admit(ctx context.Context, n int64) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	if b.stages.Len() == 0 && b.sources.Len() == 0 && b.admits(n) {
		b.take(&b.admitted, n)
		b.mu.Unlock()
		return nil
	}
	return b.wait(ctx, &b.sources, n, &b.admitted)
}

// Force takes n admitted bytes without asking: memory already committed
// that must be counted (decode's buffers for one large record) but must
// not make anything wait for itself.
func (b *Budget) Force(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.take(&b.admitted, n)
	b.mu.Unlock()
}

// Discharge returns n admitted bytes.
func (b *Budget) Discharge(n int64) {
	if b != nil {
		b.give(&b.admitted, n)
	}
}

// Acquire takes n flowing bytes, waiting (first come, first served) until
// they fit under the limit or no flowing bytes are held. It fails only when
// ctx ends.
func (b *Budget) Acquire(ctx context.Context, n int64) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	if b.stages.Len() == 0 && b.flows(n) {
		b.take(&b.flowing, n)
		b.mu.Unlock()
		return nil
	}
	b.waits++
	return b.wait(ctx, &b.stages, n, &b.flowing)
}

// Release returns n flowing bytes.
func (b *Budget) Release(n int64) {
	if b != nil {
		b.give(&b.flowing, n)
	}
}

// admits and flows are the grant rules; b.mu is held.
func (b *Budget) admits(n int64) bool {
	held := b.admitted + b.flowing
	return held+n <= b.high || held == 0
}

func (b *Budget) flows(n int64) bool {
	return b.admitted+b.flowing+n <= b.limit || b.flowing == 0
}

func (b *Budget) take(kind *int64, n int64) {
	*kind += n
	if held := b.admitted + b.flowing; held > b.peak {
		b.peak = held
	}
}

func (b *Budget) give(kind *int64, n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	*kind -= n
	if *kind < 0 {
		b.mu.Unlock()
		panic("membudget: released more than was taken")
	}
	b.grant()
	b.mu.Unlock()
}

// wait queues the caller; b.mu is held and is released.
func (b *Budget) wait(ctx context.Context, q *list.List, n int64, kind *int64) error {
	w := &waiter{n: n, ready: make(chan struct{})}
	e := q.PushBack(w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready:
			// Granted meanwhile: give it back, as if it never was.
			*kind -= n
		default:
			q.Remove(e)
		}
		b.grant() // those behind may fit now
		b.mu.Unlock()
		return fmt.Errorf("waiting for %d bytes of the memory budget: %w", n, ctx.Err())
	}
}

// grant wakes the waiters that fit, stages first; b.mu is held.
func (b *Budget) grant() {
	for e := b.stages.Front(); e != nil; e = b.stages.Front() {
		w := e.Value.(*waiter)
		if !b.flows(w.n) {
			return // nobody overtakes the first stage waiter
		}
		b.take(&b.flowing, w.n)
		b.stages.Remove(e)
		close(w.ready)
	}
	for e := b.sources.Front(); e != nil; e = b.sources.Front() {
		w := e.Value.(*waiter)
		if !b.admits(w.n) {
			return
		}
		b.take(&b.admitted, w.n)
		b.sources.Remove(e)
		close(w.ready)
	}
}

// Stats is the budget's state.
type Stats struct {
	LimitBytes     int64 `json:"limit_bytes"`
	HighWaterBytes int64 `json:"high_water_bytes"`
	HeldBytes      int64 `json:"held_bytes"`     // admitted + flowing
	AdmittedBytes  int64 `json:"admitted_bytes"` // sources, decode's large-record buffers
	FlowingBytes   int64 `json:"flowing_bytes"`  // decoded batches not yet handled
	PeakBytes      int64 `json:"peak_bytes"`     // most held at once since start
	Refused        int64 `json:"refused"`        // TryAdmit calls refused
	Waits          int64 `json:"waits"`          // Acquire calls that had to wait
	Waiting        int   `json:"waiting"`        // callers waiting now
}

// Stats returns the budget's state (zero for a nil budget).
func (b *Budget) Stats() Stats {
	if b == nil {
		return Stats{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{
		LimitBytes: b.limit, HighWaterBytes: b.high,
		HeldBytes: b.admitted + b.flowing, AdmittedBytes: b.admitted, FlowingBytes: b.flowing,
		PeakBytes: b.peak, Refused: b.refused, Waits: b.waits,
		Waiting: b.stages.Len() + b.sources.Len(),
	}
}

// Hold acquires n flowing bytes for b, a batch about to be emitted, and
// ties their release to b's acknowledgement: b.Ack becomes a child of what
// it was (see ack.Child), completed once every consumer of b in this
// process is done with it, or, on a broker (which carries no
// acknowledgement), once b was published. done returns the caller's own
// token: call it after emitting b, whether that succeeded or not.
func (b *Budget) Hold(ctx context.Context, batch *record.Batch, n int64) (done func(), err error) {
	if b == nil {
		return func() {}, nil
	}
	if err := b.Acquire(ctx, n); err != nil {
		return nil, err
	}
	var parent ack.Parent
	if batch.Ack != nil {
		parent = batch.Ack
	}
	child := ack.Child(parent, func(error) { b.Release(n) })
	batch.Ack = child
	return child.Done, nil
}

const (
	// footprintPerByte is what a decoded event costs in memory, per byte
	// of its message, until it is delivered: its copy, the parsed
	// attributes (about 1.4 times the message), the record and the slices
	// holding it, and its rendering for the intake. Measured with heap
	// profiles of the whole process on loadgen's default mix: about 3.7.
	footprintPerByte = 4
	// footprintPerPoint is the same for a metric point.
	footprintPerPoint = 256
)

// Footprint is what a decoded batch is expected to cost in memory from
// the moment it is emitted until it is delivered: the figure to Hold.
func Footprint(b *record.Batch) int64 {
	n := int64(len(b.Metrics)) * footprintPerPoint
	for i := range b.Records {
		r := &b.Records[i]
		n += int64(len(r.Message)+len(r.EventID)) * footprintPerByte
	}
	return n
}
