package ddmetrics

import "github.com/gwpipe/gwpipe/pkg/telemetry"

// RegisterMetrics registers the client's figures (Stats) as
// "deliver_metrics.*".
func (c *Client) RegisterMetrics(reg *telemetry.Registry) {
	stat := func(f func(Stats) uint64) func() int64 { return func() int64 { return int64(f(c.Stats())) } }
	reg.CounterFuncs("deliver_metrics.", []telemetry.Func{
		telemetry.F("points_submitted", "Metric points handed to the metrics client.", stat(func(s Stats) uint64 { return s.Submitted })),
		telemetry.F("series_accepted", "Series points the metrics API accepted (2xx).", stat(func(s Stats) uint64 { return s.SeriesAccepted })),
		telemetry.F("values_accepted", "Distribution values the metrics API accepted (2xx).", stat(func(s Stats) uint64 { return s.ValuesAccepted })),
		telemetry.F("rejected", "Metric points (or parts) refused for good.", stat(func(s Stats) uint64 { return s.Rejected })),
		telemetry.F("too_old", "Of those, points too old (or too far ahead) for the metrics API when submitted or retried.", stat(func(s Stats) uint64 { return s.TooOld })),
		telemetry.F("requests", "HTTP requests to the metrics API, every attempt.", stat(func(s Stats) uint64 { return s.Requests })),
		telemetry.F("retries", "Requests sent again after one failed.", stat(func(s Stats) uint64 { return s.Retries })),
		telemetry.F("splits", "Payloads split in halves after a 400 or 413.", stat(func(s Stats) uint64 { return s.Splits })),
		telemetry.F("bytes_sent", "Compressed bytes of the requests accepted.", stat(func(s Stats) uint64 { return s.BytesSent })),
	})
	reg.GaugeFunc("deliver_metrics.requests_in_flight", "HTTP requests to the metrics API in flight.", func() int64 { return c.Stats().InFlight })
}
