package firehose

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage/stagetest"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

// fakePipeline records what the source publishes and settles it on demand.
type fakePipeline struct {
	stagetest.Batches
	got    chan *record.Batch
	settle func(b *record.Batch) // nil: leave in flight
	err    error
}

func newFake(settle func(*record.Batch)) *fakePipeline {
	return &fakePipeline{got: make(chan *record.Batch, 1000), settle: settle}
}

func (f *fakePipeline) Emit(_ context.Context, b *record.Batch) error {
	if f.err != nil {
		return f.err
	}
	b.Ack.Add(1)
	f.Add(b)
	f.got <- b
	if f.settle != nil {
		go f.settle(b)
	}
	return nil
}

func deliverAll(b *record.Batch) { b.Ack.Done() }

func testConfig() Config {
	return Config{
		AccessKeys: []string{"key-one", "key-two"}, MaxBodyBytes: 1 << 20, MaxDecompressedBytes: 2 << 20,
		MaxInFlightBytes: 4 << 20, AckTimeout: 5 * time.Second, RecordsPerBatch: 2, DedupTTL: time.Minute,
	}
}

func body(reqID string, records ...string) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, `{"requestId":%q,"timestamp":1578090901599,"records":[`, reqID)
	for i, r := range records {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"data":%q}`, base64.StdEncoding.EncodeToString([]byte(r)))
	}
	sb.WriteString("]}")
	return []byte(sb.String())
}

func request(reqID string, payload []byte, mutate ...func(*http.Request)) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(payload))
	r.Header.Set("X-Amz-Firehose-Protocol-Version", "1.0")
	r.Header.Set("X-Amz-Firehose-Request-Id", reqID)
	r.Header.Set("X-Amz-Firehose-Source-Arn", "arn:aws:firehose:eu-west-1:123456789012:deliverystream/gwpipe-logs")
	r.Header.Set("X-Amz-Firehose-Access-Key", "key-two")
	r.Header.Set("Content-Type", "application/json")
	for _, m := range mutate {
		m(r)
	}
	return r
}

func serve(s *Source, r *http.Request) (*httptest.ResponseRecorder, response) {
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var resp response
	_ = json.Unmarshal(w.Body.Bytes(), &resp)
	return w, resp
}

func TestDeliveredRequestIsAcknowledged(t *testing.T) {
	t.Parallel()
	p := newFake(deliverAll)
	s := New(testConfig(), p, nil, nil, nil)
	w, resp := serve(s, request("req-1", body("req-1", "a", "b", "c")))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.Empty(t, w.Header().Get("Content-Encoding"))
	assert.Equal(t, "req-1", resp.RequestID)
	assert.NotZero(t, resp.Timestamp)
	assert.Empty(t, resp.ErrorMessage)
	assert.Equal(t, 3, p.Records())
	require.Len(t, p.All(), 2, "records are cut into batches of RecordsPerBatch")
	o := p.All()[0].Origin
	assert.Equal(t, "123456789012", o.Account)
	assert.Equal(t, "eu-west-1", o.Region)
	assert.Equal(t, "gwpipe-logs", o.Stream)
	assert.Equal(t, base64.StdEncoding.EncodeToString([]byte("a")), string(p.All()[0].Records[0].Message))
	assert.Equal(t, int64(1578090901599), p.All()[0].Records[0].Timestamp)
}

func TestNotAcknowledgedBeforeDelivery(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newFake(nil)
		cfg := testConfig()
		cfg.AckTimeout = 50 * time.Millisecond
		s := New(cfg, p, nil, nil, nil)
		w, resp := serve(s, request("req-slow", body("req-slow", "a")))
		assert.Equal(t, http.StatusServiceUnavailable, w.Code, "undelivered records must fail retryably")
		assert.Contains(t, resp.ErrorMessage, "not yet delivered")

		// Firehose retries with the same id while the first attempt is still in
		// flight: the records must not be published twice.
		done := make(chan *httptest.ResponseRecorder)
		go func() {
			w, _ := serve(s, request("req-slow", body("req-slow", "a")))
			done <- w
		}()
		b := <-p.got
		b.Ack.Done()
		w = <-done
		assert.Equal(t, http.StatusOK, w.Code)
		assert.Equal(t, 1, p.Records(), "a retried request id still in flight is not processed twice")

		// And once delivered, a late retry is answered without re-sending.
		w, _ = serve(s, request("req-slow", body("req-slow", "a")))
		assert.Equal(t, http.StatusOK, w.Code)
		assert.Equal(t, 1, p.Records())
	})
}

func TestFailedDeliveryIsRetryable(t *testing.T) {
	t.Parallel()
	p := newFake(func(b *record.Batch) { b.Ack.Fail(errors.New("archive unwritable")) })
	s := New(testConfig(), p, nil, nil, nil)
	w, resp := serve(s, request("req-f", body("req-f", "a")))
	assert.Equal(t, http.StatusInternalServerError, w.Code)
	assert.Contains(t, resp.ErrorMessage, "archive unwritable")
	// A failed id is not remembered as delivered: the retry is processed.
	p.settle = deliverAll
	w, _ = serve(s, request("req-f", body("req-f", "a")))
	assert.Equal(t, http.StatusOK, w.Code)
}

func TestGzipBody(t *testing.T) {
	t.Parallel()
	p := newFake(deliverAll)
	s := New(testConfig(), p, nil, nil, nil)
	w, _ := serve(s, request("req-gz", corpus.Gzip(body("req-gz", "x", "y")), func(r *http.Request) { r.Header.Set("Content-Encoding", "gzip") }))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, 2, p.Records())
}

func TestEmptyRecordsArePermitted(t *testing.T) {
	t.Parallel()
	p := newFake(deliverAll)
	s := New(testConfig(), p, nil, nil, nil)
	w, _ := serve(s, request("req-e", []byte(`{"requestId":"req-e","timestamp":1,"records":[{"data":""},{}]}`)))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, 2, p.Records())
}

func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	bomb := corpus.Gzip(bytes.Repeat([]byte{' '}, 3<<20)) // decompresses past the 2 MiB limit
	setHeader := func(k, v string) func(*http.Request) { return func(r *http.Request) { r.Header.Set(k, v) } }
	cases := []struct {
		name    string
		req     *http.Request
		status  int
		message string
	}{
		{"wrong key", request("r", body("r", "a"), setHeader("X-Amz-Firehose-Access-Key", "nope")), 401, "Access-Key"},
		{"missing key", request("r", body("r", "a"), func(r *http.Request) { r.Header.Del("X-Amz-Firehose-Access-Key") }), 401, "Access-Key"},
		{"protocol version", request("r", body("r", "a"), setHeader("X-Amz-Firehose-Protocol-Version", "2.0")), 400, "Protocol-Version"},
		{"missing request id", request("", body("r", "a")), 400, "Request-Id"},
		{"broken json", request("r", []byte(`{"requestId":"r","records":[{"data":`)), 400, "malformed"},
		{"not an object", request("r", []byte(`[1,2]`)), 400, "not a JSON object"},
		{"no records", request("r", []byte(`{"requestId":"r","timestamp":1}`)), 400, "records"},
		{"record not an object", request("r", []byte(`{"requestId":"r","records":[42]}`)), 400, "record 0"},
		{"data not a string", request("r", []byte(`{"requestId":"r","records":[{"data":7}]}`)), 400, "record 0"},
		{"id mismatch", request("r", body("other", "a")), 400, "does not match"},
		{"truncated gzip", request("r", corpus.Gzip(body("r", "a"))[:20], setHeader("Content-Encoding", "gzip")), 400, "gzip"},
		{"not gzip", request("r", body("r", "a"), setHeader("Content-Encoding", "gzip")), 400, "gzip"},
		{"unknown encoding", request("r", body("r", "a"), setHeader("Content-Encoding", "br")), 415, "Content-Encoding"},
		{"too large", request("r", bytes.Repeat([]byte{' '}, 2<<20)), 413, "limit"},
		{"gzip bomb", request("r", bomb, setHeader("Content-Encoding", "gzip")), 413, "decompresses"},
	}
	p := newFake(deliverAll)
	s := New(testConfig(), p, nil, nil, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, resp := serve(s, c.req)
			assert.Equal(t, c.status, w.Code, w.Body.String())
			assert.Contains(t, resp.ErrorMessage, c.message)
		})
	}
	assert.Zero(t, p.Records(), "nothing from a rejected request is published")
	// And the endpoint keeps serving.
	w, _ := serve(s, request("ok", body("ok", "a")))
	assert.Equal(t, http.StatusOK, w.Code)
}

func TestMethodAndHealth(t *testing.T) {
	t.Parallel()
	s := New(testConfig(), newFake(deliverAll), nil, nil, nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodPut, "/", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, w.Code)
	assert.Contains(t, w.Header().Get("Allow"), "POST")

	w = httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, http.StatusOK, w.Code)

	s.Shutdown()
	w = httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	w2, _ := serve(s, request("late", body("late", "a")))
	assert.Equal(t, http.StatusServiceUnavailable, w2.Code)
}

func TestNotReadyRefusesWithRetryableStatus(t *testing.T) {
	t.Parallel()
	s := New(testConfig(), newFake(deliverAll), func() error { return errors.New("Datadog refused the API key (403)") }, nil, nil)
	w, resp := serve(s, request("r", body("r", "a")))
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Contains(t, resp.ErrorMessage, "403")
}

func TestOverloadAnswers429(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newFake(nil) // never delivers: the budget stays taken
		cfg := testConfig()
		// Each request holds ~800 KiB of records, and twice its largest record
		// for a moment while reading it: two fit, not three.
		cfg.MaxInFlightBytes = 5 << 19
		cfg.AckTimeout = 20 * time.Millisecond
		s := New(cfg, p, nil, nil, nil)
		big := body("r1", strings.Repeat("x", 600<<10))
		w, _ := serve(s, request("r1", big)) // admitted, then times out
		require.Equal(t, http.StatusServiceUnavailable, w.Code)
		w, _ = serve(s, request("r2", body("r2", strings.Repeat("x", 600<<10))))
		w3, resp := serve(s, request("r3", body("r3", strings.Repeat("x", 600<<10))))
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
		assert.Equal(t, http.StatusTooManyRequests, w3.Code)
		assert.Contains(t, resp.ErrorMessage, "in flight")
		assert.Equal(t, "1", w3.Header().Get("Retry-After"))

		// Delivery frees the budget.
		for len(p.got) > 0 {
			(<-p.got).Ack.Done()
		}
		p.settle = deliverAll
		w, _ = serve(s, request("r4", body("r4", "a")))
		assert.Equal(t, http.StatusOK, w.Code)
	})
}

func TestUnauthenticatedOnlyWhenAllowed(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.AccessKeys = nil
	s := New(cfg, newFake(deliverAll), nil, nil, nil)
	w, _ := serve(s, request("r", body("r", "a")))
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	cfg.AllowUnauthenticated = true
	s = New(cfg, newFake(deliverAll), nil, nil, nil)
	w, _ = serve(s, request("r", body("r", "a"), func(r *http.Request) { r.Header.Del("X-Amz-Firehose-Access-Key") }))
	assert.Equal(t, http.StatusOK, w.Code)
}

func TestPublishFailureFailsTheRequest(t *testing.T) {
	t.Parallel()
	p := newFake(deliverAll)
	p.err = errors.New("pipeline stopped")
	s := New(testConfig(), p, nil, nil, nil)
	w, resp := serve(s, request("r", body("r", "a")))
	assert.Equal(t, http.StatusInternalServerError, w.Code)
	assert.Contains(t, resp.ErrorMessage, "pipeline stopped")
}

// TestHealthTellsTheReasonOnlyToAuthenticatedCallers: the endpoint is
// public; why the pipeline cannot deliver is not.
func TestHealthTellsTheReasonOnlyToAuthenticatedCallers(t *testing.T) {
	t.Parallel()
	const reason = "the Datadog logs intake refused the API key: HTTP 403"
	s := New(testConfig(), newFake(deliverAll), func() error { return errors.New(reason) }, nil, nil)
	for _, c := range []struct {
		name, key  string
		wantReason bool
	}{
		{"no key", "", false},
		{"wrong key", "key-three", false},
		{"valid key", "key-one", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				r := httptest.NewRequest(method, "/", nil)
				if c.key != "" {
					r.Header.Set("X-Amz-Firehose-Access-Key", c.key)
				}
				w := httptest.NewRecorder()
				s.ServeHTTP(w, r)
				assert.Equal(t, http.StatusServiceUnavailable, w.Code, method)
				if method == http.MethodHead {
					continue
				}
				var got map[string]string
				require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
				assert.Equal(t, "not ready", got["status"])
				if c.wantReason {
					assert.Equal(t, reason, got["reason"])
				} else {
					assert.NotContains(t, w.Body.String(), "API key")
					assert.Equal(t, map[string]string{"status": "not ready"}, got, "a bare status")
				}
			}
		})
	}
}

// TestHandedBackRecordsGetRetryableStatus: when the pipeline hands a
// request's records back at shutdown (after publishing them, or while
// publishing), the waiting request is answered 503, which Firehose retries,
// and the request's records are counted once as handed back. The source
// counts what it took in; what it published is the runtime's to count.
func TestHandedBackRecordsGetRetryableStatus(t *testing.T) {
	t.Parallel()
	handedBack := fmt.Errorf("stage deliver-logs: %w", ack.ErrHandedBack)
	for name, fake := range map[string]func() *fakePipeline{
		"after publishing": func() *fakePipeline { return newFake(func(b *record.Batch) { b.Ack.Fail(handedBack) }) },
		"while publishing": func() *fakePipeline {
			p := newFake(nil)
			p.err = handedBack
			return p
		},
	} {
		t.Run(name, func(t *testing.T) {
			reg := telemetry.NewRegistry()
			p := fake()
			s := New(testConfig(), p, nil, nil, reg)
			w, resp := serve(s, request("r", body("r", "a", "b", "c")))
			assert.Equal(t, http.StatusServiceUnavailable, w.Code)
			assert.Equal(t, "1", w.Header().Get("Retry-After"))
			assert.Contains(t, resp.ErrorMessage, "retry")
			snap := reg.Snapshot()
			assert.Equal(t, int64(3), snap.Value("stage.records_in", "ingest"), "taken in once")
			assert.Equal(t, int64(1), snap.Value("stage.batches", "ingest"))
			assert.Zero(t, snap.Value("stage.records_out", "ingest"), "what is published is counted by the runtime's output, not here")
			assert.Equal(t, int64(3), snap.Value("stage.handed_back", "ingest"))
			assert.Equal(t, int64(1), snap.Value("firehose.requests_handed_back"))
			assert.Equal(t, int64(1), snap.Value("firehose.status", "503"))

			// The retry is processed: a handed-back id is not remembered
			// as delivered.
			p.err, p.settle = nil, deliverAll
			w, _ = serve(s, request("r", body("r", "a", "b", "c")))
			assert.Equal(t, http.StatusOK, w.Code)
			assert.Equal(t, int64(3), reg.Stage("ingest").HandedBack.Load(), "nothing more handed back")
			assert.Equal(t, int64(6), reg.Stage("ingest").RecordsIn.Load())
		})
	}
}

// TestDecodeRecordsForABroker: with DecodeRecords (a broker between ingest
// and decode), records go with their base64 undone, as kind Line; a record
// that is not standard padded base64, or too large once decoded, goes as
// it came, kind Raw, for decode to read or dead-letter with its reason.
func TestDecodeRecordsForABroker(t *testing.T) {
	t.Parallel()
	p := newFake(deliverAll)
	cfg := testConfig()
	cfg.RecordsPerBatch = 10
	cfg.DecodeRecords, cfg.DecodeMaxBytes = true, 7
	s := New(cfg, p, nil, nil, nil)
	big := base64.StdEncoding.EncodeToString([]byte("twelve bytes"))
	b := fmt.Appendf(nil, `{"requestId":"req-d","timestamp":1578090901599,"records":[{"data":%q},{"data":"not base64!"},{"data":"YWI"},{"data":%q},{"data":""}]}`,
		base64.StdEncoding.EncodeToString([]byte("\x1f\x8b gzip")), big)
	w, _ := serve(s, request("req-d", b))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Len(t, p.All(), 1)
	recs := p.All()[0].Records
	require.Len(t, recs, 5)
	type got struct {
		Kind    record.Kind
		Message string
	}
	var all []got
	for _, r := range recs {
		all = append(all, got{r.Kind, string(r.Message)})
	}
	assert.Equal(t, []got{
		{record.KindLine, "\x1f\x8b gzip"},
		{record.KindRaw, "not base64!"},
		{record.KindRaw, "YWI"}, // unpadded: decode reads it
		{record.KindRaw, big},   // over DecodeMaxBytes, by decode's own reckoning
		{record.KindRaw, ""},
	}, all)
}

// TestAMismatchedRequestIDIsQuotedShort: the answer to a body whose
// requestId differs from the header's quotes the start of it, not all of
// it: a body is up to max_body_bytes, and quoting (%q, then JSON) makes
// a string several times as long, held by no budget.
func TestAMismatchedRequestIDIsQuotedShort(t *testing.T) {
	t.Parallel()
	p := newFake(deliverAll)
	s := New(testConfig(), p, nil, nil, nil)
	long := strings.Repeat("x", 512<<10)
	w, resp := serve(s, request("r", body(long, "a")))
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.Contains(t, resp.ErrorMessage, "does not match X-Amz-Firehose-Request-Id")
	assert.Less(t, w.Body.Len(), 1<<10, "the answer quotes the start of the body's requestId")
	assert.Zero(t, p.Records())
}
