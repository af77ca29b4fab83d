package ddlogs

import "github.com/gwpipe/gwpipe/pkg/telemetry"

// RegisterMetrics registers the client's figures (Stats) as
// "deliver_logs.*".
func (c *Client) RegisterMetrics(reg *telemetry.Registry) {
	stat := func(f func(Stats) uint64) func() int64 { return func() int64 { return int64(f(c.Stats())) } }
	for _, m := range []struct {
		name, help string
		get        func(Stats) uint64
	}{
		{"logs_submitted", "Logs handed to the logs intake client.", func(s Stats) uint64 { return s.LogsSubmitted }},
		{"logs_accepted", "Logs the intake accepted (2xx).", func(s Stats) uint64 { return s.LogsAccepted }},
		{"logs_rejected", "Logs the intake refused for good (400/413 on a single log): dead-lettered.", func(s Stats) uint64 { return s.LogsRejected }},
		{"logs_dropped", "Logs not sent again because every caller waiting for them had given up (handed back), or the shutdown gave up on them.", func(s Stats) uint64 { return s.LogsDropped }},
		{"logs_truncated", "Logs truncated to datadog.logs.max_log_bytes.", func(s Stats) uint64 { return s.LogsTruncated }},
		{"payloads", "Payloads sealed.", func(s Stats) uint64 { return s.Payloads }},
		{"requests", "HTTP requests to the intake, every attempt.", func(s Stats) uint64 { return s.Requests }},
		{"retries", "Requests sent again after one failed (network, 401/403, 408, 429, 5xx).", func(s Stats) uint64 { return s.Retries }},
		{"splits", "Payloads split in halves after a 400 or 413.", func(s Stats) uint64 { return s.Splits }},
		{"bytes_accepted", "Uncompressed bytes of the requests accepted.", func(s Stats) uint64 { return s.BytesAccepted }},
		{"bytes_compressed", "Compressed bytes of the requests accepted.", func(s Stats) uint64 { return s.BytesCompressed }},
	} {
		reg.CounterFunc("deliver_logs."+m.name, m.help, stat(m.get))
	}
	reg.GaugeFunc("deliver_logs.pending_payloads", "Sealed payloads waiting for a sender.", func() int64 { return int64(c.Stats().PendingPayloads) })
	reg.GaugeFunc("deliver_logs.requests_in_flight", "HTTP requests to the intake in flight.", func() int64 { return int64(c.Stats().InFlight) })
}
