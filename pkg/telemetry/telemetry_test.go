package telemetry_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

func TestRegistrationReturnsTheSameSeries(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry()
	a := reg.Counter("x.count", "help", telemetry.L("code", "200"))
	b := reg.Counter("x.count", "", telemetry.L("code", "200"))
	c := reg.Counter("x.count", "", telemetry.L("code", "500"))
	require.Same(t, a, b)
	require.NotSame(t, a, c)
	a.Add(2)
	c.Inc()
	assert.Equal(t, int64(2), reg.Value("x.count", "200"))
	assert.Equal(t, int64(1), reg.Value("x.count", "500"))
	assert.Zero(t, reg.Value("x.count", "404"), "not registered")
	f, ok := reg.Snapshot().Family("x.count")
	require.True(t, ok)
	assert.Equal(t, "help", f.Help, "the first help stays")
	assert.Same(t, reg.Stage("decode"), reg.Stage("decode"))
}

// Misuse is a programming error, found by the first test that builds the
// component: names and labels must be snake_case, and a family keeps one
// kind and one set of label keys.
func TestRegistrationRejectsMisuse(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(r *telemetry.Registry){
		"hyphen":        func(r *telemetry.Registry) { r.Counter("deliver-logs.retries", "") },
		"capital":       func(r *telemetry.Registry) { r.Gauge("Memory.held", "") },
		"empty segment": func(r *telemetry.Registry) { r.Counter("a..b", "") },
		"label key":     func(r *telemetry.Registry) { r.Counter("a.b", "", telemetry.L("Code", "1")) },
		"kind changes":  func(r *telemetry.Registry) { r.Counter("a.b", ""); r.Gauge("a.b", "") },
		"labels change": func(r *telemetry.Registry) {
			r.Counter("a.b", "", telemetry.L("x", "1"))
			r.Counter("a.b", "", telemetry.L("y", "1"))
		},
		"value then func": func(r *telemetry.Registry) { r.Counter("a.b", ""); r.CounterFunc("a.b", "", func() int64 { return 1 }) },
		"func then value": func(r *telemetry.Registry) { r.GaugeFunc("a.b", "", func() int64 { return 1 }); r.Gauge("a.b", "") },
	} {
		assert.Panics(t, func() { f(telemetry.NewRegistry()) }, name)
	}
}

func TestFunctionsAreReadAtCollection(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry()
	n := int64(1)
	reg.CounterFunc("a.read", "help", func() int64 { return n })
	assert.Equal(t, int64(1), reg.Snapshot().Value("a.read"))
	n = 5
	assert.Equal(t, int64(5), reg.Snapshot().Value("a.read"))
	reg.CounterFunc("a.read", "help", func() int64 { return 9 })
	assert.Equal(t, int64(9), reg.Value("a.read"), "registering again replaces the function")
}

func TestStatusView(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry()
	in := reg.Stage("ingest")
	in.RecordsIn.Add(7)
	dec := reg.Stage("decode")
	dec.QueueDepth.Set(3)
	dec.InFlight.Inc()
	reg.Counter("firehose.status", "", telemetry.L("code", "200")).Add(4)
	reg.Counter("awstags.calls", "", telemetry.L("service", "sts"), telemetry.L("operation", "assume_role")).Add(2)
	reg.Gauge("memory.held_bytes", "").Set(10)
	reg.Histogram("firehose.ack_latency", "").Observe(2 * time.Millisecond)

	b, err := json.Marshal(reg.Snapshot().Status())
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	stages := doc["stages"].([]any)
	require.Len(t, stages, 2)
	assert.Equal(t, map[string]any{
		"name": "ingest", "batches": 0.0, "records_in": 7.0, "records_out": 0.0, "dead_lettered": 0.0, "dropped": 0.0,
		"errors": 0.0, "in_flight": 0.0, "queue_depth": -1.0, "handed_back": 0.0, "lost": 0.0,
	}, stages[0], "in registration order; a source's queue depth is unknown: -1")
	assert.Equal(t, "decode", stages[1].(map[string]any)["name"])
	assert.Equal(t, 3.0, stages[1].(map[string]any)["queue_depth"])
	assert.Equal(t, map[string]any{"firehose.status.200": 4.0, "awstags.calls.sts.assume_role": 2.0}, doc["counters"])
	assert.Equal(t, map[string]any{"memory.held_bytes": 10.0}, doc["gauges"])
	lat := doc["latencies"].(map[string]any)["firehose.ack_latency"].(map[string]any)
	assert.Equal(t, 1.0, lat["count"])
	assert.InDelta(t, 2.0, lat["p99_ms"], 0.01)
	assert.Positive(t, doc["uptime_seconds"])
}

func TestHistogram(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry()
	h := reg.Histogram("a.latency", "")
	for _, d := range []time.Duration{0, 400 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Minute, 3 * time.Hour} {
		h.Observe(d)
	}
	s := h.Snapshot()
	assert.Equal(t, int64(6), s.Count)
	// Sub-microsecond durations count as 1 µs; beyond an hour, as an hour.
	assert.Equal(t, time.Microsecond+400*time.Microsecond+time.Millisecond+3*time.Millisecond+2*time.Minute+time.Hour, s.Sum)
	want := make([]int64, len(telemetry.Buckets))
	for i, le := range telemetry.Buckets {
		for _, d := range []time.Duration{0, 400 * time.Microsecond, time.Millisecond, 3 * time.Millisecond} {
			if d <= le {
				want[i]++
			}
		}
	}
	assert.Equal(t, want, s.Cumulative[:], "≤ each bound; 2 min and 3 h only in +Inf")
	assert.InDelta(t, 3_600_000, s.Quantiles.Max, 3_600)
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 200 {
				reg.Stage("s").RecordsIn.Inc()
				reg.Counter("a.b", "", telemetry.L("k", string(rune('a'+i%2)))).Inc()
				reg.Histogram("h.lat", "").Observe(time.Millisecond)
				_ = reg.Snapshot().Status()
			}
		})
	}
	wg.Wait()
	s := reg.Snapshot()
	assert.Equal(t, int64(1600), s.Value("stage.records_in", "s"))
	assert.Equal(t, int64(1600), s.Sum("a.b"))
	assert.Equal(t, int64(1600), s.Value("h.lat"))
}
