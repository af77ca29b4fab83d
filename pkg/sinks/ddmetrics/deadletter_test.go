package ddmetrics_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage/stagetest"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddmetrics"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

// failingDLQ is the in-process transport whose first publishes to the
// dead-letter topic fail, as a full or unreachable archive's would.
type failingDLQ struct {
	*stage.Memory
	mu    sync.Mutex
	fails int // publishes to the dlq topic still to fail
}

func (f *failingDLQ) Publisher() message.Publisher { return failingPublisher{f} }

type failingPublisher struct{ f *failingDLQ }

func (p failingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if topic == "dlq" {
		p.f.mu.Lock()
		fail := p.f.fails > 0
		if fail {
			p.f.fails--
		}
		p.f.mu.Unlock()
		if fail {
			return errors.New("dead-letter archive unavailable")
		}
	}
	return p.f.Memory.Publisher().Publish(topic, msgs...)
}

func (p failingPublisher) Close() error { return nil }

// TestFailedDeadLetterCountsRejectionsOnce: the intake refuses the
// distributions for good (400 down to single values) and the first
// dead-letter write fails. The failure shows (the stage's errors) and the
// runtime's retry dead-letters the rejected values, but the API is not
// asked about them again and each rejected value counts once.
func TestFailedDeadLetterCountsRejectionsOnce(t *testing.T) {
	t.Parallel()
	srv, url := intake(t)
	require.NoError(t, srv.SetFailure(fakeintake.Failure{Status: 400, Endpoints: []fakeintake.Endpoint{fakeintake.EndpointDistributionPoints}}))
	c := newClient(t, url, nil)
	reg := telemetry.NewRegistry()
	tr := &failingDLQ{Memory: stage.NewMemory(nil), fails: 1}
	rt, err := stage.New(stage.Config{MaxRetries: 5, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond}, tr, nil, reg)
	require.NoError(t, err)
	var dead stagetest.Batches
	require.NoError(t, rt.Add(stage.Stage{Name: ddmetrics.StageName, Input: "metrics", Handler: ddmetrics.NewStage(c)}))
	require.NoError(t, rt.Add(stage.Stage{Name: "dlq", Input: "dlq", Handler: stage.HandlerFunc(func(_ context.Context, in *record.Batch, _ stage.Output) error {
		dead.Add(in)
		return nil
	})}))
	require.NoError(t, rt.Start(context.Background()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t.Cleanup(func() { _ = rt.Shutdown(ctx) })

	b := partialBatch()
	done := ack.New()
	b.Ack = done
	require.NoError(t, rt.Source("derive", "metrics").Emit(ctx, b))
	done.Done()
	require.NoError(t, done.Wait(ctx), "the rejected values are dead-lettered in the end")
	require.NoError(t, rt.Drain(ctx))

	assert.Equal(t, int64(1), reg.Stage(ddmetrics.StageName).Errors.Load(), "the failed dead-letter write fails the attempt")
	values := 0
	for _, l := range dead.All() {
		assert.Equal(t, ddmetrics.StageName, l.Stage)
		assert.Contains(t, l.Reason, "metrics API 400")
		for _, m := range l.Metrics {
			values += len(m.Values)
		}
	}
	assert.Equal(t, 6, values, "each rejected value dead-lettered once")
	st := c.Stats()
	assert.Equal(t, uint64(6), st.Rejected, "each rejected value counted once")
	assert.Equal(t, uint64(5), st.Submitted, "the points are submitted once")
	assert.Equal(t, uint64(3), st.SeriesAccepted)
	assert.Equal(t, int64(1), srv.Stats().Requests[fakeintake.EndpointSeries], "the accepted series are not sent again")
}
