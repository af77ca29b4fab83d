package claim

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
)

var cfg = Config{Enabled: true, TTL: 10 * time.Minute, ClaimTTL: 10 * time.Second}

// worker is one ingest worker's view of the fleet's request ids, whose
// link to the store can be cut (kill -9).
type worker struct {
	*Requests
	link *cas.Link
}

func newWorker(s *cas.Memory, name string) worker {
	link := cas.NewLink(s)
	return worker{NewRequests(link, name, cfg), link}
}

// twoWorkers runs f in a synctest bubble with two workers, a and b,
// sharing a fresh store.
func twoWorkers(t *testing.T, f func(t *testing.T, a, b worker)) {
	synctest.Test(t, func(t *testing.T) {
		s := cas.NewMemory()
		f(t, newWorker(s, "a"), newWorker(s, "b"))
	})
}

func TestRetryOnAnotherWorkerAfterDelivery(t *testing.T) {
	twoWorkers(t, func(t *testing.T, a, b worker) {
		ctx := t.Context()
		ca := a.Claim("req-1")
		out, err := ca.Try(ctx)
		require.NoError(t, err)
		require.Equal(t, Mine, out)
		out, err = b.Claim("req-1").Try(ctx)
		require.NoError(t, err)
		assert.Equal(t, Elsewhere, out, "in flight on a")
		require.NoError(t, ca.Settle(ctx, true))
		out, err = b.Claim("req-1").Try(ctx)
		require.NoError(t, err)
		assert.Equal(t, Delivered, out, "a retry after delivery sends nothing")
		time.Sleep(time.Hour)
		out, _ = b.Claim("req-1").Try(ctx)
		assert.Equal(t, Delivered, out, "until the store forgets it (the bucket's TTL)")
	})
}

// A retry that arrives while the first attempt is still delivering waits
// for it, and answers as it ends.
func TestRetryWaitsForTheFirstAttempt(t *testing.T) {
	for _, delivered := range []bool{true, false} {
		t.Run(map[bool]string{true: "delivered", false: "failed"}[delivered], func(t *testing.T) {
			twoWorkers(t, func(t *testing.T, a, b worker) {
				ctx := t.Context()
				ca := a.Claim("req-1")
				_, err := ca.Try(ctx)
				require.NoError(t, err)
				go func() {
					time.Sleep(3 * cfg.ClaimTTL) // a long delivery: the claim is renewed meanwhile
					_ = ca.Settle(context.Background(), delivered)
				}()
				cb := b.Claim("req-1")
				start := time.Now()
				out, err := cb.Wait(ctx)
				require.NoError(t, err)
				took := time.Since(start)
				assert.GreaterOrEqual(t, took, 3*cfg.ClaimTTL, "a live worker's claim is never taken over")
				assert.Less(t, took, 3*cfg.ClaimTTL+time.Second)
				if delivered {
					assert.Equal(t, Delivered, out)
				} else {
					assert.Equal(t, Mine, out, "a failed attempt's claim is released: the retry handles the request")
					require.NoError(t, cb.Settle(ctx, true))
				}
			})
		})
	}
}

// A worker that dies while handling a request leaves a claim nobody renews:
// the retry waiting on it takes the request over.
func TestRetryTakesOverADeadWorkersRequest(t *testing.T) {
	twoWorkers(t, func(t *testing.T, a, b worker) {
		ctx := t.Context()
		_, err := a.Claim("req-1").Try(ctx)
		require.NoError(t, err)
		a.link.Cut(true)
		start := time.Now()
		cb := b.Claim("req-1")
		out, err := cb.Wait(ctx)
		require.NoError(t, err)
		assert.Equal(t, Mine, out)
		took := time.Since(start)
		assert.GreaterOrEqual(t, took, cfg.ClaimTTL)
		assert.LessOrEqual(t, took, cfg.ClaimTTL*3/2)
		require.NoError(t, cb.Settle(ctx, true))
		synctest.Wait()
	})
}

func TestWaitEndsWithItsContext(t *testing.T) {
	twoWorkers(t, func(t *testing.T, a, b worker) {
		ca := a.Claim("req-1")
		_, err := ca.Try(t.Context())
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		out, err := b.Claim("req-1").Wait(ctx)
		assert.Equal(t, Elsewhere, out)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		require.NoError(t, ca.Settle(t.Context(), true))
	})
}

// An unreachable store is an error the caller handles by going on alone.
func TestUnreachableStoreIsAnError(t *testing.T) {
	s := cas.NewMemory()
	a := newWorker(s, "a")
	a.link.Cut(true)
	_, err := a.Claim("req-1").Try(context.Background())
	require.Error(t, err)
}

func TestDeliveredBatches(t *testing.T) {
	s := cas.NewMemory()
	d := NewBatches(s)
	ctx := context.Background()
	key := BatchKey(slices.Values([]string{"1", "", "2"}))
	require.NotEmpty(t, key)
	assert.Equal(t, key, BatchKey(slices.Values([]string{"1", "2"})), "records without an id do not count")
	assert.NotEqual(t, key, BatchKey(slices.Values([]string{"2", "1"})))
	assert.NotEqual(t, key, BatchKey(slices.Values([]string{"1", "2", "3"})))
	assert.NotEqual(t, BatchKey(slices.Values([]string{"a\x00b"})), BatchKey(slices.Values([]string{"a", "b"})))
	assert.Empty(t, BatchKey(slices.Values([]string{"", ""})), "nothing to recognise the batch by")
	seen, err := d.Seen(ctx, key)
	require.NoError(t, err)
	assert.False(t, seen)
	require.NoError(t, d.Mark(ctx, key))
	require.NoError(t, d.Mark(ctx, key), "marking twice is fine")
	seen, err = NewBatches(s).Seen(ctx, key)
	require.NoError(t, err)
	assert.True(t, seen, "another worker sees it")
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	err := Config{TTL: time.Second, ClaimTTL: time.Hour}.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ttl: must be 1m to 24h")
	assert.Contains(t, err.Error(), "claim_ttl: must be at most a third")
}
