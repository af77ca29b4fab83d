package ddhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

const testKey = "test-api-key-0123456789"

func TestClassify(t *testing.T) {
	t.Parallel()
	transport := errors.New("connection reset")
	for _, tc := range []struct {
		status   int
		err      error
		canSplit bool
		want     Outcome
	}{
		{200, nil, false, Accepted},
		{202, nil, true, Accepted},
		{204, nil, false, Accepted},
		{0, transport, true, Retrying},
		{400, nil, true, Split},
		{400, nil, false, Rejected},
		{413, nil, true, Split},
		{413, nil, false, Rejected},
		{401, nil, true, Unauthorized},
		{403, nil, false, Unauthorized},
		{408, nil, true, Retrying},
		{429, nil, true, Retrying},
		{500, nil, true, Retrying},
		{502, nil, false, Retrying},
		{503, nil, true, Retrying},
		{504, nil, true, Retrying},
		{404, nil, true, Retrying}, // a wrong URL is fixed by an operator, not by dropping data
		{301, nil, true, Retrying},
		{100, nil, true, Retrying},
		{202, transport, true, Retrying}, // no answer read: whatever the status says
	} {
		assert.Equal(t, tc.want, Classify(tc.status, tc.err, tc.canSplit), "%d %v split=%v", tc.status, tc.err, tc.canSplit)
	}
}

// waits records the sender's waits instead of spending them.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

// answers is a server answering each request with the next of its
// statuses (the last one repeats), and Retry-After when given.
type answer1 struct {
	status     int
	retryAfter string
}

func answers(t *testing.T, as ...answer1) *httptest.Server {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		a := as[min(n, len(as)-1)]
		n++
		mu.Unlock()
		if r.Header.Get("DD-API-KEY") != testKey || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("User-Agent") != "gwpipe" {
			t.Errorf("bad headers %v", r.Header)
		}
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.WriteHeader(a.status)
		fmt.Fprintf(w, `{"errors":["answer %d to %s"]}`, a.status, r.Header.Get("DD-API-KEY"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

type testSender struct {
	*Sender
	waits   *waits
	mu      sync.Mutex
	results []Result
}

func (s *testSender) snapshot() []Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Result(nil), s.results...)
}

func newTestSender(t *testing.T, mod func(*Config, *Options)) *testSender {
	t.Helper()
	ts := &testSender{waits: &waits{}}
	cfg := DefaultConfig()
	cfg.Backoff.InitialInterval, cfg.Backoff.MaxInterval = time.Millisecond, 4*time.Millisecond
	cfg.Backoff.Sleep = ts.waits.sleep
	o := Options{API: "test API", Item: "item", Held: "items", Component: "test", APIKey: testKey}
	o.Logger = slog.New(slog.DiscardHandler)
	o.OnResult = func(r Result) {
		ts.mu.Lock()
		ts.results = append(ts.results, r)
		ts.mu.Unlock()
	}
	if mod != nil {
		mod(&cfg, &o)
	}
	s, err := NewSender(cfg, o)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	ts.Sender = s
	return ts
}

func request(url string) *Request {
	return &Request{Endpoint: "test", URL: url, Body: []byte(`[{"message":"m"}]`), RawBytes: 17, Items: 3, CanSplit: true}
}

// TestSendRetriesUntilFinal: every answer is classified and reported, the
// key's health turns red on 403 and back on success, the retries are the
// attempts sent again, and no wait comes sooner than Retry-After.
func TestSendRetriesUntilFinal(t *testing.T) {
	t.Parallel()
	srv := answers(t, answer1{503, ""}, answer1{429, "7"}, answer1{403, ""}, answer1{202, ""})
	var health []error
	var s *testSender
	s = newTestSender(t, func(_ *Config, o *Options) {
		next := o.OnResult
		o.OnResult = func(r Result) { health = append(health, s.Healthy()); next(r) }
	})
	reply, err := s.Send(context.Background(), request(srv.URL))
	require.NoError(t, err)
	assert.Equal(t, Reply{Outcome: Accepted, Status: 202, Attempts: 4}, reply)

	var outcomes []Outcome
	for i, r := range s.snapshot() {
		outcomes = append(outcomes, r.Outcome)
		assert.Equal(t, i+1, r.Attempt)
		assert.Equal(t, "test", r.Endpoint)
		assert.Equal(t, 3, r.Items)
		assert.Equal(t, 17, r.Bytes)
		assert.Positive(t, r.Latency)
	}
	assert.Equal(t, []Outcome{Retrying, Retrying, Unauthorized, Accepted}, outcomes)
	require.Len(t, health, 4)
	assert.NoError(t, health[1])
	require.Error(t, health[2], "red as soon as the key is refused")
	assert.Contains(t, health[2].Error(), "403")
	assert.NotContains(t, health[2].Error(), testKey)
	assert.NoError(t, health[3], "cleared by an authenticated request")

	st := s.Stats()
	assert.Equal(t, SenderStats{Requests: 4, Retries: 3}, st)
	w := s.waits.all()
	require.Len(t, w, 3)
	assert.LessOrEqual(t, w[0], 4*time.Millisecond)
	assert.Equal(t, 7*time.Second, w[1], "Retry-After wins over our 4ms cap")
	assert.LessOrEqual(t, w[2], 4*time.Millisecond)
}

func TestSendRefusals(t *testing.T) {
	t.Parallel()
	for _, status := range []int{400, 413} {
		srv := answers(t, answer1{403, ""}, answer1{status, ""})
		s := newTestSender(t, nil)
		r := request(srv.URL)
		reply, err := s.Send(context.Background(), r)
		require.NoError(t, err)
		assert.Equal(t, Split, reply.Outcome)
		assert.NoError(t, s.Healthy(), "a %d means the key was accepted", status)

		r.CanSplit = false
		reply, err = s.Send(context.Background(), r)
		require.NoError(t, err)
		assert.Equal(t, Rejected, reply.Outcome)
		assert.Equal(t, status, reply.Status)
		assert.Equal(t, fmt.Sprintf("answer %d to <redacted>", status), reply.Detail, "the reason, never the key")
	}
}

// TestRetryAfterVersusBackoff: the wait is the longer of our own pace and
// the answer's Retry-After, which is bounded.
func TestRetryAfterVersusBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		retryAfter string
		want       time.Duration
	}{
		{"Retry-After longer", "30", 30 * time.Second},
		{"backoff longer", "1", 10 * time.Second},
		{"no Retry-After", "", 10 * time.Second},
		{"absurd Retry-After", "86400", MaxRetryAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := answers(t, answer1{429, tc.retryAfter}, answer1{200, ""})
			s := newTestSender(t, func(c *Config, _ *Options) {
				c.Backoff.InitialInterval, c.Backoff.MaxInterval, c.Backoff.Jitter = 10*time.Second, 10*time.Second, 0
			})
			_, err := s.Send(context.Background(), request(srv.URL))
			require.NoError(t, err)
			assert.Equal(t, []time.Duration{tc.want}, s.waits.all())
		})
	}
}

// TestSendAbandonsAtTheDeadline: when the caller's context ends — the
// shutdown deadline — a wait is cut short and an attempt in flight
// cancelled; no retry follows, and none is counted.
func TestSendAbandonsAtTheDeadline(t *testing.T) {
	t.Parallel()
	t.Run("waiting", func(t *testing.T) {
		srv := answers(t, answer1{503, ""})
		s := newTestSender(t, func(c *Config, _ *Options) {
			c.Backoff = backoff.Exponential(time.Hour, time.Hour) // a real timer
		})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := s.Send(ctx, request(srv.URL))
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, SenderStats{Requests: 1}, s.Stats(), "a retry given up in its backoff is none")
		assert.Len(t, s.snapshot(), 1)
	})
	t.Run("in flight", func(t *testing.T) {
		arrived := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // then the server watches the connection
			close(arrived)
			<-r.Context().Done()
		}))
		defer srv.Close()
		s := newTestSender(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-arrived; cancel() }()
		_, err := s.Send(ctx, request(srv.URL))
		assert.ErrorIs(t, err, context.Canceled)
		results := s.snapshot()
		require.Len(t, results, 1, "every request sent is reported, with its latency")
		assert.ErrorIs(t, results[0].Err, context.Canceled)
		assert.Equal(t, SenderStats{Requests: 1}, s.Stats())
		assert.Empty(t, s.waits.all(), "no wait, no retry")
	})
	t.Run("gave up", func(t *testing.T) {
		srv := answers(t, answer1{500, ""})
		s := newTestSender(t, nil)
		r := request(srv.URL)
		asked := 0
		r.Retry = func() bool { asked++; return asked < 3 }
		reply, err := s.Send(context.Background(), r)
		assert.ErrorIs(t, err, ErrGaveUp)
		assert.Equal(t, 3, reply.Attempts)
		assert.Equal(t, SenderStats{Requests: 3, Retries: 2}, s.Stats())
	})
}

// TestSenderBoundsConcurrency: at most Concurrency requests are in flight;
// the next caller waits for a slot (and gives up with its context).
func TestSenderBoundsConcurrency(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 10)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	s := newTestSender(t, func(c *Config, _ *Options) { c.Concurrency = 2 })
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			_, err := s.Send(context.Background(), request(srv.URL))
			assert.NoError(t, err)
		})
	}
	<-arrived
	<-arrived
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.Send(ctx, request(srv.URL))
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Len(t, arrived, 0, "the third request never left")
	assert.Equal(t, SenderStats{Requests: 2, InFlight: 2}, s.Stats())
	assert.Empty(t, s.snapshot(), "a request never sent is not reported")
	close(release)
	wg.Wait()
	assert.Equal(t, SenderStats{Requests: 2}, s.Stats())
}

// TestCodecRoundTrip: what each codec sends, the fake intake's decoders
// read back (logs endpoint: gzip, deflate, zstd, identity; series: zstd1).
func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	srv, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{testKey}})
	s := newTestSender(t, nil)
	for _, tc := range []struct {
		kind   string
		levels []int
	}{{Gzip, []int{0, 1, 9}}, {Deflate, []int{0, 1, 9}}, {Zstd, []int{0, 1, 3, 22}}, {None, []int{0}}} {
		for _, level := range tc.levels {
			c, err := NewCodec(tc.kind, level, 2)
			require.NoError(t, err)
			msg := fmt.Sprintf("%s-%d", tc.kind, level)
			raw := fmt.Appendf(nil, `[{"message":%q,"ddsource":"test"},{"message":%q,"ddsource":"test"}]`, msg, msg)
			body, buf, err := c.Encode(context.Background(), raw)
			require.NoError(t, err)
			if tc.kind == None {
				assert.Nil(t, buf)
				assert.Equal(t, raw, body)
			} else {
				assert.NotEqual(t, raw, body)
			}
			r := &Request{Endpoint: "logs", URL: base + "/api/v2/logs", Body: body, Encoding: c.Encoding(), RawBytes: len(raw), Items: 2, CanSplit: true}
			reply, err := s.Send(context.Background(), r)
			require.NoError(t, err)
			assert.Equal(t, Accepted, reply.Outcome, msg)
			c.Free(buf)
			c.Close()
		}
	}
	n := 0
	for _, l := range srv.Logs() {
		assert.Equal(t, "test", l.Source)
		n++
	}
	assert.Equal(t, 2*(3+3+4+1), n)

	c, err := NewCodec(Zstd, 0, 1)
	require.NoError(t, err)
	defer c.Close()
	ts := time.Now().Unix()
	body, buf, err := c.Encode(context.Background(), fmt.Appendf(nil, `{"series":[{"metric":"m","type":3,"points":[{"timestamp":%d,"value":1}]}]}`, ts))
	require.NoError(t, err)
	defer c.Free(buf)
	reply, err := s.Send(context.Background(), &Request{Endpoint: "series", URL: base + "/api/v2/series", Body: body, Encoding: "zstd1", Items: 1})
	require.NoError(t, err)
	assert.Equal(t, Accepted, reply.Outcome)
	require.Len(t, srv.Series(), 1)
	assert.Equal(t, "m", srv.Series()[0].Metric)
}

func TestNewCodecRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind  string
		level int
	}{{"brotli", 0}, {Gzip, 10}, {Gzip, -2}, {Deflate, 10}, {Zstd, 23}, {Zstd, -1}} {
		_, err := NewCodec(tc.kind, tc.level, 1)
		assert.Error(t, err, "%s %d", tc.kind, tc.level)
	}
}

// TestCodecBoundsConcurrency: a body waits for a free slot, and gives up
// with its context; identity needs none.
func TestCodecBoundsConcurrency(t *testing.T) {
	t.Parallel()
	c, err := NewCodec(Gzip, 1, 1)
	require.NoError(t, err)
	c.sem <- struct{}{} // the one slot is busy
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err = c.Encode(ctx, []byte("x"))
	assert.ErrorIs(t, err, context.Canceled)
	<-c.sem
	body, buf, err := c.Encode(context.Background(), []byte("x"))
	require.NoError(t, err)
	assert.NotEmpty(t, body)
	c.Free(buf)
	assert.Empty(t, c.sem, "the slot is given back")

	none, err := NewCodec(None, 0, 1)
	require.NoError(t, err)
	none.sem <- struct{}{}
	body, _, err = none.Encode(ctx, []byte("x"))
	require.NoError(t, err)
	assert.Equal(t, []byte("x"), body)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, DefaultConfig().Validate())
	c := DefaultConfig()
	c.Concurrency, c.RequestTimeout = 0, -1
	c.Backoff.InitialInterval = 0
	err := c.Validate()
	require.Error(t, err)
	for _, want := range []string{"concurrency: must be 1..1024, got 0", "request_timeout: must be positive, got -1ns", "retry_initial: must be positive, got 0s"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = NewSender(DefaultConfig(), Options{})
	assert.ErrorContains(t, err, "api_key: is required")
}
