package ddhttp

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Backoff configures the delay between attempts to send one payload.
// Zero fields take their defaults (WithDefaults).
type Backoff struct {
	InitialInterval time.Duration // first delay; default 500ms
	MaxInterval     time.Duration // cap on any delay; default 30s
	Multiplier      float64       // growth per attempt; default 2, at least 1
	// Jitter is the randomization factor: each delay is drawn from
	// [d·(1-Jitter), d·(1+Jitter)], then capped at MaxInterval. 0 means the
	// default 0.5; a negative value disables jitter.
	Jitter float64
	// Sleep waits between attempts (Retrier.Wait), returning ctx's error
	// if ctx ends first; nil is a timer. Tests replace it to see every
	// wait without spending it.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Backoff defaults.
const (
	DefaultInitialInterval = 500 * time.Millisecond
	DefaultMaxInterval     = 30 * time.Second
	DefaultMultiplier      = 2.0
	DefaultJitter          = 0.5
)

// Problems lists what is wrong with b, one message each.
func (b Backoff) Problems() []string {
	var p []string
	if b.InitialInterval < 0 || b.MaxInterval < 0 {
		p = append(p, "Backoff intervals must not be negative")
	}
	if b.InitialInterval > 0 && b.MaxInterval > 0 && b.InitialInterval > b.MaxInterval {
		p = append(p, fmt.Sprintf("Backoff.InitialInterval %v exceeds Backoff.MaxInterval %v", b.InitialInterval, b.MaxInterval))
	}
	if b.Multiplier != 0 && b.Multiplier < 1 {
		p = append(p, fmt.Sprintf("Backoff.Multiplier %v must be at least 1", b.Multiplier))
	}
	if b.Jitter > 1 {
		p = append(p, fmt.Sprintf("Backoff.Jitter %v must be at most 1", b.Jitter))
	}
	return p
}

// WithDefaults returns b with its zero fields set.
func (b Backoff) WithDefaults() Backoff {
	if b.InitialInterval == 0 {
		b.InitialInterval = DefaultInitialInterval
	}
	if b.MaxInterval == 0 {
		b.MaxInterval = DefaultMaxInterval
	}
	b.MaxInterval = max(b.MaxInterval, b.InitialInterval)
	if b.Multiplier == 0 {
		b.Multiplier = DefaultMultiplier
	}
	switch {
	case b.Jitter == 0:
		b.Jitter = DefaultJitter
	case b.Jitter < 0:
		b.Jitter = 0
	}
	return b
}

// New returns a fresh exponential backoff for one payload.
func (b Backoff) New() *backoff.ExponentialBackOff {
	bo := &backoff.ExponentialBackOff{
		InitialInterval: b.InitialInterval, RandomizationFactor: b.Jitter,
		Multiplier: b.Multiplier, MaxInterval: b.MaxInterval,
	}
	bo.Reset()
	return bo
}
