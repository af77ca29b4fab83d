package decode

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/runtime/membudget"
)

// pipe is a stage.Output whose batches are taken by consumers that
// acknowledge them when the test says so (or at once).
type pipe struct {
	mu      sync.Mutex
	emitted []*record.Batch
	dead    []*record.Batch
	got     chan *record.Batch
	fail    error
}

func newPipe() *pipe { return &pipe{got: make(chan *record.Batch, 1<<16)} }

func (p *pipe) Emit(_ context.Context, b *record.Batch) error {
	if p.fail != nil {
		return p.fail
	}
	if b.Ack != nil {
		b.Ack.Add(1) // the consumer's fragment, as the runtime adds it
	}
	p.mu.Lock()
	p.emitted = append(p.emitted, b)
	p.mu.Unlock()
	p.got <- b
	return nil
}

func (p *pipe) DeadLetter(_ context.Context, b *record.Batch) error {
	p.mu.Lock()
	p.dead = append(p.dead, b)
	p.mu.Unlock()
	return nil
}

// accessLines is a record of n events of about size bytes each.
func accessLines(first, n, size int) []byte {
	var sb strings.Builder
	sb.WriteString(`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"g","logStream":"s","logEvents":[`)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"id":"%d","timestamp":1,"message":"%s"}`, first+i, strings.Repeat("x", size))
	}
	sb.WriteString("]}")
	return b64(gz(sb.String()))
}

func TestABatchLargerThanTheBudgetLeavesInPieces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 100 records of 200 events of ~1 KB: ~20 MB of events, 80 MB of
		// footprint, through a budget of 8 MiB.
		budget, err := membudget.New(8<<20, 4<<20)
		require.NoError(t, err)
		s := New(Config{MaxRecordBytes: 1_024_000, MaxDecompressedBytes: 1 << 20, MaxEventsPerBatch: 500}, nil).WithMemory(budget)
		var datas [][]byte
		for r := range 100 {
			datas = append(datas, accessLines(r*200, 200, 1000))
		}
		in := rawBatch(datas...)
		src := ack.New()
		in.Ack = src

		p := newPipe()
		go func() {
			// The consumers deliver a piece only once decode can go no
			// further: it has to wait for the budget, not run ahead.
			for b := range p.got {
				synctest.Wait()
				b.Ack.Done()
			}
		}()
		require.NoError(t, s.Handle(t.Context(), in, p))
		src.Done()
		require.NoError(t, src.Wait(t.Context()), "the source completes once every piece was delivered")
		close(p.got)

		n := 0
		for _, b := range p.emitted {
			require.LessOrEqual(t, b.Len(), 500)
			for _, r := range b.Records {
				require.Equal(t, fmt.Sprint(n), r.EventID, "every event once, in order")
				n++
			}
		}
		assert.Equal(t, 20_000, n)
		assert.Len(t, p.emitted, 40)
		st := budget.Stats()
		assert.LessOrEqual(t, st.PeakBytes, int64(8<<20), "what was held never exceeded the budget")
		assert.Positive(t, st.Waits, "decode waited for the budget")
		assert.Zero(t, st.HeldBytes)
	})
}

func TestAPieceIsBoundedInBytes(t *testing.T) {
	s := New(Config{MaxRecordBytes: 1_024_000, MaxDecompressedBytes: 16 << 20, MaxEventsPerBatch: 2000}, nil)
	res := s.Decode(rawBatch(accessLines(0, 1000, 10_000))) // 10 MB of events in one record
	require.Nil(t, res.Dead)
	total := 0
	for _, b := range res.Batches {
		size := 0
		for _, r := range b.Records {
			size += len(r.Message) + len(r.EventID)
		}
		assert.LessOrEqual(t, size, maxPieceBytes+10_100)
		total += b.Len()
	}
	assert.Equal(t, 1000, total)
	assert.GreaterOrEqual(t, len(res.Batches), 5)
}

func TestARequestDecompressesWithinItsAllowance(t *testing.T) {
	s := New(Config{MaxRecordBytes: 1_024_000, MaxDecompressedBytes: 1 << 20, MaxEventsPerBatch: 1000,
		MaxUnitDecompressedBytes: 1 << 20}, nil)
	rec := accessLines(0, 100, 3000) // ~300 KB decompressed
	unit := new(record.Unit)
	// Two raw batches of one request: the allowance is the request's.
	first, second := rawBatch(rec, rec), rawBatch(rec, rec)
	first.Unit, second.Unit = unit, unit
	a, b := s.Decode(first), s.Decode(second)
	assert.Nil(t, a.Dead)
	assert.Len(t, all(a), 200)
	assert.Len(t, all(b), 100, "the fourth record would take the request past 1 MiB")
	require.NotNil(t, b.Dead)
	require.Len(t, b.Dead.Records, 1)
	assert.Contains(t, b.Dead.Records[0].Reason, "decode.max_request_decompressed_bytes")
	assert.Equal(t, rec, b.Dead.Records[0].Message, "dead-lettered as it came, for a replay")
	assert.LessOrEqual(t, unit.Decompressed(), int64(1<<20))

	// Without a shared unit (decode in another process than the source),
	// each raw batch has the allowance.
	c := s.Decode(rawBatch(rec, rec, rec))
	assert.Nil(t, c.Dead)
	assert.Len(t, all(c), 300)
}

func TestAFailedEmitGivesTheAllowanceBack(t *testing.T) {
	s := New(Config{MaxRecordBytes: 1_024_000, MaxDecompressedBytes: 1 << 20, MaxEventsPerBatch: 1000,
		MaxUnitDecompressedBytes: 1 << 20}, nil)
	in := rawBatch(accessLines(0, 100, 3000), accessLines(100, 100, 3000))
	in.Unit = new(record.Unit)
	p := newPipe()
	p.fail = errors.New("downstream gone")
	require.ErrorIs(t, s.Handle(context.Background(), in, p), p.fail)
	assert.Zero(t, in.Unit.Decompressed(), "the batch will be decoded again: nothing of it counts")
	p.fail = nil
	require.NoError(t, s.Handle(context.Background(), in, p))
	assert.Positive(t, in.Unit.Decompressed())
}

func TestLargeRecordsAreDecodedOneAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		budget, err := membudget.New(64<<20, 32<<20)
		require.NoError(t, err)
		s := New(Config{MaxRecordBytes: 1_024_000, MaxDecompressedBytes: 8 << 20, MaxEventsPerBatch: 500}, nil).WithMemory(budget)
		large := accessLines(0, 1000, 2000) // ~2 MB decompressed
		blocked := newPipe()
		blocked.got = make(chan *record.Batch) // takes one batch when the test does
		free := newPipe()

		var wg sync.WaitGroup
		wg.Go(func() { assert.NoError(t, s.Handle(t.Context(), rawBatch(large), blocked)) })
		synctest.Wait() // the first holds the large-record slot, stuck emitting
		wg.Go(func() { assert.NoError(t, s.Handle(t.Context(), rawBatch(large), free)) })
		synctest.Wait()
		assert.Empty(t, free.emitted, "the second large record waits for the first")
		st := budget.Stats()
		assert.GreaterOrEqual(t, st.AdmittedBytes, int64(workPerByte*2_000_000), "the first one's buffers count")

		for range 2 { // 1,000 events: two pieces of 500
			<-blocked.got
		}
		wg.Wait()
		assert.Len(t, free.emitted, 2)
		assert.Zero(t, budget.Stats().AdmittedBytes)
	})
}
