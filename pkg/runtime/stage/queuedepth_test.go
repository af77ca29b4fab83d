package stage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// eventually waits until cond holds, polling: the gauges under test are
// read from outside the goroutines that move them.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// In one process a stage's queue depth is the batches published to it and
// not yet being handled.
func TestQueueDepthInProcess(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry()
	rt, err := New(Config{MaxInFlight: 8}, NewMemory(nil), nil, reg)
	require.NoError(t, err)
	release := make(chan struct{})
	require.NoError(t, rt.Add(Stage{Name: "decode", Input: "raw", Handler: HandlerFunc(func(ctx context.Context, _ *record.Batch, _ Output) error {
		<-release
		return nil
	})}))
	stats := reg.Stage("decode")
	assert.Equal(t, int64(0), stats.QueueDepth.Load(), "known, and empty, before anything is published")
	assert.Equal(t, int64(-1), reg.Stage("ingest").QueueDepth.Load(), "a source has no queue")
	start(t, rt)

	src := rt.Source("ingest", "raw")
	for range 5 {
		require.NoError(t, src.Emit(context.Background(), batchOf(1, nil)))
	}
	eventually(t, "the handler holds a batch", func() bool {
		return stats.InFlight.Load() >= 1 && stats.InFlight.Load()+stats.QueueDepth.Load() == 5
	})
	close(release)
	require.NoError(t, rt.Drain(context.Background()))
	assert.Equal(t, int64(0), stats.QueueDepth.Load())
	assert.Equal(t, int64(0), stats.InFlight.Load())
}

// Property: whatever the interleaving of publishers, retries, failures
// and the dead-letter path, the queue depth never goes below zero and is
// zero once everything is handled.
func TestQueueDepthNeverNegative(t *testing.T) {
	t.Parallel()
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			reg := telemetry.NewRegistry()
			rt := newRuntimeOn(t, reg, Config{MaxInFlight: 3, MaxRetries: 2})
			r := rand.New(rand.NewPCG(seed, 1))
			fail := make([]bool, 64)
			for i := range fail {
				fail[i] = r.IntN(4) == 0
			}
			var n atomic.Int64
			require.NoError(t, rt.Add(Stage{Name: "parse", Input: "raw", Output: "parsed", Handler: HandlerFunc(func(ctx context.Context, in *record.Batch, out Output) error {
				if fail[n.Add(1)%int64(len(fail))] {
					return errors.New("flaky")
				}
				return out.Emit(ctx, in)
			})}))
			require.NoError(t, rt.Add(Stage{Name: "deliver", Input: "parsed", Handler: &sink{}}))
			require.NoError(t, rt.Add(Stage{Name: "dlq", Input: "dlq", Handler: &sink{}}))
			start(t, rt)

			var negative atomic.Bool
			stop := make(chan struct{})
			watched := make(chan struct{})
			go func() {
				defer close(watched)
				for {
					for _, s := range []string{"parse", "deliver", "dlq"} {
						if reg.Stage(s).QueueDepth.Load() < 0 {
							negative.Store(true)
						}
					}
					select {
					case <-stop:
						return
					default:
					}
				}
			}()
			src := rt.Source("ingest", "raw")
			for range 200 {
				require.NoError(t, src.Emit(context.Background(), batchOf(1+r.IntN(3), nil)))
			}
			require.NoError(t, rt.Drain(context.Background()))
			close(stop)
			<-watched
			assert.False(t, negative.Load(), "a queue depth went below zero")
			for _, s := range []string{"parse", "deliver", "dlq"} {
				assert.Equal(t, int64(0), reg.Stage(s).QueueDepth.Load(), s)
			}
		})
	}
}

func newRuntimeOn(t *testing.T, reg *telemetry.Registry, cfg Config) *Runtime {
	t.Helper()
	cfg.InitialInterval = time.Millisecond
	cfg.MaxInterval = 2 * time.Millisecond
	rt, err := New(cfg, NewMemory(nil), nil, reg)
	require.NoError(t, err)
	return rt
}

// fakeBroker is the memory transport posing as a broker whose backlog the
// test sets.
type fakeBroker struct {
	*Memory
	backlog atomic.Int64
	fail    atomic.Bool
	asked   atomic.Int64
}

func (f *fakeBroker) InProcess() bool { return false }
func (f *fakeBroker) Backlog(_ context.Context, group, topic string) (int64, error) {
	f.asked.Add(1)
	if group != "decode" || topic != "raw" {
		return 0, fmt.Errorf("asked for %s on %s", group, topic)
	}
	if f.fail.Load() {
		return 0, errors.New("broker unreachable")
	}
	return f.backlog.Load(), nil
}

// On a broker the queue depth is the consumer group's backlog, asked
// periodically; unknown (-1) while the broker does not answer.
func TestQueueDepthFromBrokerBacklog(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		reg := telemetry.NewRegistry()
		tr := &fakeBroker{Memory: NewMemory(watermill.NopLogger{})}
		tr.backlog.Store(7)
		rt, err := New(Config{BacklogInterval: time.Millisecond}, tr, nil, reg)
		require.NoError(t, err)
		require.NoError(t, rt.Add(Stage{Name: "decode", Input: "raw", Handler: &sink{}}))
		stats := reg.Stage("decode")
		assert.Equal(t, int64(-1), stats.QueueDepth.Load(), "unknown until the broker answers")
		require.NoError(t, rt.Start(context.Background()))
		eventually(t, "the backlog is read", func() bool { return stats.QueueDepth.Load() == 7 })
		tr.backlog.Store(3)
		eventually(t, "the backlog is read again", func() bool { return stats.QueueDepth.Load() == 3 })
		tr.fail.Store(true)
		eventually(t, "a failed read makes it unknown", func() bool { return stats.QueueDepth.Load() == -1 })
		require.NoError(t, rt.Close())
		asked := tr.asked.Load()
		time.Sleep(time.Second) // a thousand intervals, on the bubble's clock
		assert.Equal(t, asked, tr.asked.Load(), "Close stops the watcher")
	})
}

// parkingBroker is a fakeBroker with a dead-letter queue per stage.
type parkingBroker struct {
	*fakeBroker
	parked atomic.Int64
	fail   atomic.Bool
}

func (f *parkingBroker) DeadLetterBacklog(_ context.Context, group, topic string) (int64, error) {
	if group != "decode" || topic != "raw" {
		return 0, fmt.Errorf("asked for %s on %s", group, topic)
	}
	if f.fail.Load() {
		return 0, errors.New("broker unreachable")
	}
	return f.parked.Load(), nil
}

// Where the broker moves messages aside, each stage's dead-letter queue
// depth is asked with its backlog; unknown (-1) until it answers and
// while it does not. A transport without one has no such figure.
func TestDeadLetterBacklogFromTheBroker(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		reg := telemetry.NewRegistry()
		tr := &parkingBroker{fakeBroker: &fakeBroker{Memory: NewMemory(watermill.NopLogger{})}}
		tr.parked.Store(4)
		rt, err := New(Config{BacklogInterval: time.Millisecond}, tr, nil, reg)
		require.NoError(t, err)
		require.NoError(t, rt.Add(Stage{Name: "decode", Input: "raw", Handler: &sink{}}))
		parked := func() int64 { return reg.Value("transport.dead_letter_backlog", "decode") }
		assert.Equal(t, int64(-1), parked(), "unknown until the broker answers")
		require.NoError(t, rt.Start(context.Background()))
		eventually(t, "the dead-letter queue is read", func() bool { return parked() == 4 })
		tr.parked.Store(0)
		eventually(t, "and read again", func() bool { return parked() == 0 })
		tr.fail.Store(true)
		eventually(t, "a failed read makes it unknown", func() bool { return parked() == -1 })
		tr.fail.Store(false)
		tr.fakeBroker.fail.Store(true)
		eventually(t, "the backlog failing does not stop the dead-letter read", func() bool { return parked() == 0 })
		require.NoError(t, rt.Close())
	})
	reg := telemetry.NewRegistry()
	rt, err := New(Config{}, &fakeBroker{Memory: NewMemory(watermill.NopLogger{})}, nil, reg)
	require.NoError(t, err)
	require.NoError(t, rt.Add(Stage{Name: "decode", Input: "raw", Handler: &sink{}}))
	_, ok := reg.Snapshot().Family("transport.dead_letter_backlog")
	assert.False(t, ok, "a broker without dead-letter queues has no such figure")
}
