package stage

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// A Tap samples the batches this process publishes to one topic, for an
// operator to look at (gwpipe tap). It never slows or blocks the pipeline:
// the publisher copies a batch into the tap's small buffer only when there
// is room, and drops it (counting its events) otherwise. With no tap
// attached, publishing pays one atomic load.
type Tap struct {
	topic   string
	max     int // records copied per sample at most; 0: every record
	ch      chan TapSample
	done    chan struct{}
	once    sync.Once
	owner   *taps
	sampled atomic.Int64 // events in the samples taken
	dropped atomic.Int64 // events published while the buffer was full
}

// TapSample is a copy of a batch published to a topic, made as it was
// published: the stages downstream may change the original.
type TapSample struct {
	Topic string
	// Stage published the batch (a source: the name it publishes under);
	// for a dead letter, the stage that gave it up.
	Stage string
	// Batch is a deep copy of the records (the first of them when the tap
	// was attached with a limit) and metric points, their reason if dead
	// letters; without the acknowledgement, unit or arena.
	Batch *record.Batch
}

// C delivers the samples.
func (t *Tap) C() <-chan TapSample { return t.ch }

// Done is closed once the tap is detached: Close, or the runtime shut down.
// Samples already buffered stay readable from C.
func (t *Tap) Done() <-chan struct{} { return t.done }

// Sampled is the number of events in the samples the tap took.
func (t *Tap) Sampled() int64 { return t.sampled.Load() }

// Dropped is the number of events published to the topic while the tap's
// buffer was full: the reader was slower than the pipeline.
func (t *Tap) Dropped() int64 { return t.dropped.Load() }

// Close detaches the tap (safe to call more than once).
func (t *Tap) Close() {
	t.once.Do(func() {
		t.owner.detach(t)
		close(t.done)
	})
}

// taps are the taps attached to a runtime. The list is copied on write so
// that publishing reads it without a lock.
type taps struct {
	n       atomic.Int32 // taps attached: the only thing publishing reads when 0
	mu      sync.Mutex
	list    atomic.Pointer[[]*Tap]
	sampled *telemetry.Counter
	dropped *telemetry.Counter
}

func newTaps(reg *telemetry.Registry) *taps {
	return &taps{
		sampled: reg.Counter("tap.sampled_events", "Events copied to a tap (gwpipe tap, /tap)."),
		dropped: reg.Counter("tap.dropped_events", "Events published while a tap's buffer was full (its reader slower than the pipeline): not sampled."),
	}
}

// Tap attaches a tap to topic (the configured name) with room for buffer
// samples; maxRecords > 0 copies at most that many records of a batch.
// Close it when done.
func (r *Runtime) Tap(topic string, buffer, maxRecords int) *Tap {
	t := &Tap{topic: topic, max: max(maxRecords, 0), ch: make(chan TapSample, max(buffer, 1)), done: make(chan struct{}), owner: r.taps}
	ts := r.taps
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var list []*Tap
	if l := ts.list.Load(); l != nil {
		list = slices.Clone(*l)
	}
	list = append(list, t)
	ts.list.Store(&list)
	ts.n.Store(int32(len(list)))
	return t
}

func (ts *taps) detach(t *Tap) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	l := ts.list.Load()
	if l == nil {
		return
	}
	list := slices.DeleteFunc(slices.Clone(*l), func(x *Tap) bool { return x == t })
	ts.list.Store(&list)
	ts.n.Store(int32(len(list)))
}

// closeAll detaches every tap: the runtime is shutting down.
func (ts *taps) closeAll() {
	if l := ts.list.Load(); l != nil {
		for _, t := range *l {
			t.Close()
		}
	}
}

// tap is the hook at every stage boundary: it offers b, published to
// topic by stage, to the taps attached. Small enough to inline, so that
// with no tap it is one atomic load at the call site.
func (r *Runtime) tap(topic, stage string, b *record.Batch) {
	if r.taps.n.Load() != 0 {
		r.taps.offer(topic, stage, b)
	}
}

func (ts *taps) offer(topic, stage string, b *record.Batch) {
	l := ts.list.Load()
	if l == nil {
		return
	}
	n := int64(b.Len())
	for _, t := range *l {
		if t.topic != topic {
			continue
		}
		// A full buffer drops before copying: a slow reader costs the
		// pipeline nothing but this check.
		if len(t.ch) == cap(t.ch) {
			t.dropped.Add(n)
			ts.dropped.Add(n)
			continue
		}
		s := TapSample{Topic: topic, Stage: stage, Batch: copyBatch(b, t.max)}
		select {
		case t.ch <- s:
			t.sampled.Add(int64(s.Batch.Len()))
			ts.sampled.Add(int64(s.Batch.Len()))
		default: // another publisher filled it meanwhile
			t.dropped.Add(n)
			ts.dropped.Add(n)
		}
	}
}

// copyBatch copies what a tap shows of b: its first maxRecords records (all
// when 0) with their bytes in one new arena, and its metric points.
func copyBatch(b *record.Batch, maxRecords int) *record.Batch {
	recs := b.Records
	if maxRecords > 0 && len(recs) > maxRecords {
		recs = recs[:maxRecords]
	}
	// One allocation each for the bytes, the attributes and the tags.
	size, nattrs, ntags := 0, 0, 0
	for i := range recs {
		size += len(recs[i].Message)
		for _, a := range recs[i].Attrs {
			size += len(a.Str)
		}
		nattrs += len(recs[i].Attrs)
		ntags += len(recs[i].Tags)
	}
	arena := make([]byte, 0, size)
	attrs := make([]record.Attr, 0, nattrs)
	tags := make([]string, 0, ntags)
	keep := func(p []byte) []byte {
		if p == nil {
			return nil
		}
		start := len(arena)
		arena = append(arena, p...)
		return arena[start:len(arena):len(arena)]
	}
	// Origins are shared and never changed once made (package record): kept.
	c := &record.Batch{ID: b.ID, Origin: b.Origin, Stage: b.Stage, Reason: b.Reason, Records: make([]record.Record, len(recs))}
	for i := range recs {
		r := recs[i]
		r.Message = keep(r.Message)
		start := len(attrs)
		for _, a := range r.Attrs {
			a.Str = keep(a.Str)
			attrs = append(attrs, a)
		}
		r.Attrs = attrs[start:len(attrs):len(attrs)]
		start = len(tags)
		tags = append(tags, r.Tags...)
		r.Tags = tags[start:len(tags):len(tags)]
		c.Records[i] = r
	}
	if len(b.Metrics) > 0 {
		c.Metrics = make([]record.Metric, len(b.Metrics))
		for i, m := range b.Metrics {
			m.Values = slices.Clone(m.Values)
			m.Tags = slices.Clone(m.Tags)
			if m.Sketch != nil {
				s := *m.Sketch
				s.Keys, s.Counts = slices.Clone(s.Keys), slices.Clone(s.Counts)
				m.Sketch = &s
			}
			c.Metrics[i] = m
		}
	}
	return c
}
