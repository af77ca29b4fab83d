package cwpoller

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/testkit/moto"
)

// The poller against moto_server's CloudWatch: data points put with
// PutMetricData in two accounts (the second read through an assumed role,
// as the multi-account setup does: moto keeps accounts apart by the
// credentials' access key) and two regions come back from GetMetricData
// with the integration's names, values, timestamps and tags, each period
// once, across polls and across a restart.
func TestPollerMoto(t *testing.T) {
	ctx := context.Background()
	awsCfg := moto.Config(t)

	const own, other = "123456789012", "111111111111" // moto's default account, and one behind a role
	creds := RoleCredentials(sts.NewFromConfig(awsCfg),
		func(account string) string {
			if account == own {
				return "" // the pipeline's own credentials
			}
			return "arn:aws:iam::" + account + ":role/gwpipe-reader"
		}, "")

	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	type put struct {
		target Target
		metric string
		dims   map[string]string
		at     time.Time
		values []float64
	}
	rest := map[string]string{"ApiName": "petstore", "Stage": "prod"}
	puts := []put{
		{Target{own, "us-east-1"}, "Count", rest, t0, []float64{5}},
		{Target{own, "us-east-1"}, "Latency", rest, t0, []float64{10, 20, 30}},
		{Target{own, "us-east-1"}, "CacheHitCount", rest, t0, []float64{3}},
		{Target{own, "us-east-1"}, "CacheMissCount", rest, t0, []float64{1}},
		{Target{own, "us-east-1"}, "Count", rest, t0.Add(time.Minute), []float64{2}},
		{Target{own, "us-east-1"}, "Count", rest, t0.Add(2 * time.Minute), []float64{4}},  // settles later
		{Target{own, "us-east-1"}, "Count", rest, t0.Add(-2 * time.Hour), []float64{100}}, // beyond Backfill
		{Target{own, "eu-west-1"}, "4xx", map[string]string{"ApiId": "a1b2c3d4e5", "Stage": "$default"}, t0, []float64{2}},
		{Target{other, "us-east-1"}, "Count", map[string]string{"ApiName": "orders", "Stage": "v1"}, t0, []float64{9}},
		{Target{other, "us-east-1"}, "5XXError", map[string]string{"ApiName": "orders", "Stage": "v1"}, t0, []float64{1}},
	}
	for _, p := range puts {
		// Dimensions in one order: moto matches a query's dimensions to
		// the data's in order (AWS does not), and a map's order varies.
		var dims []types.Dimension
		for _, k := range slices.Sorted(maps.Keys(p.dims)) {
			dims = append(dims, types.Dimension{Name: aws.String(k), Value: aws.String(p.dims[k])})
		}
		cw := newClient(awsCfg, p.target, creds(p.target.Account))
		_, err := cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{
			Namespace: aws.String("AWS/ApiGateway"),
			MetricData: []types.MetricDatum{{
				MetricName: aws.String(p.metric), Dimensions: dims, Timestamp: aws.Time(p.at), Values: p.values,
			}},
		})
		require.NoError(t, err, "put %s in %s", p.metric, p.target)
	}

	statePath := filepath.Join(t.TempDir(), "cwpoller-state.json")
	newPoller := func() *Poller {
		state, err := NewFileState(statePath)
		require.NoError(t, err)
		p, err := New(Config{
			Accounts:       []Target{{own, "us-east-1"}, {own, "eu-west-1"}, {other, "us-east-1"}},
			Backfill:       30 * time.Minute,
			Stats:          []string{}, // moto computes no percentiles
			CredentialsFor: creds,
			State:          state,
			Logger:         quiet(),
		}, awsCfg)
		require.NoError(t, err)
		return p
	}
	p := newPoller()
	var c collector
	now := t0.Add(2*time.Minute + 2*time.Minute + time.Second) // the periods of t0 and t0+1m have settled

	ts := func(d time.Duration) int64 { return t0.Add(d).Unix() }
	ownTags := "tags=apiname:petstore,stage:prod,region:us-east-1,aws_account:" + own
	require.NoError(t, p.PollOnce(ctx, now, c.emit))
	assert.Equal(t, sorted(
		fmt.Sprintf("aws.apigateway.count count ts=%d interval=60 value=5 %s", ts(0), ownTags),
		fmt.Sprintf("aws.apigateway.count count ts=%d interval=60 value=2 %s", ts(time.Minute), ownTags),
		fmt.Sprintf("aws.apigateway.latency gauge ts=%d interval=0 value=20 %s", ts(0), ownTags),
		fmt.Sprintf("aws.apigateway.latency.maximum gauge ts=%d interval=0 value=30 %s", ts(0), ownTags),
		fmt.Sprintf("aws.apigateway.latency.minimum gauge ts=%d interval=0 value=10 %s", ts(0), ownTags),
		fmt.Sprintf("aws.apigateway.cache_hit_count count ts=%d interval=60 value=3 %s", ts(0), ownTags),
		fmt.Sprintf("aws.apigateway.cache_miss_count count ts=%d interval=60 value=1 %s", ts(0), ownTags),
		fmt.Sprintf("aws.apigateway.cache_hit_ratio gauge ts=%d interval=0 value=0.75 %s", ts(0), ownTags),
		fmt.Sprintf("aws.apigateway.4xx count ts=%d interval=60 value=2 tags=apiid:a1b2c3d4e5,stage:_default,region:eu-west-1,aws_account:%s", ts(0), own),
		fmt.Sprintf("aws.apigateway.count count ts=%d interval=60 value=9 tags=apiname:orders,stage:v1,region:us-east-1,aws_account:%s", ts(0), other),
		fmt.Sprintf("aws.apigateway.5xxerror count ts=%d interval=60 value=1 tags=apiname:orders,stage:v1,region:us-east-1,aws_account:%s", ts(0), other),
	), c.take())

	// The same poll again: nothing was fetched twice.
	require.NoError(t, p.PollOnce(ctx, now, c.emit))
	assert.Empty(t, c.take())

	// A period later: just the period that settled.
	require.NoError(t, p.PollOnce(ctx, now.Add(time.Minute), c.emit))
	assert.Equal(t, []string{fmt.Sprintf("aws.apigateway.count count ts=%d interval=60 value=4 %s", ts(2*time.Minute), ownTags)}, c.take())

	// The state is on disk: a restarted poller fetches nothing again.
	b, err := os.ReadFile(statePath)
	require.NoError(t, err)
	var f stateFile
	require.NoError(t, json.Unmarshal(b, &f))
	assert.Equal(t, t0.Add(3*time.Minute).Unix(),
		f.Periods[Key{Account: own, Region: "us-east-1", Namespace: "AWS/ApiGateway", Metric: "Count", Dimensions: "ApiName=petstore,Stage=prod"}.String()])
	assert.Len(t, f.Periods, 7, "one entry per metric of each target")

	p2 := newPoller()
	require.NoError(t, p2.PollOnce(ctx, now.Add(time.Minute), c.emit))
	require.NoError(t, p2.PollOnce(ctx, now.Add(2*time.Minute), c.emit))
	assert.Empty(t, c.take())
	assert.Zero(t, p2.Stats().Points)
}

func sorted(s ...string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// Over MaxMetrics against moto_server's ListMetrics and GetMetricData:
// whole stages are polled, in order of API and stage, and the rest are
// counted. Cut in key order, the 4 kept of these 6 were both stages'
// 4XXError and Count and the first's Latency.
func TestPollerMotoMaxMetrics(t *testing.T) {
	ctx := context.Background()
	awsCfg := moto.Config(t)
	target := Target{"123456789012", "us-east-1"}
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	cw := newClient(awsCfg, target, nil)
	for _, stage := range []string{"prod", "beta"} {
		dims := []types.Dimension{{Name: aws.String("ApiName"), Value: aws.String("petstore")}, {Name: aws.String("Stage"), Value: aws.String(stage)}}
		_, err := cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{
			Namespace: aws.String("AWS/ApiGateway"),
			MetricData: []types.MetricDatum{
				{MetricName: aws.String("4XXError"), Dimensions: dims, Timestamp: aws.Time(t0), Values: []float64{1}},
				{MetricName: aws.String("Count"), Dimensions: dims, Timestamp: aws.Time(t0), Values: []float64{7}},
				{MetricName: aws.String("Latency"), Dimensions: dims, Timestamp: aws.Time(t0), Values: []float64{10, 30}},
			},
		})
		require.NoError(t, err)
	}
	p, err := New(Config{Accounts: []Target{target}, Backfill: 30 * time.Minute, Stats: []string{}, MaxMetrics: 4, Logger: quiet()}, awsCfg)
	require.NoError(t, err)
	var c collector
	require.NoError(t, p.PollOnce(ctx, t0.Add(3*time.Minute+time.Second), c.emit))
	tags := "tags=apiname:petstore,stage:beta,region:us-east-1,aws_account:123456789012"
	ts := t0.Unix()
	assert.Equal(t, sorted(
		fmt.Sprintf("aws.apigateway.4xxerror count ts=%d interval=60 value=1 %s", ts, tags),
		fmt.Sprintf("aws.apigateway.count count ts=%d interval=60 value=7 %s", ts, tags),
		fmt.Sprintf("aws.apigateway.latency gauge ts=%d interval=0 value=20 %s", ts, tags),
		fmt.Sprintf("aws.apigateway.latency.maximum gauge ts=%d interval=0 value=30 %s", ts, tags),
		fmt.Sprintf("aws.apigateway.latency.minimum gauge ts=%d interval=0 value=10 %s", ts, tags),
	), c.take(), "stage beta whole (before prod in order), prod left out")
	assert.EqualValues(t, 3, p.Stats().LeftOut)
}
