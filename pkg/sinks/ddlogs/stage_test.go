package ddlogs

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/dedup"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage/stagetest"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// recorder delivers every record and rejects those whose id it names.
type recorder struct {
	got    []*record.Batch
	reject map[string]bool
	err    error
}

func (r *recorder) Deliver(_ context.Context, b *record.Batch) ([]record.Record, error) {
	if r.err != nil {
		return nil, r.err
	}
	r.got = append(r.got, b)
	var rejected []record.Record
	for _, rec := range b.Records {
		if r.reject[rec.EventID] {
			rejected = append(rejected, rec)
		}
	}
	return rejected, nil
}

func ids(rs []record.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.EventID)
	}
	return out
}

// TestStageDeadLettersWhatTheIntakeRejects: rejected records go to the
// dead-letter topic under deliver-logs with the reason; the rest is done.
func TestStageDeadLettersWhatTheIntakeRejects(t *testing.T) {
	d := &recorder{reject: map[string]bool{"b": true}}
	out := &stagetest.Output{}
	in := &record.Batch{ID: "x", Records: []record.Record{{EventID: "a"}, {EventID: "b"}}}
	require.NoError(t, NewStage(d, StageOptions{}).Handle(context.Background(), in, out))
	dead := out.Dead()
	require.Len(t, dead, 1)
	assert.Equal(t, StageName, dead[0].Stage)
	assert.Equal(t, "rejected by the logs intake", dead[0].Reason)
	assert.Equal(t, []string{"b"}, ids(dead[0].Records))

	d.err = errors.New("intake down")
	assert.ErrorContains(t, NewStage(d, StageOptions{}).Handle(context.Background(), in, out), "intake down")
}

// TestStageDropsSummariesAndDuplicatesWithoutTouchingTheBatch: request
// summaries are delivered only when asked for; with a window, records
// delivered before are dropped and counted (summaries are not
// duplicates); the input batch, which other stages may read, is unchanged.
func TestStageDropsSummariesAndDuplicatesWithoutTouchingTheBatch(t *testing.T) {
	d := &recorder{}
	dupes := &telemetry.Counter{}
	s := NewStage(d, StageOptions{Seen: dedup.New(100), Duplicates: dupes})
	first := &record.Batch{Records: []record.Record{{EventID: "a"}, {EventID: "s", Kind: record.KindSummary}}}
	require.NoError(t, s.Handle(context.Background(), first, &stagetest.Output{}))
	again := &record.Batch{Records: []record.Record{{EventID: "a"}, {EventID: "b"}}}
	require.NoError(t, s.Handle(context.Background(), again, &stagetest.Output{}))
	require.Len(t, d.got, 2)
	assert.Equal(t, []string{"a"}, ids(d.got[0].Records))
	assert.Equal(t, []string{"b"}, ids(d.got[1].Records))
	assert.Equal(t, int64(1), dupes.Load())
	assert.Equal(t, []string{"a", "b"}, ids(again.Records), "the input batch was modified")

	d = &recorder{}
	require.NoError(t, NewStage(d, StageOptions{Summaries: true}).Handle(context.Background(), first, &stagetest.Output{}))
	require.Len(t, d.got, 1)
	assert.Equal(t, []string{"a", "s"}, ids(d.got[0].Records))

	d = &recorder{}
	only := &record.Batch{Records: []record.Record{{EventID: "s", Kind: record.KindSummary}}}
	require.NoError(t, NewStage(d, StageOptions{}).Handle(context.Background(), only, &stagetest.Output{}))
	assert.Empty(t, d.got, "a batch of summaries alone was sent")
}
