// Package backoff is gwpipe's one way to pace retries: an exponential
// backoff with jitter (github.com/cenkalti/backoff/v5 computes it), and one
// context-aware sleep that tests replace to see every wait without spending
// it. Every retry loop of gwpipe waits through it, so that they all honour
// cancellation and shutdown deadlines the same way.
package backoff

import (
	"context"
	"errors"
	"fmt"
	"time"

	cenkalti "github.com/cenkalti/backoff/v5"
)

// Defaults of a Policy's shape; its intervals belong to each user.
const (
	DefaultMultiplier = 2.0
	// DefaultJitter draws each delay from its upper half ("equal jitter"):
	// callers that failed together spread out, and none retries much
	// sooner than the policy says.
	DefaultJitter = 0.5
	// FullJitter draws each delay from [0, d], which spreads callers the
	// most; what AWS recommends against throttling.
	FullJitter = 1.0
)

// Sleeper waits d, or until ctx ends and then returns ctx's error.
type Sleeper func(ctx context.Context, d time.Duration) error

// Sleep is the Sleeper of production: a timer, abandoned when ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Policy is an exponential backoff: the n-th delay is
// InitialInterval·Multiplier^(n-1), capped at MaxInterval, of which the
// share Jitter is random. The YAML keys are the ones every retrying
// component of gwpipe documents (retry_initial, retry_max).
type Policy struct {
	InitialInterval time.Duration `yaml:"retry_initial"` // first delay
	MaxInterval     time.Duration `yaml:"retry_max"`     // cap on any delay
	// Multiplier is the growth per attempt, at least 1.
	Multiplier float64 `yaml:"-"`
	// Jitter is the random share of each delay, 0..1: a delay d is drawn
	// uniformly from [d·(1-Jitter), d], so that no delay exceeds the
	// sequence (nor MaxInterval). 0 is none, DefaultJitter half,
	// FullJitter all of it.
	Jitter float64 `yaml:"-"`
	// Sleep waits between attempts; nil is Sleep. Tests replace it.
	Sleep Sleeper `yaml:"-"`
}

// Exponential is a Policy from initial to max with the default shape.
func Exponential(initial, max time.Duration) Policy {
	return Policy{InitialInterval: initial, MaxInterval: max, Multiplier: DefaultMultiplier, Jitter: DefaultJitter}
}

// ExponentialFullJitter is a Policy from initial to max with the default
// multiplier and full jitter: what AWS recommends for calls it throttles.
func ExponentialFullJitter(initial, max time.Duration) Policy {
	return Policy{InitialInterval: initial, MaxInterval: max, Multiplier: DefaultMultiplier, Jitter: FullJitter}
}

// Validate reports every invalid field, each message starting with its key.
func (p Policy) Validate() error {
	var errs []error
	if p.InitialInterval <= 0 {
		errs = append(errs, fmt.Errorf("retry_initial: must be positive, got %v", p.InitialInterval))
	}
	if p.MaxInterval < p.InitialInterval || p.MaxInterval <= 0 {
		errs = append(errs, fmt.Errorf("retry_max: must be positive and at least retry_initial (%v), got %v", p.InitialInterval, p.MaxInterval))
	}
	if !(p.Multiplier >= 1) { // NaN too
		errs = append(errs, fmt.Errorf("multiplier: must be at least 1, got %v", p.Multiplier))
	}
	if !(p.Jitter >= 0 && p.Jitter <= 1) {
		errs = append(errs, fmt.Errorf("jitter: must be 0..1, got %v", p.Jitter))
	}
	return errors.Join(errs...)
}

// Start begins the pacing of one operation's retries. p must be valid.
func (p Policy) Start() *Backoff {
	// cenkalti draws from [i·(1-f), i·(1+f)] around its interval i. With
	// i = d·(1-J/2) and f = (J/2)/(1-J/2) that is [d·(1-J), d]: the
	// library does all the growing, capping and drawing.
	scale := 1 - p.Jitter/2
	b := &Backoff{p: p, eb: cenkalti.ExponentialBackOff{
		InitialInterval:     time.Duration(float64(p.InitialInterval) * scale),
		MaxInterval:         time.Duration(float64(p.MaxInterval) * scale),
		Multiplier:          p.Multiplier,
		RandomizationFactor: p.Jitter / 2 / scale,
	}}
	b.eb.Reset()
	return b
}

// Backoff paces the retries of one operation. It is not safe for
// concurrent use: start one per operation.
type Backoff struct {
	p  Policy
	eb cenkalti.ExponentialBackOff
}

// Next returns the next delay of the sequence.
func (b *Backoff) Next() time.Duration {
	return max(0, min(b.eb.NextBackOff(), b.p.MaxInterval))
}

// Reset starts the sequence again, after a success.
func (b *Backoff) Reset() { b.eb.Reset() }

// Wait sleeps the next delay, or until ctx ends (then ctx's error).
func (b *Backoff) Wait(ctx context.Context) error { return b.Sleep(ctx, b.Next()) }

// Sleep sleeps d with the policy's Sleeper: for a delay that is not the
// sequence's own, such as one an API asked for.
func (b *Backoff) Sleep(ctx context.Context, d time.Duration) error {
	if b.p.Sleep != nil {
		return b.p.Sleep(ctx, d)
	}
	return Sleep(ctx, d)
}
