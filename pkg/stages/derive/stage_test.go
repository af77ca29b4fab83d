package derive_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage/stagetest"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeclock"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

type handlerSink struct{ sink }

func (h *handlerSink) Handle(ctx context.Context, in *record.Batch, _ stage.Output) error {
	return h.Emit(ctx, in)
}

// TestStageRuntimeWiring runs derive and deliver-metrics on the stage
// runtime (memory transport) beside a stand-in log delivery: the source is
// acknowledged once its records are aggregated, without waiting for the
// window; a clean shutdown (drain, Flush through the derive stage's output,
// drain) delivers every open window to the intake.
func TestStageRuntimeWiring(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0.Add(3 * time.Second))
	srv, url := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{fleetKey}, Now: clk.Now})
	reg := telemetry.NewRegistry()
	rt, err := stage.New(stage.Config{InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond}, stage.NewMemory(nil), nil, reg)
	require.NoError(t, err)
	d, err := derive.New(derive.Config{Now: clk.Now, Host: "w1", NoIncarnation: true}, reg)
	require.NoError(t, err)
	logs, dead := &handlerSink{}, &handlerSink{}
	dm := newDelivery(t, url, clk.Now)
	require.NoError(t, rt.Add(stage.Stage{Name: "derive", Input: "enriched", Output: "metrics", Handler: d}))
	require.NoError(t, rt.Add(stage.Stage{Name: "deliver-logs", Input: "enriched", Handler: logs}))
	require.NoError(t, rt.Add(stage.Stage{Name: "deliver-metrics", Input: "metrics", Handler: dm.stage}))
	require.NoError(t, rt.Add(stage.Stage{Name: "dlq", Input: "dlq", Handler: dead}))
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() { _ = rt.Close() })

	ctx := context.Background()
	traffic := synthetic(3000, t0)
	src := rt.Source("ingest", "enriched")
	for i := 0; i < len(traffic); i += 500 {
		tr := ack.New()
		b := batchOf(traffic[i : i+500]...)
		b.Ack = tr
		require.NoError(t, src.Emit(ctx, b))
		tr.Done()
		require.NoError(t, tr.Wait(ctx), "acknowledged without waiting for the window")
	}
	require.NoError(t, rt.Drain(ctx))
	assert.Zero(t, srv.Stats().SeriesPointsAccepted, "the window is still open")

	// Shutdown: sources stopped, stages drained; flush the open windows.
	require.NoError(t, d.Flush(ctx, rt.Source("derive", "metrics")))
	require.NoError(t, rt.Drain(ctx))
	counts, dists, _ := intakeTotals(t, srv)
	wantCounts, wantDists := exactTotals(traffic, derive.ErrorMetricsBoth)
	assert.Equal(t, wantCounts, counts)
	assert.Equal(t, wantDists, dists)
	assert.Empty(t, dead.metrics())
	assert.Equal(t, int64(3000), reg.Value("derive.records"))
	assert.Positive(t, reg.Value("derive.points_emitted"))
}

// TestStageForwardsCloudWatchPointsWithTheirAcknowledgement: metric points
// a batch carries go to the metrics topic as they are, with the source's
// acknowledgement; a batch of points alone derives nothing.
func TestStageForwardsCloudWatchPointsWithTheirAcknowledgement(t *testing.T) {
	t.Parallel()
	d, err := derive.New(derive.DefaultConfig(), nil)
	require.NoError(t, err)
	out := &stagetest.Output{}
	tr := ack.New()
	in := &record.Batch{ID: "cw", Ack: tr, Metrics: []record.Metric{{Name: "aws.apigateway.count", Value: 3}}}
	require.NoError(t, derive.NewStage(d).Handle(context.Background(), in, out))
	got := out.Emitted()
	require.Len(t, got, 1)
	assert.Equal(t, in.Metrics, got[0].Metrics)
	assert.Same(t, tr, got[0].Ack)
	assert.Empty(t, got[0].Records)
	assert.Zero(t, d.Stats().Records, "points alone reached the derivation")
}
