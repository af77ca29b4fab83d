package cwpoller

import "github.com/gwpipe/gwpipe/pkg/telemetry"

// RegisterMetrics registers the poller's figures as "cwpoller.*", and its
// Mapper's as "metricstream.*" labelled source=cwpoller.
func (p *Poller) RegisterMetrics(reg *telemetry.Registry) {
	for _, m := range []struct {
		name, help string
		n          interface{ Load() int64 }
	}{
		{"cwpoller.polls", "Polls of an account and region.", &p.polls},
		{"cwpoller.failures", "Polls that failed (their periods are fetched again by the next one).", &p.failures},
		{"cwpoller.calls", "GetMetricData calls (batches of queries).", &p.calls},
		{"cwpoller.pages", "GetMetricData requests, pagination included.", &p.pages},
		{"cwpoller.list_calls", "ListMetrics requests.", &p.listCalls},
		{"cwpoller.throttles", "CloudWatch requests throttled.", &p.throttles},
		{"cwpoller.retries", "CloudWatch requests sent again.", &p.retries},
		{"cwpoller.points", "Datadog points the polls emitted.", &p.points},
	} {
		reg.CounterFunc(m.name, m.help, m.n.Load)
	}
	p.mapper.RegisterMetrics(reg, "cwpoller")
}
