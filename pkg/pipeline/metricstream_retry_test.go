package pipeline

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

// TestMetricStreamPointsOnceThroughFirehoseRetries: metric-stream records
// of one Firehose request, delivered in part while the metrics API fails,
// then sent again by Firehose under the same request id until it is
// answered 200: every stage's point reaches the intake exactly once (the
// records delivered before are not sent again).
func TestMetricStreamPointsOnceThroughFirehoseRetries(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.Sources.Firehose.AckTimeout = 300 * time.Millisecond
		c.Sources.Firehose.RecordsPerBatch = 1
		c.Pipeline.Runtime.MaxInFlight = 1
	})
	require.NoError(t, h.intake.SetFailure(fakeintake.Failure{Status: 500}))
	ts := time.Now().Add(-3 * time.Minute).Truncate(time.Minute)
	const records = 120
	var datas [][]byte
	for r := range records {
		datas = append(datas, []byte(fmt.Sprintf(`{"metric_stream_name":"s","account_id":"123456789012","region":"us-east-1","namespace":"AWS/ApiGateway","metric_name":"Count","dimensions":{"ApiName":"petstore","Stage":"s%03d"},"timestamp":%d,"value":{"max":1,"min":1,"sum":%d,"count":%d},"unit":"Count"}`, r, ts.UnixMilli(), r+1, r+1)))
	}
	body := recordsBody("partly", datas...)
	status, _ := firehoseRequest(t, h.url, "partly", body, nil)
	require.Equal(t, http.StatusServiceUnavailable, status)
	h.intake.ClearFailure()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		status, _ = firehoseRequest(t, h.url, "partly", body, nil)
		if status == http.StatusOK {
			break
		}
		require.NoError(t, ctx.Err())
	}
	seen := map[string]int{}
	for _, p := range h.intake.Series() {
		seen[fmt.Sprint(p.Tags)]++
	}
	twice := map[string]int{}
	for k, v := range seen {
		if v != 1 {
			twice[k] = v
		}
	}
	assert.Len(t, seen, records, "one series per stage")
	assert.Empty(t, twice, "series points delivered more than once, by tags")
	h.shutdown(t)
}
