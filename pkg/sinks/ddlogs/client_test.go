package ddlogs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddhttp"
	"github.com/gwpipe/gwpipe/pkg/testkit/syncbuf"
)

const testKey = "0123456789abcdef0123456789abcdef"

// intake is a strict fake Datadog logs intake.
type intake struct {
	t   testing.TB
	srv *httptest.Server

	// respond decides the answer to a valid request; nil means 202.
	respond func(req int, logs []map[string]any) int

	mu       sync.Mutex
	requests int
	payloads [][]map[string]any // accepted payloads
	sizes    []int              // their uncompressed sizes
	ids      map[string]int     // accepted count per "id" attribute
	encs     map[string]int     // Content-Encoding seen
	problems []string
}

func newIntake(t testing.TB, respond func(req int, logs []map[string]any) int) *intake {
	in := &intake{t: t, respond: respond, ids: map[string]int{}, encs: map[string]int{}}
	in.srv = httptest.NewServer(http.HandlerFunc(in.serve))
	t.Cleanup(in.srv.Close)
	return in
}

func (in *intake) problem(format string, args ...any) {
	in.mu.Lock()
	in.problems = append(in.problems, fmt.Sprintf(format, args...))
	in.mu.Unlock()
}

// decoder reads a body of Content-Encoding enc, "gzip" or "zstd".
func decoder(enc string, r io.Reader) (io.ReadCloser, error) {
	if enc == "gzip" {
		return gzip.NewReader(r)
	}
	zr, err := zstd.NewReader(r)
	if err != nil {
		return nil, err
	}
	return zr.IOReadCloser(), nil
}

func (in *intake) serve(w http.ResponseWriter, r *http.Request) {
	in.mu.Lock()
	in.requests++
	n := in.requests
	in.encs[r.Header.Get("Content-Encoding")]++
	in.mu.Unlock()
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/api/v2/logs":
		in.problem("bad request line %s %s", r.Method, r.URL.Path)
	case r.Header.Get("Content-Type") != "application/json":
		in.problem("bad content type %q", r.Header.Get("Content-Type"))
	case r.Header.Get("User-Agent") != "gwpipe":
		in.problem("bad user agent %q", r.Header.Get("User-Agent"))
	}
	if r.Header.Get("DD-API-KEY") != testKey {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	var body io.Reader = r.Body
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "gzip", "zstd":
		zr, err := decoder(enc, r.Body)
		if err != nil {
			in.problem("%s: %v", enc, err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		defer zr.Close()
		body = zr
	case "":
	default:
		in.problem("unknown encoding %q", enc)
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		in.problem("read body: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var logs []map[string]any
	if err := json.Unmarshal(raw, &logs); err != nil || noDuplicateKeys(raw) != nil {
		in.problem("invalid payload: %v %.200s", err, raw)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if len(raw) > MaxBatchBytesLimit || len(logs) > MaxBatchLogsLimit || len(logs) == 0 {
		in.problem("payload over the limits: %d bytes, %d logs", len(raw), len(logs))
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	status := http.StatusAccepted
	if in.respond != nil {
		status = in.respond(n, logs)
	}
	if status >= 200 && status < 300 {
		in.mu.Lock()
		in.payloads = append(in.payloads, logs)
		in.sizes = append(in.sizes, len(raw))
		for _, l := range logs {
			if id, ok := l["id"].(string); ok {
				in.ids[id]++
			}
		}
		in.mu.Unlock()
	}
	if status == -1 { // drop the connection without an answer
		hj, _ := w.(http.Hijacker)
		conn, _, err := hj.Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status >= 400 {
		fmt.Fprintf(w, `{"errors":[{"status":"%d","title":"%s","detail":"rejected by test intake"}]}`, status, http.StatusText(status))
	} else {
		io.WriteString(w, "{}")
	}
}

func (in *intake) url() string { return in.srv.URL + "/api/v2/logs" }

func (in *intake) snapshot() (requests int, payloads [][]map[string]any, ids map[string]int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	ids = make(map[string]int, len(in.ids))
	for k, v := range in.ids {
		ids[k] = v
	}
	return in.requests, append([][]map[string]any(nil), in.payloads...), ids
}

func (in *intake) checkNoProblems() {
	in.mu.Lock()
	defer in.mu.Unlock()
	assert.Empty(in.t, in.problems)
}

// logBuffer collects slog output, to check what is logged and that the API
// key never is.
type logBuffer struct{ syncbuf.Buffer }

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testConfig is a configuration for tests: tiny backoff, long linger (so that
// payloads are sealed by size or Close unless a test says otherwise).
func testConfig(t testing.TB, url string, logs *logBuffer) Config {
	cfg := DefaultConfig()
	cfg.URL, cfg.APIKey = url, testKey
	cfg.Linger = time.Hour
	cfg.Backoff.InitialInterval, cfg.Backoff.MaxInterval = time.Millisecond, 4*time.Millisecond
	cfg.Logger = logs.logger()
	return cfg
}

// promptClient is a client of in with defaults d whose Deliver sends at
// once (1ms linger).
func promptClient(t testing.TB, in *intake, d Defaults) *Client {
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs)
	cfg.Linger = time.Millisecond
	cfg.Defaults = d
	return newClient(t, cfg, &logs)
}

func newClient(t testing.TB, cfg Config, logs *logBuffer, opts ...Option) *Client {
	t.Helper()
	goroutines := runtime.NumGoroutine()
	c, err := New(cfg, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, c.Close(ctx))
		assert.NotContains(t, logs.String(), testKey, "the API key must never be logged")
		checkGoroutines(t, goroutines)
	})
	return c
}

// checkGoroutines waits (bounded) for the goroutine count to come back to
// what it was: the client must leave nothing running after Close.
func checkGoroutines(t testing.TB, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > want && time.Now().Before(deadline) {
		runtime.Gosched()
		time.Sleep(time.Millisecond) // polling for a leak check only, not synchronisation
	}
	if n := runtime.NumGoroutine(); n > want {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutine leak: %d > %d\n%s", n, want, buf[:runtime.Stack(buf, true)])
	}
}

// plug holds the intake on requests carrying a "plug" record, to keep the
// client's senders busy.
type plug struct {
	arrived chan struct{}
	release chan struct{}
}

func newPlug() *plug { return &plug{arrived: make(chan struct{}, 10), release: make(chan struct{})} }

// hold blocks a request that carries the plug record; it reports whether it did.
func (p *plug) hold(logs []map[string]any) bool {
	for _, l := range logs {
		if l["plug"] != nil {
			p.arrived <- struct{}{}
			<-p.release
			return true
		}
	}
	return false
}

// insert delivers a plug record and waits until the intake holds it; the
// returned channel yields Deliver's error once released.
func (p *plug) insert(c *Client) chan error {
	errc := make(chan error, 1)
	go func() {
		b := batch("plug", 1)
		b.Records[0].Attrs = append(b.Records[0].Attrs, record.BoolAttr("plug", true))
		_, err := c.Deliver(context.Background(), b)
		errc <- err
	}()
	<-p.arrived
	return errc
}

// sealEvents returns an option reporting the batcher's sealing decisions
// ("reason:logs") on the channel it returns.
func sealEvents() (Option, chan string) {
	ch := make(chan string, 1000)
	return onSealed(func(reason string, logs int) { ch <- fmt.Sprintf("%s:%d", reason, logs) }), ch
}

// submitEvents returns an option reporting how many records of a Deliver
// call the batcher took in, on the channel it returns.
func submitEvents() (Option, chan int) {
	ch := make(chan int, 100)
	return onSubmitted(func(n int) { ch <- n }), ch
}

// batch builds n records whose "id" attribute is prefix-i.
func batch(prefix string, n int) *record.Batch {
	b := &record.Batch{ID: prefix}
	origin := &record.Origin{LogGroup: "API-Gateway-Execution-Logs_abc/prod", LogStream: "s", Account: "123456789012"}
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		b.Records = append(b.Records, record.Record{
			Origin: origin, Timestamp: 1732850000000 + int64(i), Level: record.LevelInfo,
			Message: []byte(`{"requestId":"` + id + `","httpMethod":"GET","status":"200"}`),
			Tags:    []string{"apiid:abc", "stage:prod"},
			Attrs: []record.Attr{
				str8("id", id),
				str8("http.method", "GET"),
				record.IntAttr("http.status_code", 200),
			},
		})
	}
	return b
}

func assertDeliveredOnce(t *testing.T, in *intake, prefix string, n int) {
	t.Helper()
	_, _, ids := in.snapshot()
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		assert.Equal(t, 1, ids[id], "record %s", id)
	}
}

func TestDeliverRendersAndSends(t *testing.T) {
	in := newIntake(t, nil)
	c := promptClient(t, in, Defaults{Service: "petstore", Tags: "env:test"})

	rejected, err := c.Deliver(context.Background(), batch("a", 3))
	require.NoError(t, err)
	assert.Empty(t, rejected)

	_, payloads, _ := in.snapshot()
	require.Len(t, payloads, 1)
	require.Len(t, payloads[0], 3)
	l := payloads[0][0]
	assert.Equal(t, "apigateway", l["ddsource"])
	assert.Equal(t, "petstore", l["service"])
	assert.Equal(t, "API-Gateway-Execution-Logs_abc/prod", l["hostname"])
	assert.Equal(t, "env:test,apiid:abc,stage:prod", l["ddtags"])
	assert.Equal(t, 1732850000000.0, l["timestamp"])
	assert.Equal(t, "info", l["status"])
	assert.Equal(t, `{"requestId":"a-0","httpMethod":"GET","status":"200"}`, l["message"])
	assert.Equal(t, map[string]any{"method": "GET", "status_code": 200.0}, l["http"])
	assert.Equal(t, map[string]any{"awslogs": map[string]any{
		"logGroup": "API-Gateway-Execution-Logs_abc/prod", "logStream": "s", "owner": "123456789012"}}, l["aws"])
	in.checkNoProblems()

	s := c.Stats()
	assert.Equal(t, uint64(3), s.LogsSubmitted)
	assert.Equal(t, uint64(3), s.LogsAccepted)
	assert.Equal(t, uint64(1), s.Payloads)
	assert.Equal(t, uint64(1), s.Requests)
	assert.Positive(t, s.BytesAccepted)
	assert.Positive(t, s.BytesCompressed)
	assert.Less(t, s.BytesCompressed, s.BytesAccepted)
	assert.NoError(t, c.Healthy())

	// Empty batches are a no-op.
	rejected, err = c.Deliver(context.Background(), &record.Batch{})
	assert.NoError(t, err)
	assert.Empty(t, rejected)
}

func TestDeliverCompression(t *testing.T) {
	for _, tc := range []struct{ compression, header string }{
		{"gzip", "gzip"}, {"zstd", "zstd"}, {"none", ""},
	} {
		t.Run(tc.compression, func(t *testing.T) {
			in := newIntake(t, nil)
			var logs logBuffer
			cfg := testConfig(t, in.url(), &logs)
			cfg.Compression = tc.compression
			cfg.Linger = 0
			c := newClient(t, cfg, &logs)
			_, err := c.Deliver(context.Background(), batch("c", 50))
			require.NoError(t, err)
			assertDeliveredOnce(t, in, "c", 50)
			in.mu.Lock()
			assert.Equal(t, map[string]int{tc.header: 1}, in.encs)
			in.mu.Unlock()
			in.checkNoProblems()
		})
	}
	for _, level := range []int{1, 9} {
		in := newIntake(t, nil)
		var logs logBuffer
		cfg := testConfig(t, in.url(), &logs)
		cfg.CompressionLevel = level
		cfg.Linger = 0
		c := newClient(t, cfg, &logs)
		_, err := c.Deliver(context.Background(), batch("l", 10))
		require.NoError(t, err)
		assertDeliveredOnce(t, in, "l", 10)
	}
}

func TestBatchingMaxLogs(t *testing.T) {
	in := newIntake(t, nil)
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs) // an hour of linger: the last payload goes on Close
	onSubmit, submitted := submitEvents()
	c := newClient(t, cfg, &logs, onSubmit)

	errc := make(chan error, 1)
	go func() {
		_, err := c.Deliver(context.Background(), batch("m", 2500))
		errc <- err
	}()
	for n := 0; n < 2500; n += <-submitted {
	}
	require.NoError(t, c.Close(context.Background()))
	require.NoError(t, <-errc)
	_, payloads, _ := in.snapshot()
	var sizes []int
	for _, p := range payloads {
		sizes = append(sizes, len(p))
	}
	assert.ElementsMatch(t, []int{1000, 1000, 500}, sizes)
	assertDeliveredOnce(t, in, "m", 2500)
	in.checkNoProblems()
}

func TestBatchingMaxBytes(t *testing.T) {
	in := newIntake(t, nil)
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs)
	cfg.Linger = 0
	cfg.MaxBatchBytes = 20_000
	cfg.MaxLogBytes = 2_000
	c := newClient(t, cfg, &logs)

	b := batch("b", 300)
	for i := range b.Records {
		b.Records[i].Message = bytes.Repeat([]byte("x"), 100+i*7) // some over MaxLogBytes
	}
	_, err := c.Deliver(context.Background(), b)
	require.NoError(t, err)
	assertDeliveredOnce(t, in, "b", 300)
	in.mu.Lock()
	for _, size := range in.sizes {
		assert.LessOrEqual(t, size, 20_000)
	}
	assert.Greater(t, len(in.sizes), 10)
	in.mu.Unlock()
	s := c.Stats()
	assert.Positive(t, s.LogsTruncated)
	_, payloads, _ := in.snapshot()
	for _, p := range payloads {
		for _, l := range p {
			if gw, ok := l["gwpipe"].(map[string]any); ok {
				assert.Equal(t, true, gw["truncated"])
			}
		}
	}
}

// Records of concurrent Deliver calls share payloads: while the only sender
// is busy, 10 callers × 10 records with MaxBatchLogs 100 fill exactly one
// payload, sealed because it is full.
func TestBatchingMergesConcurrentDelivers(t *testing.T) {
	pl := newPlug()
	in := newIntake(t, func(_ int, logs []map[string]any) int { pl.hold(logs); return http.StatusAccepted })
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs)
	cfg.MaxBatchLogs = 100
	cfg.Concurrency = 1
	onSeal, seals := sealEvents()
	c := newClient(t, cfg, &logs, onSeal)
	plugged := pl.insert(c)
	assert.Equal(t, "idle:1", <-seals)

	var wg sync.WaitGroup
	for g := range 10 {
		wg.Go(func() {
			_, err := c.Deliver(context.Background(), batch(fmt.Sprintf("g%d", g), 10))
			assert.NoError(t, err)
		})
	}
	assert.Equal(t, "full:100", <-seals)
	close(pl.release)
	wg.Wait()
	require.NoError(t, <-plugged)
	requests, payloads, _ := in.snapshot()
	assert.Equal(t, 2, requests)
	require.Len(t, payloads, 2)
	for g := range 10 {
		assertDeliveredOnce(t, in, fmt.Sprintf("g%d", g), 10)
	}
}

// A partial payload is sealed when Linger expires while the senders are busy.
func TestLingerSealsPartialPayload(t *testing.T) {
	pl := newPlug()
	in := newIntake(t, func(_ int, logs []map[string]any) int { pl.hold(logs); return http.StatusAccepted })
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs)
	cfg.Linger = 20 * time.Millisecond
	cfg.Concurrency = 1
	onSeal, seals := sealEvents()
	c := newClient(t, cfg, &logs, onSeal)
	plugged := pl.insert(c)
	assert.Equal(t, "idle:1", <-seals)

	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := c.Deliver(context.Background(), batch("l", 3))
		errc <- err
	}()
	assert.Equal(t, "linger:3", <-seals)
	assert.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)
	close(pl.release)
	require.NoError(t, <-errc)
	require.NoError(t, <-plugged)
	assertDeliveredOnce(t, in, "l", 3)
}

// A partial payload goes at once when waiting would only delay it: a sender
// is idle and no Deliver call is handing records over.
func TestIdleSenderSealsAtOnce(t *testing.T) {
	in := newIntake(t, nil)
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs) // an hour of linger
	onSeal, seals := sealEvents()
	c := newClient(t, cfg, &logs, onSeal)
	_, err := c.Deliver(context.Background(), batch("i", 3))
	require.NoError(t, err)
	assert.Equal(t, "idle:3", <-seals)
	assertDeliveredOnce(t, in, "i", 3)
}

func TestRetriesThenSuccess(t *testing.T) {
	failures := []int{500, 503, 429, 408, 502, 404, -1, -1}
	in := newIntake(t, func(req int, _ []map[string]any) int {
		if req <= len(failures) {
			return failures[req-1]
		}
		return http.StatusAccepted
	})
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs)
	cfg.Linger = 0
	var mu sync.Mutex
	var results []Result
	cfg.OnResult = func(r Result) {
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	}
	c := newClient(t, cfg, &logs)

	rejected, err := c.Deliver(context.Background(), batch("r", 20))
	require.NoError(t, err)
	assert.Empty(t, rejected)
	assertDeliveredOnce(t, in, "r", 20)
	requests, _, _ := in.snapshot()
	assert.Equal(t, len(failures)+1, requests)

	s := c.Stats()
	assert.Equal(t, uint64(len(failures)), s.Retries)
	assert.Equal(t, uint64(20), s.LogsAccepted)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, results, len(failures)+1)
	for i, r := range results[:len(failures)] {
		assert.Equal(t, ddhttp.Retrying, r.Outcome, "attempt %d", i+1)
		assert.Equal(t, i+1, r.Attempt)
		assert.Equal(t, 20, r.Items)
		if failures[i] > 0 {
			assert.Equal(t, failures[i], r.Status)
		} else {
			assert.Zero(t, r.Status)
			assert.Error(t, r.Err)
		}
	}
	last := results[len(results)-1]
	assert.Equal(t, ddhttp.Accepted, last.Outcome)
	assert.Equal(t, http.StatusAccepted, last.Status)
	assert.Equal(t, len(failures)+1, last.Attempt)
	assert.Positive(t, last.Bytes)
	assert.Positive(t, last.CompressedBytes)
	assert.Contains(t, logs.String(), "retrying")
}

// refuseMarked answers status to a payload holding a log with the attribute
// key, and accepts the others: an intake that refuses one log.
func refuseMarked(key string, status int, logs []map[string]any) int {
	for _, l := range logs {
		if l[key] != nil {
			return status
		}
	}
	return http.StatusAccepted
}

// deliverMarked delivers, without linger, a batch of n records named
// prefix-i whose record i has the attribute key, and requires exactly one
// record to be refused.
func deliverMarked(t *testing.T, in *intake, prefix string, n, i int, key string) (*Client, *record.Batch, []record.Record) {
	t.Helper()
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs)
	cfg.Linger = 0
	c := newClient(t, cfg, &logs)
	b := batch(prefix, n)
	b.Records[i].Attrs = append(b.Records[i].Attrs, record.BoolAttr(key, true))
	rejected, err := c.Deliver(context.Background(), b)
	require.NoError(t, err)
	require.Len(t, rejected, 1)
	return c, b, rejected
}

func TestBadRequestIsolatesTheBadLog(t *testing.T) {
	in := newIntake(t, func(_ int, logs []map[string]any) int {
		return refuseMarked("bad", http.StatusBadRequest, logs)
	})
	c, b, rejected := deliverMarked(t, in, "x", 100, 37, "bad")
	assert.Equal(t, []byte(`{"requestId":"x-37","httpMethod":"GET","status":"200"}`), rejected[0].Message)
	assert.Equal(t, "intake 400: rejected by test intake", rejected[0].Reason)
	assert.Empty(t, b.Records[37].Reason, "the caller's batch is not modified")

	_, _, ids := in.snapshot()
	for i := range 100 {
		want := 1
		if i == 37 {
			want = 0
		}
		assert.Equal(t, want, ids[fmt.Sprintf("x-%d", i)], "record %d", i)
	}
	s := c.Stats()
	assert.Equal(t, uint64(1), s.LogsRejected)
	assert.Equal(t, uint64(99), s.LogsAccepted)
	assert.Positive(t, s.Splits)
	assert.NoError(t, c.Healthy())
}

func TestPayloadTooLargeSplits(t *testing.T) {
	in := newIntake(t, func(_ int, logs []map[string]any) int {
		if len(logs) > 10 {
			return http.StatusRequestEntityTooLarge
		}
		return refuseMarked("huge", http.StatusRequestEntityTooLarge, logs)
	})
	_, _, rejected := deliverMarked(t, in, "p", 64, 5, "huge")
	assert.Equal(t, "intake 413: rejected by test intake", rejected[0].Reason)
	_, payloads, ids := in.snapshot()
	for _, p := range payloads {
		assert.LessOrEqual(t, len(p), 10)
	}
	assert.Len(t, ids, 63)
	for id, n := range ids {
		assert.Equal(t, 1, n, id)
	}
}

func TestUnauthorizedThenRecovery(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			var mu sync.Mutex
			refuse := true
			in := newIntake(t, func(int, []map[string]any) int {
				mu.Lock()
				defer mu.Unlock()
				if refuse {
					return status
				}
				return http.StatusAccepted
			})
			var logs logBuffer
			cfg := testConfig(t, in.url(), &logs)
			cfg.Linger = 0
			refusals := make(chan Result, 100)
			cfg.OnResult = func(r Result) {
				if r.Outcome == ddhttp.Unauthorized {
					select {
					case refusals <- r:
					default:
					}
				}
			}
			c := newClient(t, cfg, &logs)
			require.NoError(t, c.Healthy())

			done := make(chan error, 1)
			go func() {
				rejected, err := c.Deliver(context.Background(), batch("u", 10))
				assert.Empty(t, rejected)
				done <- err
			}()
			for range 3 { // several refused attempts: nothing dropped, one ERROR log
				r := <-refusals
				assert.Equal(t, status, r.Status)
			}
			err := c.Healthy()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "refused the API key")
			assert.Contains(t, err.Error(), fmt.Sprint(status))
			assert.NotContains(t, err.Error(), testKey)
			assert.Equal(t, 1, strings.Count(logs.String(), `"level":"ERROR"`), logs.String())

			mu.Lock()
			refuse = false
			mu.Unlock()
			require.NoError(t, <-done)
			assert.NoError(t, c.Healthy())
			assertDeliveredOnce(t, in, "u", 10)
			assert.Contains(t, logs.String(), "accepts the API key again")
			assert.Zero(t, c.Stats().LogsDropped)
		})
	}
}

func TestWrongAPIKeyIsNeverLogged(t *testing.T) {
	in := newIntake(t, nil) // answers 403 to any other key
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs)
	cfg.APIKey = "wrong-key-do-not-log-me"
	cfg.Linger = 0
	refused := make(chan struct{})
	var once sync.Once
	cfg.OnResult = func(r Result) {
		if r.Outcome == ddhttp.Unauthorized {
			once.Do(func() { close(refused) })
		}
	}
	c, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-refused; cancel() }()
	_, err = c.Deliver(ctx, batch("k", 1))
	assert.ErrorIs(t, err, context.Canceled)
	require.Error(t, c.Healthy())
	assert.NotContains(t, c.Healthy().Error(), cfg.APIKey)
	require.NoError(t, c.Close(context.Background()))
	assert.NotContains(t, logs.String(), cfg.APIKey)
	assert.Contains(t, logs.String(), "403")
}

// A caller whose context ends gets ctx.Err() at once; its records, which no
// one waits for any more, are dropped before the next attempt.
func TestDeliverContextCancelled(t *testing.T) {
	in := newIntake(t, func(int, []map[string]any) int { return http.StatusServiceUnavailable })
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs)
	cfg.Linger = 0
	failed := make(chan struct{}, 100)
	cfg.OnResult = func(r Result) {
		select {
		case failed <- struct{}{}:
		default:
		}
	}
	c := newClient(t, cfg, &logs)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Deliver(ctx, batch("c", 5))
		errc <- err
	}()
	<-failed // the intake has refused the payload at least once
	cancel()
	assert.ErrorIs(t, <-errc, context.Canceled)

	// Closing must not wait for the abandoned payload: it is dropped.
	require.NoError(t, c.Close(context.Background()))
	s := c.Stats()
	assert.Equal(t, uint64(5), s.LogsDropped)
	assert.Zero(t, s.LogsAccepted)

	// An already cancelled context is refused up front.
	_, err := c.Deliver(ctx, batch("d", 1))
	assert.ErrorIs(t, err, context.Canceled)
}

// While one caller still waits, its payload is sent whole, including the
// records of callers who gave up (at-least-once).
func TestAbandonedRecordsRideWithLiveOnes(t *testing.T) {
	pl := newPlug()
	var mu sync.Mutex
	failing := true
	in := newIntake(t, func(_ int, logs []map[string]any) int {
		if pl.hold(logs) {
			return http.StatusAccepted
		}
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return http.StatusInternalServerError
		}
		return http.StatusAccepted
	})
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs)
	cfg.MaxBatchLogs = 10
	cfg.Concurrency = 1
	failed := make(chan struct{}, 100)
	cfg.OnResult = func(r Result) {
		if r.Outcome == ddhttp.Retrying {
			select {
			case failed <- struct{}{}:
			default:
			}
		}
	}
	onSeal, seals := sealEvents()
	c := newClient(t, cfg, &logs, onSeal)
	plugged := pl.insert(c)
	assert.Equal(t, "idle:1", <-seals)

	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := c.Deliver(ctx, batch("gone", 5))
		gaveUp <- err
	}()
	live := make(chan error, 1)
	go func() {
		_, err := c.Deliver(context.Background(), batch("live", 5))
		live <- err
	}()
	assert.Equal(t, "full:10", <-seals) // both callers' records in one payload
	close(pl.release)
	require.NoError(t, <-plugged)
	<-failed
	cancel()
	assert.ErrorIs(t, <-gaveUp, context.Canceled)
	mu.Lock()
	failing = false
	mu.Unlock()
	require.NoError(t, <-live)
	assertDeliveredOnce(t, in, "live", 5)
	assertDeliveredOnce(t, in, "gone", 5)
}

func TestCloseFlushesPending(t *testing.T) {
	pl := newPlug()
	in := newIntake(t, func(_ int, logs []map[string]any) int { pl.hold(logs); return http.StatusAccepted })
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs) // an hour of linger: only Close seals
	cfg.Concurrency = 1
	onSeal, seals := sealEvents()
	onSubmit, submitted := submitEvents()
	c, err := New(cfg, onSeal, onSubmit)
	require.NoError(t, err)
	plugged := pl.insert(c)
	assert.Equal(t, "idle:1", <-seals)
	<-submitted

	errc := make(chan error, 3)
	for g := range 3 {
		go func() {
			_, err := c.Deliver(context.Background(), batch(fmt.Sprintf("f%d", g), 7))
			errc <- err
		}()
	}
	for range 3 {
		<-submitted
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close(context.Background()) }()
	assert.Equal(t, "close:21", <-seals)
	close(pl.release)
	require.NoError(t, <-closed)
	require.NoError(t, <-plugged)
	for range 3 {
		require.NoError(t, <-errc)
	}
	requests, _, _ := in.snapshot()
	assert.Equal(t, 2, requests)
	for g := range 3 {
		assertDeliveredOnce(t, in, fmt.Sprintf("f%d", g), 7)
	}

	_, err = c.Deliver(context.Background(), batch("late", 1))
	assert.ErrorIs(t, err, ErrClosed)
	assert.NoError(t, c.Close(context.Background()), "Close is idempotent")
	assert.NotContains(t, logs.String(), testKey)
}

// Close gives up when its context ends: waiting callers get ErrClosed and
// every goroutine stops.
func TestCloseTimeoutAbortsRetries(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	in := newIntake(t, func(int, []map[string]any) int { return http.StatusInternalServerError })
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs)
	cfg.Linger = 0
	failed := make(chan struct{}, 100)
	cfg.OnResult = func(Result) {
		select {
		case failed <- struct{}{}:
		default:
		}
	}
	c, err := New(cfg)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Deliver(context.Background(), batch("t", 3))
		errc <- err
	}()
	<-failed
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = c.Close(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, <-errc, ErrClosed)
	in.srv.Close()
	checkGoroutines(t, goroutines)
	st := c.Stats()
	assert.Equal(t, st.Requests-1, st.Retries, "retries count the attempts sent again, not the one given up in its backoff")
	assert.Contains(t, err.Error(), "3 logs were not delivered")
	assert.Equal(t, st.LogsSubmitted, st.LogsAccepted+st.LogsRejected+st.LogsDropped, "every log is accounted for once Close gave up")
	assert.EqualValues(t, 3, st.LogsDropped)
	assert.Zero(t, st.PendingPayloads)
}

// An aborted Close settles the books whatever held the logs: the payload
// being sent, one queued and one held by the batcher.
func TestAbortedCloseAccountsForEveryLog(t *testing.T) {
	release := make(chan struct{})
	in := newIntake(t, func(int, []map[string]any) int {
		<-release
		return http.StatusAccepted
	})
	defer close(release)
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs)
	cfg.Linger = 0
	cfg.Concurrency = 1
	cfg.MaxPending = 2
	goroutines := runtime.NumGoroutine()
	onSubmit, submitted := submitEvents()
	c, err := New(cfg, onSubmit)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := c.Deliver(ctx, batch(fmt.Sprint("q", i), 2))
			errc <- err
		}()
		<-submitted
	}
	require.Positive(t, c.Stats().PendingPayloads)
	cancel()
	for range 3 {
		require.Error(t, <-errc)
	}
	done, stop := context.WithCancel(context.Background())
	stop()
	err = c.Close(done)
	require.ErrorIs(t, err, context.Canceled)
	checkGoroutines(t, goroutines+1) // the intake's handler, held until the test ends
	st := c.Stats()
	assert.EqualValues(t, 6, st.LogsSubmitted)
	assert.Equal(t, st.LogsSubmitted, st.LogsAccepted+st.LogsRejected+st.LogsDropped, "every log is accounted for")
	assert.Zero(t, st.PendingPayloads, "nothing waits for a sender any more")
}

// With the senders stuck, at most MaxPending payloads wait and Deliver
// blocks instead of buffering more.
func TestBackPressure(t *testing.T) {
	release := make(chan struct{})
	in := newIntake(t, func(int, []map[string]any) int {
		<-release
		return http.StatusAccepted
	})
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs)
	cfg.Linger = 0
	cfg.Concurrency = 1
	cfg.MaxPending = 2
	onSubmit, submitted := submitEvents()
	c := newClient(t, cfg, &logs, onSubmit)

	// One in flight, one queued, one held by the batcher: the fourth blocks.
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			_, err := c.Deliver(context.Background(), batch(fmt.Sprintf("bp%d", g), 1))
			assert.NoError(t, err)
		})
		<-submitted
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Deliver(ctx, batch("blocked", 1))
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.LessOrEqual(t, c.Stats().PendingPayloads, cfg.MaxPending)
	assert.Equal(t, uint64(3), c.Stats().LogsSubmitted, "the blocked call's record was never taken in")

	close(release)
	wg.Wait()
	for g := range 3 {
		assertDeliveredOnce(t, in, fmt.Sprintf("bp%d", g), 1)
	}
	_, _, ids := in.snapshot()
	assert.Zero(t, ids["blocked-0"])
}

func TestRequestTimeoutIsRetried(t *testing.T) {
	block := make(chan struct{})
	var once sync.Once
	in := newIntake(t, func(req int, _ []map[string]any) int {
		if req == 1 {
			<-block // the client gives up on this one
		}
		return http.StatusAccepted
	})
	defer once.Do(func() { close(block) })
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs)
	cfg.Linger = 0
	cfg.RequestTimeout = 50 * time.Millisecond
	var results []Result
	var mu sync.Mutex
	cfg.OnResult = func(r Result) {
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
		if r.Outcome == ddhttp.Retrying {
			once.Do(func() { close(block) })
		}
	}
	c := newClient(t, cfg, &logs)
	_, err := c.Deliver(context.Background(), batch("to", 2))
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, results, 2)
	assert.ErrorIs(t, results[0].Err, context.DeadlineExceeded)
}

func TestConcurrentDeliversStress(t *testing.T) {
	var mu sync.Mutex
	n := 0
	in := newIntake(t, func(int, []map[string]any) int {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n%3 == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusAccepted
	})
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs)
	cfg.Linger = time.Millisecond
	cfg.MaxBatchLogs = 50
	cfg.Compression = "zstd"
	c := newClient(t, cfg, &logs)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for k := range 5 {
				_, err := c.Deliver(context.Background(), batch(fmt.Sprintf("s%d-%d", g, k), 1+g*k))
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	for g := range 16 {
		for k := range 5 {
			assertDeliveredOnce(t, in, fmt.Sprintf("s%d-%d", g, k), 1+g*k)
		}
	}
	in.checkNoProblems()
}

func TestLogsURL(t *testing.T) {
	assert.Equal(t, "https://http-intake.logs.datadoghq.com/api/v2/logs", LogsURL(""))
	assert.Equal(t, "https://http-intake.logs.datadoghq.eu/api/v2/logs", LogsURL("datadoghq.eu"))
	assert.Equal(t, "https://http-intake.logs.us5.datadoghq.com/api/v2/logs", LogsURL("us5.datadoghq.com"))
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.APIKey = "k"
	require.NoError(t, ok.Validate(), "the defaults are valid")
	none := ok
	none.Compression = "none" // the level (default 1) is ignored
	require.NoError(t, none.Validate())

	cases := []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.APIKey = "" }, "api_key: is required"},
		{func(c *Config) { c.APIKey = "a b" }, "api_key: contains whitespace"},
		{func(c *Config) { c.URL = "ftp://x" }, `url: must be a https or http URL with a host, got "ftp://x"`},
		{func(c *Config) { c.URL = "https://" }, "with a host"},
		{func(c *Config) { c.MaxBatchLogs = 1001 }, "max_batch_logs: must be 1 to 1000 (the intake's limit), got 1001"},
		{func(c *Config) { c.MaxBatchLogs = 0 }, "max_batch_logs: must be 1 to 1000 (the intake's limit), got 0"},
		{func(c *Config) { c.MaxBatchBytes = 5_000_001 }, "max_batch_bytes: must be 1024..5000000"},
		{func(c *Config) { c.MaxLogBytes = 100 }, "max_log_bytes: must be 1024..1000000, got 100"},
		{func(c *Config) { c.MaxLogBytes = 1_000_001 }, "max_log_bytes: must be 1024..1000000"},
		{func(c *Config) { c.MaxBatchBytes = 10_000 }, "max_log_bytes: must leave room in max_batch_bytes"},
		{func(c *Config) { c.Compression = "brotli" }, `compression: must be gzip, zstd or none, got "brotli"`},
		{func(c *Config) { c.CompressionLevel = 10 }, "compression_level: must be 1 to 9 with gzip, got 10"},
		{func(c *Config) { c.CompressionLevel = 0 }, "compression_level: must be 1 to 9 with gzip, got 0"},
		{func(c *Config) { c.Compression, c.CompressionLevel = "zstd", 23 }, "compression_level: must be 1 to 22 with zstd"},
		{func(c *Config) { c.Concurrency = 0 }, "concurrency: must be 1..1024, got 0"},
		{func(c *Config) { c.MaxPending = -1 }, "max_pending: must be 0..65536"},
		{func(c *Config) { c.RequestTimeout = 0 }, "request_timeout: must be positive"},
		{func(c *Config) { c.Linger = -1 }, "linger: must not be negative"},
		{func(c *Config) { c.Backoff.Multiplier = 0.5 }, "multiplier: must be at least 1, got 0.5"},
		{func(c *Config) { c.Backoff.InitialInterval = time.Minute; c.Backoff.MaxInterval = time.Second }, "retry_max: must be positive and at least retry_initial (1m0s), got 1s"},
		{func(c *Config) { c.Backoff.Jitter = 2 }, "jitter: must be 0..1, got 2"},
	}
	for _, tc := range cases {
		c := ok
		tc.mutate(&c)
		err := c.Validate()
		require.Error(t, err, tc.want)
		assert.Contains(t, err.Error(), tc.want)
		_, err = New(c)
		assert.Error(t, err)
	}

	// Several problems are reported together.
	bad := ok
	bad.APIKey, bad.MaxBatchLogs, bad.Compression = "", 5000, "lz4"
	err := bad.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "api_key")
	assert.Contains(t, err.Error(), "max_batch_logs")
	assert.Contains(t, err.Error(), "lz4")
}

// Close racing with busy callers: every call ends with nil or ErrClosed,
// every accepted record was delivered once, nothing is left running.
func TestCloseWhileDelivering(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	in := newIntake(t, nil)
	var logs logBuffer
	cfg := testConfig(t, in.url(), &logs)
	cfg.Linger = time.Millisecond
	cfg.MaxBatchLogs = 30
	c, err := New(cfg)
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	delivered := map[string]int{}
	started := make(chan struct{}, 8)
	for g := range 8 {
		wg.Go(func() {
			for k := 0; ; k++ {
				prefix := fmt.Sprintf("w%d-%d", g, k)
				_, err := c.Deliver(context.Background(), batch(prefix, 7))
				if k == 0 {
					started <- struct{}{}
				}
				if err != nil {
					assert.ErrorIs(t, err, ErrClosed)
					return
				}
				mu.Lock()
				delivered[prefix] = 7
				mu.Unlock()
			}
		})
	}
	for range 8 {
		<-started
	}
	require.NoError(t, c.Close(context.Background()))
	wg.Wait()
	for prefix, n := range delivered {
		assertDeliveredOnce(t, in, prefix, n)
	}
	s := c.Stats()
	assert.Equal(t, s.LogsSubmitted, s.LogsAccepted)
	in.srv.Close()
	checkGoroutines(t, goroutines)
}

// TestConfigYAMLKeys: the keys under datadog.logs that the README documents
// land in Config, the sender's among them; nothing else is a key.
func TestConfigYAMLKeys(t *testing.T) {
	doc := `
compression: zstd
compression_level: 3
concurrency: 7
max_batch_logs: 500
max_batch_bytes: 2000000
max_log_bytes: 500000
linger: 10ms
request_timeout: 5s
retry_initial: 100ms
retry_max: 2s
`
	c := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&c))
	want := DefaultConfig()
	want.Compression, want.CompressionLevel, want.Concurrency = "zstd", 3, 7
	want.MaxBatchLogs, want.MaxBatchBytes, want.MaxLogBytes = 500, 2_000_000, 500_000
	want.Linger, want.RequestTimeout = 10*time.Millisecond, 5*time.Second
	want.Backoff.InitialInterval, want.Backoff.MaxInterval = 100*time.Millisecond, 2*time.Second
	assert.Equal(t, want, c)
	for _, key := range []string{"url", "api_key", "max_pending", "multiplier", "jitter", "sleep", "logger", "defaults"} {
		dec := yaml.NewDecoder(strings.NewReader(key + ": 1\n"))
		dec.KnownFields(true)
		assert.Error(t, dec.Decode(new(Config)), "%s is not a key", key)
	}
}
