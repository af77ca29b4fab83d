package backoff

import (
	"context"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, Exponential(time.Millisecond, time.Second).Validate())
	require.NoError(t, ExponentialFullJitter(time.Millisecond, time.Second).Validate())
	for _, tc := range []struct {
		p    Policy
		want string
	}{
		{Policy{MaxInterval: time.Second, Multiplier: 2}, "retry_initial: must be positive, got 0s"},
		{Policy{InitialInterval: time.Minute, MaxInterval: time.Second, Multiplier: 2}, "retry_max: must be positive and at least retry_initial (1m0s), got 1s"},
		{Policy{InitialInterval: time.Second, MaxInterval: time.Second, Multiplier: 0.5}, "multiplier: must be at least 1, got 0.5"},
		{Policy{InitialInterval: time.Second, MaxInterval: time.Second, Multiplier: math.NaN()}, "multiplier: must be at least 1, got NaN"},
		{Policy{InitialInterval: time.Second, MaxInterval: time.Second, Multiplier: 2, Jitter: 1.5}, "jitter: must be 0..1, got 1.5"},
		{Policy{InitialInterval: time.Second, MaxInterval: time.Second, Multiplier: 2, Jitter: -0.1}, "jitter: must be 0..1, got -0.1"},
	} {
		err := tc.p.Validate()
		require.Error(t, err, tc.want)
		assert.Contains(t, err.Error(), tc.want)
	}
	err := Policy{}.Validate()
	require.Error(t, err)
	for _, key := range []string{"retry_initial", "retry_max", "multiplier"} {
		assert.Contains(t, err.Error(), key, "every problem is reported")
	}
}

func TestNoJitterIsTheExactSequence(t *testing.T) {
	t.Parallel()
	p := Exponential(time.Millisecond, 8*time.Millisecond)
	p.Jitter = 0
	b := p.Start()
	var got []time.Duration
	for range 6 {
		got = append(got, b.Next())
	}
	ms := time.Millisecond
	assert.Equal(t, []time.Duration{ms, 2 * ms, 4 * ms, 8 * ms, 8 * ms, 8 * ms}, got)
	b.Reset()
	assert.Equal(t, ms, b.Next(), "Reset starts again")
}

// TestDelaysStayInTheirBand: the n-th delay is drawn from [d·(1-Jitter), d]
// with d = min(InitialInterval·Multiplier^(n-1), MaxInterval).
func TestDelaysStayInTheirBand(t *testing.T) {
	t.Parallel()
	for _, p := range []Policy{
		Exponential(100*time.Millisecond, 30*time.Second),
		{InitialInterval: time.Second, MaxInterval: time.Minute, Multiplier: 1.5, Jitter: FullJitter},
		{InitialInterval: 200 * time.Millisecond, MaxInterval: 6400 * time.Millisecond, Multiplier: 2, Jitter: 0.15},
		{InitialInterval: time.Second, MaxInterval: time.Second, Multiplier: 1, Jitter: DefaultJitter},
	} {
		for range 50 {
			b := p.Start()
			for n := 1; n <= 40; n++ {
				d := math.Min(float64(p.InitialInterval)*math.Pow(p.Multiplier, float64(n-1)), float64(p.MaxInterval))
				got := float64(b.Next())
				slack := 1e-6*d + 2
				require.GreaterOrEqual(t, got, d*(1-p.Jitter)-slack, "%+v delay %d", p, n)
				require.LessOrEqual(t, got, d+slack, "%+v delay %d", p, n)
				require.LessOrEqual(t, got, float64(p.MaxInterval), "never beyond the cap")
			}
		}
	}
}

// TestJitterSpreads: full jitter reaches down to nearly nothing, equal
// jitter never below half.
func TestJitterSpreads(t *testing.T) {
	t.Parallel()
	full := Exponential(time.Second, time.Second)
	full.Jitter = FullJitter
	half := Exponential(time.Second, time.Second)
	lowFull, lowHalf := time.Hour, time.Hour
	for range 2000 {
		lowFull = min(lowFull, full.Start().Next())
		lowHalf = min(lowHalf, half.Start().Next())
	}
	assert.Less(t, lowFull, 50*time.Millisecond)
	assert.GreaterOrEqual(t, lowHalf, 500*time.Millisecond)
	assert.Less(t, lowHalf, 550*time.Millisecond)
}

func TestSleep(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		require.NoError(t, Sleep(context.Background(), time.Hour))
		assert.Equal(t, time.Hour, time.Since(start))

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start = time.Now()
		assert.ErrorIs(t, Sleep(ctx, time.Hour), context.DeadlineExceeded, "abandoned at the deadline")
		assert.Equal(t, time.Minute, time.Since(start))

		assert.ErrorIs(t, Sleep(ctx, 0), context.DeadlineExceeded, "an ended context wins even without a wait")
		assert.NoError(t, Sleep(context.Background(), -time.Second))
	})
}

func TestWaitUsesThePolicysSleeper(t *testing.T) {
	t.Parallel()
	var waits []time.Duration
	p := Exponential(time.Second, time.Second)
	p.Jitter = 0
	p.Sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return ctx.Err() }
	b := p.Start()
	require.NoError(t, b.Wait(context.Background()))
	require.NoError(t, b.Sleep(context.Background(), time.Minute))
	assert.Equal(t, []time.Duration{time.Second, time.Minute}, waits)
}

// FuzzDelays: whatever a valid policy, every delay is within [0, MaxInterval].
func FuzzDelays(f *testing.F) {
	f.Add(int64(time.Millisecond), int64(time.Second), 2.0, 0.5)
	f.Add(int64(1), int64(math.MaxInt64), 10.0, 1.0)
	f.Add(int64(time.Hour), int64(time.Hour), 1.0, 0.0)
	f.Fuzz(func(t *testing.T, initial, maxI int64, mult, jitter float64) {
		p := Policy{InitialInterval: time.Duration(initial), MaxInterval: time.Duration(maxI), Multiplier: mult, Jitter: jitter}
		if p.Validate() != nil {
			return
		}
		b := p.Start()
		for n := range 100 {
			if d := b.Next(); d < 0 || d > p.MaxInterval {
				t.Fatalf("%+v: delay %d = %v", p, n+1, d)
			}
		}
	})
}
