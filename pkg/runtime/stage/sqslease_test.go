package stage

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// TestSQSKeepsHeldMessagesInvisible: a batch handled for longer than the
// visibility timeout, and the batches received with it that wait behind
// it, are not received by the other worker meanwhile: each is handled
// once.
func TestSQSKeepsHeldMessagesInvisible(t *testing.T) {
	awsCfg := motoAWS(t)
	const visibility = time.Second
	slow := newSlowIntake("0", 3*visibility)
	worker := func() *Runtime {
		tr, err := NewSQS(context.Background(), SQSConfig{AWS: awsCfg, TopicPrefix: "lease-", VisibilityTimeout: visibility, Subscribers: 1,
			Consumers: map[string][]string{"enriched": {"deliver"}, "dlq": {"archive"}}}, nil)
		require.NoError(t, err)
		rt, err := New(Config{MaxRetries: 0}, tr, nil, telemetry.NewRegistry())
		require.NoError(t, err)
		require.NoError(t, rt.Add(Stage{Name: "deliver", Input: "enriched", Handler: slow}))
		require.NoError(t, rt.Start(context.Background()))
		t.Cleanup(func() { _ = rt.Close() })
		return rt
	}
	a, b := worker(), worker()
	emitBatches(t, a, 4, 5)
	<-slow.done
	// Everything handled, the slow batch included, before the workers stop.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, id := range []string{"0", "1", "2", "3"} {
			_, ok := slow.calls.Load(id)
			assert.True(c, ok, id)
		}
	}, 30*time.Second, 50*time.Millisecond)
	for _, rt := range []*Runtime{a, b} {
		require.NoError(t, rt.Shutdown(context.Background()))
	}
	slow.assertEachOnce(t, "0", "1", "2", "3")
}
