package ddmetrics

import (
	"fmt"
	"math"
	"time"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// submitDogStatsD writes ms to the Agent. DogStatsD is fire and forget: a
// point handed to the socket counts as submitted, and the Agent's own
// limits apply:
//
//   - counts go as CountWithTimestamp (the `|T` field), which the Agent
//     forwards without aggregating (Agent 7.40+, dogstatsd_no_aggregation_pipeline,
//     on by default), so event-time windows survive; values are rounded to
//     integers. Rates go as counts of rate × interval, gauges as
//     GaugeWithTimestamp.
//   - distributions go as Distribution values, which carry no timestamp:
//     the Agent files them under the time it receives them, not the window's.
//     Replayed or late windows therefore land "now" in DogStatsD mode.
//   - the point's host travels as a host:<name> tag, which the Agent turns
//     into the point's hostname, so workers sharing an Agent still write
//     distinct points.
//
// Values are packed per context by the client (extended client-side
// aggregation, no sampling), then flushed before Submit returns.
func (c *Client) submitDogStatsD(ms []record.Metric) ([]Rejection, error) {
	now := c.cfg.Now()
	sub := &submission{c: c, ms: ms}
	for i := range ms {
		if !sub.admit(i, now) {
			continue
		}
		m := &ms[i]
		// A fresh slice per point: the client may queue it.
		tags := m.Tags[:len(m.Tags):len(m.Tags)]
		if m.Host != "" {
			tags = append(tags, "host:"+m.Host)
		}
		ts := time.Unix(m.Timestamp, 0)
		var err error
		switch m.Kind {
		case record.MetricCount:
			err = c.sd.CountWithTimestamp(m.Name, int64(math.Round(m.Value)), tags, 1, ts)
		case record.MetricRate:
			err = c.sd.CountWithTimestamp(m.Name, int64(math.Round(m.Value*float64(max(m.Interval, 1)))), tags, 1, ts)
		case record.MetricGauge:
			err = c.sd.GaugeWithTimestamp(m.Name, m.Value, tags, 1, ts)
		case record.MetricDistribution:
			for _, v := range m.Values {
				if !finite(v) {
					continue
				}
				if err = c.sd.Distribution(m.Name, v, tags, 1); err != nil {
					break
				}
			}
		}
		if err != nil {
			sub.reject(part{idx: i, hi: len(m.Values)}, fmt.Sprintf("dogstatsd: %v", err))
			continue
		}
		if m.Kind == record.MetricDistribution {
			c.n.valuesAccepted.Add(uint64(len(m.Values)))
		} else {
			c.n.seriesAccepted.Add(1)
		}
	}
	if err := c.sd.Flush(); err != nil {
		return sub.rejected, fmt.Errorf("ddmetrics: flush dogstatsd client: %w", err)
	}
	return sub.rejected, nil
}
