// Package firehose is the Amazon Kinesis Data Firehose HTTP endpoint source.
//
// It answers a delivery request with 200 only after every record it carried
// was accepted by Datadog or dead-lettered (package ack), so that Firehose
// keeps, retries and finally backs up to S3 whatever gwpipe could not deliver.
// See docs/wire-formats.md#firehose-http-delivery for the protocol.
package firehose

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/runtime/claim"
	"github.com/gwpipe/gwpipe/pkg/runtime/membudget"
	"github.com/gwpipe/gwpipe/pkg/runtime/recent"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// MaxRecords is the protocol's limit of records per request.
const MaxRecords = 10_000

// Emitter is where the source publishes raw batches (a stage.Output).
type Emitter interface {
	Emit(ctx context.Context, b *record.Batch) error
}

// Source serves the Firehose HTTP endpoint protocol.
type Source struct {
	cfg     Config
	out     Emitter
	ready   func() error
	log     *slog.Logger
	keys    [][]byte
	held    atomic.Int64      // bytes of admitted requests (MaxInFlightBytes)
	memory  *membudget.Budget // the process's memory budget; nil: none
	closing atomic.Bool
	now     func() time.Time

	requests *telemetry.StageStats
	statuses map[int]*telemetry.Counter
	ackLat   *telemetry.Histogram
	dupes    *telemetry.Counter
	handBack *telemetry.Counter // requests handed back: answered 503, or their client gone
	// handBackGone: those of handBack whose client had gone (no answer).
	handBackGone *telemetry.Counter
	timedOut     *telemetry.Counter // requests answered 503: not delivered within ack_timeout
	failed       *telemetry.Counter // requests answered 500: a record neither delivered nor dead-lettered
	// records of a retry not sent again: an earlier attempt of the same
	// request id delivered them before it failed
	notResent *telemetry.Counter
	// records of handed-back requests already delivered when they were
	// handed back: Firehose sends them again, after a restart
	handBackDelivered *telemetry.Counter

	// fleet makes request ids known to every worker of a fleet; nil: this
	// process alone.
	fleet       *claim.Requests
	fleetCounts fleetCounts

	mu       sync.Mutex
	inflight map[string]*ack.Tracker
	// retries counts, per request in flight, its retries waiting for it
	// and whether one of them was answered its hand-back: a request whose
	// own client is gone is counted handed back only when none was.
	retries   map[*ack.Tracker]*waitingRetries
	delivered *recent.Memory[struct{}] // delivered request ids
	// partial holds, by request id, the batches a failed attempt delivered
	// (or dead-lettered) before it failed: Firehose retries the request
	// whole, and the retry sends only the rest.
	partial *recent.Memory[*attempt]
}

// attempt is what became of each batch of one attempt of a request.
type attempt struct {
	records, per int   // the request's records, records per batch: a retry must match
	size         int64 // the records' bytes, as they came
	done         []atomic.Bool
}

// delivered counts the records of the batches done.
func (a *attempt) delivered() int {
	n := 0
	for i := range a.done {
		if a.done[i].Load() {
			n += min(a.per, a.records-i*a.per)
		}
	}
	return n
}

// New returns a source publishing to out. ready reports whether the pipeline
// can deliver (for example, nil unless Datadog refused the API key).
func New(cfg Config, out Emitter, ready func() error, log *slog.Logger, metrics *telemetry.Registry) *Source {
	if ready == nil {
		ready = func() error { return nil }
	}
	if log == nil {
		log = slog.Default()
	}
	if metrics == nil {
		metrics = telemetry.NewRegistry()
	}
	s := &Source{
		cfg: cfg, out: out, ready: ready, log: log,
		now:          time.Now,
		requests:     metrics.Stage("ingest"),
		statuses:     map[int]*telemetry.Counter{},
		ackLat:       metrics.Histogram("firehose.ack_latency", "Time from a Firehose request's arrival to its acknowledgement (200), for the requests admitted."),
		dupes:        metrics.Counter("firehose.duplicate_requests", "Firehose retries of a request in flight or delivered recently, not sent twice."),
		handBack:     metrics.Counter("firehose.requests_handed_back", "Admitted Firehose requests answered 503 at shutdown, or whose client had gone when they were: their records were handed back."),
		handBackGone: metrics.Counter("firehose.requests_handed_back_unanswered", "Admitted Firehose requests handed back at shutdown after their client had gone (given up waiting): no answer was sent; counted in requests_handed_back too."),
		timedOut: metrics.Counter("firehose.requests_timed_out",
			"Firehose requests admitted (or retries waiting for an attempt in flight) answered 503 because their records were not delivered within ack_timeout; Firehose retries them."),
		failed: metrics.Counter("firehose.requests_failed",
			"Firehose requests admitted (or retries waiting for an attempt in flight) answered 500: a record could be neither delivered nor dead-lettered, or not all could be published; Firehose retries them."),
		notResent: metrics.Counter("firehose.records_not_resent",
			"Records of a Firehose retry not sent again: an earlier attempt of the same request id, which failed, had delivered or dead-lettered them."),
		handBackDelivered: metrics.Counter("firehose.handed_back_records_delivered",
			"Records of handed-back Firehose requests that were already delivered or dead-lettered at shutdown: Firehose's retry, after a restart, sends them again."),
		inflight: map[string]*ack.Tracker{},
		retries:  map[*ack.Tracker]*waitingRetries{},
		// Not bounded in number: a request id forgotten early is a
		// duplicate delivery, and ids come at the rate of requests (a
		// Firehose request carries thousands of events).
		delivered: recent.New[struct{}](cfg.DedupTTL, 0),
		partial:   recent.New[*attempt](cfg.DedupTTL, 0),
	}
	for _, code := range []int{200, 400, 401, 405, 408, 413, 415, 429, 500, 503} {
		s.statuses[code] = metrics.Counter("firehose.status", "Firehose requests answered, by HTTP status code.", telemetry.L("code", strconv.Itoa(code)))
	}
	metrics.GaugeFunc("firehose.held_bytes", "Bytes of the Firehose requests admitted and not yet acknowledged (sources.firehose.max_in_flight_bytes).", s.held.Load)
	for _, k := range cfg.AccessKeys {
		s.keys = append(s.keys, []byte(k))
	}
	return s
}

// fleetCounts are the fleet-wide de-duplication's counters.
type fleetCounts struct {
	dupes  *telemetry.Counter // retries answered 200: delivered by another worker (or this one, forgotten locally)
	waits  *telemetry.Counter // retries that waited for another worker's attempt
	errors *telemetry.Counter // claims the store could not answer: handled as if alone
}

// WithFleet makes request ids known to every worker of a fleet (package
// claim): with workers behind a load balancer, a retry that reaches
// another worker than the first attempt is answered from what the fleet
// knows — 200 without sending anything when the request was delivered; a
// wait while another worker is still handling it (taking it over if that
// worker dies, handling it if that attempt fails); and, when the store
// cannot be reached, handled as if this worker were alone (counted in
// firehose.fleet.errors).
func (s *Source) WithFleet(r *claim.Requests, metrics *telemetry.Registry) *Source {
	if metrics == nil {
		metrics = telemetry.NewRegistry()
	}
	s.fleet = r
	s.fleetCounts = fleetCounts{
		dupes:  metrics.Counter("firehose.fleet.duplicate_requests", "Firehose retries answered 200 without sending anything: the fleet knew the request id as delivered (transport.fleet_dedup)."),
		waits:  metrics.Counter("firehose.fleet.waits", "Firehose retries that waited for another worker's attempt of the same request id."),
		errors: metrics.Counter("firehose.fleet.errors", "Firehose requests whose fleet-wide claim the store could not answer: handled as if this worker were alone."),
	}
	return s
}

// WithMemory makes the source count what it holds in the process's memory
// budget and refuse requests (429) while the budget is above its
// high-water mark.
func (s *Source) WithMemory(b *membudget.Budget) *Source {
	s.memory = b
	return s
}

// Shutdown makes the endpoint refuse new requests with 503; requests already
// admitted keep waiting for their acknowledgement.
func (s *Source) Shutdown() { s.closing.Store(true) }

type response struct {
	RequestID    string `json:"requestId"`
	Timestamp    int64  `json:"timestamp"`
	ErrorMessage string `json:"errorMessage,omitempty"`
}

func (s *Source) reply(w http.ResponseWriter, status int, requestID, msg string) {
	body, _ := json.Marshal(response{RequestID: requestID, Timestamp: s.now().UnixMilli(), ErrorMessage: msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
	if c, ok := s.statuses[status]; ok {
		c.Inc()
	}
}

// ServeHTTP implements the endpoint. GET and HEAD are the health check.
func (s *Source) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.boundUnread(w, r)
	switch r.Method {
	case http.MethodPost:
	case http.MethodGet, http.MethodHead:
		s.health(w, r)
		return
	default:
		w.Header().Set("Allow", "POST, GET, HEAD")
		s.reply(w, http.StatusMethodNotAllowed, r.Header.Get("X-Amz-Firehose-Request-Id"), "method not allowed: the Firehose protocol uses POST")
		return
	}
	start := s.now()
	reqID := r.Header.Get("X-Amz-Firehose-Request-Id")
	if s.closing.Load() {
		s.reply(w, http.StatusServiceUnavailable, reqID, "shutting down; retry")
		return
	}
	if v := r.Header.Get("X-Amz-Firehose-Protocol-Version"); v != "1.0" {
		s.reply(w, http.StatusBadRequest, reqID, fmt.Sprintf("unsupported X-Amz-Firehose-Protocol-Version %q (want 1.0)", v))
		return
	}
	if reqID == "" {
		s.reply(w, http.StatusBadRequest, "", "missing X-Amz-Firehose-Request-Id")
		return
	}
	if !s.authorized(r.Header.Get("X-Amz-Firehose-Access-Key")) {
		s.reply(w, http.StatusUnauthorized, reqID, "invalid or missing X-Amz-Firehose-Access-Key")
		return
	}
	if err := s.ready(); err != nil {
		s.reply(w, http.StatusServiceUnavailable, reqID, "cannot deliver now: "+err.Error())
		return
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		s.reply(w, http.StatusRequestEntityTooLarge, reqID, fmt.Sprintf("body of %d bytes exceeds the %d-byte limit", r.ContentLength, s.cfg.MaxBodyBytes))
		return
	}

	// A retry of a request still in flight waits for the first attempt
	// instead of sending its records a second time.
	tr, delivered, first := s.claim(reqID)
	if delivered {
		s.dupes.Inc()
		s.reply(w, http.StatusOK, reqID, "")
		return
	}
	if !first {
		s.dupes.Inc()
		s.await(w, r, reqID, tr, start, nil, true)
		return
	}

	var fc *claim.Claim
	if s.fleet != nil {
		var answered bool
		if fc, answered = s.fleetClaim(w, r, reqID, tr); answered {
			return
		}
	}
	if fc != nil {
		// However the attempt ends — delivered, refused, handed back, the
		// client gone — the fleet learns it: a retry anywhere then answers
		// 200, or handles the request.
		tr.OnComplete(func(err error) {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), fleetSettleTimeout)
				defer cancel()
				_ = fc.Settle(ctx, err == nil)
			}()
		})
	}
	status, msg, admitted := s.admit(w, r, reqID, tr)
	if !admitted {
		s.unclaim(reqID, tr)
		s.reply(w, status, reqID, msg)
		return
	}
	s.await(w, r, reqID, tr, start, fc, false)
}

// boundUnread bounds the time the server may spend reading a body the
// handler answers without reading: to keep the connection, the server
// reads what remains of it (up to 256 KiB) before sending the answer, with
// no deadline of its own. A client that announces a body and stalls —
// anyone, before its access key is checked — would hold the connection
// and its goroutine for ever, its answer never sent. The bound is the
// pace a body is read at (body_read_timeout, then min_body_rate); past it
// the connection is closed after the answer.
func (s *Source) boundUnread(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 || s.cfg.BodyReadTimeout <= 0 {
		return // nothing to read, or no deadline configured
	}
	d := s.cfg.BodyReadTimeout
	if s.cfg.MinBodyRate > 0 && r.ContentLength > 0 {
		d += time.Duration(float64(r.ContentLength) / float64(s.cfg.MinBodyRate) * float64(time.Second))
	}
	// Deadlines are the connection's: real time, whatever s.now says. A
	// writer that cannot set one (a test recorder) has nothing to bound.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
}

// fleetSettleTimeout bounds the write that tells the fleet how a request
// ended.
const fleetSettleTimeout = 5 * time.Second

// fleetClaim claims the request id fleet-wide. It returns the claim when
// this worker is to handle the request (nil: handle it as if alone, the
// store being out of reach), or answered when the request was answered
// from what the fleet knows.
func (s *Source) fleetClaim(w http.ResponseWriter, r *http.Request, reqID string, tr *ack.Tracker) (c *claim.Claim, answered bool) {
	c = s.fleet.Claim(reqID)
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.AckTimeout)
	defer cancel()
	out, err := c.Try(ctx)
	if err == nil && out == claim.Elsewhere {
		// Another worker has it in flight: wait for its outcome, as a
		// retry of a request in flight here waits for the first attempt.
		s.fleetCounts.waits.Inc()
		out, err = c.Wait(ctx)
		if err != nil && ctx.Err() != nil {
			s.unclaim(reqID, tr)
			s.timedOut.Inc()
			s.boundUnread(w, r)
			s.reply(w, http.StatusServiceUnavailable, reqID, fmt.Sprintf("request still in flight on another worker after %s; retry", s.cfg.AckTimeout))
			return nil, true
		}
	}
	switch {
	case err != nil:
		s.fleetCounts.errors.Inc()
		s.log.Debug("fleet-wide request ids unavailable: handling the request as if alone", "request_id", reqID, "error", err)
		return nil, false
	case out == claim.Delivered:
		s.dupes.Inc()
		s.fleetCounts.dupes.Inc()
		s.settle(reqID, tr, nil, nil) // remembered here too; local retries waiting get 200
		tr.Done()
		s.boundUnread(w, r)
		s.reply(w, http.StatusOK, reqID, "")
		return nil, true
	}
	return c, false
}

// health answers GET and HEAD on the public endpoint. Anyone on the
// Internet can call it, so an unauthenticated caller learns the status
// alone; why the pipeline cannot deliver (the intake refused our API key,
// …) is for callers holding a valid access key, and for the admin
// listener's /readyz.
func (s *Source) health(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case s.closing.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status":"shutting down"}`)
	case s.ready() != nil:
		w.WriteHeader(http.StatusServiceUnavailable)
		if !s.authorized(r.Header.Get("X-Amz-Firehose-Access-Key")) {
			_, _ = io.WriteString(w, `{"status":"not ready"}`)
			return
		}
		body, _ := json.Marshal(map[string]string{"status": "not ready", "reason": s.ready().Error()})
		_, _ = w.Write(body)
	default:
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	}
}

// authorized compares the key with every accepted key in constant time, so
// the answer's timing tells nothing about which key nearly matched.
func (s *Source) authorized(key string) bool {
	if len(s.keys) == 0 {
		return s.cfg.AllowUnauthenticated
	}
	ok := 0
	for _, k := range s.keys {
		ok |= subtle.ConstantTimeCompare([]byte(key), k)
	}
	return ok == 1
}

// claim registers reqID as in flight. It returns the tracker to wait on and
// whether this call is the first attempt; delivered is true when the id was
// delivered recently.
func (s *Source) claim(reqID string) (tr *ack.Tracker, delivered, first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.delivered.Prune(now)
	s.partial.Prune(now)
	if _, ok := s.delivered.Get(reqID, now); ok {
		return nil, true, false
	}
	if tr, ok := s.inflight[reqID]; ok {
		return tr, false, false
	}
	tr = ack.New()
	s.inflight[reqID] = tr
	return tr, false, true
}

func (s *Source) unclaim(reqID string, tr *ack.Tracker) {
	s.mu.Lock()
	if s.inflight[reqID] == tr {
		delete(s.inflight, reqID)
	}
	s.mu.Unlock()
	tr.Fail(errors.New("request not admitted"))
}

func (s *Source) settle(reqID string, tr *ack.Tracker, a *attempt, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[reqID] == tr {
		delete(s.inflight, reqID)
	}
	if err != nil && a != nil && s.cfg.DedupTTL > 0 && a.delivered() > 0 {
		// Firehose retries the request whole: its retry sends what this
		// attempt did not deliver, and only that.
		s.partial.Put(reqID, a, s.now())
	}
	if err == nil && s.cfg.DedupTTL > 0 {
		s.delivered.Put(reqID, struct{}{}, s.now())
	}
}

// resume returns what an earlier, failed attempt of reqID delivered, if
// this attempt carries the same records (Firehose retries a request with
// the same records under the same id), or nil. It is taken: the attempt
// starting now carries it on.
func (s *Source) resume(reqID string, records, per int, size int64) *attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.partial.Take(reqID, s.now())
	if !ok {
		return nil
	}
	if a.records != records || a.per != per || a.size != size {
		return nil
	}
	return a
}

// admit reads, checks and publishes the request. On success the tracker
// owns the request's records; the source's own token is returned.
func (s *Source) admit(w http.ResponseWriter, r *http.Request, reqID string, tr *ack.Tracker) (int, string, bool) {
	// What the request holds is reserved as it arrives, not as announced:
	// a client announcing a large body and sending it slowly costs the
	// others nothing.
	var own int64
	charge := func(n int64) error {
		if n < 0 {
			s.unreserve(-n)
		} else if !s.reserve(n, own) {
			return errBusy
		}
		own += n
		return nil
	}
	b, status, err := s.readBody(w, r, charge)
	if err == nil {
		err = checkBody(b, reqID)
		status = http.StatusBadRequest
	}
	if err != nil {
		s.unreserve(own)
		return status, err.Error(), false
	}
	per := s.cfg.RecordsPerBatch
	var size int64
	for _, d := range b.Records {
		size += int64(len(d))
	}
	batches := s.batches(b, reqID, r.Header)
	// A retry of a request whose earlier attempt failed after delivering
	// part of it (its records could not all be published within
	// ack_timeout, a record could be neither delivered nor dead-lettered)
	// sends only the batches that attempt did not deliver: those it did
	// would reach Datadog twice.
	a := s.resume(reqID, len(b.Records), per, size)
	if a == nil {
		a = &attempt{records: len(b.Records), per: per, size: size, done: make([]atomic.Bool, len(batches))}
	}
	held := own // from here the tracker returns the reservation
	tr.OnComplete(func(error) { s.unreserve(held) })
	tr.OnComplete(func(err error) { s.settle(reqID, tr, a, err) })
	// The source owns Batches, RecordsIn and HandedBack of ingest (what it
	// took in and gave back); the runtime's output counts RecordsOut.
	total, skipped := 0, 0
	for i, b := range batches {
		if a.done[i].Load() {
			skipped += b.Len()
		} else {
			total += b.Len()
		}
	}
	s.notResent.Add(int64(skipped))
	s.requests.Batches.Inc()
	s.requests.RecordsIn.Add(int64(total))
	tr.OnComplete(func(err error) {
		if errors.Is(err, ack.ErrHandedBack) {
			s.requests.HandedBack.Add(int64(total))
			s.handBackDelivered.Add(int64(a.delivered()))
		}
	})

	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.AckTimeout)
	defer cancel()
	for i, b := range batches {
		if a.done[i].Load() {
			continue
		}
		// Each batch learns on its own whether it was delivered, for a
		// retry to know what to send again should the request fail.
		part := ack.Child(tr, func(err error) {
			if err == nil {
				a.done[i].Store(true)
			}
		})
		b.Ack = part
		if err := s.out.Emit(ctx, b); err != nil {
			// What was published stays in flight; the rest is not sent, so
			// the request must fail. Firehose retries it whole, and the
			// retry sends what this attempt did not deliver.
			part.Fail(fmt.Errorf("publish: %w", err))
			tr.Fail(fmt.Errorf("publish: %w", err))
			s.requests.Errors.Inc()
			return 0, "", true
		}
		part.Done()
	}
	tr.Done()
	return 0, "", true
}

// errBusy is a reservation refused: too much held (429).
var errBusy = errors.New("too much in flight")

// reserve takes n bytes for a request that already holds own: within the
// source's bound, and within the process's memory budget.
func (s *Source) reserve(n, own int64) bool {
	if s.held.Add(n) > s.cfg.MaxInFlightBytes {
		s.held.Add(-n)
		return false
	}
	if !s.memory.TryAdmit(n, own) {
		s.held.Add(-n)
		return false
	}
	return true
}

func (s *Source) unreserve(n int64) {
	if n > 0 {
		s.held.Add(-n)
		s.memory.Discharge(n)
	}
}

// await waits for the request's records and answers. fc is the first
// attempt's fleet-wide claim: a delivered request is marked done before
// the answer, so that a retry anywhere after it (the answer lost on the
// way) sends nothing. unread says the body was not read (a retry waiting
// for the attempt in flight): the server reads it after the wait.
func (s *Source) await(w http.ResponseWriter, r *http.Request, reqID string, tr *ack.Tracker, start time.Time, fc *claim.Claim, unread bool) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.AckTimeout)
	defer cancel()
	if unread {
		s.retryWaits(tr, +1, false)
	}
	err := tr.Wait(ctx)
	if unread {
		s.retryWaits(tr, -1, errors.Is(err, ack.ErrHandedBack))
	}
	if unread {
		s.boundUnread(w, r) // from now: the bound set on arrival passed during the wait
	}
	if err == nil && fc != nil {
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), fleetSettleTimeout)
		_ = fc.Settle(sctx, true)
		scancel()
	}
	switch {
	case err == nil:
		s.ackLat.Observe(s.now().Sub(start))
		s.reply(w, http.StatusOK, reqID, "")
	case errors.Is(err, ack.ErrHandedBack):
		s.handBack.Inc()
		s.reply(w, http.StatusServiceUnavailable, reqID, "shutting down before the records were delivered; retry")
	case errors.Is(err, context.DeadlineExceeded):
		s.timedOut.Inc()
		s.reply(w, http.StatusServiceUnavailable, reqID, fmt.Sprintf("records not yet delivered after %s; retry", s.cfg.AckTimeout))
	case errors.Is(err, context.Canceled):
		// The client went away; Firehose will retry with the same id.
		// Should the records be handed back at shutdown, the request is
		// handed back all the same: counted then, unless a retry waiting
		// for it was answered so (and counted). Uncounted, the summary
		// said "200 firehose records in 0 requests" of four requests whose
		// client had given up.
		if !unread {
			tr.OnComplete(func(err error) {
				if errors.Is(err, ack.ErrHandedBack) && !s.retryAnswered(tr) {
					s.handBack.Inc()
					s.handBackGone.Inc()
				}
			})
		}
	default:
		s.failed.Inc()
		s.reply(w, http.StatusInternalServerError, reqID, "delivery failed: "+err.Error())
	}
}

// waitingRetries is what the retries of one request in flight did.
type waitingRetries struct {
	waiting  int
	answered bool // a retry was answered the hand-back
}

// retryWaits counts a retry of tr starting (+1) or ending (-1) its wait,
// and whether it ended with the hand-back.
func (s *Source) retryWaits(tr *ack.Tracker, delta int, handedBack bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.retries[tr]
	if st == nil {
		if delta < 0 {
			return // the request completed and forgot them
		}
		st = &waitingRetries{}
		s.retries[tr] = st
	}
	st.waiting += delta
	st.answered = st.answered || handedBack
	if st.waiting == 0 && !st.answered {
		delete(s.retries, tr)
	}
}

// retryAnswered reports, as tr completes, whether a retry waiting for it
// answers (or answered) its hand-back, and forgets tr's retries.
func (s *Source) retryAnswered(tr *ack.Tracker) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.retries[tr]
	delete(s.retries, tr)
	return st != nil && (st.waiting > 0 || st.answered)
}

// readBody reads the body as it arrives, through its Content-Encoding, and
// keeps the records' data, reserving each piece before keeping it. The
// status says why it failed.
func (s *Source) readBody(w http.ResponseWriter, r *http.Request, charge func(int64) error) (*requestBody, int, error) {
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	if enc != "" && enc != "identity" && enc != "gzip" {
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Encoding %q (Firehose sends gzip or none)", enc)
	}
	// Deadlines are the connection's: real time, whatever s.now says.
	paced := newPacedReader(r.Body, http.NewResponseController(w), time.Now(), s.cfg.BodyReadTimeout, s.cfg.MinBodyRate)
	b, status, err := s.parse(paced, enc, charge)
	if err != nil {
		// The body was not read to its end. What remains of it must not
		// be read as the next request, and the server would read it
		// (looking for its end, to keep the connection) after the
		// answer: the connection closes, and the deadline stays, so a
		// client that stalled holds no goroutine once it has passed.
		w.Header().Set("Connection", "close")
		return nil, status, err
	}
	// Read to its end: while the request waits for its acknowledgement
	// the server watches the connection, and a deadline passing then
	// would cancel the request.
	paced.stop()
	return b, 0, nil
}

// parse reads the body through its Content-Encoding and its limits.
func (s *Source) parse(paced *pacedReader, enc string, charge func(int64) error) (*requestBody, int, error) {
	var in io.Reader = limit(paced, s.cfg.MaxBodyBytes, "body exceeds")
	if enc == "gzip" {
		zr, err := gzip.NewReader(in)
		if err != nil {
			return nil, readStatus(err, http.StatusBadRequest), fmt.Errorf("gzip body: %w", err)
		}
		in = limit(zr, s.cfg.MaxDecompressedBytes, "body decompresses beyond")
	}
	b, err := parseBody(in, charge)
	var tl *tooLargeError
	switch {
	case err == nil:
		return b, 0, nil
	case errors.As(err, &tl):
		return nil, http.StatusRequestEntityTooLarge, tl
	case errors.Is(err, errBusy):
		return nil, http.StatusTooManyRequests, errors.New("too many records in flight; retry")
	case errors.Is(err, errMalformed):
		return nil, http.StatusBadRequest, err
	case enc == "gzip" && isGzipError(err):
		return nil, http.StatusBadRequest, fmt.Errorf("gzip body: %w", err)
	default:
		return nil, readStatus(err, http.StatusBadRequest), fmt.Errorf("read body: %w", err)
	}
}

// maxQuotedID is how much of a body's requestId an answer quotes.
const maxQuotedID = 128

// checkBody checks what the protocol requires of a body that parsed.
func checkBody(b *requestBody, reqID string) error {
	switch {
	case len(b.RequestID) == 0:
		return fmt.Errorf("%w: missing requestId", errMalformed)
	case string(b.RequestID) != reqID:
		// The start of it: it may be as long as the body.
		id, more := b.RequestID, ""
		if len(id) > maxQuotedID {
			id, more = id[:maxQuotedID], fmt.Sprintf("… (%d bytes)", len(b.RequestID))
		}
		return fmt.Errorf("body requestId %q%s does not match X-Amz-Firehose-Request-Id", id, more)
	case !b.HasRecords:
		return fmt.Errorf("%w: missing records array", errMalformed)
	}
	return nil
}

// batches cuts the request's records into raw batches; they alias the
// body's memory.
func (s *Source) batches(b *requestBody, reqID string, h http.Header) []*record.Batch {
	ts := b.Timestamp
	if ts <= 0 {
		ts = s.now().UnixMilli()
	}
	origin := OriginFromHeaders(reqID, h, s.cfg.DefaultRegion)
	unit := new(record.Unit) // decode bounds what the request decompresses to
	var batches []*record.Batch
	per := s.cfg.RecordsPerBatch
	for i, data := range b.Records {
		if i%per == 0 {
			batches = append(batches, &record.Batch{
				ID: fmt.Sprintf("%s/%d", reqID, i/per), Origin: origin, Unit: unit,
				Records: make([]record.Record, 0, min(per, len(b.Records)-i)),
			})
		}
		bt := batches[len(batches)-1]
		kind := record.KindRaw
		// The size bound as decode reckons it (from the base64's length,
		// padding counted), so that what it would refuse goes to it raw.
		if s.cfg.DecodeRecords && len(data) > 0 && base64.StdEncoding.DecodedLen(len(data)) <= s.cfg.DecodeMaxBytes+3 {
			if n, ok := decodeBase64InPlace(data); ok {
				data, kind = data[:n:n], record.KindLine
			}
		}
		bt.Records = append(bt.Records, record.Record{Origin: origin, Timestamp: ts, Kind: kind, Message: data})
	}
	return batches
}

// OriginFromHeaders describes a request: its id and the delivery stream's
// ARN, account and region.
func OriginFromHeaders(reqID string, h http.Header, defaultRegion string) *record.Origin {
	o := &record.Origin{Source: "firehose", RequestID: reqID, Region: defaultRegion}
	arn := h.Get("X-Amz-Firehose-Source-Arn")
	o.SourceARN = arn
	// arn:partition:firehose:region:account:deliverystream/name
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 && parts[0] == "arn" && parts[2] == "firehose" {
		if parts[3] != "" {
			o.Region = parts[3]
		}
		o.Account = parts[4]
		o.Stream = strings.TrimPrefix(parts[5], "deliverystream/")
	}
	return o
}
