package fakeintake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Endpoint names an intake endpoint in Stats and in Failure.Endpoints.
type Endpoint string

const (
	EndpointLogs               Endpoint = "logs"
	EndpointSeries             Endpoint = "series"
	EndpointDistributionPoints Endpoint = "distribution_points"
)

// Limits of the real intake: docs/wire-formats.md#datadog-logs-intake and
// docs/wire-formats.md#datadog-metrics.
const (
	// MaxLogsPayloadBytes is the largest decompressed logs payload accepted
	// (inclusive); it also bounds the body on the wire.
	MaxLogsPayloadBytes = 5 * 1024 * 1024
	// MaxLogBytes is the largest log, as JSON, kept whole; larger ones are
	// truncated.
	MaxLogBytes = 1024 * 1024
	// MaxLogEntries is the most logs accepted in one payload.
	MaxLogEntries = 1000

	// MaxSeriesPayloadBytes is the largest series body accepted on the wire
	// (inclusive).
	MaxSeriesPayloadBytes = 512_000
	// MaxSeriesDecompressedBytes: a series payload must decompress to fewer
	// bytes than this.
	MaxSeriesDecompressedBytes = 5_242_880

	// MaxDistributionPayloadBytes and MaxDistributionDecompressedBytes are
	// the v1 series limits, applied to /api/v1/distribution_points too (its
	// own limits are not documented).
	MaxDistributionPayloadBytes      = 3_200_000
	MaxDistributionDecompressedBytes = 62_914_560

	// SeriesMaxAge and SeriesMaxFuture bound series point timestamps
	// relative to the server clock; points outside are dropped.
	SeriesMaxAge    = time.Hour
	SeriesMaxFuture = 10 * time.Minute
)

// statusClientClosed accounts requests abandoned during an injected latency
// (nginx's convention; nothing is written to the client).
const statusClientClosed = 499

// endpoint describes one intake endpoint: its limits, accepted encodings,
// response shapes and payload parser.
type endpoint struct {
	name    Endpoint
	wireMax int64 // largest body accepted on the wire, inclusive
	rawMax  int64 // largest body accepted after decompression, inclusive
	zstd1   bool  // accept "zstd1" as an alias of zstd
	okBody  []byte
	errBody func(status int, detail string) []byte
	// parse validates a decompressed payload and builds what to record. Any
	// error is a 400 whose detail is the error text.
	parse func(body []byte, r *http.Request, now time.Time) (*batch, error)
}

var logsEndpoint = endpoint{
	name:    EndpointLogs,
	wireMax: MaxLogsPayloadBytes,
	rawMax:  MaxLogsPayloadBytes,
	okBody:  []byte(`{}`),
	errBody: logsErrorBody,
	parse:   parseLogs,
}

var seriesEndpoint = endpoint{
	name:    EndpointSeries,
	wireMax: MaxSeriesPayloadBytes,
	rawMax:  MaxSeriesDecompressedBytes - 1,
	zstd1:   true,
	okBody:  []byte(`{"errors":[]}`),
	errBody: apiErrorBody,
	parse:   parseSeries,
}

var distributionEndpoint = endpoint{
	name:    EndpointDistributionPoints,
	wireMax: MaxDistributionPayloadBytes,
	rawMax:  MaxDistributionDecompressedBytes - 1,
	okBody:  []byte(`{"status":"ok"}`),
	errBody: apiErrorBody,
	parse:   parseDistributions,
}

// batch is what one accepted payload adds to the recordings.
type batch struct {
	logs      []logEntry
	truncated int64

	series         []SeriesPoint
	tooOld, tooNew int64

	dists      []DistributionPoint
	distValues int64
}

// result is what one intake request came to. It is built without the lock,
// then accounted (with its batch) in a single critical section.
type result struct {
	status      int
	detail      string
	encoding    string // empty when the payload was not read
	wire, raw   int64
	injected    bool
	retryAfter  string // Retry-After of an injected answer
	delayed     bool
	recordError bool
	batch       *batch
}

func (s *Server) intake(ep *endpoint) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		res := s.process(ep, w, r)
		s.commit(ep.name, &res)
		if res.status == statusClientClosed {
			// Returning normally would send an empty 200, which a client
			// still listening (server shutting down) would take for success.
			// Aborting closes the connection instead.
			panic(http.ErrAbortHandler)
		}
		body := ep.okBody
		if res.status != http.StatusAccepted {
			body = ep.errBody(res.status, res.detail)
			s.log.Debug("intake request rejected", "endpoint", ep.name,
				"status", res.status, "detail", res.detail)
		}
		if res.retryAfter != "" {
			w.Header().Set("Retry-After", res.retryAfter)
		}
		writeJSON(w, res.status, body)
	}
}

// process runs the checks of the real intake in its order: (injected
// outage), API key, encoding, size, decompression, payload shape.
func (s *Server) process(ep *endpoint, w http.ResponseWriter, r *http.Request) result {
	var res result
	body := &requestBody{w: w, r: r, limit: ep.wireMax, buf: getBuffer()}
	defer putBuffer(body.buf)
	if s.inject(ep, body, &res) {
		return res
	}
	enc, status, detail := s.admit(ep, r.Header)
	if status != 0 {
		body.discard()
		res.status, res.detail = status, detail
		return res
	}
	res.encoding = enc.String()

	raw := getBuffer()
	defer putBuffer(raw)
	payload, err := readPayload(body, enc, ep.rawMax, raw, &res)
	if err != nil {
		res.status, res.detail = statusFor(err), err.Error()
		return res
	}
	b, err := ep.parse(payload, r, s.now())
	if err != nil {
		res.status, res.detail = http.StatusBadRequest, err.Error()
		return res
	}
	if err := s.record(ep.name, b); err != nil {
		// The payload was valid, so the client still gets 202: a fake that
		// failed its own bookkeeping must not make the client retry.
		s.log.Error("recording accepted payload failed", "endpoint", ep.name, "err", err)
		res.recordError = true
	}
	res.status, res.batch = http.StatusAccepted, b
	return res
}

// admit checks what can be checked before reading the body: the API key,
// then the Content-Encoding. A zero status admits the request.
func (s *Server) admit(ep *endpoint, h http.Header) (enc encoding, status int, detail string) {
	if status, detail := s.authorize(h.Get("DD-API-KEY")); status != 0 {
		return 0, status, detail
	}
	header := h.Get("Content-Encoding")
	enc, ok := parseEncoding(header, ep.zstd1)
	if !ok {
		return 0, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Encoding %q", header)
	}
	return enc, 0, ""
}

// readPayload reads and decompresses the body within the endpoint's limits,
// noting the byte counts in res. The payload may alias raw or the body's
// buffer.
func readPayload(body *requestBody, enc encoding, rawMax int64, raw *bytes.Buffer, res *result) ([]byte, error) {
	err := body.load()
	res.wire = int64(body.buf.Len())
	if err != nil {
		return nil, err
	}
	payload, err := decompress(enc, body.buf.Bytes(), rawMax, raw)
	if err != nil {
		return nil, err
	}
	res.raw = int64(len(payload))
	return payload, nil
}

// requestBody reads a request body at most once, for whichever step needs
// it first.
type requestBody struct {
	w     http.ResponseWriter
	r     *http.Request
	limit int64
	buf   *bytes.Buffer
	read  bool
	err   error
}

// load reads the body into buf, bounded by limit, and returns the outcome
// of that single read.
func (b *requestBody) load() error {
	if !b.read {
		b.read = true
		b.err = readBody(b.w, b.r, b.limit, b.buf)
	}
	return b.err
}

// discard consumes a body that will not be used.
func (b *requestBody) discard() {
	if !b.read {
		b.read = true
		drain(b.w, b.r, b.limit)
	}
}

// statusFor maps a body read/decode error to its status.
func statusFor(err error) int {
	if errors.Is(err, errTooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// authorize checks the DD-API-KEY header: 401 when missing, 403 when not a
// valid key. A map lookup is not constant-time; this is a test fake.
func (s *Server) authorize(key string) (status int, detail string) {
	if key == "" {
		return http.StatusUnauthorized, "missing API key: set the DD-API-KEY header"
	}
	if len(s.keys) == 0 {
		return 0, ""
	}
	if _, ok := s.keys[key]; !ok {
		return http.StatusForbidden, "API key is not valid"
	}
	return 0, ""
}

// commit accounts a finished request and appends what it accepted, under one
// lock so that a waiter woken by an accepted batch also sees its counters.
func (s *Server) commit(ep Endpoint, res *result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.stats
	st.countResponse(ep, res.status)
	if res.encoding != "" {
		st.Encodings[res.encoding]++
		st.BytesReceived += res.wire
		st.BytesUncompressed += res.raw
	}
	if res.injected {
		st.FailuresInjected++
	}
	if res.delayed {
		st.DelaysInjected++
	}
	if res.recordError {
		st.RecordErrors++
	}
	if b := res.batch; b != nil {
		st.LogsAccepted += int64(len(b.logs))
		st.LogsTruncated += b.truncated
		st.LogsEvicted += s.logs.push(b.logs)
		st.SeriesPointsAccepted += int64(len(b.series))
		st.SeriesPointsRejectedTooOld += b.tooOld
		st.SeriesPointsRejectedTooNew += b.tooNew
		st.SeriesPointsEvicted += s.series.push(b.series)
		st.DistributionPointsAccepted += int64(len(b.dists))
		st.DistributionValuesAccepted += b.distValues
		st.DistributionPointsEvicted += s.dists.push(b.dists)
	}
	s.notifyLocked()
}

// logsErrorBody is the HTTPLogErrors shape of the real logs intake.
func logsErrorBody(status int, detail string) []byte {
	type logError struct {
		Status string `json:"status"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	body := struct {
		Errors []logError `json:"errors"`
	}{[]logError{{Status: strconv.Itoa(status), Title: http.StatusText(status), Detail: detail}}}
	return mustJSON(body)
}

// apiErrorBody is the APIErrorResponse shape of the metrics API.
func apiErrorBody(_ int, detail string) []byte {
	return mustJSON(struct {
		Errors []string `json:"errors"`
	}{[]string{detail}})
}

// mustJSON marshals values made only of strings and slices, which cannot
// fail; a failure is a programming error.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("fakeintake: marshal %T: %v", v, err))
	}
	return b
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	// A write error means the client went away; there is nobody to tell.
	_, _ = w.Write(body)
}
