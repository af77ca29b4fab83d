package ddlogs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
	"github.com/gwpipe/gwpipe/pkg/runtime/claim"
	"github.com/gwpipe/gwpipe/pkg/runtime/dedup"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage/stagetest"
	"github.com/gwpipe/gwpipe/pkg/stages/filter"
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

// TestStageKnowsBatchesDeliveredFleetWide: with a fleet-wide store, a
// batch one worker delivered is marked, and the same batch redelivered to
// another worker is not sent again and is counted; a store that cannot
// answer costs nothing but the fleet-wide check (the batch is delivered,
// the error counted), and a batch without event ids is never marked.
func TestStageKnowsBatchesDeliveredFleetWide(t *testing.T) {
	ctx := context.Background()
	store := cas.NewMemory()
	worker := func(link *cas.Link) (*recorder, *telemetry.Counter, *telemetry.Counter, func(*record.Batch) error) {
		d := &recorder{}
		dupes, errs := &telemetry.Counter{}, &telemetry.Counter{}
		s := NewStage(d, StageOptions{Fleet: claim.NewBatches(link), FleetDuplicates: dupes, FleetErrors: errs})
		return d, dupes, errs, func(b *record.Batch) error { return s.Handle(ctx, b, &stagetest.Output{}) }
	}
	batch := func() *record.Batch {
		return &record.Batch{Records: []record.Record{{EventID: "a"}, {EventID: "b"}, {EventID: "s", Kind: record.KindSummary}}}
	}
	d1, dupes1, errs1, w1 := worker(cas.NewLink(store))
	require.NoError(t, w1(batch()))
	require.Len(t, d1.got, 1)
	assert.Len(t, store.Keys(), 1, "the delivered batch is marked")

	link2 := cas.NewLink(store)
	d2, dupes2, errs2, w2 := worker(link2)
	require.NoError(t, w2(batch()))
	assert.Empty(t, d2.got, "a batch another worker delivered was sent again")
	assert.Equal(t, int64(2), dupes2.Load(), "its logs (not its summary) are counted as duplicates")

	link2.Cut(true)
	require.NoError(t, w2(batch()))
	assert.Len(t, d2.got, 1, "with the store unreachable, the batch is delivered as if alone")
	assert.Equal(t, int64(2), errs2.Load(), "the look-up and the mark that failed are counted")

	require.NoError(t, w1(&record.Batch{Records: []record.Record{{Message: []byte("no id")}}}))
	assert.Len(t, store.Keys(), 1, "a batch without event ids was marked")
	assert.Zero(t, dupes1.Load()+errs1.Load())
}

// TestStageRetryDeadLettersWhatTheIntakeRejected: when dead-lettering the
// rejected records fails, the batch comes again; the rejected records are
// then dead-lettered, not dropped and counted as duplicates, while those
// the intake accepted are not sent twice.
func TestStageRetryDeadLettersWhatTheIntakeRejected(t *testing.T) {
	d := &recorder{reject: map[string]bool{"b": true}}
	dupes := &telemetry.Counter{}
	s := NewStage(d, StageOptions{Seen: dedup.New(100), Duplicates: dupes})
	in := &record.Batch{Records: []record.Record{{EventID: "a"}, {EventID: "b"}}}
	require.Error(t, s.Handle(context.Background(), in, &stagetest.Output{Err: errors.New("dead-letter topic down")}))

	out := &stagetest.Output{}
	require.NoError(t, s.Handle(context.Background(), in, out))
	dead := out.Dead()
	require.Len(t, dead, 1, "the rejected record was lost on the retry")
	assert.Equal(t, []string{"b"}, ids(dead[0].Records))
	require.Len(t, d.got, 2)
	assert.Equal(t, []string{"b"}, ids(d.got[1].Records), "the accepted record was sent again")
	assert.Equal(t, int64(1), dupes.Load(), "only the delivered record is a duplicate")
}

// TestStageCountsDuplicatesOfABatchOnce: a batch whose delivery fails
// comes again; its duplicates are counted when it is done, not at every
// attempt.
func TestStageCountsDuplicatesOfABatchOnce(t *testing.T) {
	d := &recorder{}
	dupes := &telemetry.Counter{}
	s := NewStage(d, StageOptions{Seen: dedup.New(100), Duplicates: dupes})
	require.NoError(t, s.Handle(context.Background(), &record.Batch{Records: []record.Record{{EventID: "a"}}}, &stagetest.Output{}))

	again := &record.Batch{Records: []record.Record{{EventID: "a"}, {EventID: "b"}}}
	d.err = errors.New("intake down")
	require.Error(t, s.Handle(context.Background(), again, &stagetest.Output{}))
	assert.Equal(t, int64(0), dupes.Load(), "counted for a batch that failed")
	d.err = nil
	require.NoError(t, s.Handle(context.Background(), again, &stagetest.Output{}))
	assert.Equal(t, int64(1), dupes.Load())
}

// TestStageCountsFiltersOfABatchOnce: the filters' counters
// (filters.redacted, ...) count a batch once it is delivered, not at every
// attempt of a batch whose delivery fails.
func TestStageCountsFiltersOfABatchOnce(t *testing.T) {
	reg := telemetry.NewRegistry()
	f, err := filter.New(filter.Config{Redact: []string{"ip"}}, reg)
	require.NoError(t, err)
	d := &recorder{err: errors.New("intake down")}
	s := NewStage(d, StageOptions{Filter: f})
	in := &record.Batch{Records: []record.Record{{EventID: "a", Message: []byte("from 10.0.0.1")}}}
	require.Error(t, s.Handle(context.Background(), in, &stagetest.Output{}))
	assert.EqualValues(t, 0, reg.Value("filters.redacted", "ip"), "counted for a batch that failed")
	d.err = nil
	require.NoError(t, s.Handle(context.Background(), in, &stagetest.Output{}))
	assert.EqualValues(t, 1, reg.Value("filters.redacted", "ip"))
	assert.EqualValues(t, 1, reg.Value("filters.matched", "ip"))
}

// TestStageDeadLettersLogsTooOldForTheIntake: a log whose timestamp is
// more than 18 hours old when the stage takes it (a recorded payload, an
// S3 object announced long after it was written, a queue's backlog) is
// dead-lettered with the reason and counted, not sent: the intake would
// answer 202 and drop it, and the summary counted it as delivered. Logs
// without a timestamp (the intake's time) and younger ones are sent; the
// input batch is unchanged; a batch that fails comes again without
// dead-lettering or counting them twice.
func TestStageDeadLettersLogsTooOldForTheIntake(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	ms := func(ago time.Duration) int64 { return now.Add(-ago).UnixMilli() }
	d := &recorder{err: errors.New("intake down")}
	tooOld := &telemetry.Counter{}
	s := NewStage(d, StageOptions{MaxAge: MaxLogAge, TooOld: tooOld, Now: func() time.Time { return now }})
	in := &record.Batch{ID: "x", Records: []record.Record{
		{EventID: "fresh", Timestamp: ms(time.Minute)},
		{EventID: "edge", Timestamp: ms(MaxLogAge - time.Second)},
		{EventID: "old", Timestamp: ms(MaxLogAge + time.Second)},
		{EventID: "none"},
		{EventID: "years", Timestamp: time.Date(2023, 6, 10, 15, 36, 28, 0, time.UTC).UnixMilli()},
	}}
	out := &stagetest.Output{}
	require.Error(t, s.Handle(context.Background(), in, out))
	assert.Empty(t, out.Dead(), "nothing dead-lettered while the batch fails")
	assert.Zero(t, tooOld.Load())

	d.err = nil
	require.NoError(t, s.Handle(context.Background(), in, out))
	require.Len(t, d.got, 1)
	assert.Equal(t, []string{"fresh", "edge", "none"}, ids(d.got[0].Records))
	dead := out.Dead()
	require.Len(t, dead, 1)
	assert.Equal(t, StageName, dead[0].Stage)
	assert.Equal(t, ReasonTooOld, dead[0].Reason)
	assert.Equal(t, []string{"old", "years"}, ids(dead[0].Records))
	assert.EqualValues(t, 2, tooOld.Load())
	assert.Len(t, in.Records, 5, "the input batch is unchanged")

	// only old logs: nothing sent
	d.got = nil
	out = &stagetest.Output{}
	require.NoError(t, s.Handle(context.Background(), &record.Batch{Records: []record.Record{{EventID: "o", Timestamp: ms(48 * time.Hour)}}}, out))
	assert.Empty(t, d.got)
	require.Len(t, out.Dead(), 1)
	assert.EqualValues(t, 3, tooOld.Load())

	// without MaxAge (the dry runs of gwpipe parse and test) every log is sent
	d.got = nil
	out = &stagetest.Output{}
	require.NoError(t, NewStage(d, StageOptions{}).Handle(context.Background(), in, out))
	assert.Len(t, d.got[0].Records, 5)
	assert.Empty(t, out.Dead())
}
