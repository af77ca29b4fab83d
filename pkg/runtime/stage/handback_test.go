package stage

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// stuck is a delivery stage whose intake never answers: it waits for its
// context, as a delivery client does, and says when it started.
type stuck struct{ started chan string }

func (s stuck) Handle(ctx context.Context, in *record.Batch, _ Output) error {
	s.started <- in.ID
	<-ctx.Done()
	return fmt.Errorf("intake did not answer: %w", ctx.Err())
}

// TestHandBackGivesUpWorkInFlight: at the end of a shutdown's time every
// batch in flight fails at once with ack.ErrHandedBack: not retried (the
// retry intervals here are an hour), not dead-lettered, its source's
// acknowledgement failed so that the sender sends it again; a batch with no
// source to fail is counted lost; a source waiting for a stage's slot is
// released; and then Drain and Stop return without waiting for anything.
func TestHandBackGivesUpWorkInFlight(t *testing.T) {
	reg := telemetry.NewRegistry()
	rt, err := New(Config{MaxRetries: 5, InitialInterval: time.Hour, MaxInterval: time.Hour}, NewMemory(nil), nil, reg)
	require.NoError(t, err)
	deliver := stuck{started: make(chan string, 4)}
	dead := &sink{}
	require.NoError(t, rt.Add(Stage{Name: "deliver", Input: "enriched", Handler: deliver, MaxInFlight: 2}))
	require.NoError(t, rt.Add(Stage{Name: "dlq", Input: "dlq", Handler: dead}))
	require.NoError(t, rt.Start(context.Background()))

	src := rt.Source("ingest", "enriched")
	withSource := ack.New()
	require.NoError(t, src.Emit(context.Background(), batchOf(3, withSource)))
	withSource.Done()
	derived := batchOf(5, nil) // metric points, summaries: no source acknowledgement
	require.NoError(t, src.Emit(context.Background(), derived))
	for range 2 {
		<-deliver.started
	}
	// The stage is full: a third batch waits for a slot.
	blocked := make(chan error, 1)
	waiting := ack.New()
	go func() { blocked <- src.Emit(context.Background(), batchOf(7, waiting)) }()

	rt.HandBack()

	err = withSource.Wait(context.Background())
	require.ErrorIs(t, err, ack.ErrHandedBack)
	require.ErrorIs(t, <-blocked, ack.ErrHandedBack, "a source waiting for a slot is released")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, rt.Drain(ctx), "nothing is left in flight")
	require.NoError(t, rt.Shutdown(ctx), "stopping waits for no retry")

	st := reg.Stage("deliver")
	assert.Equal(t, int64(5), st.Lost.Load(), "the batch without a source is counted lost")
	assert.Zero(t, st.HandedBack.Load(), "in one process the sources count what they hand back")
	assert.Zero(t, dead.Records(), "nothing handed back is dead-lettered")
	require.ErrorIs(t, src.Emit(context.Background(), batchOf(1, nil)), ack.ErrHandedBack, "nothing new starts")
	select {
	case id := <-deliver.started:
		t.Fatalf("batch %s was handled after the hand-back", id)
	default:
	}
}

// TestHandBackOnBrokerLeavesInputForRedelivery: on a broker, a stage's
// input in progress at the hand-back is neither acknowledged nor
// dead-lettered; it is counted and another worker of the stage gets it (at
// once when the negative acknowledgement reaches the broker before the
// subscription closes, else after the acknowledgement wait).
func TestHandBackOnBrokerLeavesInputForRedelivery(t *testing.T) {
	s := natsServer(t)
	worker := func(h Handler, reg *telemetry.Registry) *Runtime {
		tr, err := NewNATS(context.Background(), NATSConfig{URL: s.ClientURL(), Consumers: map[string][]string{"enriched": {"deliver"}, "dlq": {"dlq"}}, AckWait: 2 * time.Second}, nil)
		require.NoError(t, err)
		rt, err := New(Config{MaxRetries: 5, InitialInterval: time.Hour, MaxInterval: time.Hour}, tr, nil, reg)
		require.NoError(t, err)
		require.NoError(t, rt.Add(Stage{Name: "deliver", Input: "enriched", Handler: h}))
		require.NoError(t, rt.Add(Stage{Name: "dlq", Input: "dlq", Handler: HandlerFunc(func(_ context.Context, in *record.Batch, _ Output) error {
			return errors.New("nothing may be dead-lettered here")
		})}))
		require.NoError(t, rt.Start(context.Background()))
		return rt
	}
	first := telemetry.NewRegistry()
	deliver := stuck{started: make(chan string, 4)}
	rt := worker(deliver, first)
	b := batchOf(4, nil)
	b.ID = "in-progress"
	for i := range b.Records {
		b.Records[i].EventID = fmt.Sprint(i)
	}
	require.NoError(t, rt.Source("enrich", "enriched").Emit(context.Background(), b))
	assert.Equal(t, "in-progress", <-deliver.started)

	rt.HandBack()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, rt.Shutdown(ctx), "stopping waits for no retry")
	assert.Equal(t, int64(4), first.Stage("deliver").HandedBack.Load(), "the input in progress is counted once")
	assert.Zero(t, first.Stage("deliver").Lost.Load())

	second := newCollector()
	rt2 := worker(second, telemetry.NewRegistry())
	t.Cleanup(func() { _ = rt2.Close() })
	second.wait(t, 4)
	second.mu.Lock()
	defer second.mu.Unlock()
	assert.Len(t, second.ids, 4, "the other worker gets the records handed back")
}

// TestFusedEmitSaysWhatRemains: on a broker, a topic whose consumers run
// in the worker hands the batch to them in memory. When its one consumer
// finishes part of the batch (Remaining), Emit says what remains
// (EmitRest), for the caller to send only that again; with two consumers,
// the first of which handled the whole batch, there is no one rest, and
// Emit says none.
func TestFusedEmitSaysWhatRemains(t *testing.T) {
	s := natsServer(t)
	partial := HandlerFunc(func(_ context.Context, in *record.Batch, _ Output) error {
		rest := *in
		rest.Records = in.Records[1:]
		return Remaining(errors.New("intake gone"), &rest)
	})
	worker := func(topology map[string][]string, handlers map[string]Handler) (*Runtime, *telemetry.Registry) {
		tr, err := NewNATS(context.Background(), NATSConfig{URL: s.ClientURL(), Consumers: topology}, nil)
		require.NoError(t, err)
		reg := telemetry.NewRegistry()
		rt, err := New(Config{Topology: topology}, tr, nil, reg)
		require.NoError(t, err)
		for name, h := range handlers {
			require.NoError(t, rt.Add(Stage{Name: name, Input: "metrics", Handler: h}))
		}
		require.NoError(t, rt.Start(context.Background()))
		t.Cleanup(func() { _ = rt.Close() })
		return rt, reg
	}

	rt, reg := worker(map[string][]string{"metrics": {"deliver"}}, map[string]Handler{"deliver": partial})
	err := rt.Source("derive", "metrics").Emit(context.Background(), batchOf(3, nil))
	require.Error(t, err)
	rest, ok := EmitRest(err)
	require.True(t, ok, "the one consumer said what remains: %v", err)
	assert.Equal(t, 2, rest.Len())
	assert.Equal(t, int64(1), reg.Stage("derive").RecordsOut.Load(), "what the consumer finished went out")
	_, ok = EmitRest(fmt.Errorf("wrapped: %w", err))
	assert.False(t, ok, "only Emit's own error says it")

	both := newCollector()
	rt2, _ := worker(map[string][]string{"metrics": {"a", "b"}}, map[string]Handler{"a": both, "b": partial})
	err = rt2.Source("derive", "metrics").Emit(context.Background(), batchOf(3, nil))
	require.Error(t, err)
	_, ok = EmitRest(err)
	assert.False(t, ok, "two consumers have no one rest")
}
