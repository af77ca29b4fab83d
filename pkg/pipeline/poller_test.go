package pipeline

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwschemas "github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/sources/cwpoller"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
	"github.com/gwpipe/gwpipe/pkg/testkit/moto"
)

// putPetstore puts data points of the API petstore's stage prod into
// CloudWatch at awsCfg (moto), in the JSON 1.0 protocol that moto reads
// (not the SDK's default CBOR).
func putPetstore(t *testing.T, awsCfg aws.Config, data ...types.MetricDatum) {
	t.Helper()
	cw := cloudwatch.NewFromConfig(awsCfg, func(o *cloudwatch.Options) {
		o.Protocol = awsjson.New10(cwschemas.GraniteServiceVersion20100801)
	})
	dims := []types.Dimension{{Name: aws.String("ApiName"), Value: aws.String("petstore")}, {Name: aws.String("Stage"), Value: aws.String("prod")}}
	for i := range data {
		data[i].Dimensions = dims
	}
	_, err := cw.PutMetricData(context.Background(), &cloudwatch.PutMetricDataInput{Namespace: aws.String("AWS/ApiGateway"), MetricData: data})
	require.NoError(t, err)
}

// TestCloudWatchPollerSource runs the pipeline with metrics.poller against
// moto's CloudWatch: API Gateway's metrics put with PutMetricData reach the
// metrics API under the integration's names, with their own timestamps,
// and a second run of the pipeline on the same state file fetches nothing
// twice.
func TestCloudWatchPollerSource(t *testing.T) {
	ctx := context.Background()
	at := time.Now().Add(-6 * time.Minute).Truncate(time.Minute)
	putPetstore(t, moto.Config(t),
		types.MetricDatum{MetricName: aws.String("CacheHitCount"), Timestamp: aws.Time(at), Values: []float64{6}},
		types.MetricDatum{MetricName: aws.String("CacheMissCount"), Timestamp: aws.Time(at), Values: []float64{2}})

	state := filepath.Join(t.TempDir(), "poller.json")
	run := func() *harness {
		return start(t, func(c *config.Config) {
			c.Metrics.Poller.Accounts = []cwpoller.Target{{Account: "123456789012", Region: "us-east-1"}}
			c.Metrics.Poller.Interval = time.Second
			c.Metrics.Poller.StateFile = state
		})
	}
	h := run()
	want := map[string]float64{"aws.apigateway.cache_hit_count": 6, "aws.apigateway.cache_miss_count": 2}
	got := map[string]fakeintake.SeriesPoint{}
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, waitFor(waitCtx, func() bool {
		for _, p := range h.intake.Series() {
			got[p.Metric] = p
		}
		return len(got) >= len(want)
	}), "the polled points reach the metrics API: %v", got)
	for name, v := range want {
		assert.Equal(t, v, got[name].Value, name)
		assert.Equal(t, at.Unix(), got[name].Timestamp, name)
		assert.Contains(t, got[name].Tags, "apiname:petstore", name)
		assert.Contains(t, got[name].Tags, "aws_account:123456789012", name)
	}
	h.shutdown(t)

	// A restarted pipeline on the same state fetches no period twice.
	h2 := run()
	ctx2, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	err := h2.intake.Wait(ctx2, func(s fakeintake.Stats) bool { return s.SeriesPointsAccepted > 0 })
	assert.ErrorIs(t, err, context.DeadlineExceeded, "nothing polled again: %v", h2.intake.Series())
}
