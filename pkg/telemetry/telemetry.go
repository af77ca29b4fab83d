// Package telemetry keeps gwpipe's own counters and latency histograms in
// process, cheaply enough for the hot path, and renders them for the status
// endpoint, the periodic console report and the exit summary.
package telemetry

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Counter is a monotonically increasing count.
type Counter struct{ v atomic.Int64 }

func (c *Counter) Add(n int64)   { c.v.Add(n) }
func (c *Counter) Inc()          { c.v.Add(1) }
func (c *Counter) Load() int64   { return c.v.Load() }
func (c *Counter) Store(n int64) { c.v.Store(n) }

// StageStats are the counters every stage keeps. Each counter has one
// owner that adds to it, named here: two places counting the same event
// is how a figure comes out doubled.
type StageStats struct {
	Batches    Counter // input batches handled (the stage runtime; a source for its own input)
	RecordsIn  Counter // records in those batches (the stage runtime; a source for what it took in)
	RecordsOut Counter // records emitted downstream (the stage runtime's Output)
	Dead       Counter // records this stage dead-lettered, counted when the archive wrote them
	Dropped    Counter // records dropped on purpose, e.g. CONTROL_MESSAGE (the stage's handler)
	Errors     Counter // handler errors, each retry counts (the stage runtime; a source for its own)
	InFlight   Counter // batches being handled now, a gauge (the stage runtime)
	// QueueDepth is a gauge: the batches published to the stage and not
	// yet being handled (on a broker, the messages not yet delivered to
	// any worker); -1 when unknown (a source has no queue, a broker not
	// asked yet or not answering).
	QueueDepth Counter
	// HandedBack counts records given back unacknowledged at shutdown for
	// their sender to send again: a source's records (by the source), or a
	// stage's input left on the broker (by the stage runtime).
	HandedBack Counter
	// Lost counts records that failed with no acknowledgement to fail,
	// so nothing will send them again: data derived in the pipeline
	// (metric points, request summaries) that could be neither delivered
	// nor dead-lettered (the stage runtime, and derive for the points it
	// still held at shutdown).
	Lost Counter
}

// Histogram records durations in microseconds, up to an hour.
type Histogram struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

func newHistogram() *Histogram {
	return &Histogram{h: hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3)}
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	h.mu.Lock()
	_ = h.h.RecordValue(us)
	h.mu.Unlock()
}

// Quantiles of the durations recorded so far.
type Quantiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Quantiles returns the distribution so far.
func (h *Histogram) Quantiles() Quantiles {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Quantiles{
		Count: h.h.TotalCount(),
		P50:   ms(h.h.ValueAtQuantile(50)),
		P90:   ms(h.h.ValueAtQuantile(90)),
		P99:   ms(h.h.ValueAtQuantile(99)),
		Max:   ms(h.h.Max()),
	}
}

// Registry holds every metric of one process.
type Registry struct {
	mu       sync.Mutex
	stages   map[string]*StageStats
	order    []string
	counters map[string]*Counter
	hists    map[string]*Histogram
	start    time.Time
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{
		stages:   map[string]*StageStats{},
		counters: map[string]*Counter{},
		hists:    map[string]*Histogram{},
		start:    time.Now(),
	}
}

// Stage returns the stats of a stage, creating them on first use.
func (r *Registry) Stage(name string) *StageStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.stages[name]
	if !ok {
		s = &StageStats{}
		s.QueueDepth.Store(-1)
		r.stages[name] = s
		r.order = append(r.order, name)
	}
	return s
}

// Counter returns a named counter, creating it on first use.
func (r *Registry) Counter(name string) *Counter {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.counters[name]
	if !ok {
		c = &Counter{}
		r.counters[name] = c
	}
	return c
}

// Histogram returns a named histogram, creating it on first use.
func (r *Registry) Histogram(name string) *Histogram {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.hists[name]
	if !ok {
		h = newHistogram()
		r.hists[name] = h
	}
	return h
}

// StageSnapshot is a point-in-time copy of a stage's counters.
type StageSnapshot struct {
	Name       string `json:"name"`
	Batches    int64  `json:"batches"`
	RecordsIn  int64  `json:"records_in"`
	RecordsOut int64  `json:"records_out"`
	Dead       int64  `json:"dead_lettered"`
	Dropped    int64  `json:"dropped"`
	Errors     int64  `json:"errors"`
	InFlight   int64  `json:"in_flight"`
	QueueDepth int64  `json:"queue_depth"` // -1: unknown
	HandedBack int64  `json:"handed_back"`
	Lost       int64  `json:"lost"`
}

// Snapshot is a point-in-time copy of the registry.
type Snapshot struct {
	UptimeSeconds float64              `json:"uptime_seconds"`
	Stages        []StageSnapshot      `json:"stages"`
	Counters      map[string]int64     `json:"counters"`
	Latencies     map[string]Quantiles `json:"latencies"`
}

// Snapshot copies every metric.
func (r *Registry) Snapshot() Snapshot {
	r.mu.Lock()
	order := append([]string(nil), r.order...)
	stages := make([]*StageStats, len(order))
	for i, n := range order {
		stages[i] = r.stages[n]
	}
	counters := make(map[string]*Counter, len(r.counters))
	for k, v := range r.counters {
		counters[k] = v
	}
	hists := make(map[string]*Histogram, len(r.hists))
	for k, v := range r.hists {
		hists[k] = v
	}
	r.mu.Unlock()

	s := Snapshot{
		UptimeSeconds: time.Since(r.start).Seconds(),
		Counters:      make(map[string]int64, len(counters)),
		Latencies:     make(map[string]Quantiles, len(hists)),
	}
	for i, st := range stages {
		s.Stages = append(s.Stages, StageSnapshot{
			Name: order[i], Batches: st.Batches.Load(), RecordsIn: st.RecordsIn.Load(),
			RecordsOut: st.RecordsOut.Load(), Dead: st.Dead.Load(), Dropped: st.Dropped.Load(),
			Errors: st.Errors.Load(), InFlight: st.InFlight.Load(), QueueDepth: st.QueueDepth.Load(),
			HandedBack: st.HandedBack.Load(), Lost: st.Lost.Load(),
		})
	}
	for k, c := range counters {
		s.Counters[k] = c.Load()
	}
	for k, h := range hists {
		s.Latencies[k] = h.Quantiles()
	}
	return s
}

// CounterNames returns the names of the counters in a snapshot, sorted.
func (s Snapshot) CounterNames() []string {
	names := make([]string, 0, len(s.Counters))
	for k := range s.Counters {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
