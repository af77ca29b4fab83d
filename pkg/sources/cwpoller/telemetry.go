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
		telemetry.F("query_failures", "GetMetricData queries answered InternalError, Forbidden or incomplete: their metrics are fetched again by the next poll, the rest of the call is delivered.", p.queryFailures.Load),
		telemetry.F("standby", "Polls of a target left to another replica, which held its lease (metrics.poller.state_url shared).", p.standby.Load),
	})
	reg.GaugeFunc("cwpoller.targets_polled", "Accounts and regions this process polls now: all of them, or with a shared metrics.poller.state_url those whose lease it holds.", p.targetsPolled)
	reg.GaugeFunc("cwpoller.metrics_left_out", "Metrics the last listing of each target polled here found beyond the poller's bound of 5,000 per target, and are not polled: whole stages and APIs (dimension sets), the last in order.", p.metricsLeftOut)
	p.mapper.RegisterMetrics(reg, "cwpoller")
}

// metricsLeftOut sums what the targets this process polls now left out of
// their last listing (MaxMetrics); another replica's are its own.
func (p *Poller) metricsLeftOut() int64 {
	var n int64
	for _, t := range p.targets {
		if t.held() {
			n += t.leftOut.Load()
		}
	}
	return n
}

// targetsPolled counts the targets this process polls now.
func (p *Poller) targetsPolled() int64 {
	var n int64
	for _, t := range p.targets {
		if t.held() {
			n++
		}
	}
	return n
}

// held reports whether this process polls t now: always without a lease.
func (t *target) held() bool {
	if t.lease == nil {
		return true
	}
	_, ok := t.lease.Held()
	return ok
}
