package membudget

import "github.com/gwpipe/gwpipe/pkg/telemetry"

// RegisterMetrics registers the budget's figures as "memory.*".
func (b *Budget) RegisterMetrics(reg *telemetry.Registry) {
	read := func(f func(Stats) int64) func() int64 { return func() int64 { return f(b.Stats()) } }
	reg.GaugeFunc("memory.limit_bytes", "The memory budget: most bytes of event data held at once (pipeline.max_held_bytes).", read(func(s Stats) int64 { return s.LimitBytes }))
	reg.GaugeFunc("memory.high_water_bytes", "Sources admit no more work above this (pipeline.ingest_high_water_bytes).", read(func(s Stats) int64 { return s.HighWaterBytes }))
	reg.GaugeFunc("memory.held_bytes", "Bytes of event data held now: admitted plus flowing.", read(func(s Stats) int64 { return s.HeldBytes }))
	reg.GaugeFunc("memory.admitted_bytes", "Bytes held by sources for the work they admitted, and by decode for its large-record buffers.", read(func(s Stats) int64 { return s.AdmittedBytes }))
	reg.GaugeFunc("memory.flowing_bytes", "Bytes of decoded batches not yet handled.", read(func(s Stats) int64 { return s.FlowingBytes }))
	reg.GaugeFunc("memory.peak_bytes", "Most bytes held at once since the process started.", read(func(s Stats) int64 { return s.PeakBytes }))
	reg.GaugeFunc("memory.waiting", "Callers waiting for room now.", read(func(s Stats) int64 { return int64(s.Waiting) }))
	reg.CounterFunc("memory.refused", "Work a source refused because the budget was above its high-water mark (answered 429, or left on the queue).", read(func(s Stats) int64 { return s.Refused }))
	reg.CounterFunc("memory.waits", "Times decode had to wait for room before emitting a batch.", read(func(s Stats) int64 { return s.Waits }))
}
