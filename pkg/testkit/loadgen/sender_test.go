package loadgen

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// endpoint is a fake Firehose HTTP endpoint destination. For every attempt it
// decodes the request completely and asks respond what to answer.
type endpoint struct {
	t      *testing.T
	direct bool
	// respond returns the status for the n-th attempt (1-based) of a request
	// and whether to echo the request id in a 200.
	respond func(requestID string, attempt int) (status int, echo bool)
	// onAttempt, when set, is called after the attempt is recorded.
	onAttempt func(requestID string, attempt int)

	mu       sync.Mutex
	attempts map[string]int
	bodies   map[string][32]byte
	events   map[string]int // event ids (CloudWatch) or lines (direct) of acked requests
	controls int
	srv      *httptest.Server
}

func newEndpoint(t *testing.T, direct bool, respond func(string, int) (int, bool)) *endpoint {
	e := &endpoint{t: t, direct: direct, respond: respond,
		attempts: map[string]int{}, bodies: map[string][32]byte{}, events: map[string]int{}}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if !assert.NoError(e.t, err) {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := r.Header.Get(HeaderRequestID)
	assert.Equal(e.t, http.MethodPost, r.Method)
	assert.Equal(e.t, "1.0", r.Header.Get(HeaderProtocolVersion))
	assert.Regexp(e.t, sourceARNRe, r.Header.Get(HeaderSourceARN))
	d := decodeWire(e.t, r.Header, body, e.direct)
	assert.Equal(e.t, id, d.body.RequestID, "header and body request ids agree")

	e.mu.Lock()
	e.attempts[id]++
	n := e.attempts[id]
	sum := sha256.Sum256(body)
	if prev, ok := e.bodies[id]; ok {
		assert.Equal(e.t, prev, sum, "a retry carries the same body")
	}
	e.bodies[id] = sum
	status, echo := e.respond(id, n)
	if status == http.StatusOK && echo {
		for _, env := range d.envelopes {
			if env.MessageType == "CONTROL_MESSAGE" {
				e.controls++
				continue
			}
			for _, le := range env.LogEvents {
				e.events[le.ID]++
			}
		}
		for _, line := range d.lines {
			e.events[line]++
		}
	}
	e.mu.Unlock()
	if e.onAttempt != nil {
		e.onAttempt(id, n)
	}

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	ack := map[string]any{"requestId": id, "timestamp": time.Now().UnixMilli()}
	if status != http.StatusOK {
		ack["errorMessage"] = "try again"
	} else if !echo {
		ack["requestId"] = "not-" + id
	}
	_ = json.NewEncoder(w).Encode(ack)
}

func (e *endpoint) config() Config {
	cfg := testConfig()
	cfg.URL = e.srv.URL
	cfg.Direct = e.direct
	cfg.InitialBackoff = 2 * time.Millisecond
	cfg.MaxBackoff = 10 * time.Millisecond
	cfg.RetryDuration = time.Minute
	cfg.RequestTimeout = 10 * time.Second
	return cfg
}

func always(status int) func(string, int) (int, bool) {
	return func(string, int) (int, bool) { return status, true }
}

// collector gathers what the callbacks report.
type collector struct {
	mu     sync.Mutex
	events map[string]int
	reqs   int
}

func (c *collector) options() []Option {
	c.events = map[string]int{}
	return []Option{
		WithEventCallback(func(ev *Event) {
			c.mu.Lock()
			c.events[ev.ID]++
			c.mu.Unlock()
		}),
		WithAckCallback(func(*Request) {
			c.mu.Lock()
			c.reqs++
			c.mu.Unlock()
		}),
	}
}

func TestRunDeliversEveryEventOnce(t *testing.T) {
	tests := []struct {
		name   string
		direct bool
		mutate func(*Config)
	}{
		{"cloudwatch", false, func(*Config) {}},
		{"cloudwatch gzip body", false, func(c *Config) { c.GzipBody = true }},
		{"cloudwatch with control messages", false, func(c *Config) { c.ControlRate = 0.5 }},
		{"direct", true, func(*Config) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := newEndpoint(t, tt.direct, always(http.StatusOK))
			cfg := ep.config()
			cfg.Events = 5003
			cfg.Concurrency = 3
			tt.mutate(&cfg)
			var c collector
			rep, err := Run(context.Background(), cfg, c.options()...)
			require.NoError(t, err)

			assert.Equal(t, "events", rep.Stopped)
			assert.Equal(t, int64(5003), rep.EventsSent)
			assert.Equal(t, int64(5003), rep.EventsAcked)
			assert.Equal(t, rep.RequestsSent, rep.RequestsAcked)
			assert.Equal(t, rep.RequestsSent, rep.Attempts)
			assert.Zero(t, rep.RequestsFailed+rep.RequestsCanceled+rep.Retries+rep.BadAcks)
			assert.Equal(t, map[string]int64{"200": rep.RequestsSent}, rep.Statuses)
			assert.Equal(t, int64(c.reqs), rep.RequestsAcked)
			assert.Equal(t, rep.AckLatency.Count, rep.RequestsAcked)
			assert.Positive(t, rep.BytesSent)
			assert.Positive(t, rep.EventsPerSecond)

			assert.Len(t, c.events, 5003, "every id reported once")
			for id, n := range c.events {
				require.Equal(t, 1, n, "event %s reported %d times", id, n)
			}
			if tt.direct {
				total := 0
				for _, n := range ep.events {
					total += n
				}
				assert.Equal(t, 5003, total, "lines received")
			} else {
				assert.Equal(t, c.events, ep.events, "the endpoint got exactly the reported events")
			}
			if cfg.ControlRate > 0 {
				assert.Positive(t, ep.controls)
			}
			// The report is JSON-serialisable.
			_, err = json.Marshal(rep)
			assert.NoError(t, err)
		})
	}
}

func TestRunRetries503WithSameRequest(t *testing.T) {
	ep := newEndpoint(t, false, func(_ string, n int) (int, bool) {
		if n <= 2 {
			return http.StatusServiceUnavailable, true
		}
		return http.StatusOK, true
	})
	cfg := ep.config()
	cfg.Events = 3000
	var c collector
	rep, err := Run(context.Background(), cfg, c.options()...)
	require.NoError(t, err)

	n := rep.RequestsSent
	assert.Equal(t, n, rep.RequestsAcked)
	assert.Equal(t, 3*n, rep.Attempts)
	assert.Equal(t, 2*n, rep.Retries)
	assert.Equal(t, map[string]int64{"503": 2 * n, "200": n}, rep.Statuses)
	assert.Equal(t, int64(3000), rep.EventsAcked)
	for id, a := range ep.attempts {
		assert.Equal(t, 3, a, "request %s attempts", id)
	}
	assert.Len(t, c.events, 3000)
	assert.Equal(t, c.events, ep.events, "events of the acked attempt only, once each")
	// Latency includes the two backoffs: at least 0.85·(2ms + 4ms).
	assert.GreaterOrEqual(t, rep.AckLatency.P50, 5.1)
}

func TestAckOnlyOnConforming200(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		echo    bool
		badAcks bool
	}{
		{"201", http.StatusCreated, true, false},
		{"202", http.StatusAccepted, true, false},
		{"500", http.StatusInternalServerError, true, false},
		{"429", http.StatusTooManyRequests, true, false},
		{"200 without the request id", http.StatusOK, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := newEndpoint(t, false, func(string, int) (int, bool) { return tt.status, tt.echo })
			cfg := ep.config()
			cfg.Events = 200
			cfg.RetryDuration = 20 * time.Millisecond
			var c collector
			rep, err := Run(context.Background(), cfg, c.options()...)
			require.NoError(t, err)
			assert.Zero(t, rep.RequestsAcked)
			assert.Zero(t, rep.EventsAcked)
			assert.Equal(t, rep.RequestsSent, rep.RequestsFailed)
			assert.Greater(t, rep.Attempts, rep.RequestsSent, "retried")
			assert.Equal(t, rep.Attempts, rep.Statuses[strconv.Itoa(tt.status)])
			assert.Empty(t, c.events, "no callback without an ack")
			if tt.badAcks {
				assert.Equal(t, rep.Attempts, rep.BadAcks)
			}
		})
	}
}

func TestStopsRetryingOn413(t *testing.T) {
	ep := newEndpoint(t, false, always(http.StatusRequestEntityTooLarge))
	cfg := ep.config()
	s, err := NewSender(cfg)
	require.NoError(t, err)
	g := mustGenerator(t, cfg)
	for range 3 {
		err := s.Send(context.Background(), mustNext(t, g))
		require.ErrorIs(t, err, ErrPermanent)
		var se *StatusError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, 413, se.Code)
	}
	rep := s.Report()
	assert.Equal(t, int64(3), rep.RequestsSent)
	assert.Equal(t, int64(3), rep.Attempts, "one attempt each")
	assert.Equal(t, int64(3), rep.RequestsFailed)
	assert.Zero(t, rep.Retries)
	for _, n := range ep.attempts {
		assert.Equal(t, 1, n)
	}
}

func TestRetryDurationExhausted(t *testing.T) {
	ep := newEndpoint(t, false, always(http.StatusServiceUnavailable))
	cfg := ep.config()
	cfg.InitialBackoff, cfg.MaxBackoff, cfg.RetryDuration = time.Millisecond, 4*time.Millisecond, 30*time.Millisecond
	rep := sendExhausted(t, cfg)
	// Delays ≈ 1, 2, 4, 4, 4, ... ms (±15 %) until 30 ms of backoff: at
	// least 30/(4·1.15) - ... retries, bounded by 30/(1·0.85).
	assert.GreaterOrEqual(t, rep.Retries, int64(7))
	assert.LessOrEqual(t, rep.Retries, int64(36))
	assert.Equal(t, rep.Retries+1, rep.Attempts)

	t.Run("no retries", func(t *testing.T) {
		cfg.RetryDuration = -1
		assert.Equal(t, int64(1), sendExhausted(t, cfg).Attempts)
	})
}

func TestRetriesNetworkErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	cfg := testConfig()
	cfg.URL = url
	cfg.InitialBackoff, cfg.MaxBackoff, cfg.RetryDuration = time.Millisecond, 2*time.Millisecond, 10*time.Millisecond
	rep := sendExhausted(t, cfg)
	assert.Greater(t, rep.Attempts, int64(1))
	assert.Equal(t, rep.Attempts, rep.Statuses["net_error"])
}

// sendExhausted sends one request with cfg, requires it to fail with
// ErrRetriesExhausted and returns the sender's report.
func sendExhausted(t *testing.T, cfg Config) Report {
	t.Helper()
	s, err := NewSender(cfg)
	require.NoError(t, err)
	err = s.Send(context.Background(), mustNext(t, mustGenerator(t, cfg)))
	require.ErrorIs(t, err, ErrRetriesExhausted)
	return s.Report()
}

func TestSendStopsRetryingWhenCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ep := newEndpoint(t, false, always(http.StatusServiceUnavailable))
	ep.onAttempt = func(string, int) { cancel() }
	cfg := ep.config()
	cfg.InitialBackoff = time.Hour // only cancellation can end the wait
	cfg.MaxBackoff = time.Hour
	s, err := NewSender(cfg)
	require.NoError(t, err)
	err = s.Send(ctx, mustNext(t, mustGenerator(t, cfg)))
	require.ErrorIs(t, err, context.Canceled)
	rep := s.Report()
	assert.Equal(t, int64(1), rep.Attempts, "the attempt in flight finished; no retry followed")
	assert.Equal(t, int64(1), rep.RequestsCanceled)
	assert.Equal(t, int64(1), rep.Statuses["503"])
}

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ep := newEndpoint(t, false, always(http.StatusOK))
	cfg := ep.config() // no event limit, no duration
	rep, err := Run(ctx, cfg, WithAckCallback(func(*Request) { cancel() }))
	require.NoError(t, err)
	assert.Equal(t, "canceled", rep.Stopped)
	assert.Positive(t, rep.RequestsAcked)
	assert.Equal(t, rep.RequestsSent, rep.RequestsAcked+rep.RequestsCanceled+rep.RequestsFailed)
}

func TestRunDuration(t *testing.T) {
	ep := newEndpoint(t, false, always(http.StatusOK))
	cfg := ep.config()
	cfg.Duration = 50 * time.Millisecond
	cfg.Rate = 20000
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	assert.Equal(t, "duration", rep.Stopped)
	assert.Positive(t, rep.EventsAcked)
	assert.Equal(t, rep.RequestsSent, rep.RequestsAcked)
	// The limiter cannot hand out more than burst + rate·elapsed tokens.
	assert.LessOrEqual(t, rep.EventsSent, int64(float64(requestEventLimit(cfg))+20000*rep.ElapsedSeconds))
}

func TestBackoff(t *testing.T) {
	const s = time.Second
	tests := []struct {
		n    int
		u    float64
		want time.Duration
	}{
		{1, 0.5, s},
		{2, 0.5, 2 * s},
		{3, 0.5, 4 * s},
		{7, 0.5, 64 * s},
		{8, 0.5, 120 * s}, // 128 s capped
		{100, 0.5, 120 * s},
		{1, 0, 850 * time.Millisecond},
		{3, 0, 3400 * time.Millisecond},
		{1, 1, 1150 * time.Millisecond},
		{8, 1, 138 * s},
	}
	for _, tt := range tests {
		got := Backoff(s, 120*s, tt.n, tt.u)
		assert.InDelta(t, float64(tt.want), float64(got), float64(time.Microsecond), "n=%d u=%v", tt.n, tt.u)
	}
}

// TestRateLimiter checks the limiter configuration and its reservations
// against explicit instants, without relying on wall-clock timing.
func TestRateLimiter(t *testing.T) {
	base := testConfig() // 8 records × 20 events = up to 160 events a request
	tests := []struct {
		name      string
		rate      float64
		direct    bool
		wantBurst int
	}{
		{"fast: burst is one full request", 100_000, false, 160},
		{"slow: one second's worth per request", 100, false, 100},
		{"slower than one event a second", 0.5, false, 1},
		{"direct: one event per record", 100_000, true, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			cfg.Rate, cfg.Direct = tt.rate, tt.direct
			cfg = cfg.WithDefaults()
			lim := newLimiter(cfg)
			require.NotNil(t, lim)
			assert.InDelta(t, tt.rate, float64(lim.Limit()), 1e-9)
			assert.Equal(t, tt.wantBurst, lim.Burst())
			assert.Equal(t, tt.wantBurst, requestEventLimit(cfg))

			// Requests of a generator limited like Run's fit the burst.
			g := mustGenerator(t, cfg)
			for range 20 {
				req, err := g.next(requestEventLimit(cfg))
				require.NoError(t, err)
				require.LessOrEqual(t, len(req.Events), lim.Burst())
			}

			// A full burst passes at once; then n events wait n/rate.
			t0 := time.Unix(1000, 0)
			r := lim.ReserveN(t0, tt.wantBurst)
			require.True(t, r.OK())
			assert.Zero(t, r.DelayFrom(t0))
			for k := 1; k <= 3; k++ {
				n := tt.wantBurst
				r = lim.ReserveN(t0, n)
				require.True(t, r.OK())
				want := time.Duration(float64(k*n) / tt.rate * float64(time.Second))
				assert.InDelta(t, float64(want), float64(r.DelayFrom(t0)), float64(time.Millisecond))
			}
		})
	}
	cfg := base
	assert.Nil(t, newLimiter(cfg.WithDefaults()), "no rate, no limiter")
	assert.Equal(t, 160, requestEventLimit(cfg.WithDefaults()))
}

// TestRunHonoursRate checks the one timing bound that cannot flake: a run
// cannot finish before its events are paid for.
func TestRunHonoursRate(t *testing.T) {
	ep := newEndpoint(t, false, always(http.StatusOK))
	cfg := ep.config()
	cfg.Rate = 10_000
	cfg.Events = 3_000 // burst 160, then 2840 events at 10k/s: >= 284 ms
	var maxEvents int
	rep, err := Run(context.Background(), cfg, WithAckCallback(func(r *Request) { maxEvents = max(maxEvents, len(r.Events)) }))
	require.NoError(t, err)
	assert.Equal(t, int64(3000), rep.EventsAcked)
	assert.GreaterOrEqual(t, rep.ElapsedSeconds, 0.28)
	assert.LessOrEqual(t, maxEvents, 160)
}

func TestHistogram(t *testing.T) {
	var h histogram
	assert.Equal(t, LatencySummary{}, h.summary())
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * 100 * time.Microsecond) // 0.1 ms .. 1 s
	}
	s := h.summary()
	assert.Equal(t, int64(10000), s.Count)
	assert.InEpsilon(t, 500, s.P50, 0.02)
	assert.InEpsilon(t, 900, s.P90, 0.02)
	assert.InEpsilon(t, 990, s.P99, 0.02)
	assert.Equal(t, 1000.0, s.Max)
	for _, us := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 123456, 1 << 40} {
		mid := bucketMid(bucketOf(us))
		assert.InEpsilon(t, float64(max(us, 1)), max(mid, 1), 1.0/64, "us=%d", us)
	}
}

func TestSenderRejectsBadConfig(t *testing.T) {
	_, err := NewSender(Config{URL: "::bad"})
	assert.Error(t, err)
	_, err = Run(context.Background(), Config{Concurrency: -1})
	assert.Error(t, err)
	assert.False(t, errors.Is(err, ErrPermanent))
}
