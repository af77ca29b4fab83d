package pipeline

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

// TestMetricStreamRecordsBesideLogs sends CloudWatch metric-stream records
// (JSON output format) in the same Firehose request as log records: the
// logs reach the logs intake, the points reach the metrics API under the
// AWS integration's names with their own timestamps, and malformed lines
// (one cut short before it names its metric) are dead-lettered without
// holding anything back, never delivered as logs.
func TestMetricStreamRecordsBesideLogs(t *testing.T) {
	h := start(t)
	ts := time.Now().Add(-3 * time.Minute).Truncate(time.Minute)
	line := func(metric, unit string, sum, count float64) string {
		return fmt.Sprintf(`{"metric_stream_name":"gwpipe","account_id":"123456789012","region":"us-east-1","namespace":"AWS/ApiGateway",`+
			`"metric_name":%q,"dimensions":{"ApiName":"petstore","Stage":"prod"},"timestamp":%d,"value":{"max":%g,"min":0,"sum":%g,"count":%g},"unit":%q}`,
			metric, ts.UnixMilli(), sum, sum, count, unit)
	}
	stream := line("CacheHitCount", "Count", 30, 60) + "\n" + line("CacheMissCount", "Count", 10, 60) + "\n" +
		line("Latency", "Milliseconds", 420, 21) + "\n" + `{"metric_stream_name":"gwpipe","namespace":` + "\n" +
		// Cut before its metric is named: still a datum, not a log line.
		`{"metric_stream_name":"gwpipe","account_id":"1234` + "\n"
	status, resp := firehoseRequest(t, h.url, "mixed-metrics", recordsBody("mixed-metrics", gz(envelope("40", "41")), []byte(stream)), nil)
	require.Equal(t, http.StatusOK, status, "%v", resp)

	assert.Len(t, h.intake.Logs(), 2, "the logs of the same request are delivered")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	want := map[string]float64{"aws.apigateway.cache_hit_count": 30, "aws.apigateway.cache_miss_count": 10, "aws.apigateway.latency": 20}
	got := map[string]fakeintake.SeriesPoint{}
	require.NoError(t, waitFor(ctx, func() bool {
		for _, p := range h.intake.Series() {
			got[p.Metric] = p
		}
		for name := range want {
			if _, ok := got[name]; !ok {
				return false
			}
		}
		return true
	}), "metric-stream points reach the metrics API; got %v", got)
	for name, v := range want {
		p := got[name]
		assert.Equal(t, v, p.Value, name)
		assert.Equal(t, ts.Unix(), p.Timestamp, "%s keeps its own timestamp", name)
		assert.Contains(t, p.Tags, "apiname:petstore", name)
		assert.Contains(t, p.Tags, "stage:prod", name)
		assert.Contains(t, p.Tags, "aws_account:123456789012", name)
		assert.Contains(t, p.Tags, "region:us-east-1", name)
	}
	ratio, ok := got["aws.apigateway.cache_hit_ratio"]
	require.True(t, ok, "the cache hit ratio is derived from the hit and miss counts")
	assert.InDelta(t, 0.75, ratio.Value, 1e-9)

	var reasons []string
	for _, e := range readDLQ(t, h.dlqDir) {
		reasons = append(reasons, e.Reason)
	}
	require.Len(t, reasons, 2, "the malformed lines are dead-lettered alone")
	for _, r := range reasons {
		assert.Contains(t, r, "metric stream")
	}
}
