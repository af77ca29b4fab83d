package cwpoller

import "github.com/gwpipe/gwpipe/pkg/telemetry"

// RegisterMetrics registers the poller's figures as "cwpoller.*", and its
// Mapper's as "metricstream.*" labelled source=cwpoller.
func (p *Poller) RegisterMetrics(reg *telemetry.Registry) {
	reg.CounterFuncs("cwpoller.", []telemetry.Func{
		telemetry.F("polls", "Polls of an account and region.", p.polls.Load),
		telemetry.F("failures", "Polls that failed (their periods are fetched again by the next one).", p.failures.Load),
		telemetry.F("calls", "GetMetricData calls (batches of queries).", p.calls.Load),
		telemetry.F("pages", "GetMetricData requests, pagination included.", p.pages.Load),
		telemetry.F("list_calls", "ListMetrics requests.", p.listCalls.Load),
		telemetry.F("throttles", "CloudWatch requests throttled.", p.throttles.Load),
		telemetry.F("retries", "CloudWatch requests sent again.", p.retries.Load),
		telemetry.F("points", "Datadog points the polls emitted.", p.points.Load),
		telemetry.F("standby", "Polls of a target left to another replica, which held its lease (metrics.poller.state_url shared).", p.standby.Load),
	})
	reg.GaugeFunc("cwpoller.targets_polled", "Accounts and regions this process polls now: all of them, or with a shared metrics.poller.state_url those whose lease it holds.", p.targetsPolled)
	p.mapper.RegisterMetrics(reg, "cwpoller")
}

// targetsPolled counts the targets this process polls now.
func (p *Poller) targetsPolled() int64 {
	var n int64
	for _, t := range p.targets {
		if t.lease == nil {
			n++
		} else if _, held := t.lease.Held(); held {
			n++
		}
	}
	return n
}
