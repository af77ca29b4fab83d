package lease

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
)

var cfg = Config{TTL: 30 * time.Second}

// worker is one contender, whose link to the store can be cut (a dead or
// partitioned process: it can no longer renew, and never releases).
type worker struct {
	l    *Lease
	link *cas.Link
}

func newWorker(s cas.Store, name string) *worker {
	w := &worker{link: cas.NewLink(s)}
	w.l = New(w.link, "poll/123456789012-us-east-1", name, cfg)
	return w
}

// contest runs f in a synctest bubble with two contenders, a and b, for
// one lease on a fresh store.
func contest(t *testing.T, f func(t *testing.T, a, b *worker)) {
	synctest.Test(t, func(t *testing.T) {
		s := cas.NewMemory()
		f(t, newWorker(s, "a"), newWorker(s, "b"))
	})
}

func TestAcquireFreeThenRefusesLiveHolder(t *testing.T) {
	contest(t, func(t *testing.T, a, b *worker) {
		ctx, stop := context.WithCancel(t.Context())
		defer stop()
		require.NoError(t, a.l.Acquire(ctx), "a free lease is taken at once")
		go a.l.Keep(ctx, nil)

		start := time.Now()
		err := b.l.Acquire(ctx)
		var held *HeldError
		require.ErrorAs(t, err, &held, "a live holder's lease is refused")
		assert.Equal(t, "a", held.Holder)
		assert.Contains(t, err.Error(), "held by a")
		assert.LessOrEqual(t, time.Since(start), cfg.TTL/2, "refused as soon as the holder renews (every TTL/3)")
		_, ok := b.l.Held()
		assert.False(t, ok)
		stop()
		synctest.Wait()
	})
}

func TestAcquireTakesOverADeadHolder(t *testing.T) {
	contest(t, func(t *testing.T, a, b *worker) {
		ctx, stop := context.WithCancel(t.Context())
		defer stop()
		require.NoError(t, a.l.Acquire(ctx))
		hold, _ := a.l.Held()
		a.link.Cut(true) // kill -9: no renewal, no release
		died := time.Now()

		require.NoError(t, b.l.Acquire(ctx), "a dead holder's lease expires")
		took := time.Since(died)
		assert.GreaterOrEqual(t, took, cfg.TTL, "not before a whole TTL without renewal")
		assert.LessOrEqual(t, took, cfg.TTL*5/4+time.Second)
		require.Error(t, hold.Err(), "the dead holder's hold had ended before")
		assert.ErrorIs(t, context.Cause(hold), ErrLost)
	})
}

func TestReleaseHandsOverAtOnce(t *testing.T) {
	contest(t, func(t *testing.T, a, b *worker) {
		ctx := t.Context()
		require.NoError(t, a.l.Acquire(ctx))
		hold, _ := a.l.Held()
		ok, err := b.l.Try(ctx)
		require.NoError(t, err)
		require.False(t, ok)
		require.NoError(t, a.l.Release(ctx))
		assert.ErrorIs(t, context.Cause(hold), ErrReleased)
		ok, err = b.l.Try(ctx)
		require.NoError(t, err)
		assert.True(t, ok, "a released lease is taken without waiting")
	})
}

func TestFinishedIsNeverTakenAgain(t *testing.T) {
	contest(t, func(t *testing.T, a, b *worker) {
		ctx := t.Context()
		require.NoError(t, a.l.Acquire(ctx))
		require.NoError(t, a.l.Finish(ctx))
		_, ok := a.l.Held()
		assert.False(t, ok)
		time.Sleep(10 * cfg.TTL)
		_, err := b.l.Try(ctx)
		assert.ErrorIs(t, err, ErrDone)
		assert.ErrorIs(t, b.l.Acquire(ctx), ErrDone)
	})
}

// A holder cut off from the store keeps its hold until it can no longer
// be sure of it — its last successful write plus TTL, less the margin —
// and then stops, before anyone else could take the lease.
func TestHolderCutOffStopsBeforeTakeover(t *testing.T) {
	contest(t, func(t *testing.T, a, b *worker) {
		ctx, stop := context.WithCancel(t.Context())
		defer stop()
		var aEnded, bStarted atomic.Int64
		go a.l.Keep(ctx, nil)
		synctest.Wait()
		hold, ok := a.l.Held()
		require.True(t, ok)
		// The hold's context is what work under the lease stops with (Keep's
		// callback hears of the loss only at its next attempt, later).
		context.AfterFunc(hold, func() { aEnded.Store(time.Now().UnixNano()) })
		go b.l.Keep(ctx, func(held bool) {
			if held {
				bStarted.Store(time.Now().UnixNano())
			}
		})
		time.Sleep(2 * cfg.TTL)
		_, ok = b.l.Held()
		require.False(t, ok, "a live holder keeps its lease")
		a.link.Cut(true)
		cut := time.Now()
		time.Sleep(3 * cfg.TTL)
		require.NotZero(t, aEnded.Load(), "the cut-off holder stopped")
		require.NotZero(t, bStarted.Load(), "the standby took over")
		assert.Less(t, aEnded.Load(), bStarted.Load(), "the holds never overlap")
		assert.LessOrEqual(t, time.Unix(0, bStarted.Load()).Sub(cut), cfg.TTL*3/2+time.Second, "takeover within TTL·1.5")
		stop()
		synctest.Wait()
	})
}

// The property: whatever the schedule of deaths, partitions and recoveries
// among several contenders, no two holds overlap in time, and the lease
// does not stay unheld for long while a contender is alive.
func TestHoldsNeverOverlap(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { checkNoOverlap(t, seed) })
		})
	}
}

func checkNoOverlap(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	s := cas.NewMemory()
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	type span struct {
		who        int
		start, end time.Time
	}
	var (
		mu    sync.Mutex
		spans []span
	)
	workers := make([]*worker, 4)
	for i := range workers {
		w := newWorker(s, fmt.Sprint(i))
		workers[i] = w
		go w.l.Keep(ctx, func(held bool) {
			if !held {
				return
			}
			hold, ok := w.l.Held()
			if !ok {
				return
			}
			start := time.Now()
			context.AfterFunc(hold, func() {
				mu.Lock()
				spans = append(spans, span{i, start, time.Now()})
				mu.Unlock()
			})
		})
		time.Sleep(time.Duration(rng.IntN(5000)) * time.Millisecond)
	}
	for range 40 {
		time.Sleep(time.Duration(rng.IntN(int(2*cfg.TTL/time.Millisecond))) * time.Millisecond)
		w := workers[rng.IntN(len(workers))]
		w.link.Cut(!w.link.IsCut()) // partitioned, or back
	}
	for _, w := range workers {
		w.link.Cut(true)
	}
	time.Sleep(2 * cfg.TTL)
	stop()
	synctest.Wait()
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, spans)
	for i, a := range spans {
		for _, b := range spans[i+1:] {
			if a.start.Before(b.end) && b.start.Before(a.end) {
				t.Fatalf("holds overlap: %d held %s–%s, %d held %s–%s", a.who, a.start, a.end, b.who, b.start, b.end)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	err := Config{TTL: 10 * time.Millisecond}.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ttl: must be 1s to 1h")
}

// FuzzHoldsNeverOverlap is the property of TestHoldsNeverOverlap over any
// schedule of deaths, partitions and recoveries.
func FuzzHoldsNeverOverlap(f *testing.F) {
	f.Add(uint64(1))
	f.Add(uint64(42))
	f.Fuzz(func(t *testing.T, seed uint64) {
		synctest.Test(t, func(t *testing.T) { checkNoOverlap(t, seed) })
	})
}
