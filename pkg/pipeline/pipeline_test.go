package pipeline

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq/dlqtest"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
)

const (
	intakeKey   = "test-dd-key"
	firehoseKey = "test-firehose-key"
)

type harness struct {
	p      *Pipeline
	intake *fakeintake.Server
	url    string // Firehose endpoint
	dlqDir string
}

func start(t *testing.T, mutate ...func(*config.Config)) *harness {
	t.Helper()
	intake, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{intakeKey}, Keep: 1_000_000})
	cfg := intakeConfig(base)
	cfg.Sources.Firehose.Listen = "127.0.0.1:0"
	cfg.Sources.Firehose.AccessKeys = []string{firehoseKey}
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.DLQ.Dir = t.TempDir()
	cfg.Enrich.AWSTags = false // no AWS here; the tags tests use moto
	for _, m := range mutate {
		m(&cfg)
	}
	log := testLogger()
	p, err := New(cfg, nil, log)
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, p.Shutdown(ctx))
	})
	return &harness{p: p, intake: intake, url: "http://" + p.FirehoseAddr() + "/", dlqDir: cfg.DLQ.Dir}
}

// intakeConfig is the default configuration delivering to the fake intake
// at base, with retries and linger short enough for tests.
func intakeConfig(base string) config.Config {
	cfg := config.DefaultConfig()
	cfg.Datadog.APIKey = intakeKey
	cfg.Datadog.LogsURL = base + "/api/v2/logs"
	cfg.Datadog.APIURL = base
	cfg.Datadog.Logs.Backoff.InitialInterval = 10 * time.Millisecond
	cfg.Datadog.Logs.Backoff.MaxInterval = 50 * time.Millisecond
	cfg.Datadog.Logs.Linger = 5 * time.Millisecond
	return cfg
}

// testLogger discards the pipeline's log unless the test runs with -v.
func testLogger() *slog.Logger {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return log
}

func loadConfig(h *harness, events int64, seed int64) loadgen.Config {
	return loadgen.Config{
		URL: h.url, AccessKey: firehoseKey, Events: events, Concurrency: 8, Seed: seed,
		RecordsPerRequest: 20, EventsPerRecord: 50,
		InitialBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, RetryDuration: time.Minute,
		RequestTimeout: 30 * time.Second,
	}
}

// logID is the CloudWatch event id a delivered log carries.
func logID(l fakeintake.Log) string {
	id, _ := l.Attrs["id"].(string)
	return id
}

func attr(l fakeintake.Log, path string) any {
	var cur any = l.Attrs
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func TestEndToEndEveryEventExactlyOnceParsed(t *testing.T) {
	h := start(t)
	var (
		mu   sync.Mutex
		sent = map[string]loadgen.Event{}
	)
	rep, err := loadgen.Run(context.Background(), loadConfig(h, 100_000, 1), loadgen.WithEventCallback(func(e *loadgen.Event) {
		mu.Lock()
		sent[e.ID] = *e
		mu.Unlock()
	}))
	require.NoError(t, err)
	require.Equal(t, int64(100_000), rep.EventsAcked, "every event acknowledged: %+v", rep)
	require.Len(t, sent, 100_000)

	// Every acknowledged event is already at the intake: acknowledgement
	// comes after delivery.
	logs := h.intake.Logs()
	seen := make(map[string]int, len(logs))
	for _, l := range logs {
		seen[logID(l)]++
	}
	require.Len(t, logs, 100_000, "no more and no fewer logs than events")
	var checkedAccess, checkedExec int
	for _, l := range logs {
		id := logID(l)
		require.Equal(t, 1, seen[id], "event %s delivered %d times", id, seen[id])
		e, ok := sent[id]
		require.True(t, ok, "log %s was never sent", id)
		assert.Equal(t, e.Message, l.Message, "the original line is kept unchanged")
		assert.Equal(t, "apigateway", l.Source)
		assert.Equal(t, e.LogGroup, l.Hostname)
		// The log's own time wins over the CloudWatch event time: CLF
		// carries it to the second.
		wantTS := e.Timestamp
		switch e.Kind {
		case loadgen.AccessJSON:
			wantTS = e.RequestTimeMs
		case loadgen.AccessCLF:
			wantTS = e.RequestTimeMs / 1000 * 1000
		}
		assert.Equal(t, wantTS, l.Timestamp.UnixMilli(), "event %s: %s", id, e.Message)
		assert.Contains(t, l.Tags, "aws_account:"+e.Account)
		assert.Equal(t, e.LogGroup, attr(l, "aws.awslogs.logGroup"))
		switch e.Kind {
		case loadgen.AccessJSON, loadgen.AccessCLF:
			assert.Equal(t, e.Method, attr(l, "http.method"), "event %s: %s", id, e.Message)
			assert.EqualValues(t, e.Status, attr(l, "http.status_code"), "event %s: %s", id, e.Message)
			assert.Equal(t, e.RequestID, attr(l, "http.request_id"), "event %s", id)
			assert.Equal(t, e.IP, attr(l, "network.client.ip"), "event %s", id)
			want := "info"
			if e.Status >= 500 {
				want = "error"
			} else if e.Status >= 400 {
				want = "warn"
			}
			assert.Equal(t, want, l.Status, "the log level follows the HTTP status: %s", e.Message)
			checkedAccess++
		case loadgen.Execution:
			assert.Equal(t, e.RequestID, attr(l, "http.request_id"), "event %s: %s", id, e.Message)
			checkedExec++
		}
	}
	assert.Greater(t, checkedAccess, 50_000)
	assert.Greater(t, checkedExec, 10_000)

	st := h.p.Status()
	assert.EqualValues(t, 100_000, st.Counters["deliver_logs.logs_accepted"])
	assert.Zero(t, st.Counters["deliver_logs.logs_rejected"])
}

func TestIntakeOutageNothingAcknowledgedEarly(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Sources.Firehose.AckTimeout = 300 * time.Millisecond })
	require.NoError(t, h.intake.SetFailure(fakeintake.Failure{Status: 503}))

	var acked atomic.Int64
	load := loadgen.Start(context.Background(), loadConfig(h, 5_000, 2), loadgen.WithAckCallback(func(*loadgen.Request) { acked.Add(1) }))

	// Let the outage bite: the intake refuses many requests and Firehose
	// requests time out and are retried.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, h.intake.Wait(ctx, func(s fakeintake.Stats) bool { return s.FailuresInjected >= 20 }))
	require.NoError(t, waitFor(ctx, func() bool { return h.p.Status().Counters["firehose.status.503"] >= 3 }))
	assert.Zero(t, acked.Load(), "no request may be acknowledged while the intake refuses everything")
	assert.Zero(t, h.p.Status().Counters["firehose.status.200"])
	assert.Zero(t, h.intake.Stats().LogsAccepted)

	h.intake.ClearFailure()
	rep, err := load.Wait()
	require.NoError(t, err)
	assert.Equal(t, int64(5_000), rep.EventsAcked)

	seen := map[string]int{}
	for _, l := range h.intake.Logs() {
		seen[logID(l)]++
	}
	assert.Len(t, seen, 5_000, "everything is delivered after recovery")
	for id, n := range seen {
		require.Equal(t, 1, n, "event %s delivered %d times", id, n)
	}
	assert.Positive(t, h.p.Status().Counters["firehose.duplicate_requests"], "retries of in-flight requests attached instead of re-sending")
}

// waitFor polls a condition of the pipeline's own counters; the pipeline
// offers no notification for them, and the condition is what is awaited.
func waitFor(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

func gz(p []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write(p)
	_ = zw.Close()
	return b.Bytes()
}

// newFirehoseRequest is a Firehose HTTP endpoint delivery of body, with
// the headers Firehose sends and the test access key.
func newFirehoseRequest(url, reqID string, body []byte) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Amz-Firehose-Protocol-Version", "1.0")
	req.Header.Set("X-Amz-Firehose-Request-Id", reqID)
	req.Header.Set("X-Amz-Firehose-Source-Arn", "arn:aws:firehose:us-east-1:123456789012:deliverystream/test")
	req.Header.Set("X-Amz-Firehose-Access-Key", firehoseKey)
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

// firehoseRequest sends one Firehose request, with headers set ("" to
// remove one), and returns the status and the JSON answer.
func firehoseRequest(t *testing.T, url, reqID string, body []byte, headers map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := newFirehoseRequest(url, reqID, body)
	require.NoError(t, err)
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out), "the answer is always JSON")
	return resp.StatusCode, out
}

func recordsBody(reqID string, datas ...[]byte) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, `{"requestId":%q,"timestamp":%d,"records":[`, reqID, time.Now().UnixMilli())
	for i, d := range datas {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"data":%q}`, base64.StdEncoding.EncodeToString(d))
	}
	sb.WriteString("]}")
	return []byte(sb.String())
}

func envelope(ids ...string) []byte {
	return envelopeOf(`{\"requestId\":\"%s\",\"httpMethod\":\"GET\",\"resourcePath\":\"/pets\",\"status\":200,\"responseLength\":-}`, ids...)
}

// envelopeOf is a CloudWatch envelope of one event per id, its message the
// JSON-escaped format with the id in place of %s.
func envelopeOf(format string, ids ...string) []byte {
	var sb strings.Builder
	sb.WriteString(`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/api-gateway/a1b2c3d4e5/prod","logStream":"s","subscriptionFilters":["f"],"logEvents":[`)
	for i, id := range ids {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"id":%q,"timestamp":%d,"message":"`+format+`"}`, id, time.Now().UnixMilli(), id)
	}
	sb.WriteString("]}")
	return []byte(sb.String())
}

func TestMalformedRequestsGetTheirStatusAndServingContinues(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.Sources.Firehose.MaxBodyBytes = 1 << 20
		c.Sources.Firehose.MaxDecompressedBytes = 2 << 20
		c.Sources.Firehose.MaxInFlightBytes = 8 << 20
	})
	good := recordsBody("good", gz(envelope("1")))
	cases := []struct {
		name    string
		body    []byte
		headers map[string]string
		status  int
	}{
		{"wrong access key", good, map[string]string{"X-Amz-Firehose-Access-Key": "wrong"}, 401},
		{"no access key", good, map[string]string{"X-Amz-Firehose-Access-Key": ""}, 401},
		{"bad protocol version", good, map[string]string{"X-Amz-Firehose-Protocol-Version": "0.9"}, 400},
		{"no request id", good, map[string]string{"X-Amz-Firehose-Request-Id": ""}, 400},
		{"broken JSON", []byte(`{"requestId":"r","records":[`), nil, 400},
		{"truncated gzip body", gz(good)[:30], map[string]string{"Content-Encoding": "gzip"}, 400},
		{"unsupported encoding", good, map[string]string{"Content-Encoding": "compress"}, 415},
		{"body too large", bytes.Repeat([]byte("x"), 2<<20), nil, 413},
		{"gzip bomb", gz(bytes.Repeat([]byte(" "), 4<<20)), map[string]string{"Content-Encoding": "gzip"}, 413},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := "req-" + strings.ReplaceAll(c.name, " ", "-")
			body := bytes.ReplaceAll(c.body, []byte(`"good"`), []byte(`"`+id+`"`))
			if c.headers == nil {
				c.headers = map[string]string{}
			}
			if _, ok := c.headers["X-Amz-Firehose-Request-Id"]; !ok {
				c.headers["X-Amz-Firehose-Request-Id"] = id
			}
			status, resp := firehoseRequest(t, h.url, id, body, c.headers)
			assert.Equal(t, c.status, status, "%v", resp)
			assert.NotEmpty(t, resp["errorMessage"])
			assert.NotZero(t, resp["timestamp"])
		})
	}
	// Bad records inside a good request are dead-lettered one by one; the
	// others are delivered and the request is acknowledged.
	truncated := gz(envelope("x1", "x2", "x3"))
	status, resp := firehoseRequest(t, h.url, "mixed", recordsBody("mixed",
		gz(envelope("10", "11")), []byte("not gzip and not JSON {"), truncated[:len(truncated)-8], gz(envelope("12")),
	), nil)
	require.Equal(t, http.StatusOK, status, "%v", resp)
	assert.Equal(t, "mixed", resp["requestId"])
	ids := map[string]bool{}
	for _, l := range h.intake.Logs() {
		ids[logID(l)] = true
	}
	for _, id := range []string{"10", "11", "12"} {
		assert.True(t, ids[id], "event %s delivered", id)
	}
	entries := readDLQ(t, h.dlqDir)
	require.Len(t, entries, 1, "the truncated record is in the dead-letter archive")
	assert.Equal(t, "decode", entries[0].Stage)
	assert.Contains(t, entries[0].Reason, "truncated")
	assert.Equal(t, "mixed", entries[0].Origin.RequestID)
	// The plain line passed through as a line, unparsed but delivered.
	assert.Len(t, h.intake.Logs(), 4)

	// And the endpoint still serves.
	status, _ = firehoseRequest(t, h.url, "after", recordsBody("after", gz(envelope("20"))), nil)
	assert.Equal(t, http.StatusOK, status)
}

func TestRefusedAPIKeyTurnsHealthRed(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Sources.Firehose.AckTimeout = 500 * time.Millisecond })
	require.NoError(t, h.intake.SetFailure(fakeintake.Failure{Status: 403}))
	status, _ := firehoseRequest(t, h.url, "r1", recordsBody("r1", gz(envelope("1"))), nil)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	require.Error(t, h.p.Ready())
	resp, err := http.Get("http://" + h.p.AdminAddr() + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	status, body := firehoseRequest(t, h.url, "r2", recordsBody("r2", gz(envelope("2"))), nil)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, fmt.Sprint(body["errorMessage"]), "403")

	// GET on the public Firehose port is a health check: anyone gets the
	// bare status, only a caller with a valid access key the reason.
	for _, key := range []string{"", "not-the-key", firehoseKey} {
		req, err := http.NewRequest(http.MethodGet, h.url, nil)
		require.NoError(t, err)
		if key != "" {
			req.Header.Set("X-Amz-Firehose-Access-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		if key == firehoseKey {
			assert.Contains(t, string(got), "refused the API key", "an authenticated caller learns why")
		} else {
			assert.JSONEq(t, `{"status":"not ready"}`, string(got), "key %q: a bare status", key)
		}
	}

	h.intake.ClearFailure()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, h.intake.WaitLogs(ctx, 1), "the held record is delivered once the key works")
	require.NoError(t, waitFor(ctx, func() bool { return h.p.Ready() == nil }))
	status, _ = firehoseRequest(t, h.url, "r1", recordsBody("r1", gz(envelope("1"))), nil)
	assert.Equal(t, http.StatusOK, status)
	assert.Len(t, h.intake.Logs(), 1, "the retried request was not sent twice")
}

// TestDeadLetterArchiveRecoversAfterDiskFull: dead letters are refused by
// the intake while the archive's disk is full: the Firehose request is not
// acknowledged (Firehose sends it again); once space is back the same
// request is archived and acknowledged, and the archive holds its letters
// once, with no partial line.
// archiveDisk makes the dead-letter archive of the pipelines the test
// starts write to a disk the test can fill.
func archiveDisk(t *testing.T) *dlqtest.Disk {
	disk := &dlqtest.Disk{}
	archiveOptions = []dlq.Option{dlq.WithOpenFile(disk.Open)}
	t.Cleanup(func() { archiveOptions = nil })
	return disk
}

func TestDeadLetterArchiveRecoversAfterDiskFull(t *testing.T) {
	disk := archiveDisk(t)
	h := start(t, func(c *config.Config) {
		c.Pipeline.Runtime.InitialInterval, c.Pipeline.Runtime.MaxInterval = time.Millisecond, 5*time.Millisecond
		c.Sources.Firehose.AckTimeout = 20 * time.Second
	})
	require.NoError(t, h.intake.SetFailure(fakeintake.Failure{Status: 400}))

	ids := []string{"f1", "f2", "f3"}
	disk.Set(dlqtest.State{Full: true, Cut: 100})
	status, _ := firehoseRequest(t, h.url, "full", recordsBody("full", gz(envelope(ids...))), nil)
	assert.Equal(t, http.StatusInternalServerError, status, "neither delivered nor archived: not acknowledged")
	assert.Positive(t, disk.Failures())

	disk.Set(dlqtest.State{})
	status, _ = firehoseRequest(t, h.url, "full", recordsBody("full", gz(envelope(ids...))), nil)
	assert.Equal(t, http.StatusOK, status, "Firehose's retry is archived once space is back")

	entries, partial := dlqArchive(t, h.dlqDir)
	var got []string
	for _, e := range entries {
		got = append(got, e.EventID)
	}
	assert.ElementsMatch(t, ids, got, "each letter once")
	assert.Zero(t, partial, "the failed writes were cut back")
	assert.Zero(t, h.intake.Stats().LogsAccepted)
}

// shutdown drains and stops h's pipeline, within 30 seconds.
func (h *harness) shutdown(t *testing.T, msgAndArgs ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, h.p.Shutdown(ctx), msgAndArgs...)
}

// TestShutdownPastItsDeadlineSaysOnceWhatWasStillRunning: a shutdown
// whose deadline has passed names the parts still running in one error,
// not one line each saying the same thing.
func TestShutdownPastItsDeadlineSaysOnceWhatWasStillRunning(t *testing.T) {
	_, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{intakeKey}})
	cfg := intakeConfig(base)
	cfg.Sources.Firehose.Listen = "127.0.0.1:0"
	cfg.Sources.Firehose.AccessKeys = []string{firehoseKey}
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.DLQ.Dir = t.TempDir()
	cfg.Enrich.AWSTags = false
	p, err := New(cfg, nil, testLogger())
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background()))
	ctx, cancel := context.WithDeadline(context.Background(), time.Now())
	defer cancel()
	err = p.Shutdown(ctx)
	if err == nil {
		return // every part ended at once
	}
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.LessOrEqual(t, strings.Count(err.Error(), "still running at the shutdown deadline"), 1, "%v", err)
}

// TestLogsTooOldForTheIntakeAreDeadLettered: events recorded long ago (a
// public fixture's 2023 access log, replayed through the Firehose
// endpoint) are dead-lettered with the reason rather than sent to an
// intake that answers 202 and drops them: the figures said "delivered"
// for logs Datadog never keeps. The fresh event of the same envelope is
// delivered; every event is accounted for once.
func TestLogsTooOldForTheIntakeAreDeadLettered(t *testing.T) {
	h := start(t)
	now := time.Now()
	env := fmt.Sprintf(`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/api-gateway/petstore","logStream":"s","subscriptionFilters":["f"],"logEvents":[`+
		`{"id":"old-1","timestamp":%d,"message":"{\"requestId\":\"r-old\",\"requestTime\":\"10/Jun/2023:15:36:28 +0000\",\"status\":\"200\"}"},`+
		`{"id":"new-1","timestamp":%d,"message":"{\"requestId\":\"r-new\",\"status\":\"200\"}"}]}`, now.UnixMilli(), now.UnixMilli())
	c0 := h.p.Status().Counters
	status, resp := firehoseRequest(t, h.url, "too-old", recordsBody("too-old", gz([]byte(env))), nil)
	require.Equal(t, http.StatusOK, status, "%v", resp)

	var got []string
	for _, l := range h.intake.Logs() {
		got = append(got, logID(l))
	}
	assert.Equal(t, []string{"new-1"}, got)
	dead := deadLetters(t, h.dlqDir, "too-old")
	require.Len(t, dead, 1)
	assert.Equal(t, "deliver-logs", dead[0].Stage)
	assert.Contains(t, dead[0].Reason, "18-hour")
	assert.Contains(t, string(dead[0].Data), "r-old")
	c := h.p.Status().Counters
	assert.EqualValues(t, 1, c["deliver_logs.logs_too_old"]-c0["deliver_logs.logs_too_old"])
	assert.EqualValues(t, 1, c["deliver_logs.logs_accepted"]-c0["deliver_logs.logs_accepted"])
}

// TestFirehoseRequestWhoseClientWentAwayIsCountedHandedBack: a Firehose
// request is admitted, its logs held by the intake; its client gives up
// (as Firehose does after its request timeout) and the endpoint notices.
// At shutdown its records are handed back: the summary counts the
// request with them. It said "2 firehose records in 0 requests", and the
// requests line "0 handed back" (with loadgen's 3 s timeout: 200 records
// of 4 requests, in 0).
func TestFirehoseRequestWhoseClientWentAwayIsCountedHandedBack(t *testing.T) {
	h := start(t)
	require.NoError(t, h.intake.SetFailure(fakeintake.Failure{LatencyMS: time.Hour.Milliseconds(), Endpoints: []fakeintake.Endpoint{fakeintake.EndpointLogs}}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := newFirehoseRequest(h.url, "gone-1", recordsBody("gone-1", gz(envelope("g1")), gz(envelope("g2"))))
	require.NoError(t, err)
	cctx, hangUp := context.WithCancel(ctx)
	req = req.WithContext(cctx)
	answered := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	require.NoError(t, h.intake.Wait(ctx, func(s fakeintake.Stats) bool { return s.DelaysInFlight > 0 }), "the logs are held by the intake")
	h.p.fhRequests.mu.Lock()
	idle := h.p.fhRequests.idle
	h.p.fhRequests.mu.Unlock()
	require.NotNil(t, idle, "the request waits for its records")
	hangUp()
	require.Error(t, <-answered)
	select {
	case <-idle: // the endpoint noticed the client gone and stopped waiting
	case <-ctx.Done():
		t.Fatal("the endpoint never noticed the client gone")
	}
	sctx, scancel := context.WithTimeout(context.Background(), time.Second)
	defer scancel()
	require.NoError(t, h.p.Shutdown(sctx))

	st := h.p.Status()
	assert.EqualValues(t, 1, st.Counters["firehose.requests_handed_back"])
	sum := summaryLines(t, h.p)
	assert.Equal(t, "2 firehose records in 1 request (answered 503: Firehose sends them again)", sum["handed back"])
	assert.Equal(t, "0 acknowledged, 0 refused, 0 timed out, 0 failed, 1 handed back, 0 duplicates", sum["firehose requests"])
}
