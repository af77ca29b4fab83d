// Package firehose is the Amazon Kinesis Data Firehose HTTP endpoint source.
//
// It answers a delivery request with 200 only after every record it carried
// was accepted by Datadog or dead-lettered (package ack), so that Firehose
// keeps, retries and finally backs up to S3 whatever gwpipe could not deliver.
// See specs §2 for the protocol.
package firehose

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fastjson"
	"golang.org/x/sync/semaphore"

	"github.com/gwpipe/gwpipe/pkg/ack"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// MaxRecords is the protocol's limit of records per request.
const MaxRecords = 10_000

// Config tunes the endpoint.
type Config struct {
	AccessKeys           []string
	AllowUnauthenticated bool
	MaxBodyBytes         int64         // request body as received
	MaxDecompressedBytes int64         // request body after Content-Encoding
	MaxInFlightBytes     int64         // bodies admitted and not yet acknowledged
	AckTimeout           time.Duration // how long a request waits for delivery
	RecordsPerBatch      int           // records per batch published downstream
	DedupTTL             time.Duration // how long a delivered request id is remembered
	DefaultRegion        string
}

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
	budget  *semaphore.Weighted
	closing atomic.Bool
	parsers fastjson.ParserPool
	now     func() time.Time

	requests *telemetry.StageStats
	statuses map[int]*telemetry.Counter
	ackLat   *telemetry.Histogram
	dupes    *telemetry.Counter
	handBack *telemetry.Counter // requests answered 503 because their records were handed back

	mu       sync.Mutex
	inflight map[string]*ack.Tracker
	recent   map[string]time.Time // delivered request ids
	order    []recentID
}

type recentID struct {
	id string
	at time.Time
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
		budget:   semaphore.NewWeighted(cfg.MaxInFlightBytes),
		now:      time.Now,
		requests: metrics.Stage("ingest"),
		statuses: map[int]*telemetry.Counter{},
		ackLat:   metrics.Histogram("firehose.ack_latency"),
		dupes:    metrics.Counter("firehose.duplicate_requests"),
		handBack: metrics.Counter("firehose.requests_handed_back"),
		inflight: map[string]*ack.Tracker{},
		recent:   map[string]time.Time{},
	}
	for _, code := range []int{200, 400, 401, 405, 413, 415, 429, 500, 503} {
		s.statuses[code] = metrics.Counter(fmt.Sprintf("firehose.status.%d", code))
	}
	for _, k := range cfg.AccessKeys {
		s.keys = append(s.keys, []byte(k))
	}
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
		s.await(w, r, reqID, tr, start)
		return
	}

	status, msg, admitted := s.admit(r, reqID, tr)
	if !admitted {
		s.unclaim(reqID, tr)
		s.reply(w, status, reqID, msg)
		return
	}
	s.await(w, r, reqID, tr, start)
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
	s.pruneLocked()
	if _, ok := s.recent[reqID]; ok {
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

func (s *Source) settle(reqID string, tr *ack.Tracker, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[reqID] == tr {
		delete(s.inflight, reqID)
	}
	if err == nil && s.cfg.DedupTTL > 0 {
		now := s.now()
		s.recent[reqID] = now
		s.order = append(s.order, recentID{reqID, now})
	}
}

func (s *Source) pruneLocked() {
	cut := s.now().Add(-s.cfg.DedupTTL)
	i := 0
	for ; i < len(s.order) && s.order[i].at.Before(cut); i++ {
		if s.recent[s.order[i].id] == s.order[i].at {
			delete(s.recent, s.order[i].id)
		}
	}
	if i > 0 {
		s.order = append(s.order[:0], s.order[i:]...)
	}
}

// admit reads, checks and publishes the request. On success the tracker
// owns the request's records; the source's own token is returned.
func (s *Source) admit(r *http.Request, reqID string, tr *ack.Tracker) (int, string, bool) {
	// Reserve the body's weight before reading it, so that a flood of large
	// requests is refused instead of buffered.
	weight := r.ContentLength
	if weight <= 0 {
		weight = 1 << 20
	}
	if !s.budget.TryAcquire(weight) {
		return http.StatusTooManyRequests, "too many records in flight; retry", false
	}
	release := weight
	defer func() {
		if release > 0 {
			s.budget.Release(release)
		}
	}()

	body, status, err := s.readBody(r)
	if err != nil {
		return status, err.Error(), false
	}
	if n := int64(len(body)); n > weight {
		if !s.budget.TryAcquire(n - weight) {
			return http.StatusTooManyRequests, "too many records in flight; retry", false
		}
		release = n
	}

	batches, err := s.parse(body, reqID, r.Header)
	if err != nil {
		return http.StatusBadRequest, err.Error(), false
	}
	held := release
	release = 0 // from here the tracker returns the budget
	tr.OnComplete(func(error) { s.budget.Release(held) })
	tr.OnComplete(func(err error) { s.settle(reqID, tr, err) })
	// The source owns Batches, RecordsIn and HandedBack of ingest (what it
	// took in and gave back); the runtime's output counts RecordsOut.
	total := 0
	for _, b := range batches {
		total += b.Len()
	}
	s.requests.Batches.Inc()
	s.requests.RecordsIn.Add(int64(total))
	tr.OnComplete(func(err error) {
		if errors.Is(err, ack.ErrHandedBack) {
			s.requests.HandedBack.Add(int64(total))
		}
	})

	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.AckTimeout)
	defer cancel()
	for _, b := range batches {
		b.Ack = tr
		if err := s.out.Emit(ctx, b); err != nil {
			// What was published stays in flight; the rest is not sent, so
			// the request must fail and Firehose retries it whole.
			tr.Fail(fmt.Errorf("publish: %w", err))
			s.requests.Errors.Inc()
			return 0, "", true
		}
	}
	tr.Done()
	return 0, "", true
}

func (s *Source) await(w http.ResponseWriter, r *http.Request, reqID string, tr *ack.Tracker, start time.Time) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.AckTimeout)
	defer cancel()
	err := tr.Wait(ctx)
	switch {
	case err == nil:
		s.ackLat.Observe(s.now().Sub(start))
		s.reply(w, http.StatusOK, reqID, "")
	case errors.Is(err, ack.ErrHandedBack):
		s.handBack.Inc()
		s.reply(w, http.StatusServiceUnavailable, reqID, "shutting down before the records were delivered; retry")
	case errors.Is(err, context.DeadlineExceeded):
		s.reply(w, http.StatusServiceUnavailable, reqID, fmt.Sprintf("records not yet delivered after %s; retry", s.cfg.AckTimeout))
	case errors.Is(err, context.Canceled):
		// The client went away; Firehose will retry with the same id.
	default:
		s.reply(w, http.StatusInternalServerError, reqID, "delivery failed: "+err.Error())
	}
}

func (s *Source) readBody(r *http.Request) ([]byte, int, error) {
	limit := s.cfg.MaxBodyBytes
	buf := bytes.NewBuffer(make([]byte, 0, max(min(r.ContentLength, limit)+1, 512)))
	n, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("read body: %w", err)
	}
	if n > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body exceeds the %d-byte limit", limit)
	}
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return buf.Bytes(), 0, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(buf.Bytes()))
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("gzip body: %w", err)
		}
		dlimit := s.cfg.MaxDecompressedBytes
		out := bytes.NewBuffer(make([]byte, 0, min(4*int64(buf.Len()), dlimit)+1))
		n, err := out.ReadFrom(io.LimitReader(zr, dlimit+1))
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("gzip body: %w", err)
		}
		if n > dlimit {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body decompresses beyond the %d-byte limit", dlimit)
		}
		return out.Bytes(), 0, nil
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Encoding %q (Firehose sends gzip or none)", enc)
	}
}

// parse checks the request body and cuts its records into raw batches.
func (s *Source) parse(body []byte, reqID string, h http.Header) ([]*record.Batch, error) {
	p := s.parsers.Get()
	defer s.parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, fmt.Errorf("malformed request body: %w", err)
	}
	if v.Type() != fastjson.TypeObject {
		return nil, errors.New("malformed request body: not a JSON object")
	}
	bodyID := string(v.GetStringBytes("requestId"))
	if bodyID == "" {
		return nil, errors.New("malformed request body: missing requestId")
	}
	if bodyID != reqID {
		return nil, fmt.Errorf("body requestId %q does not match X-Amz-Firehose-Request-Id", bodyID)
	}
	ts := v.GetInt64("timestamp")
	if ts <= 0 {
		ts = s.now().UnixMilli()
	}
	recs := v.Get("records")
	if recs == nil || recs.Type() != fastjson.TypeArray {
		return nil, errors.New("malformed request body: missing records array")
	}
	items, _ := recs.Array()
	if len(items) > MaxRecords {
		return nil, fmt.Errorf("%d records exceed the protocol's %d", len(items), MaxRecords)
	}

	origin := OriginFromHeaders(reqID, h, s.cfg.DefaultRegion)
	arena := &record.Batch{} // one allocation holds every record's data
	size := 0
	for _, it := range items {
		size += len(it.GetStringBytes("data"))
	}
	arena.Arena = make([]byte, 0, size)

	var batches []*record.Batch
	per := s.cfg.RecordsPerBatch
	for i, it := range items {
		d := it.Get("data")
		if it.Type() != fastjson.TypeObject || (d != nil && d.Type() != fastjson.TypeString) {
			return nil, fmt.Errorf("malformed request body: record %d is not {\"data\": \"<base64>\"}", i)
		}
		if i%per == 0 {
			batches = append(batches, &record.Batch{
				ID: fmt.Sprintf("%s/%d", reqID, i/per), Origin: origin,
				Records: make([]record.Record, 0, min(per, len(items)-i)),
			})
		}
		b := batches[len(batches)-1]
		b.Records = append(b.Records, record.Record{
			Origin: origin, Timestamp: ts, Kind: record.KindRaw,
			Message: arena.Keep(it.GetStringBytes("data")),
		})
	}
	return batches, nil
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
