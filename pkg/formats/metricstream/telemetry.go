package metricstream

import "github.com/gwpipe/gwpipe/pkg/telemetry"

// RegisterMetrics registers the decoder's figures as "metricstream.*",
// its Mapper's included (labelled source=metric_stream).
func (d *Decoder) RegisterMetrics(reg *telemetry.Registry) {
	reg.CounterFunc("metricstream.records", "Metric-stream data decoded: whole records, or runs of datum lines among other lines.", d.records.Load)
	reg.CounterFunc("metricstream.malformed", "Parts of metric-stream records that could not be decoded, dead-lettered.", d.malformed.Load)
	d.m.RegisterMetrics(reg, "metric_stream")
}

// RegisterMetrics registers the mapper's figures as "metricstream.*",
// labelled source=<source> (metric_stream, cwpoller: each has its own
// Mapper).
func (m *Mapper) RegisterMetrics(reg *telemetry.Registry, source string) {
	l := telemetry.L("source", source)
	reg.CounterFunc("metricstream.datums", "CloudWatch data points mapped to Datadog points, or dropped.", m.datums.Load, l)
	reg.CounterFunc("metricstream.points", "Datadog points the CloudWatch data points became, cache hit ratios included.", m.points.Load, l)
	reg.CounterFunc("metricstream.datums_dropped", "CloudWatch data points dropped by configuration (metrics.streams.pass_other, .drop_namespaces).", m.dropped.Load, l)
	reg.CounterFunc("metricstream.datums_invalid", "CloudWatch data points refused: no namespace, metric name, timestamp or statistics, or a non-finite or negative statistic.", m.invalid.Load, l)
	reg.CounterFunc("metricstream.cache_ratios", "API Gateway cache hit ratios computed from a hit and a miss count.", m.ratios.Load, l)
	reg.CounterFunc("metricstream.cache_unpaired", "Cache hit or miss counts whose other half never came: no ratio computed.", m.join.unpaired.Load, l)
}
