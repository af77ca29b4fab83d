package fakeintake

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Failure describes injected failures, for testing clients' retries. Each
// intake request to one of Endpoints is hit with probability Rate; a hit
// waits Latency, then (when Status is not 0) is answered Status without being
// recorded. When Count > 0, only the first Count hits happen, after which the
// failure clears itself.
type Failure struct {
	// Status is the injected answer (400-599), or 0 to inject latency only.
	Status int `json:"status"`
	// Rate is the probability that a request is hit, in (0, 1]. Zero (or
	// absent from JSON) means 1: every request.
	Rate float64 `json:"rate"`
	// LatencyMS delays hit requests by this many milliseconds; the wait ends
	// early if the request's context is cancelled.
	LatencyMS int64 `json:"latency_ms"`
	// Count bounds the number of hits; 0 means unbounded.
	Count int `json:"count"`
	// Endpoints restricts the failure; empty means all intake endpoints.
	Endpoints []Endpoint `json:"endpoints"`
	// RetryAfter, when set, is sent as the Retry-After header of injected
	// answers: delay-seconds ("10") or an HTTP-date.
	RetryAfter string `json:"retry_after,omitempty"`
	// Seed, when not zero, seeds the random choice, making a sequence of
	// sequential requests fail deterministically. When zero, a random seed
	// is drawn and reported in FailureState.
	Seed uint64 `json:"seed"`
}

// FailureState is the failure configuration in force.
type FailureState struct {
	Active  bool    `json:"active"`
	Failure Failure `json:"failure"`
	// Remaining is the number of hits left when Failure.Count > 0.
	Remaining int `json:"remaining,omitempty"`
}

var allEndpoints = []Endpoint{EndpointLogs, EndpointSeries, EndpointDistributionPoints}

func (f *Failure) validate() error {
	if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
		return fmt.Errorf("failure status must be 0 or 400-599, got %d", f.Status)
	}
	if !(f.Rate >= 0 && f.Rate <= 1) { // also refuses NaN
		return fmt.Errorf("failure rate must be in [0, 1], got %v", f.Rate)
	}
	if f.LatencyMS < 0 {
		return fmt.Errorf("failure latency_ms must not be negative, got %d", f.LatencyMS)
	}
	if f.Status == 0 && f.LatencyMS == 0 {
		return errors.New("failure needs a status or a latency_ms")
	}
	if f.RetryAfter != "" && f.Status == 0 {
		return errors.New("failure retry_after needs a status")
	}
	if f.Count < 0 {
		return fmt.Errorf("failure count must not be negative, got %d", f.Count)
	}
	for _, ep := range f.Endpoints {
		if !slices.Contains(allEndpoints, ep) {
			return fmt.Errorf("unknown failure endpoint %q (want one of %v)", ep, allEndpoints)
		}
	}
	return nil
}

// injector holds the failure configuration. Its own mutex keeps the random
// draws and the countdown consistent without touching the server lock.
type injector struct {
	mu        sync.Mutex
	active    bool
	f         Failure
	remaining int
	rng       *rand.Rand
}

// hit is one injection decision.
type hit struct {
	status     int
	latency    time.Duration
	retryAfter string
}

func (in *injector) set(f Failure) error {
	if err := f.validate(); err != nil {
		return err
	}
	if f.Rate == 0 {
		f.Rate = 1
	}
	f.Endpoints = slices.Clone(f.Endpoints)
	if len(f.Endpoints) == 0 {
		f.Endpoints = slices.Clone(allEndpoints)
	}
	if f.Seed == 0 {
		// Keep the random seed in the state, so a run can be replayed.
		f.Seed = rand.Uint64() | 1
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.active, in.f, in.remaining = true, f, f.Count
	in.rng = rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))
	return nil
}

func (in *injector) clear() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.active, in.f, in.remaining, in.rng = false, Failure{}, 0, nil
}

func (in *injector) state() FailureState {
	in.mu.Lock()
	defer in.mu.Unlock()
	st := FailureState{Active: in.active, Failure: in.f, Remaining: in.remaining}
	st.Failure.Endpoints = slices.Clone(in.f.Endpoints)
	return st
}

// decide reports whether a request to ep is hit, consuming one of Count.
func (in *injector) decide(ep Endpoint) (hit, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.active || !slices.Contains(in.f.Endpoints, ep) {
		return hit{}, false
	}
	if in.f.Rate < 1 && in.rng.Float64() >= in.f.Rate {
		return hit{}, false
	}
	if in.f.Count > 0 {
		in.remaining--
		if in.remaining == 0 {
			in.active = false
		}
	}
	return hit{status: in.f.Status, latency: time.Duration(in.f.LatencyMS) * time.Millisecond, retryAfter: in.f.RetryAfter}, true
}

// inject applies the failure configuration to a request. It reports true
// when the request is finished: failed, or abandoned during the latency.
func (s *Server) inject(ep *endpoint, body *requestBody, res *result) bool {
	h, ok := s.fail.decide(ep.name)
	if !ok {
		return false
	}
	if h.latency > 0 {
		// net/http notices a client hanging up only once the body has been
		// consumed, so read it first or the wait could not be cancelled. A
		// read error is kept: load returns it again when the body is needed.
		_ = body.load()
		res.delayed = true
		s.trackDelay(+1)
		err := s.sleep(body.r.Context(), h.latency)
		s.trackDelay(-1)
		if err != nil {
			res.status, res.detail = statusClientClosed, err.Error()
			return true
		}
	}
	if h.status == 0 {
		return false
	}
	body.discard()
	res.injected = true
	res.status, res.detail, res.retryAfter = h.status, "injected failure", h.retryAfter
	return true
}

// trackDelay maintains Stats.DelaysInFlight, so a test can wait until its
// request is being held before acting (cancelling it, shutting down).
func (s *Server) trackDelay(delta int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.DelaysInFlight += delta
	s.notifyLocked()
}

var errServerClosed = errors.New("fakeintake: server closed")

// sleep waits d unless ctx is done or the server is closed first.
func (s *Server) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("injected latency abandoned: %w", context.Cause(ctx))
	case <-s.closed:
		return fmt.Errorf("injected latency abandoned: %w", errServerClosed)
	}
}
