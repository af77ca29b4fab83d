package apigw

import "github.com/gwpipe/gwpipe/pkg/telemetry"

// RegisterMetrics registers the correlator's figures as "correlator.*".
func (c *Correlator) RegisterMetrics(reg *telemetry.Registry) {
	reg.GaugeFunc("correlator.open_requests", "Requests whose execution-log lines are being folded now.", func() int64 { return int64(c.Len()) })
	reg.CounterFunc("correlator.completed", "Request summaries of requests whose last execution-log line came.", c.completed.Load)
	reg.CounterFunc("correlator.expired", "Request summaries emitted partial because no line came for parse.correlation.max_age.", c.expired.Load)
	reg.CounterFunc("correlator.evicted", "Request summaries emitted partial to make room (parse.correlation.max_open requests open).", c.evicted.Load)
	reg.CounterFunc("correlator.ignored", "Execution-log lines that only follow a request's completion and came after it.", c.ignored.Load)
	reg.CounterFunc("correlator.late_lines", "Execution-log lines of a request summarised less than parse.correlation.max_age before, which came after its summary: delivered, folded into no second summary.", c.late.Load)
	reg.GaugeFunc("correlator.recent_requests", "Ids of requests summarised within parse.correlation.max_age, remembered so that their late lines open no second request.", func() int64 { return int64(c.Recent()) })
}
