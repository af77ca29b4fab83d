package ddlogs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddhttp"
)

// ErrClosed is returned by Deliver once Close has been called, and to callers
// still waiting when Close gave up on undelivered payloads.
var ErrClosed = errors.New("ddlogs: client closed")

// Result describes one HTTP attempt, for telemetry (Config.OnResult);
// Items counts its logs.
type Result = ddhttp.Result

// Stats are cumulative counters and current gauges of a Client. The JSON
// names are the ones /status shows.
type Stats struct {
	LogsSubmitted   uint64 `json:"logs_submitted"`   // records taken in by Deliver
	LogsAccepted    uint64 `json:"logs_accepted"`    // accepted by the intake (2xx)
	LogsRejected    uint64 `json:"logs_rejected"`    // permanently rejected (400/413 on a single log)
	LogsDropped     uint64 `json:"logs_dropped"`     // not (re)sent because every caller waiting for them had given up, or Close gave up on them
	LogsTruncated   uint64 `json:"logs_truncated"`   // rendered truncated to MaxLogBytes
	Payloads        uint64 `json:"payloads"`         // payloads sealed
	Requests        uint64 `json:"requests"`         // HTTP attempts
	Retries         uint64 `json:"retries"`          // attempts sent again after one failed (network, 401/403, 408, 429, 5xx, …)
	Splits          uint64 `json:"splits"`           // payloads split in halves after 400/413
	BytesAccepted   uint64 `json:"bytes_accepted"`   // uncompressed bytes of accepted requests
	BytesCompressed uint64 `json:"bytes_compressed"` // compressed bytes of accepted requests
	PendingPayloads int    `json:"pending_payloads"` // sealed payloads waiting for a sender
	InFlight        int    `json:"in_flight"`        // HTTP requests in flight
}

// Client delivers records to the Datadog logs intake. It is safe for
// concurrent use. Its goroutines — one batcher and Concurrency senders — are
// stopped by Close.
//
// Records from all Deliver calls share payloads: a payload is sealed when it
// holds MaxBatchLogs logs, when the next log would take it over
// MaxBatchBytes, or Linger after its first log — or before that when waiting
// would only add latency: a sender is idle, no payload is queued and no
// Deliver call is still handing records over (callers waiting for their
// acknowledgement add nothing more, so a closed loop of callers never waits
// for Linger). Sealed payloads wait (at most MaxPending of them; beyond that
// Deliver blocks) for one of Concurrency senders, which compresses the
// payload once and sends it until it is accepted:
//
//   - 2xx: accepted.
//   - 400, 413: split in halves, each sent on its own; a single log still
//     refused is permanently rejected and returned by Deliver with its Reason.
//   - 401, 403: nothing is dropped: retried with backoff, and Healthy reports
//     the refused key until a request succeeds.
//   - network errors, 408, 429, 5xx and any other status: retried with
//     exponential backoff and jitter, indefinitely, never sooner than the
//     answer's Retry-After asks.
//
// Posting, the status handling, the retries and the compression are the
// shared Datadog sender's (package ddhttp); this client batches, splits and
// settles.
//
// Abandoned payloads: before every attempt (the first included), a payload —
// or a half of one — whose callers have all given up (their contexts ended)
// is dropped rather than sent. Those callers got an error from Deliver, so
// their sources were never acknowledged and will send the records again:
// dropping loses nothing and keeps retries from blocking live work and from
// adding duplicates. While one caller still waits, the whole payload is sent,
// its abandoned records included (at-least-once: they may arrive twice).
type Client struct {
	cfg Config
	// defaults is cfg.Defaults as last set (SetDefaults): each Deliver
	// call renders with the one it loads first.
	defaults atomic.Pointer[Defaults]
	codec    *ddhttp.Codec
	dest     *ddhttp.Sender // posts, classifies, retries

	in     chan *chunk     // Deliver → batcher
	queue  chan *payload   // batcher → senders
	inDone chan struct{}   // closed when no Deliver can submit any more (after Close)
	abort  chan struct{}   // closed when Close gives up: stop everything now
	ctx    context.Context // base context of requests, cancelled on abort
	cancel context.CancelFunc

	mu         sync.Mutex
	closed     bool
	submitters sync.WaitGroup // Deliver calls still submitting

	wg        sync.WaitGroup // batcher, senders, closer
	closeOnce sync.Once
	abortOnce sync.Once
	stopped   chan struct{} // closed when every goroutine has exited
	abandoned atomic.Uint64 // logs an aborted Close gave up on

	payloadPool sync.Pool
	chunkPool   sync.Pool

	// Early sealing: a partial payload goes at once when a sender is idle,
	// no payload is queued and no Deliver call is still handing records over.
	submitting  atomic.Int64  // Deliver calls whose last chunk the batcher has not taken yet
	idleSenders atomic.Int64  // senders waiting for a payload
	wake        chan struct{} // nudges the batcher to re-check early sealing

	obs observer // set by Options only; nil funcs in production

	n struct {
		submitted, accepted, rejected, dropped, truncated atomic.Uint64
		payloads, splits, bytes, compressed               atomic.Uint64
	}
}

// Option adjusts a Client at construction, for what is not configuration.
// No other package needs one today; the package's tests observe the
// batcher through them (export_test.go).
type Option func(*Client)

// observer is told of the client's steps as they happen, so that tests wait
// on them instead of sleeping. Each func may be nil and must not block.
type observer struct {
	submitted func(n int)                   // n records of a Deliver call were taken in by the batcher
	sealed    func(reason string, logs int) // the batcher sealed a payload of logs records
}

// New validates cfg and starts the client.
func New(cfg Config, opts ...Option) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ddlogs: %w", err)
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = cfg.Concurrency
	}
	if cfg.Defaults.Source == "" {
		cfg.Defaults.Source = "apigateway"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	codec, err := ddhttp.NewCodec(cfg.Compression, cfg.CompressionLevel, cfg.Concurrency) // none ignores the level
	if err != nil {
		return nil, fmt.Errorf("ddlogs: %w", err)
	}
	rt := cfg.Runtime
	rt.Logger = cfg.Logger.With("component", "ddlogs")
	sender, err := ddhttp.NewSender(cfg.Config, ddhttp.Options{
		API: "logs intake", Item: "log", Held: "logs", Component: "ddlogs", APIKey: cfg.APIKey, Runtime: rt,
	})
	if err != nil {
		codec.Close()
		return nil, fmt.Errorf("ddlogs: %w", err)
	}
	c := &Client{
		cfg:     cfg,
		codec:   codec,
		dest:    sender,
		in:      make(chan *chunk),
		queue:   make(chan *payload, cfg.MaxPending-1), // the batcher holds one more
		inDone:  make(chan struct{}),
		abort:   make(chan struct{}),
		stopped: make(chan struct{}),
		wake:    make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(c)
	}
	c.defaults.Store(&cfg.Defaults)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.payloadPool.New = func() any { return new(payload) }
	c.chunkPool.New = func() any { return &chunk{buf: make([]byte, 0, 64<<10)} }

	c.wg.Add(1 + cfg.Concurrency)
	go c.batcher()
	for range cfg.Concurrency {
		go c.sender()
	}
	return c, nil
}

// SetDefaults replaces the top-level fields (static tags, service) that
// records leave empty, for a configuration reload: a Deliver call under way
// renders its whole batch with the defaults it started with, later calls
// with d. An empty d.Source is "apigateway", as in New.
func (c *Client) SetDefaults(d Defaults) {
	if d.Source == "" {
		d.Source = "apigateway"
	}
	c.defaults.Store(&d)
}

// call tracks one Deliver call's records until each is accepted, rejected
// or dropped.
type call struct {
	batch     *record.Batch
	remaining atomic.Int64
	done      chan struct{}
	abandoned atomic.Bool

	mu       sync.Mutex // guards rejected, and batch once abandoned is set
	rejected []record.Record
}

// settle counts n records as finished.
func (cl *call) settle(n int) {
	if cl.remaining.Add(-int64(n)) == 0 {
		close(cl.done)
	}
}

func (cl *call) reject(idx int, reason string) {
	cl.mu.Lock()
	if !cl.abandoned.Load() {
		rec := cl.batch.Records[idx]
		rec.Reason = reason
		cl.rejected = append(cl.rejected, rec)
	}
	cl.mu.Unlock()
	cl.settle(1)
}

// abandon marks the caller gone; after it returns the batch is not read again.
func (cl *call) abandon() {
	cl.mu.Lock()
	cl.abandoned.Store(true)
	cl.mu.Unlock()
}

// chunk is a run of records of one call, rendered by Deliver.
//
// Payloads send the chunk's bytes where Deliver rendered them, so a chunk
// outlives its trip through the batcher: refs counts the batcher (while it
// takes the chunk in) and each payload holding one of its logs. Whoever
// drops the last reference gives the chunk back to the pool (releaseChunk);
// nobody reads it after that.
type chunk struct {
	call  *call
	last  bool    // the call's last chunk
	first int     // index in call.batch.Records of the first record
	buf   []byte  // rendered logs, each followed by a comma
	ends  []int32 // end offset of each log in buf (its comma excluded)
	refs  atomic.Int32
}

const (
	chunkMaxLogs  = 256
	chunkMaxBytes = 1 << 20
)

// Deliver renders b.Records and blocks until every record has been accepted
// by the intake or permanently rejected, and returns the rejected ones, each
// with Reason set (e.g. "intake 400: Malformed payload"). The batch must not
// be modified until Deliver returns.
//
// It returns an error only when ctx ends first (ctx.Err()), or when the client
// is closed (ErrClosed); records already taken in may still be delivered
// later (at-least-once), or dropped if no caller waits for them any more.
func (c *Client) Deliver(ctx context.Context, b *record.Batch) (rejected []record.Record, err error) {
	if b == nil || len(b.Records) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.submitters.Add(1)
	c.submitting.Add(1)
	c.mu.Unlock()

	cl := &call{batch: b, done: make(chan struct{})}
	cl.remaining.Store(int64(len(b.Records)))
	r := getRenderer(*c.defaults.Load(), c.cfg.MaxLogBytes)
	ch := c.newChunk(cl, 0)
	truncated := 0
	for i := range b.Records {
		var trunc bool
		ch.buf, trunc = r.appendLog(ch.buf, &b.Records[i])
		ch.ends = append(ch.ends, int32(len(ch.buf)))
		// The separator goes in here, so that the logs of a chunk that
		// share a payload are one piece of its body: the sender
		// compresses the chunks themselves, with nothing copied.
		ch.buf = append(ch.buf, ',')
		if trunc {
			truncated++
		}
		if last := i == len(b.Records)-1; last || len(ch.ends) >= chunkMaxLogs || len(ch.buf) >= chunkMaxBytes {
			ch.last = last
			n := len(ch.ends) // ch belongs to the batcher once submitted
			if err = c.submit(ctx, ch); err != nil {
				c.putChunk(ch)
				c.submitting.Add(-1) // the batcher will not see our last chunk
				c.nudge()
				break
			}
			c.n.submitted.Add(uint64(n))
			if c.obs.submitted != nil {
				c.obs.submitted(n)
			}
			if i < len(b.Records)-1 {
				ch = c.newChunk(cl, i+1)
			}
		}
	}
	putRenderer(r)
	c.submitters.Done()
	if truncated > 0 {
		c.n.truncated.Add(uint64(truncated))
	}
	if err != nil {
		cl.abandon()
		return nil, err
	}

	select {
	case <-cl.done:
		return cl.rejected, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-c.abort:
		err = ErrClosed
	}
	cl.abandon()
	select {
	case <-cl.done: // finished at the same moment: report success
		return cl.rejected, nil
	default:
		return nil, err
	}
}

func (c *Client) submit(ctx context.Context, ch *chunk) error {
	select {
	case c.in <- ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.abort:
		return ErrClosed
	}
}

func (c *Client) newChunk(cl *call, first int) *chunk {
	ch := c.chunkPool.Get().(*chunk)
	ch.call, ch.first, ch.last = cl, first, false
	return ch
}

// testPoison has putChunk overwrite what it gives back: the package's tests
// set it, so that a chunk released while a payload still sends it shows
// as logs the intake cannot read.
var testPoison bool

// releaseChunk drops one reference to ch.
func (c *Client) releaseChunk(ch *chunk) {
	if ch.refs.Add(-1) == 0 {
		c.putChunk(ch)
	}
}

func (c *Client) putChunk(ch *chunk) {
	if testPoison {
		// A reader still holding the chunk (a payload being sent) sees
		// garbage, and the tests that check every log fail.
		for i := range ch.buf[:cap(ch.buf)] {
			ch.buf[:cap(ch.buf)][i] = 0xff
		}
	}
	ch.call = nil
	ch.buf, ch.ends = ch.buf[:0], ch.ends[:0]
	if cap(ch.buf) > 4*chunkMaxBytes {
		ch.buf = nil
	}
	c.chunkPool.Put(ch)
}

// payload is one request body, "[log,log,…]": its logs, in the chunks they
// were rendered in, which the payload holds a reference to until it is
// put back.
type payload struct {
	size   int // of the body, brackets and commas included
	logs   []logRef
	chunks []*chunk // referenced by logs, each once
	segs   [][]byte // the sender's scratch (body)
}

type logRef struct {
	ch       *chunk
	off, end int32 // the log is ch.buf[off:end]
	idx      int32 // index in ch.call.batch.Records
}

func (c *Client) newPayload() *payload {
	p := c.payloadPool.Get().(*payload)
	p.size = 1 // '['
	return p
}

func (c *Client) putPayload(p *payload) {
	for _, ch := range p.chunks {
		c.releaseChunk(ch)
	}
	clear(p.chunks)
	p.chunks = p.chunks[:0]
	clear(p.logs)
	p.logs = p.logs[:0]
	clear(p.segs)
	p.segs = p.segs[:0]
	p.size = 0
	c.payloadPool.Put(p)
}

// batcher moves rendered logs from Deliver calls into payloads and hands
// sealed payloads to the senders. A payload is sealed when full, Linger after
// its first log, or earlier when sending it now delays nothing: a sender is
// idle, no payload is queued, and no Deliver call is still handing records
// over (callers that wait for their acknowledgement add nothing more).
func (c *Client) batcher() {
	defer c.wg.Done()
	defer close(c.queue)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	var open *payload
	// seal hands open to the senders; false when aborted.
	seal := func(reason string) bool {
		linger.Stop()
		p := open
		open = nil
		p.size++ // ']'
		c.n.payloads.Add(1)
		if c.obs.sealed != nil {
			c.obs.sealed(reason, len(p.logs))
		}
		select {
		case c.queue <- p:
			return true
		case <-c.abort:
			return false
		}
	}
	idle := func() bool {
		return c.submitting.Load() == 0 && c.idleSenders.Load() > 0 && len(c.queue) == 0
	}
	maxLogs, maxBytes := c.cfg.MaxBatchLogs, c.cfg.MaxBatchBytes
	for {
		select {
		case ch := <-c.in:
			ch.refs.Store(1) // the batcher's, until it has taken every log
			start := int32(0)
			for i, end := range ch.ends {
				n := int(end - start)
				if open != nil && (len(open.logs) >= maxLogs || open.size+1+n+1 > maxBytes) {
					if !seal("full") {
						return
					}
				}
				if open == nil {
					open = c.newPayload()
					if c.cfg.Linger > 0 {
						linger.Reset(c.cfg.Linger)
					}
				} else {
					open.size++ // ','
				}
				if k := len(open.chunks); k == 0 || open.chunks[k-1] != ch {
					ch.refs.Add(1)
					open.chunks = append(open.chunks, ch)
				}
				open.logs = append(open.logs, logRef{ch: ch, off: start, end: end, idx: int32(ch.first + i)})
				open.size += n
				start = end + 1 // past the comma
			}
			if ch.last {
				c.submitting.Add(-1)
			}
			c.releaseChunk(ch)
			if open == nil {
				continue
			}
			reason := ""
			switch {
			case len(open.logs) >= maxLogs:
				reason = "full"
			case c.cfg.Linger == 0:
				reason = "linger"
			case idle():
				reason = "idle"
			}
			if reason != "" && !seal(reason) {
				return
			}
		case <-c.wake:
			if open != nil && idle() && !seal("idle") {
				return
			}
		case <-linger.C:
			if open != nil && !seal("linger") {
				return
			}
		case <-c.inDone:
			if open != nil {
				seal("close")
			}
			return
		case <-c.abort:
			return
		}
	}
}

// nudge asks the batcher to re-check early sealing.
func (c *Client) nudge() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// sender sends payloads one at a time; Concurrency senders run.
func (c *Client) sender() {
	defer c.wg.Done()
	for {
		c.idleSenders.Add(1)
		c.nudge()
		select {
		case p, ok := <-c.queue:
			c.idleSenders.Add(-1)
			if !ok {
				return
			}
			c.send(p, 0, len(p.logs))
			c.putPayload(p)
		case <-c.abort:
			return
		}
	}
}

// Healthy returns nil, or an error saying why the intake refuses us (the
// API key was refused: 401/403). It clears when a request succeeds.
func (c *Client) Healthy() error { return c.dest.Healthy() }

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	sent := c.dest.Stats()
	return Stats{
		LogsSubmitted:   c.n.submitted.Load(),
		LogsAccepted:    c.n.accepted.Load(),
		LogsRejected:    c.n.rejected.Load(),
		LogsDropped:     c.n.dropped.Load(),
		LogsTruncated:   c.n.truncated.Load(),
		Payloads:        c.n.payloads.Load(),
		Requests:        sent.Requests,
		Retries:         sent.Retries,
		Splits:          c.n.splits.Load(),
		BytesAccepted:   c.n.bytes.Load(),
		BytesCompressed: c.n.compressed.Load(),
		PendingPayloads: len(c.queue),
		InFlight:        int(sent.InFlight),
	}
}

// Close stops taking new records, flushes every pending payload, waits for
// the requests in flight and stops the client's goroutines. If ctx ends
// first, Close cancels what is left (callers still waiting in Deliver get
// ErrClosed), waits for the goroutines to exit, and returns ctx.Err().
// Calling Close again waits for the same shutdown.
func (c *Client) Close(ctx context.Context) error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.wg.Add(1)
		go func() { // let in-progress Deliver calls finish submitting, then flush
			defer c.wg.Done()
			c.submitters.Wait()
			close(c.inDone)
		}()
		go func() {
			c.wg.Wait()
			c.cancel()
			c.codec.Close()
			c.dest.Close()
			select {
			case <-c.abort:
				c.abandonRest()
			default:
			}
			close(c.stopped)
		}()
	})
	stopped := func() error {
		select {
		case <-c.abort: // another Close gave up
			return c.undelivered(ErrClosed)
		default:
			return nil
		}
	}
	select {
	case <-c.stopped:
		return stopped()
	case <-ctx.Done():
		select {
		case <-c.stopped: // done at the same moment
			return stopped()
		default:
		}
	}
	c.abortOnce.Do(func() {
		close(c.abort)
		c.cancel()
	})
	<-c.stopped
	return c.undelivered(ctx.Err())
}

// abandonRest settles an aborted client's books once its goroutines are
// gone: the logs still held — queued, in a payload being filled or being
// sent — are dropped (their callers got ErrClosed), so that every log
// submitted is counted accepted, rejected or dropped, and nothing is
// reported pending.
func (c *Client) abandonRest() {
	for p := range c.queue { // closed by the batcher
		c.putPayload(p)
	}
	s := c.Stats()
	if left := s.LogsSubmitted - s.LogsAccepted - s.LogsRejected - s.LogsDropped; left > 0 {
		c.n.dropped.Add(left)
		c.abandoned.Store(left)
	}
}

// undelivered describes the outcome of an aborted Close.
func (c *Client) undelivered(cause error) error {
	if n := c.abandoned.Load(); n > 0 {
		return fmt.Errorf("ddlogs: close: %w (%d logs were not delivered)", cause, n)
	}
	return cause
}
