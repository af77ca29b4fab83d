package ddmetrics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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

// Result describes one HTTP attempt, for telemetry (Config.OnResult):
// Endpoint is "series" or "distribution_points", Items counts series points
// or distribution values.
type Result = ddhttp.Result

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
//     until a point grows older than MaxAge (then it is rejected, since the
//     API would drop it silently while accepting the others, and the others
//     are sent again without it), or until ctx ends.
//
// Posting, the status handling, the retries and the compression are the
// shared Datadog sender's (package ddhttp); this client plans payloads,
// splits them and keeps the points' books.
type Client struct {
	cfg    Config
	series endpoint
	dists  endpoint
	dest   *ddhttp.Sender // posts, classifies, retries
	sd     *statsd.Client

	closed atomic.Bool

	n struct {
		submitted, seriesAccepted, valuesAccepted, rejected, tooOld atomic.Uint64
		splits, bytes                                               atomic.Uint64
	}
}

// endpoint is where one kind of payload goes, and how.
type endpoint struct {
	name     string // in results
	url      string
	encoding string // Content-Encoding
	codec    *ddhttp.Codec
	wireMax  int
}

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ddmetrics: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{cfg: cfg}
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
	if cfg.Compression == ddhttp.None {
		c.cfg.MaxUncompressedBytes = min(cfg.MaxUncompressedBytes, cfg.MaxPayloadBytes)
	}
	base := strings.TrimRight(cfg.APIURL, "/")
	series, err := ddhttp.NewCodec(cfg.Compression, 0, cfg.Concurrency)
	if err != nil {
		return nil, fmt.Errorf("ddmetrics: %w", err)
	}
	encoding := series.Encoding()
	if encoding == ddhttp.Zstd {
		encoding = "zstd1" // the series API's enum spells zstd so
	}
	c.series = endpoint{name: "series", url: base + SeriesPath, encoding: encoding, codec: series, wireMax: cfg.MaxPayloadBytes}
	distKind := ddhttp.Deflate // the only encoding the endpoint documents
	if cfg.Compression == ddhttp.None {
		distKind = ddhttp.None
	}
	dists, _ := ddhttp.NewCodec(distKind, 0, cfg.Concurrency) // valid by construction
	c.dists = endpoint{name: "distribution_points", url: base + DistributionPath, encoding: dists.Encoding(), codec: dists, wireMax: cfg.MaxDistributionBytes}
	rt := cfg.Runtime
	rt.Logger = cfg.Logger.With("component", "ddmetrics")
	c.dest, err = ddhttp.NewSender(cfg.Config, ddhttp.Options{
		API: "metrics API", Item: "point", Held: "points", Component: "ddmetrics", APIKey: cfg.APIKey, Runtime: rt, Now: cfg.Now,
	})
	if err != nil {
		series.Close()
		dists.Close()
		return nil, fmt.Errorf("ddmetrics: %w", err)
	}
	return c, nil
}

// Submit sends ms and returns the points rejected for good (see Client). It
// returns an error only when ctx ends first, or the client is closed. Once
// sending has begun, that error is an *UndeliveredError listing the points
// not delivered (see Undelivered), and the rejected points are those
// rejected until then; before, nothing was sent. ms is not modified; it
// must not be modified until Submit returns.
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
		if !sub.admit(i, now) {
			continue
		}
		if ms[i].Kind == record.MetricDistribution {
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
			return sub.rejected, sub.undeliveredError(err)
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
		return sub.rejected, sub.undeliveredError(errs)
	}
	return sub.rejected, nil
}

// UndeliveredError is the error of a submission that ended (its context
// ended) before every point was accepted or rejected. The payloads are
// sent in parallel, so part of the points may have been accepted by then:
// Undelivered holds only the points the API had not accepted (nor
// rejected), for a distribution only its values not accepted, so that
// the caller sends again (or counts as lost) just those. Distribution
// values sent twice are counted twice by Datadog; series points are
// idempotent.
type UndeliveredError struct {
	Err         error
	Undelivered []record.Metric
}

func (e *UndeliveredError) Error() string {
	return fmt.Sprintf("%d metric points undelivered: %v", len(e.Undelivered), e.Err)
}

func (e *UndeliveredError) Unwrap() error { return e.Err }

// Undelivered returns the points err says were not delivered, and whether
// it says so (an *UndeliveredError); without one, no point is known to
// have been delivered.
func Undelivered(err error) ([]record.Metric, bool) {
	var ue *UndeliveredError
	if !errors.As(err, &ue) {
		return nil, false
	}
	return ue.Undelivered, true
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

// admit checks point i, rejecting it when it can never be accepted.
func (s *submission) admit(i int, now time.Time) bool {
	m := &s.ms[i]
	reason, age := s.c.check(m, now)
	if reason == "" {
		return true
	}
	s.reject(part{idx: i, hi: len(m.Values)}, reason)
	if age {
		// In rejected's unit, a distribution's values: too_old is "of
		// those".
		n := uint64(1)
		if m.Kind == record.MetricDistribution {
			n = uint64(len(m.Values))
		}
		s.c.n.tooOld.Add(n)
	}
	return false
}

// submission is one Submit call's bookkeeping.
type submission struct {
	c        *Client
	ms       []record.Metric
	mu       sync.Mutex
	rejected []Rejection
	// undelivered are the parts of the payloads whose sending ended with
	// the context: neither accepted nor rejected.
	undelivered []part
}

// metric is p's point: the whole point for a series, the part's values of
// a distribution.
func (s *submission) metric(p part) record.Metric {
	m := s.ms[p.idx]
	if m.Kind == record.MetricDistribution && (p.lo != 0 || p.hi != len(m.Values)) {
		m.Values = m.Values[p.lo:p.hi:p.hi]
	}
	return m
}

func (s *submission) reject(p part, reason string) {
	m := s.metric(p)
	n := 1
	if m.Kind == record.MetricDistribution {
		n = len(m.Values)
	}
	s.c.n.rejected.Add(uint64(n))
	s.mu.Lock()
	s.rejected = append(s.rejected, Rejection{Metric: m, Reason: reason})
	s.mu.Unlock()
}

// unsent notes that p's points were neither accepted nor rejected.
func (s *submission) unsent(p *payload) {
	s.mu.Lock()
	s.undelivered = append(s.undelivered, p.parts...)
	s.mu.Unlock()
}

// undeliveredError wraps err, which ended the submission, with the points
// not delivered, one per submitted point: a distribution's undelivered
// values, in whatever payloads they went, are gathered again into one point.
func (s *submission) undeliveredError(err error) error {
	s.mu.Lock()
	parts := slices.Clone(s.undelivered)
	s.mu.Unlock()
	slices.SortFunc(parts, func(a, b part) int { return cmp.Or(cmp.Compare(a.idx, b.idx), cmp.Compare(a.lo, b.lo)) })
	var out []record.Metric
	for i, p := range parts {
		m := s.metric(p)
		if i > 0 && parts[i-1].idx == p.idx && m.Kind == record.MetricDistribution {
			last := &out[len(out)-1]
			last.Values = append(slices.Clip(last.Values), m.Values...) // a fresh array: ms is not ours
			continue
		}
		out = append(out, m)
	}
	return &UndeliveredError{Err: err, Undelivered: out}
}

func (s *submission) rejectAll(p *payload, reason string) {
	for _, pt := range p.parts {
		s.reject(pt, reason)
	}
}

// anyTooOld reports whether a point of p is now older than MaxAge: the
// API would drop it silently (202) while it accepts the others.
func (s *submission) anyTooOld(p *payload, now time.Time) bool {
	oldest := now.Add(-s.c.cfg.MaxAge).Unix()
	for _, pt := range p.parts {
		if s.ms[pt.idx].Timestamp < oldest {
			return true
		}
	}
	return false
}

// dropTooOld rejects the parts of p now older than MaxAge, counting them
// too old, and returns a payload of the others, or nil when none is left.
func (s *submission) dropTooOld(p *payload, now time.Time, attempts int) *payload {
	oldest := now.Add(-s.c.cfg.MaxAge).Unix()
	var young []part
	for _, pt := range p.parts {
		if s.ms[pt.idx].Timestamp >= oldest {
			young = append(young, pt)
			continue
		}
		s.c.n.tooOld.Add(uint64((&payload{dist: p.dist, parts: []part{pt}}).points())) // values for distributions, as rejected counts them
		s.reject(pt, fmt.Sprintf("too old: still undelivered after %d attempts when the point passed the API's %v age limit", attempts, s.c.cfg.MaxAge))
	}
	if len(young) == 0 {
		return nil
	}
	return &payload{dist: p.dist, parts: young}
}

// send delivers one payload (see Client for the rules). It returns an error
// only when ctx ends.
func (s *submission) send(ctx context.Context, p *payload) error {
	c := s.c
	ep := &c.series
	if p.dist {
		ep = &c.dists
	}
	raw := p.body
	var rawBuf *ddhttp.Buf
	if raw == nil {
		rawBuf = ep.codec.Buf()
		rawBuf.B = encode(s.ms, p, rawBuf.B)
		raw = rawBuf.B
	}
	p.body = nil // halves re-encode from their parts
	body, bodyBuf, err := ep.codec.Encode(ctx, raw)
	if err != nil {
		ep.codec.Free(rawBuf)
		s.unsent(p)
		return err
	}
	points, rawLen, wireLen := p.points(), len(raw), len(body)
	if wireLen > ep.wireMax {
		ep.codec.Free(bodyBuf)
		ep.codec.Free(rawBuf)
		c.dest.Report(Result{Endpoint: ep.name, Outcome: ddhttp.Split, Items: points, Bytes: rawLen, CompressedBytes: wireLen})
		return s.split(ctx, p, fmt.Sprintf("payload of %d bytes exceeds the %d-byte limit once compressed", wireLen, ep.wireMax))
	}
	reply, err := c.dest.Send(ctx, &ddhttp.Request{
		Endpoint: ep.name, URL: ep.url, Body: body, Encoding: ep.encoding,
		RawBytes: rawLen, Items: points, CanSplit: splittable(p),
		// A point past the age limit stops the retries: the API would
		// drop it silently while accepting the others, so it is rejected
		// alone and the others are sent again without it.
		Retry: func() bool { return !s.anyTooOld(p, c.cfg.Now()) },
		Log:   []any{"endpoint", ep.name, "points", points},
	})
	ep.codec.Free(bodyBuf)
	ep.codec.Free(rawBuf)
	switch {
	case errors.Is(err, ddhttp.ErrGaveUp):
		if young := s.dropTooOld(p, c.cfg.Now(), reply.Attempts); young != nil {
			return s.send(ctx, young)
		}
	case err != nil:
		s.unsent(p)
		return err
	case reply.Outcome == ddhttp.Accepted:
		if p.dist {
			c.n.valuesAccepted.Add(uint64(points))
		} else {
			c.n.seriesAccepted.Add(uint64(points))
		}
		c.n.bytes.Add(uint64(wireLen))
	case reply.Outcome == ddhttp.Rejected:
		s.rejectAll(p, fmt.Sprintf("metrics API %d: %s", reply.Status, reply.Detail))
	case reply.Outcome == ddhttp.Split:
		return s.split(ctx, p, fmt.Sprintf("metrics API %d: %s", reply.Status, reply.Detail))
	}
	return nil
}

// split sends p as two halves, or rejects it with reason when it cannot be
// split.
func (s *submission) split(ctx context.Context, p *payload, reason string) error {
	a, b, ok := halves(p)
	if !ok {
		s.rejectAll(p, reason)
		return nil
	}
	s.c.n.splits.Add(1)
	if err := s.send(ctx, a); err != nil {
		s.unsent(b) // never tried
		return err
	}
	return s.send(ctx, b)
}

// Healthy returns nil, or an error saying why the API refuses us (the API
// key was refused: 401/403). It clears when a request succeeds.
func (c *Client) Healthy() error {
	if c.dest == nil {
		return nil
	}
	return c.dest.Healthy()
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	var sent ddhttp.SenderStats
	if c.dest != nil {
		sent = c.dest.Stats()
	}
	return Stats{
		Submitted:      c.n.submitted.Load(),
		SeriesAccepted: c.n.seriesAccepted.Load(),
		ValuesAccepted: c.n.valuesAccepted.Load(),
		Rejected:       c.n.rejected.Load(),
		TooOld:         c.n.tooOld.Load(),
		Requests:       sent.Requests,
		Retries:        sent.Retries,
		Splits:         c.n.splits.Load(),
		BytesSent:      c.n.bytes.Load(),
		InFlight:       sent.InFlight,
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
	c.series.codec.Close()
	c.dists.codec.Close()
	c.dest.Close()
	return nil
}
