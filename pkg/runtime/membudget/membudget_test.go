package membudget

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
)

func mustNew(t testing.TB, limit, high int64) *Budget {
	b, err := New(limit, high)
	require.NoError(t, err)
	return b
}

func TestNewChecksItsBounds(t *testing.T) {
	t.Parallel()
	for _, c := range [][2]int64{{0, 0}, {10, 0}, {10, 10}, {10, 11}, {-1, -2}} {
		_, err := New(c[0], c[1])
		assert.Error(t, err, "%v", c)
	}
}

func TestSourcesAreAdmittedBelowTheHighWaterMark(t *testing.T) {
	t.Parallel()
	b := mustNew(t, 100, 40)
	require.True(t, b.TryAdmit(30, 0))
	require.True(t, b.TryAdmit(10, 30))
	assert.False(t, b.TryAdmit(1, 0), "at the high-water mark")
	b.Discharge(10)
	assert.True(t, b.TryAdmit(5, 0))
	st := b.Stats()
	assert.Equal(t, int64(35), st.HeldBytes)
	assert.Equal(t, int64(40), st.PeakBytes)
	assert.Equal(t, int64(1), st.Refused)
}

func TestAUnitLargerThanTheHighWaterMarkIsAdmittedAlone(t *testing.T) {
	t.Parallel()
	b := mustNew(t, 100, 40)
	require.True(t, b.TryAdmit(30, 0))
	require.True(t, b.TryAdmit(30, 30), "all the budget holds is the caller's own")
	require.True(t, b.TryAdmit(30, 60))
	other := mustNew(t, 100, 40)
	require.True(t, other.TryAdmit(30, 0))
	require.True(t, other.TryAdmit(5, 0))
	assert.False(t, other.TryAdmit(30, 30), "someone else holds bytes too")
}

func TestFlowingBytesUseTheBudgetUpToItsLimit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, 100, 40)
		require.True(t, b.TryAdmit(40, 0))
		require.NoError(t, b.Acquire(t.Context(), 60))
		assert.False(t, b.TryAdmit(1, 0))

		got := make(chan error, 1)
		go func() { got <- b.Acquire(t.Context(), 10) }()
		synctest.Wait()
		select {
		case <-got:
			t.Fatal("acquired past the limit")
		default:
		}
		assert.Equal(t, 1, b.Stats().Waiting)
		b.Release(20)
		synctest.Wait()
		require.NoError(t, <-got)
		assert.Equal(t, int64(90), b.Stats().HeldBytes)
	})
}

func TestAPieceLargerThanTheRoomLeftGoesOnceNothingFlows(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, 100, 40)
		require.True(t, b.TryAdmit(40, 0))
		require.NoError(t, b.Acquire(t.Context(), 30))
		done := make(chan error, 1)
		go func() { done <- b.Acquire(t.Context(), 500) }()
		synctest.Wait()
		assert.Empty(t, done)
		b.Release(30)
		synctest.Wait()
		require.NoError(t, <-done, "an oversized piece never deadlocks: it goes once no flowing bytes are held")
		assert.Equal(t, int64(540), b.Stats().HeldBytes)
	})
}

func TestStageWaitersComeFirstInOrder(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, 100, 40)
		require.NoError(t, b.Acquire(t.Context(), 95))
		granted := func(f func() error) chan struct{} {
			ch := make(chan struct{})
			go func() { require.NoError(t, f()); close(ch) }()
			synctest.Wait()
			return ch
		}
		isDone := func(ch chan struct{}) bool {
			select {
			case <-ch:
				return true
			default:
				return false
			}
		}
		source := granted(func() error { return b.Admit(t.Context(), 5) })
		big := granted(func() error { return b.Acquire(t.Context(), 50) })
		small := granted(func() error { return b.Acquire(t.Context(), 1) })
		assert.False(t, b.TryAdmit(1, 0), "no source overtakes a waiting stage")

		b.Release(10) // 85 held: the small one would fit, but waits its turn
		synctest.Wait()
		assert.False(t, isDone(big) || isDone(small) || isDone(source))

		b.Release(50) // 35 held: both stages go (86), not the source
		synctest.Wait()
		assert.True(t, isDone(big) && isDone(small))
		assert.False(t, isDone(source))

		b.Release(86) // empty: the source goes
		synctest.Wait()
		assert.True(t, isDone(source))
		assert.Equal(t, int64(5), b.Stats().HeldBytes)
	})
}

func TestWaitingEndsWithTheContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, 100, 40)
		require.NoError(t, b.Acquire(t.Context(), 100))
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		require.ErrorIs(t, b.Acquire(ctx, 10), context.DeadlineExceeded)
		require.ErrorIs(t, b.Admit(ctx, 10), context.DeadlineExceeded)
		st := b.Stats()
		assert.Equal(t, 0, st.Waiting)
		assert.Equal(t, int64(100), st.HeldBytes)
	})
}

func TestNilBudgetGrantsEverything(t *testing.T) {
	t.Parallel()
	var b *Budget
	assert.True(t, b.TryAdmit(1<<40, 0))
	require.NoError(t, b.Acquire(context.Background(), 1<<40))
	require.NoError(t, b.Admit(context.Background(), 1<<40))
	b.Force(1)
	b.Release(1)
	b.Discharge(1)
	assert.Zero(t, b.Stats())
}

func TestReleasingMoreThanTakenPanics(t *testing.T) {
	t.Parallel()
	b := mustNew(t, 100, 40)
	require.NoError(t, b.Acquire(context.Background(), 10))
	assert.Panics(t, func() { b.Release(11) })
}

// pipelineRun models what the budget serves: units of work admitted by
// sources (as a Firehose request or an SQS message is), each decoded into
// pieces that flow to consumers, and discharged only once all its pieces
// were released. Sizes come from seed; every unit must finish, whatever
// the sizes, and the budget must end empty.
func pipelineRun(t *testing.T, seed []byte, limit, high int64) {
	next := func() int64 {
		if len(seed) < 2 {
			seed = append(seed, 7, 3)
		}
		v := int64(binary.LittleEndian.Uint16(seed))
		seed = seed[2:]
		return v
	}
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, limit, high)
		var wg sync.WaitGroup
		units := 4 + int(next()%12)
		for u := range units {
			admit := 1 + next()%(2*high)   // sometimes above the high-water mark
			pieces := 1 + int(next()%6)    // what decode emits
			sizes := make([]int64, pieces) // sometimes above the limit
			for i := range sizes {
				sizes[i] = 1 + next()%(limit+limit/2)
			}
			hold := time.Duration(next()%50) * time.Millisecond
			blocking := u%2 == 0
			wg.Go(func() {
				ctx := t.Context()
				if blocking {
					require.NoError(t, b.Admit(ctx, admit))
				} else {
					for !b.TryAdmit(admit, 0) { // a client retrying after 429
						time.Sleep(10 * time.Millisecond)
					}
				}
				var consumers sync.WaitGroup
				for _, n := range sizes {
					require.NoError(t, b.Acquire(ctx, n))
					consumers.Go(func() {
						time.Sleep(hold) // parse, enrich, deliver
						b.Release(n)
					})
				}
				consumers.Wait()
				b.Discharge(admit)
			})
		}
		wg.Wait() // a deadlock fails the bubble: every goroutine blocked
		st := b.Stats()
		assert.Zero(t, st.HeldBytes)
		assert.Zero(t, st.Waiting)
	})
}

func TestManyAcquirersWithATinyBudgetAllFinish(t *testing.T) {
	t.Parallel()
	for i := range 50 {
		seed := binary.LittleEndian.AppendUint64(nil, uint64(i)*0x9E3779B97F4A7C15)
		seed = binary.LittleEndian.AppendUint64(seed, uint64(i+1)*0xBF58476D1CE4E5B9)
		pipelineRun(t, seed, 10, 4)
	}
}

func FuzzBudgetNeverDeadlocks(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, uint16(10), uint16(4))
	f.Add([]byte{255, 255, 0, 0, 255, 255}, uint16(3), uint16(1))
	f.Add([]byte("a pipeline of many sizes"), uint16(1000), uint16(999))
	f.Fuzz(func(t *testing.T, seed []byte, limit, high uint16) {
		if high == 0 || high >= limit {
			return
		}
		pipelineRun(t, seed, int64(limit), int64(high))
	})
}

func TestHoldReleasesWhenTheBatchIsDone(t *testing.T) {
	t.Parallel()
	b := mustNew(t, 100, 40)
	src := ack.New()
	batch := &record.Batch{ID: "piece", Ack: src}
	done, err := b.Hold(context.Background(), batch, 30)
	require.NoError(t, err)
	src.Done() // the source's token: the piece keeps the source open
	assert.Equal(t, int64(30), b.Stats().FlowingBytes)

	batch.Ack.Add(2) // two consumers take it
	done()
	batch.Ack.Done()
	assert.Equal(t, int64(30), b.Stats().FlowingBytes, "one consumer is still on it")
	select {
	case <-src.Completed():
		t.Fatal("the source completed before its piece")
	default:
	}
	batch.Ack.Done()
	assert.Zero(t, b.Stats().FlowingBytes)
	require.NoError(t, src.Wait(context.Background()))
}

func TestHoldWithoutAcknowledgementReleasesOnDone(t *testing.T) {
	t.Parallel()
	b := mustNew(t, 100, 40)
	batch := &record.Batch{ID: "piece"} // on a broker: published, then done
	done, err := b.Hold(context.Background(), batch, 30)
	require.NoError(t, err)
	done()
	assert.Zero(t, b.Stats().FlowingBytes)
}
