// Package telemetry is gwpipe's one registry of its own metrics: named
// families of counters, gauges and latency histograms, as in Prometheus or
// the OpenTelemetry Collector. A component registers its series when it is
// built, with their labels bound then (stage, status code…), and keeps the
// *Counter, *Gauge or *Histogram it got: the hot path is an atomic add, no
// map lookup, no label formatting. What a component already counts in its
// own state is registered as a function read at collection time.
//
// /status, the console report, DogStatsD self-telemetry and the OpenMetrics
// endpoint are views over one Snapshot of the registry, so that they show
// the same figures under the same names, and a new component's figures
// reach all four by being registered.
package telemetry

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is what a family's series are.
type Kind uint8

const (
	// KindCounter series only grow (cumulative since the process started).
	KindCounter Kind = iota + 1
	// KindGauge series are a current value.
	KindGauge
	// KindHistogram series are distributions of durations.
	KindHistogram
)

func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	case KindHistogram:
		return "histogram"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Label binds a label to its value, once, at registration.
type Label struct{ Key, Value string }

// L is a Label.
func L(key, value string) Label { return Label{key, value} }

// Counter is a monotonically increasing count.
type Counter struct{ v atomic.Int64 }

func (c *Counter) Add(n int64) { c.v.Add(n) }
func (c *Counter) Inc()        { c.v.Add(1) }
func (c *Counter) Load() int64 { return c.v.Load() }

// Gauge is a current value.
type Gauge struct{ v atomic.Int64 }

func (g *Gauge) Set(n int64) { g.v.Store(n) }
func (g *Gauge) Add(n int64) { g.v.Add(n) }
func (g *Gauge) Inc()        { g.v.Add(1) }
func (g *Gauge) Dec()        { g.v.Add(-1) }
func (g *Gauge) Load() int64 { return g.v.Load() }

// StageStats are the series every stage keeps, each the stage's own series
// of a "stage.<field>" family labelled stage=<name>. Each has one owner that
// adds to it, named here: two places counting the same event is how a
// figure comes out doubled.
type StageStats struct {
	Batches    Counter // input batches handled (the stage runtime; a source for its own input)
	RecordsIn  Counter // records in those batches (the stage runtime; a source for what it took in)
	RecordsOut Counter // records emitted downstream (the stage runtime's Output)
	Dead       Counter // records this stage dead-lettered, counted when the archive wrote them
	Dropped    Counter // records dropped on purpose, e.g. CONTROL_MESSAGE (the stage's handler)
	Errors     Counter // handler errors, each retry counts (the stage runtime; a source for its own)
	InFlight   Gauge   // batches being handled now (the stage runtime)
	// QueueDepth is the batches published to the stage and not yet being
	// handled (on a broker, the messages not yet delivered to any worker);
	// -1 when unknown (a source has no queue, a broker not asked yet or not
	// answering). The views that cannot say "unknown" leave it out then.
	QueueDepth Gauge
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

// StageLabel is the label of the "stage.*" families.
const StageLabel = "stage"

// Registry holds every metric family of one process.
type Registry struct {
	start time.Time

	mu       sync.Mutex
	families []*family // in registration order
	byName   map[string]*family
	stages   map[string]*StageStats
}

type family struct {
	name, help string
	kind       Kind
	keys       []string // label keys
	// unknownBelowZero: a negative value means "unknown" (queue depth).
	unknownBelowZero bool
	series           []*series
	index            map[string]*series // by joined label values
}

type series struct {
	values []string
	c      *Counter
	g      *Gauge
	h      *Histogram
	fn     atomic.Pointer[func() int64]
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{start: time.Now(), byName: map[string]*family{}, stages: map[string]*StageStats{}}
}

var (
	validName  = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$`)
	validLabel = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// series returns the series of name with labels, creating the family and
// the series as needed (made by mk). Registering a family twice with
// another kind or other label keys is a programming error: it panics, so
// that the first test that builds the component says so.
func (r *Registry) series(name, help string, kind Kind, labels []Label, mk func() *series) *series {
	if !validName.MatchString(name) {
		panic(fmt.Sprintf("telemetry: metric name %q: want dotted snake_case (a-z, 0-9, _)", name))
	}
	keys := make([]string, len(labels))
	values := make([]string, len(labels))
	for i, l := range labels {
		if !validLabel.MatchString(l.Key) {
			panic(fmt.Sprintf("telemetry: %s: label key %q: want snake_case", name, l.Key))
		}
		keys[i], values[i] = l.Key, l.Value
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.byName[name]
	if !ok {
		f = &family{name: name, help: help, kind: kind, keys: keys, index: map[string]*series{}}
		r.byName[name] = f
		r.families = append(r.families, f)
	}
	if f.kind != kind || !slices.Equal(f.keys, keys) {
		panic(fmt.Sprintf("telemetry: %s registered as a %s with labels %v, now as a %s with labels %v", name, f.kind, f.keys, kind, keys))
	}
	if f.help == "" && help != "" {
		f.help = help
	}
	key := strings.Join(values, "\xff")
	s, ok := f.index[key]
	if !ok {
		s = mk()
		s.values = values
		f.index[key] = s
		f.series = append(f.series, s)
	}
	return s
}

// Counter registers a counter series, or returns the one registered under
// the same name and labels.
func (r *Registry) Counter(name, help string, labels ...Label) *Counter {
	s := r.series(name, help, KindCounter, labels, func() *series { return &series{c: &Counter{}} })
	if s.c == nil {
		panic("telemetry: " + name + " is a counter function, not a counter")
	}
	return s.c
}

// Gauge registers a gauge series, or returns the one registered under the
// same name and labels.
func (r *Registry) Gauge(name, help string, labels ...Label) *Gauge {
	s := r.series(name, help, KindGauge, labels, func() *series { return &series{g: &Gauge{}} })
	if s.g == nil {
		panic("telemetry: " + name + " is a gauge function, not a gauge")
	}
	return s.g
}

// Histogram registers a latency histogram series, or returns the one
// registered under the same name and labels.
func (r *Registry) Histogram(name, help string, labels ...Label) *Histogram {
	return r.series(name, help, KindHistogram, labels, func() *series { return &series{h: newHistogram()} }).h
}

// CounterFunc registers a counter series read by calling fn at collection
// time: for what a component already counts in its own state. fn must be
// cheap and safe to call from any goroutine. Registering the same series
// again replaces fn.
func (r *Registry) CounterFunc(name, help string, fn func() int64, labels ...Label) {
	r.setFunc(name, help, KindCounter, fn, labels)
}

// GaugeFunc registers a gauge series read by calling fn at collection time
// (see CounterFunc).
func (r *Registry) GaugeFunc(name, help string, fn func() int64, labels ...Label) {
	r.setFunc(name, help, KindGauge, fn, labels)
}

// Func is a series read at collection time, for CounterFuncs and
// GaugeFuncs.
type Func struct {
	Name, Help string
	Read       func() int64
}

// F is a Func.
func F(name, help string, read func() int64) Func { return Func{name, help, read} }

// CounterFuncs registers a counter function per entry, named prefix+Name:
// a component's figures listed once.
func (r *Registry) CounterFuncs(prefix string, fs []Func, labels ...Label) {
	for _, f := range fs {
		r.setFunc(prefix+f.Name, f.Help, KindCounter, f.Read, labels)
	}
}

// GaugeFuncs registers a gauge function per entry (see CounterFuncs).
func (r *Registry) GaugeFuncs(prefix string, fs []Func, labels ...Label) {
	for _, f := range fs {
		r.setFunc(prefix+f.Name, f.Help, KindGauge, f.Read, labels)
	}
}

func (r *Registry) setFunc(name, help string, kind Kind, fn func() int64, labels []Label) {
	s := r.series(name, help, kind, labels, func() *series { return &series{} })
	if s.c != nil || s.g != nil {
		panic("telemetry: " + name + " is already a value, not a function")
	}
	s.fn.Store(&fn)
}

// stageFamilies are the "stage.*" families, in the order /status shows a
// stage's fields.
var stageFamilies = []struct {
	field, help string
	kind        Kind
	get         func(*StageStats) any
}{
	{"batches", "Input batches the stage handled.", KindCounter, func(s *StageStats) any { return &s.Batches }},
	{"records_in", "Records (or metric points) in the batches the stage handled.", KindCounter, func(s *StageStats) any { return &s.RecordsIn }},
	{"records_out", "Records (or metric points) the stage emitted downstream.", KindCounter, func(s *StageStats) any { return &s.RecordsOut }},
	{"dead_lettered", "Records the stage dead-lettered, counted once the archive wrote them.", KindCounter, func(s *StageStats) any { return &s.Dead }},
	{"dropped", "Records the stage dropped on purpose (CloudWatch control messages).", KindCounter, func(s *StageStats) any { return &s.Dropped }},
	{"errors", "Handler errors; every retry counts. The first failure of a stage is logged (a warning, with the error), then at most one every 10s.", KindCounter, func(s *StageStats) any { return &s.Errors }},
	{"in_flight", "Batches the stage is handling now.", KindGauge, func(s *StageStats) any { return &s.InFlight }},
	{"queue_depth", "Batches published to the stage and not yet being handled (on a broker, its consumer group's backlog); absent while unknown.", KindGauge, func(s *StageStats) any { return &s.QueueDepth }},
	{"handed_back", "Records given back unacknowledged at shutdown, for their sender to send again.", KindCounter, func(s *StageStats) any { return &s.HandedBack }},
	{"lost", "Records derived in the pipeline (metric points, request summaries) that could be neither delivered nor dead-lettered.", KindCounter, func(s *StageStats) any { return &s.Lost }},
}

// Stage returns the series of a stage (or a source), registering them on
// first use. Its queue depth starts unknown (-1).
func (r *Registry) Stage(name string) *StageStats {
	r.mu.Lock()
	st, ok := r.stages[name]
	if !ok {
		st = &StageStats{}
		st.QueueDepth.Set(-1)
		r.stages[name] = st
	}
	r.mu.Unlock()
	if ok {
		return st
	}
	label := []Label{{StageLabel, name}}
	for _, sf := range stageFamilies {
		fname := "stage." + sf.field
		r.series(fname, sf.help, sf.kind, label, func() *series {
			switch v := sf.get(st).(type) {
			case *Counter:
				return &series{c: v}
			default:
				return &series{g: v.(*Gauge)}
			}
		})
		if sf.field == "queue_depth" {
			r.mu.Lock()
			r.byName[fname].unknownBelowZero = true
			r.mu.Unlock()
		}
	}
	return st
}

// Value is the current value of a counter or gauge series (0 if it is not
// registered): for tests and for figures read once.
func (r *Registry) Value(name string, labelValues ...string) int64 {
	r.mu.Lock()
	f := r.byName[name]
	var s *series
	if f != nil {
		s = f.index[strings.Join(labelValues, "\xff")]
	}
	r.mu.Unlock()
	if s == nil {
		return 0
	}
	return s.value()
}

func (s *series) value() int64 {
	switch {
	case s.c != nil:
		return s.c.Load()
	case s.g != nil:
		return s.g.Load()
	}
	if fn := s.fn.Load(); fn != nil {
		return (*fn)()
	}
	return 0
}

// Snapshot reads every series. Functions are called outside the
// registry's lock: one may read a component that registers on the same
// registry.
func (r *Registry) Snapshot() Snapshot {
	type fam struct {
		f      Family
		series []*series
	}
	r.mu.Lock()
	fams := make([]fam, len(r.families))
	for i, f := range r.families {
		fams[i] = fam{Family{Name: f.name, Help: f.help, Kind: f.kind, LabelKeys: f.keys, UnknownBelowZero: f.unknownBelowZero}, slices.Clone(f.series)}
	}
	r.mu.Unlock()

	s := Snapshot{Taken: time.Now(), Families: make([]Family, len(fams))}
	s.Uptime = s.Taken.Sub(r.start)
	for i, x := range fams {
		f := x.f
		f.Series = make([]Series, len(x.series))
		for j, se := range x.series {
			f.Series[j] = Series{LabelValues: se.values}
			if se.h != nil {
				h := se.h.Snapshot()
				f.Series[j].Histogram = &h
				f.Series[j].Value = h.Count
			} else {
				f.Series[j].Value = se.value()
			}
		}
		s.Families[i] = f
	}
	return s
}
