package ddhttp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
)

// ErrGaveUp is returned by Send when Request.Retry said not to try again.
var ErrGaveUp = errors.New("ddhttp: gave up retrying")

// errNotSent: the caller's context ended while the request waited for a
// concurrency slot.
var errNotSent = errors.New("ddhttp: not sent")

// Result describes one HTTP attempt, for telemetry (Options.OnResult).
type Result struct {
	Endpoint        string // the request's Endpoint
	Outcome         Outcome
	Status          int   // HTTP status; 0 when the request failed without one
	Err             error // the transport error, if any (key-free)
	Items           int   // logs, series points or distribution values in the request
	Bytes           int   // uncompressed body size
	CompressedBytes int   // body size on the wire
	Latency         time.Duration
	// Attempt is 1 for the first attempt of this (part of a) payload; 0
	// for a payload a client split before sending it.
	Attempt int
}

// Request is one payload to send until its answer is final.
type Request struct {
	// Endpoint names the endpoint in results ("logs", "series", …).
	Endpoint string
	URL      string
	Body     []byte // as sent
	Encoding string // Content-Encoding; "" for identity
	RawBytes int    // uncompressed size
	Items    int    // logs or points
	// CanSplit: the payload holds more than one item, so a 400/413 is
	// Split (the caller halves it) rather than Rejected.
	CanSplit bool
	// Retry, when set, is asked before each attempt after the first:
	// false stops, and Send returns ErrGaveUp (every caller gave up, the
	// points grew too old for the API, …).
	Retry func() bool
	// Log is added to the messages about this request ("logs", 20).
	Log []any
}

// Reply is the final answer to a Request.
type Reply struct {
	Outcome  Outcome // Accepted, Split or Rejected
	Status   int
	Detail   string // key-free reason of a refusal
	Attempts int    // attempts sent
}

// Runtime is what the assembler wires into a Datadog client besides its
// configuration; the clients' Configs embed it (yaml:"-").
type Runtime struct {
	// HTTPClient sends the requests; nil: a client of its own with
	// keep-alive connections for Concurrency requests.
	HTTPClient *http.Client
	// Logger receives operational messages; nil: slog.Default().
	Logger *slog.Logger
	// OnResult, when set, is called after every HTTP attempt, from the
	// sending goroutine: keep it fast.
	OnResult func(Result)
}

// Options name the API a Sender talks to and wire its runtime parts.
type Options struct {
	// API names the API in messages ("logs intake"), Item one of its
	// items ("log"), Held what waits while the key is refused ("logs"),
	// Component the client, starting its errors ("ddlogs").
	API, Item, Held, Component string
	// APIKey is sent as DD-API-KEY, and never quoted.
	APIKey string
	Runtime
	// Now reads Retry-After dates; nil: time.Now.
	Now func() time.Time
}

// SenderStats are a Sender's counters.
type SenderStats struct {
	Requests uint64 // HTTP attempts
	Retries  uint64 // attempts sent again after one failed
	InFlight int64  // requests in flight
}

// Sender posts payloads to one Datadog API until each answer is final (see
// the package documentation). It is safe for concurrent use.
type Sender struct {
	cfg    Config
	o      Options
	log    *slog.Logger
	http   *http.Client
	own    *http.Transport // the transport we made, closed by Close
	sem    chan struct{}
	health KeyHealth

	n struct {
		requests, retries atomic.Uint64
		inFlight          atomic.Int64
	}
}

// NewSender validates cfg and the API key and returns a sender.
func NewSender(cfg Config, o Options) (*Sender, error) {
	if err := errors.Join(cfg.Validate(), ValidateAPIKey(o.APIKey)); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Sender{cfg: cfg, o: o, log: o.Logger, http: o.HTTPClient, sem: make(chan struct{}, cfg.Concurrency)}
	s.health = KeyHealth{API: o.API, Held: o.Held, Prefix: o.Component, Log: o.Logger}
	if s.http == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = cfg.Concurrency
		t.MaxIdleConns = max(t.MaxIdleConns, cfg.Concurrency)
		s.own = t
		s.http = &http.Client{Transport: t}
	}
	return s, nil
}

// Send posts r until its answer is final: Accepted, Split or Rejected. In
// between it waits through the backoff, never less than an answer's
// Retry-After. It returns an error only when ctx ends (ctx's error: an
// attempt in flight is cancelled, a wait cut short, and no retry follows)
// or when r.Retry says to stop (ErrGaveUp).
func (s *Sender) Send(ctx context.Context, r *Request) (Reply, error) {
	var pace *backoff.Backoff
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			if r.Retry != nil && !r.Retry() {
				return Reply{Attempts: attempt - 1}, ErrGaveUp
			}
			s.n.retries.Add(1) // counted when sent: a retry given up in its backoff is none
		}
		a, latency, err := s.post(ctx, r)
		if errors.Is(err, errNotSent) {
			return Reply{Attempts: attempt - 1}, ctx.Err()
		}
		out := Classify(a.Status, err, r.CanSplit)
		switch out {
		case Unauthorized:
			s.health.Refused(a.Status, a.Detail)
		case Accepted, Split, Rejected:
			s.health.OK() // the key was accepted
		}
		// Every request sent is reported, one cut by the deadline too:
		// each counted request has its latency.
		s.Report(Result{Endpoint: r.Endpoint, Outcome: out, Status: a.Status, Err: err, Items: r.Items,
			Bytes: r.RawBytes, CompressedBytes: len(r.Body), Latency: latency, Attempt: attempt})
		if err != nil && ctx.Err() != nil {
			return Reply{Attempts: attempt}, ctx.Err()
		}
		reply := Reply{Outcome: out, Status: a.Status, Detail: a.Detail, Attempts: attempt}
		switch out {
		case Accepted:
			return reply, nil
		case Split:
			s.log.Debug("datadog "+s.o.API+" refused a payload; splitting it", s.attrs(r, "status", a.Status, "detail", a.Detail)...)
			return reply, nil
		case Rejected:
			s.log.Warn("datadog "+s.o.API+" rejected a "+s.o.Item, s.attrs(r, "status", a.Status, "detail", a.Detail, "bytes", r.RawBytes)...)
			return reply, nil
		case Retrying:
			if attempt&(attempt-1) == 0 { // attempts 1, 2, 4, 8, …: bounded log volume
				if err != nil {
					s.log.Warn("datadog "+s.o.API+" request failed; retrying", s.attrs(r, "attempt", attempt, "error", err)...)
				} else {
					s.log.Warn("datadog "+s.o.API+" request failed; retrying", s.attrs(r, "attempt", attempt, "status", a.Status, "detail", a.Detail)...)
				}
			}
		}
		if pace == nil {
			pace = s.cfg.Backoff.Start()
		}
		if err := pace.Sleep(ctx, nextDelay(pace, a.RetryAfter)); err != nil {
			return Reply{Attempts: attempt}, err
		}
	}
}

// nextDelay is the wait before the next attempt: our own pace, or the
// answer's Retry-After when longer. The API's word wins, even beyond
// MaxInterval (RetryAfter is bounded by MaxRetryAfter).
func nextDelay(pace *backoff.Backoff, retryAfter time.Duration) time.Duration {
	return max(pace.Next(), retryAfter)
}

func (s *Sender) attrs(r *Request, kv ...any) []any { return append(kv, r.Log...) }

// post makes one attempt, holding one of the Concurrency slots. err is a
// key-free transport error.
func (s *Sender) post(ctx context.Context, r *Request) (a answer, latency time.Duration, err error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return a, 0, errNotSent
	}
	defer func() { <-s.sem }()
	s.n.requests.Add(1)
	s.n.inFlight.Add(1)
	defer s.n.inFlight.Add(-1)
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return a, 0, RedactErr(err, s.o.APIKey)
	}
	req.Header.Set("DD-API-KEY", s.o.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gwpipe")
	if r.Encoding != "" {
		req.Header.Set("Content-Encoding", r.Encoding)
	}
	start := time.Now()
	resp, err := s.http.Do(req)
	if err != nil {
		return a, time.Since(start), RedactErr(err, s.o.APIKey)
	}
	defer resp.Body.Close()
	a = readAnswer(resp, s.o.APIKey, s.o.Now())
	return a, time.Since(start), nil
}

// Report passes r to the result hook: Send reports every attempt; a client
// reports what it decides without an attempt (a payload split before it
// is sent).
func (s *Sender) Report(r Result) {
	if s.o.OnResult != nil {
		s.o.OnResult(r)
	}
}

// Healthy returns nil, or an error saying why the API refuses us (the API
// key was refused: 401/403). It clears when a request is authenticated.
func (s *Sender) Healthy() error { return s.health.Err() }

// Stats returns the sender's counters.
func (s *Sender) Stats() SenderStats {
	return SenderStats{Requests: s.n.requests.Load(), Retries: s.n.retries.Load(), InFlight: s.n.inFlight.Load()}
}

// Close releases the idle connections of the sender's own transport. Call
// it once no Send runs.
func (s *Sender) Close() {
	if s.own != nil {
		s.own.CloseIdleConnections()
	}
}
