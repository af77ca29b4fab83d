package stage

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage/stagetest"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
	"github.com/gwpipe/gwpipe/pkg/testkit/syncbuf"
)

// sink is a terminal stage that keeps what reaches it.
type sink struct{ stagetest.Batches }

func (s *sink) Handle(_ context.Context, in *record.Batch, _ Output) error {
	s.Add(in)
	return nil
}

func newRuntime(t *testing.T, cfg Config) *Runtime {
	t.Helper()
	cfg.InitialInterval = time.Millisecond
	cfg.MaxInterval = 2 * time.Millisecond
	rt, err := New(cfg, NewMemory(nil), nil, telemetry.NewRegistry())
	require.NoError(t, err)
	return rt
}

func start(t *testing.T, rt *Runtime) {
	t.Helper()
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() { _ = rt.Close() })
}

func batchOf(n int, tr record.Acker) *record.Batch {
	b := &record.Batch{ID: "b", Origin: &record.Origin{Source: "test"}, Ack: tr}
	for i := 0; i < n; i++ {
		b.Records = append(b.Records, record.Record{Message: []byte("x")})
	}
	return b
}

// splitter emits its input as two batches, as a stage that splits must.
func splitter(_ context.Context, in *record.Batch, out Output) error {
	half := in.Len() / 2
	a, b := in.Derive(half), in.Derive(in.Len()-half)
	a.Records = append(a.Records, in.Records[:half]...)
	b.Records = append(b.Records, in.Records[half:]...)
	if err := out.Emit(context.Background(), a); err != nil {
		return err
	}
	return out.Emit(context.Background(), b)
}

func TestAcknowledgementCompletesOnlyAfterTerminalStage(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	release := make(chan struct{})
	terminal := &sink{}
	require.NoError(t, rt.Add(Stage{Name: "split", Input: "raw", Output: "mid", Handler: HandlerFunc(splitter)}))
	require.NoError(t, rt.Add(Stage{Name: "deliver", Input: "mid", Handler: HandlerFunc(func(ctx context.Context, in *record.Batch, out Output) error {
		<-release
		return terminal.Handle(ctx, in, out)
	})}))
	require.NoError(t, rt.Add(Stage{Name: "dlq", Input: "dlq", Handler: &sink{}}))
	start(t, rt)

	tr := ack.New()
	require.NoError(t, rt.Source("ingest", "raw").Emit(context.Background(), batchOf(10, tr)))
	tr.Done() // the source's own token

	select {
	case <-tr.Completed():
		t.Fatal("acknowledged before the terminal stage finished")
	default:
	}
	close(release)
	require.NoError(t, tr.Wait(context.Background()))
	assert.Equal(t, 10, terminal.Records())
	require.NoError(t, rt.Drain(context.Background()))
}

func TestPermanentFailureGoesToDeadLetterWithReason(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	var calls atomic.Int32
	dead := &sink{}
	require.NoError(t, rt.Add(Stage{Name: "decode", Input: "raw", Handler: HandlerFunc(func(context.Context, *record.Batch, Output) error {
		calls.Add(1)
		return Permanent(errors.New("not a CloudWatch envelope"))
	})}))
	require.NoError(t, rt.Add(Stage{Name: "dlq", Input: "dlq", Handler: dead}))
	start(t, rt)

	require.NoError(t, emitAndWait(t, rt, "ingest", "raw", 3), "a dead-lettered batch counts as handled")
	assert.Equal(t, int32(1), calls.Load(), "permanent errors are not retried")
	require.Len(t, dead.All(), 1)
	assert.Equal(t, "decode", dead.All()[0].Stage)
	assert.Contains(t, dead.All()[0].Reason, "not a CloudWatch envelope")
	assert.Equal(t, 3, dead.All()[0].Len())
}

// emitAndWait emits a batch of n records from source to topic and waits
// until every stage has handled it (or failed it for good).
func emitAndWait(t *testing.T, rt *Runtime, source, topic string, n int) error {
	t.Helper()
	tr := ack.New()
	require.NoError(t, rt.Source(source, topic).Emit(context.Background(), batchOf(n, tr)))
	tr.Done() // the source's own token
	return tr.Wait(context.Background())
}

func TestRetryableFailureIsRetriedThenSucceeds(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{MaxRetries: 5})
	var calls atomic.Int32
	done := &sink{}
	require.NoError(t, rt.Add(Stage{Name: "deliver", Input: "raw", Handler: HandlerFunc(func(ctx context.Context, in *record.Batch, out Output) error {
		if calls.Add(1) < 3 {
			return errors.New("intake unavailable")
		}
		return done.Handle(ctx, in, out)
	})}))
	require.NoError(t, rt.Add(Stage{Name: "dlq", Input: "dlq", Handler: &sink{}}))
	start(t, rt)

	require.NoError(t, emitAndWait(t, rt, "ingest", "raw", 2))
	assert.Equal(t, int32(3), calls.Load())
	assert.Equal(t, 2, done.Records())
}

func TestDeadLetterFailureFailsTheSource(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{MaxRetries: 1})
	require.NoError(t, rt.Add(Stage{Name: "deliver", Input: "raw", Handler: HandlerFunc(func(context.Context, *record.Batch, Output) error {
		return errors.New("boom")
	})}))
	require.NoError(t, rt.Add(Stage{Name: "dlq", Input: "dlq", Handler: HandlerFunc(func(context.Context, *record.Batch, Output) error {
		return errors.New("archive unwritable")
	})}))
	start(t, rt)

	err := emitAndWait(t, rt, "ingest", "raw", 1)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "archive unwritable")
}

func TestBackPressureBoundsInFlightBatches(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rt := newRuntime(t, Config{})
		release := make(chan struct{})
		require.NoError(t, rt.Add(Stage{Name: "slow", Input: "raw", MaxInFlight: 2, Handler: HandlerFunc(func(context.Context, *record.Batch, Output) error {
			<-release
			return nil
		})}))
		require.NoError(t, rt.Add(Stage{Name: "dlq", Input: "dlq", Handler: &sink{}}))
		start(t, rt)

		src := rt.Source("ingest", "raw")
		require.NoError(t, src.Emit(context.Background(), batchOf(1, nil)))
		require.NoError(t, src.Emit(context.Background(), batchOf(1, nil)))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		err := src.Emit(ctx, batchOf(1, nil))
		require.ErrorIs(t, err, context.DeadlineExceeded, "a third batch must wait for a slot")
		assert.Equal(t, int64(2), rt.InFlight())

		close(release)
		require.NoError(t, rt.Drain(context.Background()))
		assert.Zero(t, rt.InFlight())
	})
}

func TestFanOutCountsEveryConsumer(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	logs, metrics := &sink{}, &sink{}
	require.NoError(t, rt.Add(Stage{Name: "deliver-logs", Input: "enriched", Handler: logs}))
	require.NoError(t, rt.Add(Stage{Name: "derive", Input: "enriched", Handler: metrics}))
	require.NoError(t, rt.Add(Stage{Name: "dlq", Input: "dlq", Handler: &sink{}}))
	start(t, rt)

	require.NoError(t, emitAndWait(t, rt, "enrich", "enriched", 4))
	assert.Equal(t, 4, logs.Records())
	assert.Equal(t, 4, metrics.Records())
}

func TestEmitToTopicWithoutConsumerIsRefused(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	require.NoError(t, rt.Add(Stage{Name: "dlq", Input: "dlq", Handler: &sink{}}))
	start(t, rt)
	err := rt.Source("ingest", "nowhere").Emit(context.Background(), batchOf(1, nil))
	require.Error(t, err)
	assert.True(t, IsPermanent(err))
}

// TestAStageThatKeepsFailingSaysSo: a stage failing attempt after attempt
// (an archive that cannot be written) retried in silence; the first
// failure is logged, with the stage and the error, and the rest within
// failureLogEvery are only counted, so the log is not flooded.
func TestAStageThatKeepsFailingSaysSo(t *testing.T) {
	t.Parallel()
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := telemetry.NewRegistry()
	rt, err := New(Config{InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond, MaxRetries: 10}, NewMemory(nil), log, reg)
	require.NoError(t, err)
	var calls atomic.Int32
	require.NoError(t, rt.Add(Stage{Name: "archive", Input: "raw", Handler: HandlerFunc(func(context.Context, *record.Batch, Output) error {
		if calls.Add(1) <= 4 {
			return errors.New("open dlq/part-1: read-only file system")
		}
		return nil
	})}))
	require.NoError(t, rt.Add(Stage{Name: "dlq", Input: "dlq", Handler: &sink{}}))
	start(t, rt)

	require.NoError(t, emitAndWait(t, rt, "ingest", "raw", 2))
	assert.Equal(t, int32(5), calls.Load())
	out := logs.String()
	assert.Equal(t, 1, strings.Count(out, "stage failed a batch"), out)
	assert.Contains(t, out, "stage=archive")
	assert.Contains(t, out, "read-only file system")
	assert.Equal(t, int64(4), reg.Snapshot().Value("stage.errors", "archive"))
}
