package ddmetrics

import "github.com/gwpipe/gwpipe/pkg/telemetry"

// RegisterMetrics registers the client's figures (Stats) as
// "deliver_metrics.*".
func (c *Client) RegisterMetrics(reg *telemetry.Registry) {
	stat := func(f func(Stats) uint64) func() int64 { return func() int64 { return int64(f(c.Stats())) } }
	for _, m := range []struct {
		name, help string
		get        func(Stats) uint64
	}{
		{"points_submitted", "Metric points handed to the metrics client.", func(s Stats) uint64 { return s.Submitted }},
		{"series_accepted", "Series points the metrics API accepted (2xx).", func(s Stats) uint64 { return s.SeriesAccepted }},
		{"values_accepted", "Distribution values the metrics API accepted (2xx).", func(s Stats) uint64 { return s.ValuesAccepted }},
		{"rejected", "Metric points (or parts) refused for good.", func(s Stats) uint64 { return s.Rejected }},
		{"too_old", "Of those, points too old (or too far ahead) for the metrics API when submitted or retried.", func(s Stats) uint64 { return s.TooOld }},
		{"requests", "HTTP requests to the metrics API, every attempt.", func(s Stats) uint64 { return s.Requests }},
		{"retries", "Requests sent again after one failed.", func(s Stats) uint64 { return s.Retries }},
		{"splits", "Payloads split in halves after a 400 or 413.", func(s Stats) uint64 { return s.Splits }},
		{"bytes_sent", "Compressed bytes of the requests accepted.", func(s Stats) uint64 { return s.BytesSent }},
	} {
		reg.CounterFunc("deliver_metrics."+m.name, m.help, stat(m.get))
	}
	reg.GaugeFunc("deliver_metrics.requests_in_flight", "HTTP requests to the metrics API in flight.", func() int64 { return c.Stats().InFlight })
}
