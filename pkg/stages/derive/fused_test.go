package derive_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddhttp"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddmetrics"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
	"github.com/gwpipe/gwpipe/pkg/testkit/natstest"
)

// seriesRefused is a metrics client whose intake refuses the series
// (500, retried) while it accepts the distributions; its wait returns once
// the client had the distributions accepted and the series refused: the
// submission is then stuck retrying the series.
type seriesRefused struct {
	srv               *fakeintake.Server
	client            *ddmetrics.Client
	accepted, refused chan struct{}
	once              [2]sync.Once
}

func newSeriesRefused(t *testing.T) *seriesRefused {
	t.Helper()
	srv, url := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{fleetKey}, Now: func() time.Time { return t0 }})
	require.NoError(t, srv.SetFailure(fakeintake.Failure{Status: 500, Endpoints: []fakeintake.Endpoint{fakeintake.EndpointSeries}}))
	s := &seriesRefused{srv: srv, accepted: make(chan struct{}), refused: make(chan struct{})}
	cfg := ddmetrics.DefaultConfig()
	cfg.APIURL, cfg.APIKey, cfg.Now, cfg.Logger = url, fleetKey, func() time.Time { return t0 }, slog.New(slog.DiscardHandler)
	cfg.Backoff.InitialInterval, cfg.Backoff.MaxInterval = time.Millisecond, 5*time.Millisecond
	cfg.OnResult = func(r ddmetrics.Result) {
		switch {
		case r.Endpoint == string(fakeintake.EndpointSeries) && r.Outcome == ddhttp.Retrying:
			s.once[0].Do(func() { close(s.refused) })
		case r.Endpoint == string(fakeintake.EndpointDistributionPoints) && r.Outcome == ddhttp.Accepted:
			s.once[1].Do(func() { close(s.accepted) })
		}
	}
	c, err := ddmetrics.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	s.client = c
	return s
}

func (s *seriesRefused) wait(t *testing.T) {
	t.Helper()
	for _, ch := range []chan struct{}{s.accepted, s.refused} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("the client never had the distributions accepted and the series refused")
		}
	}
}

// values returns every distribution value the intake accepted, sorted.
func (s *seriesRefused) values() []float64 {
	var vs []float64
	for _, d := range s.srv.Distributions() {
		vs = append(vs, d.Values...)
	}
	slices.Sort(vs)
	return vs
}

// fusedWorker is a worker on NATS running derive (input "enriched") and
// deliver-metrics (input "metrics") fused: derive hands its metric batches
// to deliver-metrics in memory. Retries are an hour apart: only a
// hand-back ends a batch.
func fusedWorker(t *testing.T, natsURL string, d *derive.Deriver, c *ddmetrics.Client, reg *telemetry.Registry) *stage.Runtime {
	t.Helper()
	topology := map[string][]string{"enriched": {derive.Name}, "metrics": {ddmetrics.StageName}, "dlq": {"dlq"}}
	tr, err := stage.NewNATS(context.Background(), stage.NATSConfig{URL: natsURL, Consumers: topology, AckWait: 5 * time.Second}, nil)
	require.NoError(t, err)
	rt, err := stage.New(stage.Config{MaxRetries: 5, InitialInterval: time.Hour, MaxInterval: time.Hour, Topology: topology}, tr, nil, reg)
	require.NoError(t, err)
	require.NoError(t, rt.Add(stage.Stage{Name: derive.Name, Input: "enriched", Output: "metrics", Handler: derive.NewStage(d)}))
	require.NoError(t, rt.Add(stage.Stage{Name: ddmetrics.StageName, Input: "metrics", Handler: ddmetrics.NewStage(c)}))
	require.NoError(t, rt.Add(stage.Stage{Name: "dlq", Input: "dlq", Handler: stage.HandlerFunc(func(context.Context, *record.Batch, stage.Output) error {
		return errors.New("nothing may be dead-lettered here")
	})}))
	require.NoError(t, rt.Start(context.Background()))
	return rt
}

// TestFusedDeliveryLeavesOnlyUndeliveredPointsPending: derive's windows
// go to deliver-metrics in memory; the intake accepts the distributions
// and refuses the series until the flush's time is up. derive keeps only
// the series pending (the points counted lost if the worker stopped now),
// and the next flush sends them alone: every distribution value reaches
// the intake once.
func TestFusedDeliveryLeavesOnlyUndeliveredPointsPending(t *testing.T) {
	t.Parallel()
	intake := newSeriesRefused(t)
	d := newDeriver(t, derive.Config{Now: func() time.Time { return t0 }})
	rt := fusedWorker(t, natstest.Start(t), d, intake.client, telemetry.NewRegistry())
	t.Cleanup(func() { _ = rt.Close() })
	out := rt.Source(derive.Name, "metrics")

	rs := []req{
		{at: t0, method: "GET", route: "/x", status: 200, latMs: 1, integMs: -1, bytes: -1},
		{at: t0, method: "GET", route: "/x", status: 200, latMs: 2, integMs: -1, bytes: -1},
		{at: t0, method: "GET", route: "/x", status: 200, latMs: 3, integMs: -1, bytes: -1},
	}
	require.NoError(t, d.Handle(context.Background(), batchOf(rs...), out))
	ctx, cancel := context.WithCancel(context.Background())
	flushed := make(chan error, 1)
	go func() { flushed <- d.Flush(ctx, out) }()
	intake.wait(t)
	cancel()
	require.Error(t, <-flushed, "the series were not delivered")
	st := d.Stats()
	assert.Equal(t, int64(1), st.PendingPoints, "only the series point remains pending, not the distribution delivered")
	assert.Equal(t, []float64{1, 2, 3}, intake.values())

	intake.srv.ClearFailure()
	require.NoError(t, d.Flush(context.Background(), out))
	assert.Zero(t, d.Stats().PendingPoints)
	assert.Equal(t, []float64{1, 2, 3}, intake.values(), "each distribution value once")
	assert.Equal(t, int64(1), intake.srv.Stats().SeriesPointsAccepted)
}

// TestFusedHandBackLeavesOnlyUndeliveredPoints: on NATS, derive forwards
// a batch's metric points to deliver-metrics in memory; the intake accepts
// the distributions and refuses the series until the hand-back. The worker
// leaves only the series for the next one, which delivers them: every
// distribution value reaches the intake once.
func TestFusedHandBackLeavesOnlyUndeliveredPoints(t *testing.T) {
	t.Parallel()
	natsURL := natstest.Start(t)
	intake := newSeriesRefused(t)
	first := telemetry.NewRegistry()
	rt := fusedWorker(t, natsURL, newDeriver(t, derive.Config{Now: func() time.Time { return t0 }}), intake.client, first)

	// Published through the broker, as a stage of another worker would.
	pubTr, err := stage.NewNATS(context.Background(), stage.NATSConfig{URL: natsURL,
		Consumers: map[string][]string{"enriched": {derive.Name}, "metrics": {ddmetrics.StageName}, "dlq": {"dlq"}}}, nil)
	require.NoError(t, err)
	pub, err := stage.New(stage.Config{}, pubTr, nil, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	ts := t0.Unix() - 20
	b := &record.Batch{ID: "stream", Origin: &record.Origin{Source: "firehose"}, Metrics: []record.Metric{
		{Name: "c", Kind: record.MetricCount, Timestamp: ts, Interval: 10, Value: 1, Tags: []string{"apiid:a"}, Host: "w1"},
		{Name: "c", Kind: record.MetricCount, Timestamp: ts, Interval: 10, Value: 2, Tags: []string{"apiid:b"}, Host: "w1"},
		{Name: "c", Kind: record.MetricCount, Timestamp: ts, Interval: 10, Value: 3, Tags: []string{"apiid:c"}, Host: "w1"},
		{Name: "d", Kind: record.MetricDistribution, Timestamp: ts, Values: []float64{1, 2, 3}, Tags: []string{"apiid:a"}, Host: "w1"},
		{Name: "d", Kind: record.MetricDistribution, Timestamp: ts, Values: []float64{4, 5, 6}, Tags: []string{"apiid:b"}, Host: "w1"},
	}}
	require.NoError(t, pub.Source("decode", "enriched").Emit(context.Background(), b))
	intake.wait(t)
	rt.HandBack()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, rt.Shutdown(ctx))
	assert.Equal(t, int64(3), first.Stage(derive.Name).HandedBack.Load(), "the series points are handed back, not the accepted distributions")
	assert.Zero(t, first.Stage(derive.Name).Lost.Load())

	intake.srv.ClearFailure()
	second := telemetry.NewRegistry()
	rt2 := fusedWorker(t, natsURL, newDeriver(t, derive.Config{Now: func() time.Time { return t0 }, Host: "w2", NoIncarnation: true}), intake.client, second)
	require.NoError(t, intake.srv.WaitSeriesPoints(ctx, 3))
	require.NoError(t, rt2.Shutdown(ctx), "its handler has finished with the batch")
	assert.Equal(t, []float64{1, 2, 3, 4, 5, 6}, intake.values(), "each distribution value once")
	assert.Equal(t, int64(3), intake.srv.Stats().SeriesPointsAccepted)
	assert.Equal(t, int64(3), second.Stage(derive.Name).RecordsIn.Load(), "the next worker got the series alone")
}
