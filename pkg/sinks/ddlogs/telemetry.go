package ddlogs

import "github.com/gwpipe/gwpipe/pkg/telemetry"

// RegisterMetrics registers the client's figures (Stats) as
// "deliver_logs.*".
func (c *Client) RegisterMetrics(reg *telemetry.Registry) {
	stat := func(f func(Stats) uint64) func() int64 { return func() int64 { return int64(f(c.Stats())) } }
	reg.CounterFuncs("deliver_logs.", []telemetry.Func{
		telemetry.F("logs_submitted", "Logs handed to the logs intake client.", stat(func(s Stats) uint64 { return s.LogsSubmitted })),
		telemetry.F("logs_accepted", "Logs the intake accepted (2xx).", stat(func(s Stats) uint64 { return s.LogsAccepted })),
		telemetry.F("logs_rejected", "Logs the intake refused for good (400/413 on a single log): dead-lettered.", stat(func(s Stats) uint64 { return s.LogsRejected })),
		telemetry.F("logs_dropped", "Logs not sent again because every caller waiting for them had given up (handed back), or the shutdown gave up on them.", stat(func(s Stats) uint64 { return s.LogsDropped })),
		telemetry.F("logs_truncated", "Logs truncated to datadog.logs.max_log_bytes.", stat(func(s Stats) uint64 { return s.LogsTruncated })),
		telemetry.F("payloads", "Payloads sealed.", stat(func(s Stats) uint64 { return s.Payloads })),
		telemetry.F("requests", "HTTP requests to the intake, every attempt.", stat(func(s Stats) uint64 { return s.Requests })),
		telemetry.F("retries", "Requests sent again after one failed (network, 401/403, 408, 429, 5xx).", stat(func(s Stats) uint64 { return s.Retries })),
		telemetry.F("splits", "Payloads split in halves after a 400 or 413.", stat(func(s Stats) uint64 { return s.Splits })),
		telemetry.F("bytes_accepted", "Uncompressed bytes of the requests accepted.", stat(func(s Stats) uint64 { return s.BytesAccepted })),
		telemetry.F("bytes_compressed", "Compressed bytes of the requests accepted.", stat(func(s Stats) uint64 { return s.BytesCompressed })),
	})
	reg.GaugeFuncs("deliver_logs.", []telemetry.Func{
		telemetry.F("pending_payloads", "Sealed payloads waiting for a sender.", func() int64 { return int64(c.Stats().PendingPayloads) }),
		telemetry.F("requests_in_flight", "HTTP requests to the intake in flight.", func() int64 { return int64(c.Stats().InFlight) }),
	})
}
