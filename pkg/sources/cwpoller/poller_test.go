package cwpoller

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

const acct = "123456789012"

var (
	petstore = fakeMetric{"AWS/ApiGateway", "Count", [][2]string{{"ApiName", "petstore"}, {"Stage", "prod"}}}
	latency  = fakeMetric{"AWS/ApiGateway", "Latency", [][2]string{{"ApiName", "petstore"}, {"Stage", "prod"}}}
	hits     = fakeMetric{"AWS/ApiGateway", "CacheHitCount", [][2]string{{"ApiName", "petstore"}, {"Stage", "prod"}}}
	misses   = fakeMetric{"AWS/ApiGateway", "CacheMissCount", [][2]string{{"ApiName", "petstore"}, {"Stage", "prod"}}}
)

// everyPeriod answers every statistic of every period with fixed values.
func everyPeriod(m fakeMetric, stat string, ts int64) (float64, bool) {
	switch m.Name + "/" + stat {
	case "Count/Sum":
		return 10, true
	case "CacheHitCount/Sum":
		return 3, true
	case "CacheMissCount/Sum":
		return 1, true
	case "Latency/SampleCount":
		return 10, true
	case "Latency/Sum":
		return 200, true
	case "Latency/Minimum":
		return 2, true
	case "Latency/Maximum":
		return 90, true
	case "Latency/p99":
		return 85, true
	}
	return 0, false
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestPoller(t *testing.T, url string, cfg Config) *Poller {
	t.Helper()
	return newTestPollerOn(t, fakeConfig(url), cfg)
}

// newTestPollerOn is newTestPoller with the AWS configuration given (see
// fakeCloudWatch.inProcess).
func newTestPollerOn(t *testing.T, awsCfg aws.Config, cfg Config) *Poller {
	t.Helper()
	if cfg.Accounts == nil {
		cfg.Accounts = []Target{{acct, "us-east-1"}}
	}
	if cfg.Retry.InitialInterval == 0 {
		cfg.Retry = backoff.ExponentialFullJitter(time.Millisecond, 2*time.Millisecond)
	}
	cfg.RequestsPerSecond, cfg.Burst = 1000, 1000
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	p, err := New(cfg, awsCfg)
	require.NoError(t, err)
	return p
}

const petTags = "tags=apiname:petstore,stage:prod,region:us-east-1,aws_account:123456789012"

// CloudWatch throttles; the poller backs off and retries, and the points
// arrive once.
func TestPollerThrottling(t *testing.T) {
	for _, tt := range []struct {
		name       string
		queryError bool
		throttles  int
	}{
		{"ThrottlingException", false, 1},
		{"query-compatible Throttling code", true, 1},
		{"throttled three times", false, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeCloudWatch{metrics: []fakeMetric{petstore}, value: everyPeriod,
				throttleGet: tt.throttles, throttleList: 1, queryError: tt.queryError}
			p := newTestPoller(t, f.start(t), Config{Backfill: time.Minute})
			var c collector
			now := minute0.Add(time.Minute + 2*time.Minute) // end = minute0+1m
			require.NoError(t, p.PollOnce(context.Background(), now, c.emit))
			assert.Equal(t, []string{"aws.apigateway.count count ts=1700000040 interval=60 value=10 " + petTags}, c.take())
			s := p.Stats()
			assert.Equal(t, int64(tt.throttles+1), s.Throttles)
			assert.Equal(t, int64(tt.throttles+1), s.Retries)
			assert.Equal(t, int64(1), s.Calls)
			assert.Equal(t, int64(tt.throttles+1), s.Pages)
			assert.Len(t, f.requests(), tt.throttles+1)
		})
	}
}

// Throttled beyond MaxAttempts: the poll fails, nothing is emitted, and the
// periods are fetched on the next poll.
func TestPollerThrottlingGivesUp(t *testing.T) {
	f := &fakeCloudWatch{metrics: []fakeMetric{petstore}, value: everyPeriod, throttleGet: 3}
	p := newTestPoller(t, f.start(t), Config{Backfill: time.Minute, MaxAttempts: 3})
	var c collector
	now := minute0.Add(3 * time.Minute)
	err := p.PollOnce(context.Background(), now, c.emit)
	require.ErrorContains(t, err, "GetMetricData")
	require.ErrorContains(t, err, "ThrottlingException")
	assert.Empty(t, c.take())
	assert.Equal(t, int64(1), p.Stats().Failures)

	require.NoError(t, p.PollOnce(context.Background(), now, c.emit))
	assert.Len(t, c.take(), 1)
}

// GetMetricData's limits: at most MaxQueriesPerRequest queries and
// MaxDatapointsPerRequest data points per call, a metric's queries in one
// call, pages followed to the end; windows aligned to the period, Lag
// behind.
func TestPollerLimits(t *testing.T) {
	var metrics []fakeMetric
	for i := range 150 {
		dims := [][2]string{{"ApiName", fmt.Sprintf("api-%03d", i)}, {"Stage", "prod"}}
		metrics = append(metrics, fakeMetric{"AWS/ApiGateway", "Count", dims}, fakeMetric{"AWS/ApiGateway", "Latency", dims})
	}
	f := &fakeCloudWatch{metrics: metrics, value: everyPeriod, pageSize: 700, listPage: 100}
	cfg := Config{Backfill: 5 * time.Minute, Stats: []string{"p99"}, MaxQueriesPerRequest: 500, MaxDatapointsPerRequest: 2000}
	p := newTestPoller(t, f.start(t), cfg)
	var c collector
	now := minute0.Add(2*time.Minute + 17*time.Second) // end = minute0
	require.NoError(t, p.PollOnce(context.Background(), now, c.emit))

	// 150 counts (1 query) + 150 latencies (5 queries) = 900 queries; 5
	// periods each: at most 400 queries per call (2000 data points).
	byCall := map[string][]getRequest{}
	var order []string
	for _, r := range f.requests() {
		k := fmt.Sprint(r.Queries[0].ID, len(r.Queries), r.Queries[len(r.Queries)-1].Metric)
		if _, ok := byCall[k]; !ok {
			order = append(order, k)
		}
		byCall[k] = append(byCall[k], r)
	}
	seen := map[string]int{}
	for _, k := range order {
		pages := byCall[k]
		first := pages[0]
		assert.LessOrEqual(t, len(first.Queries), 400)
		assert.Equal(t, minute0.Add(-5*time.Minute).Unix(), first.Start)
		assert.Equal(t, minute0.Unix(), first.End)
		for i, pg := range pages {
			assert.Equal(t, first.Queries, pg.Queries, "every page repeats the call")
			if i > 0 {
				assert.NotEmpty(t, pg.NextToken)
			}
		}
		for _, q := range first.Queries {
			assert.EqualValues(t, 60, q.Period)
			seen[fmt.Sprint(q.Metric)]++
		}
	}
	assert.Len(t, seen, 300, "every metric polled")
	for m, n := range seen {
		assert.Contains(t, []int{1, 5}, n, "%s: its queries in one call", m)
	}
	assert.Greater(t, p.Stats().Pages, p.Stats().Calls, "pages were followed")
	// Three pages of 100 metrics; a page that timed out on a loaded
	// machine is asked again, never skipped.
	assert.GreaterOrEqual(t, p.Stats().ListCalls, int64(3))

	// Every period once: 150×5 counts, 150×5 latencies of 4 points, the
	// cache ratio not involved.
	got := c.take()
	assert.Len(t, got, 150*5+150*5*4)
}

// The windows: the first poll reaches Backfill back; the next ones fetch
// the periods that settled since, never one twice; after a long stop the
// poller catches up Backfill back at most.
func TestPollerWindows(t *testing.T) {
	f := &fakeCloudWatch{metrics: []fakeMetric{petstore}, value: everyPeriod}
	p := newTestPoller(t, f.start(t), Config{Backfill: 3 * time.Minute, Lag: 2 * time.Minute})
	var c collector
	ctx := context.Background()
	type window struct{ start, end time.Duration } // from minute0
	steps := []struct {
		now  time.Duration // from minute0
		want []window      // GetMetricData windows of this poll
	}{
		{2*time.Minute + 30*time.Second, []window{{-3 * time.Minute, 0}}},
		{2*time.Minute + 50*time.Second, nil}, // nothing settled since
		{3 * time.Minute, []window{{0, time.Minute}}},
		{5*time.Minute + 59*time.Second, []window{{time.Minute, 3 * time.Minute}}},
		{60 * time.Minute, []window{{55 * time.Minute, 58 * time.Minute}}}, // after a stop: Backfill
	}
	seen := map[string]bool{}
	for _, s := range steps {
		before := len(f.requests())
		require.NoError(t, p.PollOnce(ctx, minute0.Add(s.now), c.emit))
		var got []window
		for _, r := range f.requests()[before:] {
			got = append(got, window{time.Unix(r.Start, 0).Sub(minute0), time.Unix(r.End, 0).Sub(minute0)})
		}
		assert.Equal(t, s.want, got, "poll at minute0+%v", s.now)
		for _, pt := range c.take() {
			assert.False(t, seen[pt], "point emitted twice: %s", pt)
			seen[pt] = true
		}
	}
	assert.Len(t, seen, 3+1+2+3)
}

// A failed emit advances nothing: the next poll fetches the same periods.
func TestPollerEmitFailure(t *testing.T) {
	f := &fakeCloudWatch{metrics: []fakeMetric{petstore}, value: everyPeriod}
	p := newTestPoller(t, f.start(t), Config{Backfill: 2 * time.Minute})
	c := collector{fail: 1}
	now := minute0.Add(2 * time.Minute)
	require.ErrorContains(t, p.PollOnce(context.Background(), now, c.emit), "delivery refused")
	assert.Empty(t, c.take())
	require.NoError(t, p.PollOnce(context.Background(), now, c.emit))
	assert.Len(t, c.take(), 2)
	require.NoError(t, p.PollOnce(context.Background(), now, c.emit))
	assert.Empty(t, c.take())
}

// Latency's statistics become the integration's points; the cache hit and
// miss counts of a stage come with their ratio; a shared Mapper names them
// under the configured namespace.
func TestPollerMapping(t *testing.T) {
	f := &fakeCloudWatch{metrics: []fakeMetric{latency, hits, misses}, value: everyPeriod}
	mcfg := metricstream.DefaultConfig()
	mcfg.Namespace = "cloudwatch."
	mapper, err := metricstream.NewMapper(mcfg)
	require.NoError(t, err)
	p := newTestPoller(t, f.start(t), Config{Backfill: time.Minute, Stats: []string{"p99", "p99.9"}, Mapper: mapper})
	var c collector
	require.NoError(t, p.PollOnce(context.Background(), minute0.Add(3*time.Minute), c.emit))
	assert.Equal(t, []string{
		"cloudwatch.apigateway.cache_hit_count count ts=1700000040 interval=60 value=3 " + petTags,
		"cloudwatch.apigateway.cache_hit_ratio gauge ts=1700000040 interval=0 value=0.75 " + petTags,
		"cloudwatch.apigateway.cache_miss_count count ts=1700000040 interval=60 value=1 " + petTags,
		"cloudwatch.apigateway.latency gauge ts=1700000040 interval=0 value=20 " + petTags,
		"cloudwatch.apigateway.latency.maximum gauge ts=1700000040 interval=0 value=90 " + petTags,
		"cloudwatch.apigateway.latency.minimum gauge ts=1700000040 interval=0 value=2 " + petTags,
		"cloudwatch.apigateway.latency.p99 gauge ts=1700000040 interval=0 value=85 " + petTags,
	}, c.take())
	// Counts ask for Sum only; latency for its four statistics and the
	// configured percentiles.
	stats := map[string][]string{}
	for _, q := range f.requests()[0].Queries {
		stats[q.Metric.Name] = append(stats[q.Metric.Name], q.Stat)
	}
	assert.Equal(t, map[string][]string{
		"CacheHitCount":  {"Sum"},
		"CacheMissCount": {"Sum"},
		"Latency":        {"SampleCount", "Sum", "Minimum", "Maximum", "p99", "p99.9"},
	}, stats)
}

// With percentiles off (metrics.streams.percentiles: false), the mapper
// drops every percentile: the poller does not ask for them. It asked for
// p50, p90 and p99 of each latency metric all the same: 3 of Latency's 7
// queries, 6 of a stage's 17 per poll, billed and thrown away.
func TestPollerAsksNoPercentilesTheMapperDrops(t *testing.T) {
	f := &fakeCloudWatch{metrics: []fakeMetric{latency, petstore}, value: everyPeriod}
	mcfg := metricstream.DefaultConfig()
	mcfg.Percentiles = false
	mapper, err := metricstream.NewMapper(mcfg)
	require.NoError(t, err)
	p := newTestPoller(t, f.start(t), Config{Backfill: time.Minute, Mapper: mapper})
	var c collector
	require.NoError(t, p.PollOnce(context.Background(), minute0.Add(3*time.Minute), c.emit))
	assert.Equal(t, []string{
		"aws.apigateway.count count ts=1700000040 interval=60 value=10 " + petTags,
		"aws.apigateway.latency gauge ts=1700000040 interval=0 value=20 " + petTags,
		"aws.apigateway.latency.maximum gauge ts=1700000040 interval=0 value=90 " + petTags,
		"aws.apigateway.latency.minimum gauge ts=1700000040 interval=0 value=2 " + petTags,
	}, c.take())
	stats := map[string][]string{}
	for _, q := range f.requests()[0].Queries {
		stats[q.Metric.Name] = append(stats[q.Metric.Name], q.Stat)
	}
	assert.Equal(t, map[string][]string{
		"Count":   {"Sum"},
		"Latency": {"SampleCount", "Sum", "Minimum", "Maximum"},
	}, stats)
}

// Hit and miss counts are sorted apart (every CacheHitCount key before any
// CacheMissCount), so a stage's two halves often come in different calls.
// When the call with the misses fails to emit, the next poll fetches it
// again: its ratios come with it. They did not: the pairs had been
// completed by the failed call and forgotten, the misses waited for hits
// that were not fetched again, and the stages' ratios were never delivered
// (0 of 2 here).
func TestPollerCacheRatiosOfACallFetchedAgain(t *testing.T) {
	stage := func(name, st string) fakeMetric {
		return fakeMetric{"AWS/ApiGateway", name, [][2]string{{"ApiName", "petstore"}, {"Stage", st}}}
	}
	f := &fakeCloudWatch{value: everyPeriod, metrics: []fakeMetric{
		stage("CacheHitCount", "a"), stage("CacheHitCount", "b"), stage("CacheHitCount", "c"),
		stage("CacheMissCount", "a"), stage("CacheMissCount", "b"), stage("CacheMissCount", "c"),
	}}
	// Four queries a call: the hits and a's miss, then b's and c's misses.
	p := newTestPoller(t, f.start(t), Config{Backfill: time.Minute, MaxQueriesPerRequest: 4, Stats: []string{}})
	var c collector
	calls := 0
	emit := func(ctx context.Context, pts []record.Metric) error {
		if calls++; calls == 2 {
			return fmt.Errorf("delivery refused")
		}
		return c.emit(ctx, pts)
	}
	now := minute0.Add(3 * time.Minute)
	require.ErrorContains(t, p.PollOnce(context.Background(), now, emit), "delivery refused")
	require.NoError(t, p.PollOnce(context.Background(), now, emit))
	var got []string
	for _, pt := range c.take() {
		if strings.Contains(pt, "cache_hit_ratio") {
			got = append(got, pt)
		}
	}
	tags := func(st string) string {
		return "tags=apiname:petstore,stage:" + st + ",region:us-east-1,aws_account:123456789012"
	}
	assert.Equal(t, []string{
		"aws.apigateway.cache_hit_ratio gauge ts=1700000040 interval=0 value=0.75 " + tags("a"),
		"aws.apigateway.cache_hit_ratio gauge ts=1700000040 interval=0 value=0.75 " + tags("b"),
		"aws.apigateway.cache_hit_ratio gauge ts=1700000040 interval=0 value=0.75 " + tags("c"),
	}, got)
	assert.Len(t, f.requests(), 3, "the hits once, the misses of b and c twice")
}

// Run polls at once and then on each tick, until its context ends.
func TestPollerRun(t *testing.T) {
	f := &fakeCloudWatch{metrics: []fakeMetric{petstore}, value: everyPeriod}
	p := newTestPoller(t, f.start(t), Config{Backfill: time.Minute, Now: func() time.Time { return minute0.Add(3 * time.Minute) }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c collector
	done := make(chan error, 1)
	go func() {
		done <- p.Run(ctx, nil, func(ctx context.Context, pts []record.Metric) error {
			defer cancel() // the first poll is enough
			return c.emit(ctx, pts)
		})
	}()
	require.NoError(t, <-done)
	assert.Len(t, c.take(), 1)
}

// Closing stop ends Run after the poll under way: its points are
// delivered and its state advanced, so a restart fetches nothing twice.
func TestPollerRunStopsAfterThePollUnderWay(t *testing.T) {
	f := &fakeCloudWatch{metrics: []fakeMetric{petstore}, value: everyPeriod}
	p := newTestPoller(t, f.start(t), Config{Backfill: time.Minute, Now: func() time.Time { return minute0.Add(3 * time.Minute) }})
	stop := make(chan struct{})
	var c collector
	done := make(chan error, 1)
	go func() {
		done <- p.Run(context.Background(), stop, func(ctx context.Context, pts []record.Metric) error {
			close(stop) // the pipeline stops while the points are on their way
			return c.emit(ctx, pts)
		})
	}()
	require.NoError(t, <-done)
	assert.Len(t, c.take(), 1)
	require.NoError(t, p.PollOnce(context.Background(), minute0.Add(3*time.Minute), c.emit))
	assert.Empty(t, c.take(), "the state was advanced: nothing is fetched twice")
}

// A target whose listing fails does not stop the others.
func TestPollerTargetsIndependent(t *testing.T) {
	f := &fakeCloudWatch{metrics: []fakeMetric{petstore}, value: everyPeriod, throttleList: 2}
	p := newTestPoller(t, f.start(t), Config{Backfill: time.Minute, MaxAttempts: 2, Concurrency: 1,
		Accounts: []Target{{acct, "us-east-1"}, {acct, "eu-west-1"}}})
	var c collector
	err := p.PollOnce(context.Background(), minute0.Add(3*time.Minute), c.emit)
	require.ErrorContains(t, err, "123456789012/us-east-1: list metrics")
	assert.Len(t, c.take(), 1, "the second target was polled")
}

// warnings records the messages of the warnings logged.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, r.Message)
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

// count returns how many warnings began with prefix.
func (w *warnings) count(prefix string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// polled returns the metrics the GetMetricData requests asked for since
// request from, as "Metric dims", sorted and once each.
func polled(f *fakeCloudWatch, from int) []string {
	var out []string
	for _, r := range f.requests()[from:] {
		for _, q := range r.Queries {
			out = append(out, fmt.Sprint(q.Metric.Name, " ", q.Metric.Dims))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Over MaxMetrics, whole dimension sets are polled — every metric of a
// stage or none — in order of API and stage, whatever ListMetrics' order;
// what is left out is counted (cwpoller.metrics_left_out) and logged once
// per listing. The first MaxMetrics keys were kept: keys sort by metric
// name, so 7 of these 10 were every 4XXError and Count and no Latency at
// all (0 of 3 stages' latencies), and nothing counted what was dropped.
func TestPollerMaxMetricsKeepsWholeStages(t *testing.T) {
	set := func(api, stage string) [][2]string {
		if stage == "" {
			return [][2]string{{"ApiName", api}}
		}
		return [][2]string{{"ApiName", api}, {"Stage", stage}}
	}
	var metrics []fakeMetric
	for _, s := range [][2]string{{"beta", "prod"}, {"alpha", "test"}, {"alpha", "prod"}} {
		for _, name := range []string{"Latency", "Count", "4XXError"} {
			metrics = append(metrics, fakeMetric{"AWS/ApiGateway", name, set(s[0], s[1])})
		}
	}
	metrics = append(metrics, fakeMetric{"AWS/ApiGateway", "Count", set("alpha", "")}) // the API-level series
	f := &fakeCloudWatch{metrics: metrics, value: everyPeriod}
	var w warnings
	p := newTestPoller(t, f.start(t), Config{Backfill: time.Minute, MaxMetrics: 7, Stats: []string{},
		ListInterval: 15 * time.Minute, Logger: slog.New(&w)})
	reg := telemetry.NewRegistry()
	p.RegisterMetrics(reg)

	want := []string{
		"4XXError [[ApiName alpha] [Stage prod]]", "4XXError [[ApiName alpha] [Stage test]]",
		"Count [[ApiName alpha] [Stage prod]]", "Count [[ApiName alpha] [Stage test]]", "Count [[ApiName alpha]]",
		"Latency [[ApiName alpha] [Stage prod]]", "Latency [[ApiName alpha] [Stage test]]",
	}
	var c collector
	ctx := context.Background()
	now := minute0.Add(3 * time.Minute)
	for i := range 3 { // three polls, one listing
		from := len(f.requests())
		require.NoError(t, p.PollOnce(ctx, now.Add(time.Duration(i)*time.Minute), c.emit))
		assert.Equal(t, want, polled(f, from), "poll %d: alpha's 7 metrics, beta/prod's 3 left out", i)
	}
	assert.EqualValues(t, 3, p.Stats().LeftOut)
	assert.EqualValues(t, 3, reg.Value("cwpoller.metrics_left_out"))
	assert.Equal(t, 1, w.count("too many metrics"), "logged once per listing, not per poll")

	// Listed again, in another order: the same stages are polled.
	f.mu.Lock()
	slices.Reverse(f.metrics)
	f.mu.Unlock()
	from := len(f.requests())
	require.NoError(t, p.PollOnce(ctx, now.Add(20*time.Minute), c.emit))
	assert.Equal(t, want, polled(f, from))
	assert.Equal(t, 2, f.listCalls)
	assert.Equal(t, 2, w.count("too many metrics"))

	// Fewer metrics listed: nothing left out, nothing said.
	f.mu.Lock()
	f.metrics = f.metrics[:5]
	f.mu.Unlock()
	require.NoError(t, p.PollOnce(ctx, now.Add(40*time.Minute), c.emit))
	assert.Zero(t, reg.Value("cwpoller.metrics_left_out"))
	assert.Equal(t, 2, w.count("too many metrics"))
}

// A GetMetricData call answers each query with its own StatusCode: the
// queries answered InternalError, Forbidden or PartialData with no page
// left fail their metrics alone; the call's other metrics are delivered
// and advance, the failed ones are fetched again, whole, by the next poll
// and counted (cwpoller.query_failures). One failed query failed the
// whole call (up to 500 queries) and the poll: none of its metrics
// advanced (1 of 4 deliverable here, 0 delivered), nor any call after it.
func TestPollerQueryFailuresFailOnlyTheirMetrics(t *testing.T) {
	count := func(stage string) fakeMetric {
		return fakeMetric{"AWS/ApiGateway", "Count", [][2]string{{"ApiName", "petstore"}, {"Stage", stage}}}
	}
	f := &fakeCloudWatch{metrics: []fakeMetric{count("a"), count("b"), count("c"), latency}, value: everyPeriod}
	f.status = func(q fakeQuery) (string, [][2]string) {
		switch {
		case q.Metric.Name == "Count" && q.Metric.Dims[1][1] == "b":
			return "InternalError", [][2]string{{"InternalError", "Internal service error"}}
		case q.Metric.Name == "Count" && q.Metric.Dims[1][1] == "c":
			return "PartialData", nil // and no NextToken: incomplete
		case q.Metric.Name == "Latency" && q.Stat == "p99":
			return "Forbidden", [][2]string{{"Forbidden", "not authorized"}}
		}
		return "", nil
	}
	var w warnings
	p := newTestPoller(t, f.start(t), Config{Backfill: time.Minute, Stats: []string{"p99"}, Logger: slog.New(&w)})
	reg := telemetry.NewRegistry()
	p.RegisterMetrics(reg)
	var c collector
	ctx := context.Background()
	now := minute0.Add(3 * time.Minute)
	require.NoError(t, p.PollOnce(ctx, now, c.emit))
	tags := func(st string) string {
		return "tags=apiname:petstore,stage:" + st + ",region:us-east-1,aws_account:123456789012"
	}
	assert.Equal(t, []string{"aws.apigateway.count count ts=1700000040 interval=60 value=10 " + tags("a")}, c.take(),
		"the good metric delivered; not Latency's statistics that did come back: its points are whole or none")
	assert.EqualValues(t, 3, p.Stats().QueryFailures)
	assert.EqualValues(t, 3, reg.Value("cwpoller.query_failures"))
	assert.Zero(t, p.Stats().Failures, "the poll did not fail")
	assert.Equal(t, 1, w.count("GetMetricData queries failed"), "one line per call")

	// CloudWatch answers again: the three failed metrics' period, and
	// nothing of the one delivered.
	f.mu.Lock()
	f.status = nil
	f.mu.Unlock()
	from := len(f.requests())
	require.NoError(t, p.PollOnce(ctx, now, c.emit))
	assert.Equal(t, []string{
		"Count [[ApiName petstore] [Stage b]]", "Count [[ApiName petstore] [Stage c]]", "Latency [[ApiName petstore] [Stage prod]]",
	}, polled(f, from))
	assert.Equal(t, []string{
		"aws.apigateway.count count ts=1700000040 interval=60 value=10 " + tags("b"),
		"aws.apigateway.count count ts=1700000040 interval=60 value=10 " + tags("c"),
		"aws.apigateway.latency gauge ts=1700000040 interval=0 value=20 " + petTags,
		"aws.apigateway.latency.maximum gauge ts=1700000040 interval=0 value=90 " + petTags,
		"aws.apigateway.latency.minimum gauge ts=1700000040 interval=0 value=2 " + petTags,
		"aws.apigateway.latency.p99 gauge ts=1700000040 interval=0 value=85 " + petTags,
	}, c.take())
	require.NoError(t, p.PollOnce(ctx, now, c.emit))
	assert.Empty(t, c.take(), "every period once")
	assert.EqualValues(t, 3, p.Stats().QueryFailures)
}

// A metric CloudWatch keeps refusing (Forbidden at every poll) is asked
// for at every poll, in a call of its own once it lags, and never holds up
// the others: each poll delivers their new period. The refused query
// failed every poll of the target from the first, its call coming first
// (the oldest start): nothing of the target was delivered again.
func TestPollerForbiddenMetricDoesNotStopTheTarget(t *testing.T) {
	count := func(stage string) fakeMetric {
		return fakeMetric{"AWS/ApiGateway", "Count", [][2]string{{"ApiName", "petstore"}, {"Stage", stage}}}
	}
	f := &fakeCloudWatch{metrics: []fakeMetric{count("a"), count("b")}, value: everyPeriod}
	f.status = func(q fakeQuery) (string, [][2]string) {
		if q.Metric.Dims[1][1] == "b" {
			return "Forbidden", nil
		}
		return "", nil
	}
	p := newTestPoller(t, f.start(t), Config{Backfill: 5 * time.Minute})
	var c collector
	for i := range 4 {
		now := minute0.Add(3*time.Minute + time.Duration(i)*time.Minute)
		assert.NoError(t, p.PollOnce(context.Background(), now, c.emit), "poll %d", i)
		got := c.take()
		want := 1 // the period that settled since
		if i == 0 {
			want = 5 // the backfill
		}
		assert.Len(t, got, want, "poll %d", i)
		for _, pt := range got {
			assert.Contains(t, pt, "stage:a,")
		}
	}
	assert.EqualValues(t, 4, p.Stats().QueryFailures, "b asked for, and refused, at every poll")
	assert.Zero(t, p.Stats().Failures)
}
