package ddmetrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/DataDog/datadog-go/v5/statsd"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddhttp"
)

// API paths, appended to Config.APIURL.
const (
	SeriesPath       = "/api/v2/series"
	DistributionPath = "/api/v1/distribution_points"
)

// ErrClosed is returned by Submit once Close has been called.
var ErrClosed = errors.New("ddmetrics: client closed")

// Outcome is what one HTTP attempt led to (see package ddhttp).
type Outcome = ddhttp.Outcome

// The outcomes.
const (
	Accepted     = ddhttp.Accepted
	Retrying     = ddhttp.Retrying
	Unauthorized = ddhttp.Unauthorized
	Split        = ddhttp.Split
	Rejected     = ddhttp.Rejected
)

// Result describes one HTTP attempt, for telemetry (Config.OnResult).
type Result struct {
	Endpoint        string // "series" or "distribution_points"
	Outcome         Outcome
	Status          int   // HTTP status; 0 when the request failed without one
	Err             error // the transport error, if any
	Points          int   // series points, or distribution values
	Bytes           int   // uncompressed body size
	CompressedBytes int   // body size on the wire
	Latency         time.Duration
	Attempt         int
}

// Rejection is a metric the API refused for good, or that could never be
// sent, with the reason. For a distribution it may hold only part of the
// submitted point's values.
type Rejection struct {
	Metric record.Metric
	Reason string
}

// Stats are cumulative counters of a Client. The JSON names are the ones
// /status shows.
type Stats struct {
	Submitted      uint64 `json:"points_submitted"` // metric points given to Submit
	SeriesAccepted uint64 `json:"series_accepted"`  // series points accepted (2xx)
	ValuesAccepted uint64 `json:"values_accepted"`  // distribution values accepted (2xx)
	Rejected       uint64 `json:"rejected"`         // metric points (or parts) rejected
	TooOld         uint64 `json:"too_old"`          // of which: older than MaxAge (or newer than MaxFuture) when submitted or retried
	Requests       uint64 `json:"requests"`         // HTTP attempts
	Retries        uint64 `json:"retries"`          // attempts sent again after one failed
	Splits         uint64 `json:"splits"`           // payloads split in halves
	BytesSent      uint64 `json:"bytes_sent"`       // compressed bytes of accepted requests
	InFlight       int64  `json:"in_flight"`        // HTTP requests in flight
}

// Client submits metric points to Datadog: the Metrics API (v2 series, v1
// distribution points), or a DogStatsD Agent. It is safe for concurrent use.
//
// In api mode, Submit returns only when every point was accepted (2xx) or
// rejected for good:
//
//   - 2xx: accepted.
//   - 400, 413, and bodies that compress larger than the limit: split in
//     halves; a single point (or a single distribution value) still refused
//     is rejected and returned with the reason.
//   - 401, 403: nothing is dropped: retried with backoff, and Healthy
//     reports the refused key until a request succeeds.
//   - network errors, 408, 429 (honouring Retry-After), 5xx and any other
//     status: retried with exponential backoff and jitter until accepted,
//     until the points grow older than MaxAge (then rejected: the API would
//     drop them), or until ctx ends.
type Client struct {
	cfg    Config
	log    *slog.Logger
	series *compressor
	dists  *compressor
	http   *http.Client
	own    *http.Transport
	sem    chan struct{}
	sd     *statsd.Client

	closed atomic.Bool
	health ddhttp.KeyHealth

	bufs sync.Pool // *[]byte

	n struct {
		submitted, seriesAccepted, valuesAccepted, rejected, tooOld atomic.Uint64
		requests, retries, splits, bytes                            atomic.Uint64
		inFlight                                                    atomic.Int64
	}
}

// New validates cfg, applies the defaults and returns a client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg, log: cfg.Logger.With("component", "ddmetrics")}
	c.health = ddhttp.KeyHealth{API: "metrics API", Held: "points", Prefix: "ddmetrics", Log: c.log}
	c.bufs.New = func() any { b := make([]byte, 0, 64<<10); return &b }
	if cfg.Mode == ModeDogStatsD {
		sd, err := statsd.New(cfg.DogStatsDAddr,
			statsd.WithExtendedClientSideAggregation(),
			statsd.WithBufferFlushInterval(defaultDogStatsDFlushInterval))
		if err != nil {
			return nil, fmt.Errorf("ddmetrics: dogstatsd client for %s: %w", cfg.DogStatsDAddr, err)
		}
		c.sd = sd
		return c, nil
	}
	var err error
	if c.series, err = newCompressor(cfg.Compression); err != nil {
		return nil, err
	}
	distKind := "deflate"
	if cfg.Compression == "none" {
		distKind = "none"
	}
	if c.dists, err = newCompressor(distKind); err != nil {
		return nil, err
	}
	c.sem = make(chan struct{}, cfg.Concurrency)
	c.http = cfg.HTTPClient
	if c.http == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = cfg.Concurrency
		t.MaxIdleConns = max(t.MaxIdleConns, cfg.Concurrency)
		c.own = t
		c.http = &http.Client{Transport: t}
	}
	return c, nil
}

// Submit sends ms and returns the points rejected for good (see Client). It
// returns an error only when ctx ends first, or the client is closed; points
// may then have been delivered or not. ms is not modified; it must not be
// modified until Submit returns.
func (c *Client) Submit(ctx context.Context, ms []record.Metric) (rejected []record.Metric, err error) {
	rs, err := c.SubmitRejections(ctx, ms)
	if len(rs) > 0 {
		rejected = make([]record.Metric, len(rs))
		for i := range rs {
			rejected[i] = rs[i].Metric
		}
	}
	return rejected, err
}

// SubmitRejections is Submit with the reason of each rejection.
func (c *Client) SubmitRejections(ctx context.Context, ms []record.Metric) ([]Rejection, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.n.submitted.Add(uint64(len(ms)))
	if c.sd != nil {
		return c.submitDogStatsD(ms)
	}
	sub := &submission{c: c, ms: ms}
	seriesPl := planner{ms: ms, cap: c.cfg.MaxUncompressedBytes, reject: sub.reject}
	distPl := planner{ms: ms, cap: c.cfg.MaxDistributionBytes, reject: sub.reject}
	now := c.cfg.Now()
	for i := range ms {
		m := &ms[i]
		if reason, age := c.check(m, now); reason != "" {
			if age {
				c.n.tooOld.Add(1)
			}
			sub.reject(part{idx: i, hi: len(m.Values)}, reason)
			continue
		}
		if m.Kind == record.MetricDistribution {
			distPl.addDist(i)
		} else {
			seriesPl.addSeries(i)
		}
	}
	seriesPl.seal()
	distPl.seal()
	payloads := append(seriesPl.out, distPl.out...)
	if len(payloads) == 1 {
		if err := sub.send(ctx, payloads[0]); err != nil {
			return nil, err
		}
		return sub.rejected, nil
	}
	var (
		wg   sync.WaitGroup
		emu  sync.Mutex
		errs error
	)
	for _, p := range payloads {
		wg.Go(func() {
			if err := sub.send(ctx, p); err != nil {
				emu.Lock()
				if errs == nil {
					errs = err
				}
				emu.Unlock()
			}
		})
	}
	wg.Wait()
	if errs != nil {
		return nil, errs
	}
	return sub.rejected, nil
}

// check returns why a point can never be accepted, or "", and whether the
// reason is its age.
func (c *Client) check(m *record.Metric, now time.Time) (reason string, age bool) {
	switch {
	case m.Name == "":
		return "metric has no name", false
	case m.Kind > record.MetricDistribution:
		return fmt.Sprintf("unknown metric kind %d", m.Kind), false
	case m.Kind != record.MetricDistribution && !finite(m.Value):
		return "metric value is not a finite number", false
	case m.Kind == record.MetricDistribution && len(m.Values) == 0:
		return "distribution has no values", false
	case m.Timestamp < now.Add(-c.cfg.MaxAge).Unix():
		return fmt.Sprintf("too old: timestamp %d is more than %v in the past (the API drops such points)", m.Timestamp, c.cfg.MaxAge), true
	case m.Timestamp > now.Add(c.cfg.MaxFuture).Unix():
		return fmt.Sprintf("too new: timestamp %d is more than %v in the future (the API drops such points)", m.Timestamp, c.cfg.MaxFuture), true
	}
	return "", false
}

// submission is one Submit call's bookkeeping.
type submission struct {
	c        *Client
	ms       []record.Metric
	mu       sync.Mutex
	rejected []Rejection
}

func (s *submission) reject(p part, reason string) {
	m := s.ms[p.idx]
	n := 1
	if m.Kind == record.MetricDistribution {
		if p.lo != 0 || p.hi != len(m.Values) {
			m.Values = m.Values[p.lo:p.hi:p.hi]
		}
		n = len(m.Values)
	}
	s.c.n.rejected.Add(uint64(n))
	s.mu.Lock()
	s.rejected = append(s.rejected, Rejection{Metric: m, Reason: reason})
	s.mu.Unlock()
}

func (s *submission) rejectAll(p *payload, reason string) {
	for _, pt := range p.parts {
		s.reject(pt, reason)
	}
}

// allTooOld reports whether every point of p is now older than MaxAge.
func (s *submission) allTooOld(p *payload, now time.Time) bool {
	oldest := now.Add(-s.c.cfg.MaxAge).Unix()
	for _, pt := range p.parts {
		if s.ms[pt.idx].Timestamp >= oldest {
			return false
		}
	}
	return true
}

// send delivers one payload (see Client for the rules). It returns an error
// only when ctx ends.
func (s *submission) send(ctx context.Context, p *payload) error {
	c := s.c
	endpoint, path, comp, wireMax := "series", SeriesPath, c.series, c.cfg.MaxPayloadBytes
	if p.dist {
		endpoint, path, comp, wireMax = "distribution_points", DistributionPath, c.dists, c.cfg.MaxDistributionBytes
	}
	raw := p.body
	var rawBuf *[]byte
	if raw == nil {
		rawBuf = c.bufs.Get().(*[]byte)
		raw = encode(s.ms, p, *rawBuf)
		*rawBuf = raw
	}
	p.body = nil // halves re-encode from their parts
	bodyBuf := c.bufs.Get().(*[]byte)
	body := comp.compress(raw, *bodyBuf)
	if comp.name != "" {
		*bodyBuf = body
	}
	rawLen := len(raw)
	release := func() {
		if rawBuf != nil {
			c.putBuf(rawBuf)
			rawBuf = nil
		}
		if bodyBuf != nil {
			c.putBuf(bodyBuf)
			bodyBuf = nil
		}
	}
	defer release()
	points := p.points()

	split := func(reason string) error {
		a, b, ok := halves(p)
		if !ok {
			s.rejectAll(p, reason)
			return nil
		}
		c.n.splits.Add(1)
		release()
		if err := s.send(ctx, a); err != nil {
			return err
		}
		return s.send(ctx, b)
	}
	if len(body) > wireMax {
		c.report(Result{Endpoint: endpoint, Outcome: Split, Points: points, Bytes: rawLen, CompressedBytes: len(body)})
		return split(fmt.Sprintf("payload of %d bytes exceeds the %d-byte limit once compressed", len(body), wireMax))
	}

	retry := c.cfg.Backoff.Retrier()
	for attempt := 1; ; attempt++ {
		if attempt > 1 && s.allTooOld(p, c.cfg.Now()) {
			c.n.tooOld.Add(uint64(len(p.parts)))
			s.rejectAll(p, fmt.Sprintf("too old: still undelivered after %d attempts when the points passed the API's %v age limit", attempt-1, c.cfg.MaxAge))
			return nil
		}
		if attempt > 1 {
			c.n.retries.Add(1) // counted when sent: a retry given up in its backoff is none
		}
		status, detail, retryAfter, latency, err := c.post(ctx, path, comp.name, body)
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		res := Result{Endpoint: endpoint, Status: status, Err: err, Points: points, Bytes: rawLen, CompressedBytes: len(body), Latency: latency, Attempt: attempt}
		switch {
		case err == nil && status >= 200 && status < 300:
			res.Outcome = Accepted
			c.report(res)
			c.health.OK()
			if p.dist {
				c.n.valuesAccepted.Add(uint64(points))
			} else {
				c.n.seriesAccepted.Add(uint64(points))
			}
			c.n.bytes.Add(uint64(len(body)))
			return nil

		case err == nil && (status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge):
			c.health.OK() // the key was accepted
			reason := fmt.Sprintf("metrics API %d: %s", status, detail)
			if _, _, ok := halves(p); !ok {
				res.Outcome = Rejected
				c.report(res)
				c.log.Warn("datadog metrics API rejected a point", "endpoint", endpoint, "status", status, "detail", detail)
				s.rejectAll(p, reason)
				return nil
			}
			res.Outcome = Split
			c.report(res)
			c.log.Debug("datadog metrics API refused a payload; splitting it", "endpoint", endpoint, "status", status, "detail", detail, "parts", len(p.parts))
			return split(reason)

		case err == nil && (status == http.StatusUnauthorized || status == http.StatusForbidden):
			res.Outcome = Unauthorized
			c.health.Refused(status, detail)

		default:
			res.Outcome = Retrying
			if attempt&(attempt-1) == 0 { // attempts 1, 2, 4, 8, …: bounded log volume
				what := []any{"endpoint", endpoint, "attempt", attempt, "points", points}
				if err != nil {
					what = append(what, "error", err)
				} else {
					what = append(what, "status", status, "detail", detail)
				}
				c.log.Warn("datadog metrics API request failed; retrying", what...)
			}
		}
		c.report(res)
		if err := retry.Wait(ctx, retryAfter); err != nil {
			return err
		}
	}
}

func (c *Client) putBuf(b *[]byte) {
	if cap(*b) > 8<<20 {
		return
	}
	*b = (*b)[:0]
	c.bufs.Put(b)
}

func (c *Client) report(r Result) {
	if c.cfg.OnResult != nil {
		c.cfg.OnResult(r)
	}
}

// post sends one request, holding a concurrency slot. detail is a short,
// key-free description of a non-2xx answer; err a key-free transport error.
func (c *Client) post(ctx context.Context, path, encoding string, body []byte) (status int, detail string, retryAfter, latency time.Duration, err error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, "", 0, 0, ctx.Err()
	}
	defer func() { <-c.sem }()
	c.n.requests.Add(1)
	c.n.inFlight.Add(1)
	defer c.n.inFlight.Add(-1)
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.cfg.APIURL+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", 0, 0, ddhttp.RedactErr(err, c.cfg.APIKey)
	}
	req.Header.Set("DD-API-KEY", c.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gwpipe")
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", 0, time.Since(start), ddhttp.RedactErr(err, c.cfg.APIKey)
	}
	defer resp.Body.Close()
	a := ddhttp.ReadAnswer(resp, c.cfg.APIKey, c.cfg.Now())
	return a.Status, a.Detail, a.RetryAfter, time.Since(start), nil
}

// Healthy returns nil, or an error saying why the API refuses us (the API
// key was refused: 401/403). It clears when a request succeeds.
func (c *Client) Healthy() error { return c.health.Err() }

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Submitted:      c.n.submitted.Load(),
		SeriesAccepted: c.n.seriesAccepted.Load(),
		ValuesAccepted: c.n.valuesAccepted.Load(),
		Rejected:       c.n.rejected.Load(),
		TooOld:         c.n.tooOld.Load(),
		Requests:       c.n.requests.Load(),
		Retries:        c.n.retries.Load(),
		Splits:         c.n.splits.Load(),
		BytesSent:      c.n.bytes.Load(),
		InFlight:       c.n.inFlight.Load(),
	}
}

// Close stops taking submissions and releases connections (api mode) or
// flushes and closes the DogStatsD client. Call it after the Submit calls
// have returned.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if c.sd != nil {
		if err := c.sd.Close(); err != nil {
			return fmt.Errorf("ddmetrics: close dogstatsd client: %w", err)
		}
		return nil
	}
	c.series.close()
	c.dists.close()
	if c.own != nil {
		c.own.CloseIdleConnections()
	}
	return nil
}
