package ddmetrics_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage/stagetest"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddhttp"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddmetrics"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
	"github.com/gwpipe/gwpipe/pkg/testkit/natstest"
)

// partialBatch is a window's points: 3 series points, 2 distributions of 3
// values each.
func partialBatch() *record.Batch {
	return &record.Batch{ID: "window", Origin: &record.Origin{Source: "derive"}, Metrics: []record.Metric{
		count("c", 1, "apiid:a"), count("c", 2, "apiid:b"), count("c", 3, "apiid:c"),
		dist("d", []float64{1, 2, 3}, "apiid:a"), dist("d", []float64{4, 5, 6}, "apiid:b"),
	}}
}

// halfDelivered watches a client's attempts while the intake refuses
// one kind (failing): its wait returns once the client has had the other
// kind accepted and the failing one refused at least once, the submission
// then being stuck retrying the failing kind. The client's own word, not the
// intake's: a payload the intake recorded may not be known accepted yet.
type halfDelivered struct {
	accepted, refused chan struct{}
	once              [2]sync.Once
}

func newHalfDelivered(failing fakeintake.Endpoint) (*halfDelivered, func(*ddmetrics.Config)) {
	h := &halfDelivered{accepted: make(chan struct{}), refused: make(chan struct{})}
	return h, func(cfg *ddmetrics.Config) {
		cfg.OnResult = func(r ddmetrics.Result) {
			switch {
			case r.Endpoint == string(failing) && r.Outcome == ddhttp.Retrying:
				h.once[0].Do(func() { close(h.refused) })
			case r.Endpoint != string(failing) && r.Outcome == ddhttp.Accepted:
				h.once[1].Do(func() { close(h.accepted) })
			}
		}
	}
}

func (h *halfDelivered) wait(t *testing.T) {
	t.Helper()
	for _, ch := range []chan struct{}{h.accepted, h.refused} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("the client never had one kind accepted and the other refused")
		}
	}
}

// deliverMetrics starts a runtime on tr with the deliver-metrics stage
// around c and dead on the dead-letter topic. Retries are an hour apart:
// only a hand-back ends a batch.
func deliverMetrics(t *testing.T, tr stage.Transport, reg *telemetry.Registry, c *ddmetrics.Client, dead stage.HandlerFunc) *stage.Runtime {
	t.Helper()
	rt, err := stage.New(stage.Config{MaxRetries: 5, InitialInterval: time.Hour, MaxInterval: time.Hour}, tr, nil, reg)
	require.NoError(t, err)
	require.NoError(t, rt.Add(stage.Stage{Name: ddmetrics.StageName, Input: "metrics", Handler: ddmetrics.NewStage(c)}))
	require.NoError(t, rt.Add(stage.Stage{Name: "dlq", Input: "dlq", Handler: dead}))
	require.NoError(t, rt.Start(context.Background()))
	return rt
}

// handBackHalfDelivered emits partialBatch, waits until half of it is
// delivered and hands back; it returns a context bounding the rest of the
// test.
func handBackHalfDelivered(t *testing.T, rt *stage.Runtime, half *halfDelivered) context.Context {
	t.Helper()
	require.NoError(t, rt.Source("derive", "metrics").Emit(context.Background(), partialBatch()))
	half.wait(t)
	rt.HandBack()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestSubmissionEndedEarlySaysWhatWasNotDelivered: series and distribution
// payloads go in parallel; when the context ends while one kind is
// refused, the error lists exactly the points of that kind, not those the
// intake accepted.
func TestSubmissionEndedEarlySaysWhatWasNotDelivered(t *testing.T) {
	t.Parallel()
	for _, failing := range []fakeintake.Endpoint{fakeintake.EndpointSeries, fakeintake.EndpointDistributionPoints} {
		t.Run(string(failing), func(t *testing.T) {
			t.Parallel()
			srv, url := intake(t)
			require.NoError(t, srv.SetFailure(fakeintake.Failure{Status: 500, Endpoints: []fakeintake.Endpoint{failing}}))
			half, watch := newHalfDelivered(failing)
			c := newClient(t, url, watch)
			ms := partialBatch().Metrics
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				_, err := c.Submit(ctx, ms)
				done <- err
			}()
			half.wait(t)
			cancel()
			err := <-done
			require.ErrorIs(t, err, context.Canceled)
			undelivered, ok := ddmetrics.Undelivered(err)
			require.True(t, ok, "the error says what was not delivered: %v", err)
			want := ms[3:]
			if failing == fakeintake.EndpointSeries {
				want = ms[:3]
			}
			assert.Equal(t, want, undelivered)
		})
	}
}

// TestHandBackCountsOnlyUndeliveredPointsLost: a window's batch (no source
// to hand back to) whose series or distributions the intake refuses until
// the hand-back: only the refused kind is counted lost, not the whole
// batch, and nothing is dead-lettered.
func TestHandBackCountsOnlyUndeliveredPointsLost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		failing fakeintake.Endpoint
		lost    int64
	}{{fakeintake.EndpointSeries, 3}, {fakeintake.EndpointDistributionPoints, 2}} {
		t.Run(string(tc.failing), func(t *testing.T) {
			t.Parallel()
			srv, url := intake(t)
			require.NoError(t, srv.SetFailure(fakeintake.Failure{Status: 500, Endpoints: []fakeintake.Endpoint{tc.failing}}))
			reg := telemetry.NewRegistry()
			var dead stagetest.Batches
			half, watch := newHalfDelivered(tc.failing)
			rt := deliverMetrics(t, stage.NewMemory(nil), reg, newClient(t, url, watch), func(_ context.Context, in *record.Batch, _ stage.Output) error {
				dead.Add(in)
				return nil
			})
			ctx := handBackHalfDelivered(t, rt, half)
			require.NoError(t, rt.Drain(ctx))
			require.NoError(t, rt.Shutdown(ctx))
			st := reg.Stage(ddmetrics.StageName)
			assert.Equal(t, tc.lost, st.Lost.Load(), "only the points the intake did not accept are lost")
			assert.Zero(t, st.HandedBack.Load())
			assert.Zero(t, dead.Records(), "nothing handed back is dead-lettered")
		})
	}
}

// TestBrokerRedeliversOnlyUndeliveredPoints: on NATS, the worker handing
// back a batch whose distributions the intake accepted and whose series it
// refused leaves only the series for the next worker, which delivers them
// once the intake is back: every distribution value reaches the intake
// exactly once.
func TestBrokerRedeliversOnlyUndeliveredPoints(t *testing.T) {
	t.Parallel()
	natsURL := natstest.Start(t)
	srv, url := intake(t)
	require.NoError(t, srv.SetFailure(fakeintake.Failure{Status: 500, Endpoints: []fakeintake.Endpoint{fakeintake.EndpointSeries}}))
	half, watch := newHalfDelivered(fakeintake.EndpointSeries)
	worker := func(reg *telemetry.Registry, mod func(*ddmetrics.Config)) *stage.Runtime {
		tr, err := stage.NewNATS(context.Background(), stage.NATSConfig{URL: natsURL,
			Consumers: map[string][]string{"metrics": {ddmetrics.StageName}, "dlq": {"dlq"}}, AckWait: 5 * time.Second}, nil)
		require.NoError(t, err)
		return deliverMetrics(t, tr, reg, newClient(t, url, mod), func(context.Context, *record.Batch, stage.Output) error {
			return errors.New("nothing may be dead-lettered here")
		})
	}
	first := telemetry.NewRegistry()
	rt := worker(first, watch)
	ctx := handBackHalfDelivered(t, rt, half)
	require.NoError(t, rt.Shutdown(ctx))
	assert.Equal(t, int64(3), first.Stage(ddmetrics.StageName).HandedBack.Load(), "the series points are handed back, not the accepted distributions")
	assert.Zero(t, first.Stage(ddmetrics.StageName).Lost.Load())

	srv.ClearFailure()
	second := telemetry.NewRegistry()
	rt2 := worker(second, nil)
	require.NoError(t, srv.WaitSeriesPoints(ctx, 3))
	require.NoError(t, rt2.Shutdown(ctx), "its handler has finished with the batch")
	var values []float64
	for _, d := range srv.Distributions() {
		values = append(values, d.Values...)
	}
	slices.Sort(values)
	assert.Equal(t, []float64{1, 2, 3, 4, 5, 6}, values, "each distribution value once")
	assert.Equal(t, int64(3), srv.Stats().SeriesPointsAccepted)
	assert.Equal(t, int64(3), second.Stage(ddmetrics.StageName).RecordsIn.Load(), "the next worker got the series alone")
}
