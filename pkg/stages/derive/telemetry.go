package derive

import "github.com/gwpipe/gwpipe/pkg/telemetry"

// registerMetrics registers the Deriver's figures (Stats) as "derive.*".
func (d *Deriver) registerMetrics(reg *telemetry.Registry) {
	counted := func(f func(*Stats) int64) func() int64 {
		return func() int64 {
			d.mu.Lock()
			defer d.mu.Unlock()
			return f(&d.n)
		}
	}
	reg.CounterFuncs("derive.", []telemetry.Func{
		telemetry.F("records", "Access logs and request summaries aggregated into metrics.", counted(func(s *Stats) int64 { return s.Records })),
		telemetry.F("ignored", "Records of other kinds (execution lines, other logs): no metrics.", counted(func(s *Stats) int64 { return s.Ignored })),
		telemetry.F("records_counted_before", "Records replayed from deliver-logs dead letters, counted when they first passed: not counted again.", counted(func(s *Stats) int64 { return s.CountedBefore })),
		telemetry.F("summaries_skipped", "Request summaries of stages that have access logs: not counted twice.", counted(func(s *Stats) int64 { return s.SummariesSkipped })),
		telemetry.F("records_too_old", "Records older than the metrics API accepts: not aggregated.", counted(func(s *Stats) int64 { return s.TooOld })),
		telemetry.F("records_too_new", "Records dated too far ahead: not aggregated.", counted(func(s *Stats) int64 { return s.TooNew })),
		telemetry.F("late_records", "Records aggregated into a late generation of a window already flushed.", counted(func(s *Stats) int64 { return s.Late })),
		telemetry.F("late_dropped", "Records for a window whose every late generation was used: dropped.", counted(func(s *Stats) int64 { return s.LateDropped })),
		telemetry.F("resources_folded", "Records counted under resource:other by the cardinality guard (metrics.max_resources_per_api).", counted(func(s *Stats) int64 { return s.Folded })),
		telemetry.F("series_dropped", "Records dropped because their window held the most series it may.", counted(func(s *Stats) int64 { return s.SeriesDropped })),
		telemetry.F("windows_flushed", "Window generations flushed.", counted(func(s *Stats) int64 { return s.Windows })),
		telemetry.F("points_emitted", "Metric points handed to deliver-metrics.", counted(func(s *Stats) int64 { return s.PointsEmitted })),
		telemetry.F("points_too_old", "Metric points too old for the metrics API when their window was flushed: dropped.", counted(func(s *Stats) int64 { return s.PointsTooOld })),
		telemetry.F("records_expired", "Records aggregated into those dropped points.", counted(func(s *Stats) int64 { return s.RecordsExpired })),
		telemetry.F("emit_errors", "Failed emissions of metric batches (kept and emitted again).", counted(func(s *Stats) int64 { return s.EmitErrors })),
	})
	pending := func(points bool) func() int64 {
		return func() int64 {
			d.pmu.Lock()
			defer d.pmu.Unlock()
			if !points {
				return int64(len(d.pending))
			}
			var n int64
			for _, b := range d.pending {
				n += int64(b.Len())
			}
			return n
		}
	}
	reg.GaugeFunc("derive.pending_batches", "Metric batches waiting to be emitted again.", pending(false))
	reg.GaugeFunc("derive.pending_points", "Metric points in those batches.", pending(true))
	reg.GaugeFunc("derive.summaries_waiting", "Request summaries of stages with no access log seen yet, waiting (a minute at most) for one before they count.", counted(func(s *Stats) int64 { return s.SummariesWaiting }))
	reg.GaugeFunc("derive.open_series", "Series held in open windows.", func() int64 {
		d.mu.Lock()
		defer d.mu.Unlock()
		var n int64
		for i := range d.lanes {
			for _, w := range d.lanes[i].windows {
				n += int64(len(w.accs))
			}
		}
		return n
	})
}
