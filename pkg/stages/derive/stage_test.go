package derive_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage/stagetest"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
)

// TestStageForwardsCloudWatchPointsWithTheirAcknowledgement: metric points
// a batch carries go to the metrics topic as they are, with the source's
// acknowledgement; a batch of points alone derives nothing.
func TestStageForwardsCloudWatchPointsWithTheirAcknowledgement(t *testing.T) {
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
