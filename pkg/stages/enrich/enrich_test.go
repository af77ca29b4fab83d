package enrich

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
)

// scriptedTagger names a record's stage by its origin's log group and
// answers from a script; it records the order of Peeks and Waits and the
// deadline of each Wait.
type scriptedTagger struct {
	infos   map[string]awstags.Info // by API id ("" = base)
	settled map[string]bool         // Peek's answer; false: Wait blocks until ctx is done
	quiet   bool                    // record nothing (allocation tests)

	mu        sync.Mutex
	calls     []string
	deadlines []time.Time
}

func (s *scriptedTagger) Resolve(rec *record.Record) (awstags.StageKey, bool) {
	o := rec.Origin
	k := awstags.StageKey{Account: o.Account, Region: o.Region, APIID: o.LogGroup}
	return k, k.APIID != ""
}

func (s *scriptedTagger) Peek(key awstags.StageKey) (awstags.Info, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.quiet {
		s.calls = append(s.calls, "peek "+key.APIID)
	}
	return s.infos[key.APIID], key.APIID == "" || s.settled[key.APIID]
}

func (s *scriptedTagger) Wait(ctx context.Context, key awstags.StageKey) (awstags.Info, bool) {
	s.mu.Lock()
	s.calls = append(s.calls, "wait "+key.APIID)
	d, _ := ctx.Deadline()
	s.deadlines = append(s.deadlines, d)
	s.mu.Unlock()
	<-ctx.Done()
	info := s.infos[key.APIID]
	info.Tags = append(info.Tags[:len(info.Tags):len(info.Tags)], awstags.PartialTag)
	info.Partial = true
	return info, false
}

// captureOutput records emitted batches.
type captureOutput struct {
	emitted []*record.Batch
}

func (c *captureOutput) Emit(_ context.Context, b *record.Batch) error {
	c.emitted = append(c.emitted, b)
	return nil
}

func (c *captureOutput) DeadLetter(context.Context, *record.Batch) error {
	panic("enrich never dead-letters")
}

var _ stage.Output = (*captureOutput)(nil)

func tags(s ...string) []string { return s[:len(s):len(s)] }

func newScripted() *scriptedTagger {
	return &scriptedTagger{
		infos: map[string]awstags.Info{
			"":   {Tags: tags("region:us-east-1", "aws_account:111111111111")},
			"aa": {APIID: "aa", Stage: "prod", Tags: tags("apiid:aa", "stage:prod", "service:pets"), Service: "pets"},
			"bb": {APIID: "bb", Stage: "dev", Tags: tags("apiid:bb", "stage:dev")},
			"cc": {APIID: "cc", Tags: tags("apiid:cc")},
			"dd": {APIID: "dd", Tags: tags("apiid:dd")},
		},
		settled: map[string]bool{"aa": true, "bb": true},
	}
}

func origin(group string) *record.Origin {
	return &record.Origin{Account: "111111111111", Region: "us-east-1", LogGroup: group}
}

func TestHandleAssignsSharedTags(t *testing.T) {
	tg := newScripted()
	st, err := New(tg, Config{})
	require.NoError(t, err)
	a, b, none := origin("aa"), origin("bb"), origin("")
	batch := &record.Batch{Records: []record.Record{
		{Origin: a}, {Origin: b}, {Origin: a}, {Origin: none},
		{Origin: a, Tags: tags("custom:1")},
		{Origin: b, Service: "from-parser"},
	}}
	out := &captureOutput{}
	require.NoError(t, st.Handle(context.Background(), batch, out))
	require.Len(t, out.emitted, 1)
	assert.Same(t, batch, out.emitted[0])

	r := batch.Records
	tests := []struct {
		name    string
		rec     record.Record
		tags    []string
		service string
		shared  []string // the stage's slice the record must share
	}{
		{"stage A", r[0], []string{"apiid:aa", "stage:prod", "service:pets"}, "pets", tg.infos["aa"].Tags},
		{"stage B", r[1], []string{"apiid:bb", "stage:dev"}, "", tg.infos["bb"].Tags},
		{"stage A again", r[2], []string{"apiid:aa", "stage:prod", "service:pets"}, "pets", tg.infos["aa"].Tags},
		{"no stage: account and region", r[3], []string{"region:us-east-1", "aws_account:111111111111"}, "", tg.infos[""].Tags},
		{"own tags kept, stage's appended to a copy", r[4], []string{"custom:1", "apiid:aa", "stage:prod", "service:pets"}, "pets", nil},
		{"no service tag: the record's service stays", r[5], []string{"apiid:bb", "stage:dev"}, "from-parser", tg.infos["bb"].Tags},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.tags, tc.rec.Tags)
			assert.Equal(t, tc.service, tc.rec.Service)
			if tc.shared != nil {
				assert.Same(t, &tc.shared[0], &tc.rec.Tags[0])
			}
		})
	}
	assert.Equal(t, []string{"apiid:aa", "stage:prod", "service:pets"}, tg.infos["aa"].Tags, "the shared slice is never written")
	assert.Equal(t, []string{"peek aa", "peek bb", "peek "}, tg.calls, "one lookup per distinct stage")
	assert.Equal(t, Stats{Batches: 1, Records: 6, Unnamed: 1}, st.Stats())
}

func TestHandleWaitsOncePerBatch(t *testing.T) {
	tg := newScripted()
	const maxWait = 30 * time.Millisecond
	st, err := New(tg, Config{MaxWait: maxWait})
	require.NoError(t, err)
	batch := &record.Batch{Records: []record.Record{
		{Origin: origin("cc")}, {Origin: origin("aa")}, {Origin: origin("dd")}, {Origin: origin("cc")}, {Origin: origin("bb")},
	}}
	start := time.Now()
	require.NoError(t, st.Handle(context.Background(), batch, &captureOutput{}))

	assert.Equal(t, []string{"peek cc", "peek aa", "peek dd", "peek bb", "wait cc", "wait dd"}, tg.calls,
		"every fetch starts before any wait")
	require.Len(t, tg.deadlines, 2)
	assert.Equal(t, tg.deadlines[0], tg.deadlines[1], "one deadline for the whole batch")
	assert.WithinDuration(t, start.Add(maxWait), tg.deadlines[0], maxWait)
	assert.Equal(t, []string{"apiid:cc", awstags.PartialTag}, batch.Records[0].Tags)
	assert.Equal(t, []string{"apiid:aa", "stage:prod", "service:pets"}, batch.Records[1].Tags)
	assert.Equal(t, Stats{Batches: 1, Records: 5, Partial: 3, Waits: 1}, st.Stats())
}

func TestHandleCancelledContextStillDelivers(t *testing.T) {
	tg := newScripted()
	st, err := New(tg, Config{MaxWait: time.Hour})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	batch := &record.Batch{Records: []record.Record{{Origin: origin("cc")}}}
	out := &captureOutput{}
	require.NoError(t, st.Handle(ctx, batch, out))
	assert.Len(t, out.emitted, 1, "never held")
	assert.Contains(t, batch.Records[0].Tags, awstags.PartialTag)
}

func TestHandleRetryIsIdempotent(t *testing.T) {
	tg := newScripted()
	st, err := New(tg, Config{})
	require.NoError(t, err)
	batch := &record.Batch{Records: []record.Record{{Origin: origin("aa")}, {Origin: origin("aa"), Tags: tags("custom:1")}}}
	for range 3 { // the runtime retries a batch whose Emit failed
		require.NoError(t, st.Handle(context.Background(), batch, &captureOutput{}))
	}
	assert.Equal(t, []string{"apiid:aa", "stage:prod", "service:pets"}, batch.Records[0].Tags)
	assert.Equal(t, []string{"custom:1", "apiid:aa", "stage:prod", "service:pets"}, batch.Records[1].Tags)
}

func TestHandleManyStagesInOneBatch(t *testing.T) {
	tg := &scriptedTagger{infos: map[string]awstags.Info{}, settled: map[string]bool{}}
	var recs []record.Record
	for i := range 40 {
		id := string(rune('a'+i%20)) + string(rune('a'+i/20))
		tg.infos[id] = awstags.Info{Tags: tags("apiid:" + id)}
		tg.settled[id] = true
		recs = append(recs, record.Record{Origin: origin(id)}, record.Record{Origin: origin(id)})
	}
	st, err := New(tg, Config{})
	require.NoError(t, err)
	require.NoError(t, st.Handle(context.Background(), &record.Batch{Records: recs}, &captureOutput{}))
	assert.Len(t, tg.calls, 40, "past the linear search, the map keeps keys distinct")
	for _, r := range recs {
		assert.Equal(t, []string{"apiid:" + r.Origin.LogGroup}, r.Tags)
	}
}

func TestHandleDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items on purpose")
	}
	tg := newScripted()
	tg.quiet = true
	st, err := New(tg, Config{})
	require.NoError(t, err)
	a, b := origin("aa"), origin("bb")
	batch := &record.Batch{Records: make([]record.Record, 500)}
	for i := range batch.Records {
		batch.Records[i].Origin = a
		if i%3 == 0 {
			batch.Records[i].Origin = b
		}
	}
	out := &captureOutput{emitted: make([]*record.Batch, 0, 1)}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		out.emitted = out.emitted[:0]
		_ = st.Handle(ctx, batch, out)
	})
	assert.Zero(t, allocs)
}

func TestNew(t *testing.T) {
	_, err := New(nil, Config{})
	assert.Error(t, err)
	_, err = New(newScripted(), Config{MaxWait: -1})
	assert.Error(t, err)
	st, err := New(newScripted(), Config{})
	require.NoError(t, err)
	assert.Equal(t, awstags.DefaultMaxWait, st.cfg.MaxWait)
}
