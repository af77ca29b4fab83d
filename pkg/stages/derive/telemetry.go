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
	for _, m := range []struct {
		name, help string
		get        func(*Stats) int64
	}{
		{"records", "Access logs and request summaries aggregated into metrics.", func(s *Stats) int64 { return s.Records }},
		{"ignored", "Records of other kinds (execution lines, other logs): no metrics.", func(s *Stats) int64 { return s.Ignored }},
		{"summaries_skipped", "Request summaries of stages that have access logs: not counted twice.", func(s *Stats) int64 { return s.SummariesSkipped }},
		{"records_too_old", "Records older than the metrics API accepts: not aggregated.", func(s *Stats) int64 { return s.TooOld }},
		{"records_too_new", "Records dated too far ahead: not aggregated.", func(s *Stats) int64 { return s.TooNew }},
		{"late_records", "Records aggregated into a late generation of a window already flushed.", func(s *Stats) int64 { return s.Late }},
		{"late_dropped", "Records for a window whose every late generation was used: dropped.", func(s *Stats) int64 { return s.LateDropped }},
		{"resources_folded", "Records counted under resource:other by the cardinality guard (metrics.max_resources_per_api).", func(s *Stats) int64 { return s.Folded }},
		{"series_dropped", "Records dropped because their window held the most series it may.", func(s *Stats) int64 { return s.SeriesDropped }},
		{"windows_flushed", "Window generations flushed.", func(s *Stats) int64 { return s.Windows }},
		{"points_emitted", "Metric points handed to deliver-metrics.", func(s *Stats) int64 { return s.PointsEmitted }},
		{"points_too_old", "Metric points too old for the metrics API when their window was flushed: dropped.", func(s *Stats) int64 { return s.PointsTooOld }},
		{"records_expired", "Records aggregated into those dropped points.", func(s *Stats) int64 { return s.RecordsExpired }},
		{"emit_errors", "Failed emissions of metric batches (kept and emitted again).", func(s *Stats) int64 { return s.EmitErrors }},
	} {
		reg.CounterFunc("derive."+m.name, m.help, counted(m.get))
	}
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
