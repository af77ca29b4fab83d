package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
)

// Errors returned by Sender.Send (wrapped).
var (
	// ErrPermanent: the endpoint answered 413, which Firehose never retries.
	ErrPermanent = errors.New("permanent failure (413 Request Entity Too Large)")
	// ErrRetriesExhausted: the retry duration ran out before an ack.
	ErrRetriesExhausted = errors.New("retry duration exhausted")
)

// StatusError is a failed attempt that got an HTTP response.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return "HTTP " + strconv.Itoa(e.Code) + ": " + e.Msg }

// Option configures Run and NewSender.
type Option func(*options)

type options struct {
	client        *http.Client
	onEvent       func(*Event)
	onAck         func(*Request)
	progressEvery time.Duration
	progress      func(Report)
	stop          <-chan struct{}
}

// WithHTTPClient sends with c instead of a client built from the Config.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithEventCallback calls fn for every event of every acknowledged request.
// Calls are serialised; fn must not retain the pointer.
func WithEventCallback(fn func(*Event)) Option { return func(o *options) { o.onEvent = fn } }

// WithAckCallback calls fn for every acknowledged request (serialised, like
// WithEventCallback, and before the event callbacks of that request).
func WithAckCallback(fn func(*Request)) Option { return func(o *options) { o.onAck = fn } }

// WithProgress makes Run call fn with a snapshot of the report every interval.
func WithProgress(every time.Duration, fn func(Report)) Option {
	return func(o *options) { o.progressEvery, o.progress = every, fn }
}

// WithStop makes Run stop generating and sending new requests once stop is
// closed, while the requests already sent wait for their answers (and
// retries) under Run's context: a graceful end, where cancelling the
// context abandons what is in flight.
func WithStop(stop <-chan struct{}) Option { return func(o *options) { o.stop = stop } }

// Report summarises a run. It is JSON-serialisable.
type Report struct {
	// Stopped says why Run ended: "events" (count reached), "duration",
	// "canceled" (ctx ended), "stopped" (WithStop) or "" for a snapshot
	// taken while running.
	Stopped        string  `json:"stopped,omitempty"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`

	RequestsSent     int64 `json:"requests_sent"`     // requests attempted at least once
	RequestsAcked    int64 `json:"requests_acked"`    // got a conforming 200
	RequestsFailed   int64 `json:"requests_failed"`   // 413 or retry duration exhausted
	RequestsCanceled int64 `json:"requests_canceled"` // abandoned because ctx ended
	Attempts         int64 `json:"attempts"`          // HTTP attempts, retries included
	Retries          int64 `json:"retries"`
	BadAcks          int64 `json:"bad_acks"` // 200 whose body did not echo the requestId

	// Statuses counts attempts by HTTP status ("200", "503", ...) and
	// network errors ("net_error").
	Statuses map[string]int64 `json:"statuses"`

	RecordsSent     int64   `json:"records_sent"`
	EventsSent      int64   `json:"events_sent"`
	EventsAcked     int64   `json:"events_acked"`
	BytesSent       int64   `json:"bytes_sent"`     // request bodies on the wire, all attempts
	RawBytesSent    int64   `json:"raw_bytes_sent"` // JSON bodies before Content-Encoding, first attempts
	EventsPerSecond float64 `json:"events_per_second"`

	// AckLatency is the time from a request's first attempt to its 200.
	AckLatency LatencySummary `json:"ack_latency_ms"`
}

// LatencySummary holds percentiles in milliseconds (within ~1.6 %; Max exact).
type LatencySummary struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// Sender delivers requests the way Firehose does: it retries everything but a
// conforming 200 or a 413, with the same request id and body, backing off
// exponentially until the retry duration runs out. It is safe for concurrent
// use.
type Sender struct {
	cfg    Config
	opts   options
	client *http.Client
	start  time.Time

	requestsSent, requestsAcked, requestsFailed, requestsCanceled atomic.Int64
	attempts, retries, badAcks                                    atomic.Int64
	recordsSent, eventsSent, eventsAcked, bytesSent, rawBytesSent atomic.Int64

	mu       sync.Mutex
	statuses map[string]int64
	lat      histogram

	cbMu sync.Mutex
}

// NewSender returns a sender for cfg (defaults applied).
func NewSender(cfg Config, opts ...Option) (*Sender, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sender{cfg: cfg, start: time.Now(), statuses: map[string]int64{}}
	for _, o := range opts {
		o(&s.opts)
	}
	s.client = s.opts.client
	if s.client == nil {
		s.client = &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        2 * cfg.Concurrency,
			MaxIdleConnsPerHost: 2 * cfg.Concurrency,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   true,
		}}
	}
	return s, nil
}

// Send delivers req, retrying as Firehose would. It returns nil once the
// request is acknowledged; otherwise an error wrapping ErrPermanent,
// ErrRetriesExhausted or ctx.Err(). When ctx ends, an attempt in flight is
// allowed to finish (within RequestTimeout) but no retry follows.
func (s *Sender) Send(ctx context.Context, req *Request) error {
	s.requestsSent.Add(1)
	s.recordsSent.Add(int64(req.Records))
	s.eventsSent.Add(int64(len(req.Events)))
	s.rawBytesSent.Add(int64(req.RawSize))
	first := time.Now()
	var spent time.Duration
	for attempt := 1; ; attempt++ {
		err := s.attempt(ctx, req)
		if err == nil {
			s.acked(req, time.Since(first))
			return nil
		}
		if se := (*StatusError)(nil); errors.As(err, &se) && se.Code == http.StatusRequestEntityTooLarge {
			s.requestsFailed.Add(1)
			return fmt.Errorf("request %s: %w: %w", req.ID, ErrPermanent, err)
		}
		if ctx.Err() != nil {
			s.requestsCanceled.Add(1)
			return fmt.Errorf("request %s: %w (last attempt: %v)", req.ID, ctx.Err(), err)
		}
		if s.cfg.RetryDuration < 0 || spent >= s.cfg.RetryDuration {
			s.requestsFailed.Add(1)
			return fmt.Errorf("request %s after %d attempts: %w: %w", req.ID, attempt, ErrRetriesExhausted, err)
		}
		// Firehose's own schedule (Backoff), not gwpipe's policy: the
		// generator plays Firehose.
		d := min(Backoff(s.cfg.InitialBackoff, s.cfg.MaxBackoff, attempt, rand.Float64()), s.cfg.RetryDuration-spent)
		if backoff.Sleep(ctx, d) != nil {
			s.requestsCanceled.Add(1)
			return fmt.Errorf("request %s: %w (last attempt: %v)", req.ID, ctx.Err(), err)
		}
		spent += d
		s.retries.Add(1)
	}
}

// Backoff is Firehose's delay before retry n (n >= 1): initial·2^(n-1),
// capped at max, times a jitter factor in [0.85, 1.15) drawn from u in [0, 1).
func Backoff(initial, max time.Duration, n int, u float64) time.Duration {
	d := float64(max)
	if n-1 < 62 {
		d = math.Min(float64(initial)*math.Ldexp(1, n-1), float64(max))
	}
	return time.Duration(d * (0.85 + 0.3*u))
}

// attempt makes one HTTP attempt; nil means a conforming acknowledgement.
func (s *Sender) attempt(ctx context.Context, req *Request) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RequestTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(actx, http.MethodPost, s.cfg.URL, bytes.NewReader(req.Body))
	if err != nil {
		return err
	}
	hr.Header = req.Header.Clone()
	s.attempts.Add(1)
	s.bytesSent.Add(int64(len(req.Body)))
	resp, err := s.client.Do(hr)
	if err != nil {
		s.count("net_error")
		return err
	}
	defer resp.Body.Close()
	// Firehose reads at most 1 MiB of response.
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	s.count(strconv.Itoa(resp.StatusCode))
	if resp.StatusCode != http.StatusOK {
		return &StatusError{Code: resp.StatusCode, Msg: snippet(data)}
	}
	if rerr != nil {
		return fmt.Errorf("reading response: %w", rerr)
	}
	var ack struct {
		RequestID string          `json:"requestId"`
		Timestamp json.RawMessage `json:"timestamp"`
	}
	if err := json.Unmarshal(data, &ack); err != nil || ack.RequestID != req.ID {
		s.badAcks.Add(1)
		return &StatusError{Code: resp.StatusCode, Msg: "response does not echo the requestId: " + snippet(data)}
	}
	if _, err := strconv.ParseInt(string(ack.Timestamp), 10, 64); err != nil {
		s.badAcks.Add(1)
		return &StatusError{Code: resp.StatusCode, Msg: "response timestamp is not an integer: " + snippet(data)}
	}
	return nil
}

func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

func (s *Sender) count(status string) {
	s.mu.Lock()
	s.statuses[status]++
	s.mu.Unlock()
}

func (s *Sender) acked(req *Request, lat time.Duration) {
	s.requestsAcked.Add(1)
	s.eventsAcked.Add(int64(len(req.Events)))
	s.mu.Lock()
	s.lat.record(lat)
	s.mu.Unlock()
	if s.opts.onAck == nil && s.opts.onEvent == nil {
		return
	}
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	if s.opts.onAck != nil {
		s.opts.onAck(req)
	}
	if s.opts.onEvent != nil {
		for i := range req.Events {
			s.opts.onEvent(&req.Events[i])
		}
	}
}

// Report returns a snapshot of the sender's counters.
func (s *Sender) Report() Report {
	rep := Report{
		ElapsedSeconds:   time.Since(s.start).Seconds(),
		RequestsSent:     s.requestsSent.Load(),
		RequestsAcked:    s.requestsAcked.Load(),
		RequestsFailed:   s.requestsFailed.Load(),
		RequestsCanceled: s.requestsCanceled.Load(),
		Attempts:         s.attempts.Load(),
		Retries:          s.retries.Load(),
		BadAcks:          s.badAcks.Load(),
		RecordsSent:      s.recordsSent.Load(),
		EventsSent:       s.eventsSent.Load(),
		EventsAcked:      s.eventsAcked.Load(),
		BytesSent:        s.bytesSent.Load(),
		RawBytesSent:     s.rawBytesSent.Load(),
		Statuses:         map[string]int64{},
	}
	s.mu.Lock()
	for k, v := range s.statuses {
		rep.Statuses[k] = v
	}
	rep.AckLatency = s.lat.summary()
	s.mu.Unlock()
	if rep.ElapsedSeconds > 0 {
		rep.EventsPerSecond = float64(rep.EventsAcked) / rep.ElapsedSeconds
	}
	return rep
}

// newLimiter returns the events/s limiter of cfg, or nil without a rate.
// A request is admitted when the limiter grants as many tokens as it carries
// events; the burst is one request's worth (see requestEventLimit).
func newLimiter(cfg Config) *rate.Limiter {
	if cfg.Rate <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(cfg.Rate), requestEventLimit(cfg))
}

// requestEventLimit is the most events one request may carry. With a rate,
// a request carries at most one second's worth, as Firehose's buffering
// interval would flush a slow stream.
func requestEventLimit(cfg Config) int {
	n := cfg.maxEventsPerRequest()
	if cfg.Rate > 0 {
		n = min(n, max(1, int(math.Ceil(cfg.Rate))))
	}
	return n
}

// Run generates requests and sends them until cfg.Events events have been
// generated, cfg.Duration has passed or ctx ends, then waits for the requests
// in flight (which keep retrying unless ctx ended) and returns the report.
// Ending ctx is a normal way to stop: the error is nil and Report.Stopped
// says "canceled". Errors are configuration errors.
func Run(ctx context.Context, cfg Config, opts ...Option) (Report, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	gen, err := NewGenerator(cfg)
	if err != nil {
		return Report{}, err
	}
	defer gen.Close()
	s, err := NewSender(cfg, opts...)
	if err != nil {
		return Report{}, err
	}

	genCtx, stopGen := context.WithCancel(ctx)
	defer stopGen()
	if s.opts.stop != nil {
		go func() {
			select {
			case <-s.opts.stop:
				stopGen()
			case <-genCtx.Done():
			}
		}()
	}
	if cfg.Duration > 0 {
		genCtx, stopGen = context.WithTimeout(genCtx, cfg.Duration)
		defer stopGen()
	}

	lim := newLimiter(cfg)
	perRequest := requestEventLimit(cfg)
	queue := make(chan *Request, cfg.Concurrency)
	var genErr error
	var reachedCount bool
	go func() {
		defer close(queue)
		generated := int64(0)
		for genCtx.Err() == nil {
			limit := perRequest
			if cfg.Events > 0 {
				left := cfg.Events - generated
				if left <= 0 {
					reachedCount = true
					return
				}
				limit = int(min(int64(limit), left))
			}
			req, err := gen.next(limit)
			if err != nil {
				genErr = err
				return
			}
			if lim != nil && len(req.Events) > 0 {
				if lim.WaitN(genCtx, len(req.Events)) != nil {
					return
				}
			}
			select {
			case queue <- req:
				generated += int64(len(req.Events))
			case <-genCtx.Done():
				return
			}
		}
	}()

	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	if s.opts.progress != nil && s.opts.progressEvery > 0 {
		progressWG.Go(func() {
			t := time.NewTicker(s.opts.progressEvery)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					s.opts.progress(s.Report())
				case <-progressDone:
					return
				}
			}
		})
	}

	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for req := range queue {
				if ctx.Err() != nil || isClosed(s.opts.stop) {
					continue // drain without sending
				}
				_ = s.Send(ctx, req) // outcome is counted in the report
			}
		})
	}
	wg.Wait()
	close(progressDone)
	progressWG.Wait() // no progress call after Run returns

	rep := s.Report()
	switch {
	case ctx.Err() != nil:
		rep.Stopped = "canceled"
	case isClosed(s.opts.stop) && !reachedCount:
		rep.Stopped = "stopped"
	case reachedCount:
		rep.Stopped = "events"
	default:
		rep.Stopped = "duration"
	}
	return rep, genErr
}

// isClosed is false for a nil channel: no stop asked.
func isClosed(c <-chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// histogram is a log-linear latency histogram (microseconds, 64 sub-buckets
// per power of two: relative error below 1/64).
type histogram struct {
	counts []int64
	n      int64
	max    time.Duration
}

const subBits = 6

func bucketOf(us uint64) int {
	if us < 2<<subBits {
		return int(us)
	}
	shift := bits.Len64(us) - subBits - 1
	return (shift+1)<<subBits + int(us>>uint(shift)) - 1<<subBits
}

// bucketMid returns the middle of bucket i in microseconds.
func bucketMid(i int) float64 {
	if i < 2<<subBits {
		return float64(i)
	}
	shift := i>>subBits - 1
	lo := uint64(i-(shift+1)<<subBits+1<<subBits) << uint(shift)
	return float64(lo) + float64(uint64(1)<<uint(shift))/2
}

func (h *histogram) record(d time.Duration) {
	us := uint64(max(d, 0) / time.Microsecond)
	i := bucketOf(us)
	if i >= len(h.counts) {
		h.counts = append(h.counts, make([]int64, i+1-len(h.counts))...)
	}
	h.counts[i]++
	h.n++
	h.max = max(h.max, d)
}

func (h *histogram) quantile(q float64) float64 {
	rank := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank && c > 0 {
			return math.Min(bucketMid(i), float64(h.max/time.Microsecond))
		}
	}
	return float64(h.max / time.Microsecond)
}

func (h *histogram) summary() LatencySummary {
	if h.n == 0 {
		return LatencySummary{}
	}
	ms := func(us float64) float64 { return math.Round(us) / 1000 }
	return LatencySummary{
		Count: h.n,
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		Max:   float64(h.max.Microseconds()) / 1000,
	}
}
