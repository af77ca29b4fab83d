package pipeline

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq/dlqtest"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

// A request whose records cannot all be published within ack_timeout (the
// intake failing, every stage full) fails after part of it was published;
// that part is delivered once the intake recovers. Firehose retries the
// request whole, with the same request id: the retry must send only what
// the failed attempt did not deliver, or those logs reach Datadog twice.
func TestRetryOfPartlyPublishedRequestSendsOnlyTheRest(t *testing.T) {
	// More batches than the stages hold (deliver-logs holds 64).
	const records, perRecord = 120, 2
	var datas [][]byte
	var ids []string
	for r := range records {
		var rec []string
		for e := range perRecord {
			rec = append(rec, fmt.Sprintf("part-%03d-%d", r, e))
		}
		ids = append(ids, rec...)
		datas = append(datas, gz(envelope(rec...)))
	}
	h, ingest := retriedAfterPartlyPublished(t, datas)

	seen := map[string]int{}
	for _, l := range h.intake.Logs() {
		seen[logID(l)]++
	}
	for _, id := range ids {
		assert.Equal(t, 1, seen[id], "event %s delivered %d times", id, seen[id])
	}
	assert.Len(t, seen, len(ids))
	notResent := h.p.Status().Counters["firehose.records_not_resent"]
	assert.Positive(t, notResent, "the retry left out what the failed attempt delivered")
	var sum bytes.Buffer
	h.p.Summary(&sum)
	assert.Contains(t, sum.String(), fmt.Sprintf("(and %d of retries not sent again: delivered or dead-lettered by an earlier attempt)", notResent),
		"the summary's records-in line says why it is short of what Firehose sent")
	assert.Equal(t, int64(records), ingest("records_out"), "each record published once, over the attempts")
}

// retriedAfterPartlyPublished sends datas as one Firehose request while
// the intake fails, so that it fails after part of it was published, then
// sends it again, with the same request id, as Firehose does, until it is
// answered 200. ingest reads a figure of the ingest stage.
func retriedAfterPartlyPublished(t *testing.T, datas [][]byte) (h *harness, ingest func(figure string) int64) {
	t.Helper()
	h = start(t, func(c *config.Config) {
		c.Sources.Firehose.AckTimeout = 300 * time.Millisecond
		c.Sources.Firehose.RecordsPerBatch = 1
		c.Pipeline.Runtime.MaxInFlight = 1
	})
	require.NoError(t, h.intake.SetFailure(fakeintake.Failure{Status: 500}))
	body := recordsBody("partly", datas...)

	status, _ := firehoseRequest(t, h.url, "partly", body, nil)
	require.Equal(t, http.StatusServiceUnavailable, status, "not delivered within ack_timeout")
	ingest = func(figure string) int64 { return h.p.Status().snap.Value("stage."+figure, StageIngest) }
	require.Positive(t, ingest("errors"), "the request failed while its records were being published")
	require.Less(t, ingest("records_out"), int64(len(datas)), "part of the request was published")

	h.intake.ClearFailure()
	// Firehose retries until it gets 200.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		status, _ = firehoseRequest(t, h.url, "partly", body, nil)
		if status == http.StatusOK {
			return h, ingest
		}
		require.NoError(t, ctx.Err(), "the retry is never acknowledged (last %d)", status)
	}
}

// TestMetricStreamPointsOnceThroughFirehoseRetries: the same with
// metric-stream records, one stage's point each: every point reaches the
// intake exactly once (the records delivered before are not sent again).
func TestMetricStreamPointsOnceThroughFirehoseRetries(t *testing.T) {
	ts := time.Now().Add(-3 * time.Minute).Truncate(time.Minute)
	const records = 120
	var datas [][]byte
	for r := range records {
		datas = append(datas, []byte(fmt.Sprintf(`{"metric_stream_name":"s","account_id":"123456789012","region":"us-east-1","namespace":"AWS/ApiGateway","metric_name":"Count","dimensions":{"ApiName":"petstore","Stage":"s%03d"},"timestamp":%d,"value":{"max":1,"min":1,"sum":%d,"count":%d},"unit":"Count"}`, r, ts.UnixMilli(), r+1, r+1)))
	}
	h, _ := retriedAfterPartlyPublished(t, datas)
	seen := map[string]int{}
	for _, p := range h.intake.Series() {
		seen[fmt.Sprint(p.Tags)]++
	}
	twice := map[string]int{}
	for k, v := range seen {
		if v != 1 {
			twice[k] = v
		}
	}
	assert.Len(t, seen, records, "one series per stage")
	assert.Empty(t, twice, "series points delivered more than once, by tags")
	assert.Positive(t, h.p.Status().Counters["firehose.records_not_resent"], "the retry left out what the failed attempt delivered")
	h.shutdown(t)
}

// The summary's firehose line names each outcome of a request on its own:
// refused (answered an error before admission), timed out (admitted, 503
// after ack_timeout), failed (admitted, 500), acknowledged, duplicates.
// An admitted request that timed out used to be counted as refused.
func TestSummaryTellsRefusedTimedOutAndFailedApart(t *testing.T) {
	disk := archiveDisk(t)
	h := start(t, func(c *config.Config) {
		c.Pipeline.Runtime.InitialInterval, c.Pipeline.Runtime.MaxInterval = time.Millisecond, 5*time.Millisecond
		c.Sources.Firehose.AckTimeout = 3 * time.Second
	})

	// Refused: a wrong access key.
	status, _ := firehoseRequest(t, h.url, "bad-key", recordsBody("bad-key", gz(envelope("k1"))), map[string]string{"X-Amz-Firehose-Access-Key": "nope"})
	require.Equal(t, http.StatusUnauthorized, status)

	// Timed out: admitted, the intake failing for longer than ack_timeout.
	require.NoError(t, h.intake.SetFailure(fakeintake.Failure{Status: 503}))
	slow := recordsBody("slow", gz(envelope("s1", "s2")))
	status, resp := firehoseRequest(t, h.url, "slow", slow, nil)
	require.Equal(t, http.StatusServiceUnavailable, status, "%v", resp)
	h.intake.ClearFailure()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, h.intake.Wait(ctx, func(s fakeintake.Stats) bool { return s.LogsAccepted == 2 }))
	// Firehose's retry: delivered by the first attempt, answered 200 at once.
	require.NoError(t, waitFor(ctx, func() bool {
		status, _ = firehoseRequest(t, h.url, "slow", slow, nil)
		return status == http.StatusOK
	}))

	// Failed: admitted, a record neither delivered (the intake refuses
	// it) nor dead-lettered (the disk is full).
	require.NoError(t, h.intake.SetFailure(fakeintake.Failure{Status: 400}))
	disk.Set(dlqtest.State{Full: true, Cut: 100})
	status, _ = firehoseRequest(t, h.url, "full", recordsBody("full", gz(envelope("f1"))), nil)
	require.Equal(t, http.StatusInternalServerError, status)
	h.intake.ClearFailure()
	disk.Set(dlqtest.State{})

	// Acknowledged.
	status, _ = firehoseRequest(t, h.url, "fine", recordsBody("fine", gz(envelope("ok1"))), nil)
	require.Equal(t, http.StatusOK, status)

	st := h.p.Status()
	assert.Equal(t, int64(1), st.Counters["firehose.requests_timed_out"])
	assert.Equal(t, int64(1), st.Counters["firehose.requests_failed"])
	// Acknowledged: "fine", and the retry of "slow" (a duplicate).
	assert.Equal(t, "2 acknowledged, 1 refused, 1 timed out, 1 failed, 0 handed back, 1 duplicates", summaryLines(t, h.p)["firehose requests"])
}

// From the moment a drain begins, /readyz fails (a load balancer stops
// sending here) and the endpoint, still listening while admitted requests
// wait for their records, answers new requests 503 as documented, instead
// of refusing their connections.
func TestDrainAnswers503AndIsNotReady(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Sources.Firehose.AckTimeout = 30 * time.Second })
	readyz := "http://" + h.p.AdminAddr() + "/readyz"
	require.Equal(t, http.StatusOK, httpStatus(t, readyz))

	// One request kept in flight by an intake failing.
	require.NoError(t, h.intake.SetFailure(fakeintake.Failure{Status: 500}))
	first := make(chan int, 1)
	go func() {
		status, _ := firehoseRequest(t, h.url, "held", recordsBody("held", gz(envelope("h1"))), nil)
		first <- status
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, h.intake.Wait(ctx, func(s fakeintake.Stats) bool { return s.FailuresInjected > 0 }))

	done := make(chan error, 1)
	go func() {
		sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer scancel()
		done <- h.p.Shutdown(sctx)
	}()
	require.NoError(t, waitFor(ctx, func() bool { return httpStatus(t, readyz) == http.StatusServiceUnavailable }),
		"/readyz fails once the drain began")

	status, resp := firehoseRequest(t, h.url, "new", recordsBody("new", gz(envelope("n1"))), nil)
	assert.Equal(t, http.StatusServiceUnavailable, status, "a new request during the drain is answered, 503")
	assert.Contains(t, resp["errorMessage"], "shutting down")
	assert.Equal(t, http.StatusServiceUnavailable, httpStatus(t, h.url), "the endpoint's health check too")
	req, err := newFirehoseRequest(h.url, "new", recordsBody("new", gz(envelope("n1"))))
	require.NoError(t, err)
	r, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	r.Body.Close()
	assert.True(t, r.Close, "the client is told to close its connection (and reconnect, elsewhere)")

	h.intake.ClearFailure()
	assert.Equal(t, http.StatusOK, <-first, "the admitted request is finished")
	require.NoError(t, <-done)
	_, err = http.Post(h.url, "application/json", nil)
	assert.Error(t, err, "the listener is closed once the drain is over")
}

// A request handed back at shutdown after part of it was delivered (here:
// dead-lettered) is sent again whole by Firehose after the restart: the
// summary says how much of what it hands back was already delivered.
func TestSummaryCountsWhatHandedBackRequestsHadDelivered(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.Sources.Firehose.AckTimeout = time.Minute // only the shutdown answers
		c.Sources.Firehose.RecordsPerBatch = 1
	})
	require.NoError(t, h.intake.SetFailure(fakeintake.Failure{Status: 503}))
	answer := make(chan int, 1)
	go func() {
		// Not base64: dead-lettered by decode at once; the envelope waits
		// for the intake.
		body := []byte(`{"requestId":"half","timestamp":1,"records":[{"data":"!!not base64!!"},{"data":"` +
			base64.StdEncoding.EncodeToString(gz(envelope("half-1", "half-2"))) + `"}]}`)
		status, _ := firehoseRequest(t, h.url, "half", body, nil)
		answer <- status
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, h.intake.Wait(ctx, func(s fakeintake.Stats) bool { return s.FailuresInjected > 0 }))
	require.NoError(t, waitFor(ctx, func() bool { return h.p.Status().snap.Sum("stage.dead_lettered") == 1 }))

	sctx, scancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer scancel()
	require.NoError(t, h.p.Shutdown(sctx))
	require.True(t, h.p.HandedBack())
	assert.Equal(t, http.StatusServiceUnavailable, <-answer)
	assert.Equal(t, int64(1), h.p.Status().Counters["firehose.handed_back_records_delivered"])
	assert.Equal(t, "2 firehose records in 1 request (answered 503: Firehose sends them again); 1 record of those requests already delivered or dead-lettered: the retry delivers them again",
		summaryLines(t, h.p)["handed back"])
}

// An event timestamp that is not an integer is read when that loses
// nothing (a string of digits, a float without a fraction); otherwise the
// log is dated by its Firehose request, tagged with the reason and
// counted. Before, it was delivered undated (or dated 1969) silently.
func TestEventTimestampsThroughFirehose(t *testing.T) {
	h := start(t)
	// Recent times: a log more than 18 hours old is dead-lettered, not sent.
	ms := time.Now().Add(-time.Minute).UnixMilli()
	doc := fmt.Sprintf(`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/lambda/fn","logStream":"s","logEvents":[`+
		`{"id":"t-int","timestamp":%[1]d,"message":"int"},`+
		`{"id":"t-str","timestamp":"%[1]d","message":"str"},`+
		`{"id":"t-float","timestamp":%[1]d.0,"message":"float"},`+
		`{"id":"t-frac","timestamp":%[1]d.5,"message":"frac"},`+
		`{"id":"t-neg","timestamp":-5,"message":"neg"},`+
		`{"id":"t-none","message":"none"}]}`, ms)
	requestMS := ms - 60_000
	body := []byte(fmt.Sprintf(`{"requestId":"ts","timestamp":%d,"records":[{"data":%q}]}`, requestMS, base64.StdEncoding.EncodeToString(gz([]byte(doc)))))
	status, _ := firehoseRequest(t, h.url, "ts", body, nil)
	require.Equal(t, http.StatusOK, status)

	type got struct {
		ts  int64
		tag string
	}
	logs := map[string]got{}
	for _, l := range h.intake.Logs() {
		g := got{ts: l.Timestamp.UnixMilli()}
		for _, tag := range l.Tags {
			if v, ok := strings.CutPrefix(tag, "gwpipe.timestamp_error:"); ok {
				g.tag = v
			}
		}
		logs[logID(l)] = g
	}
	assert.Equal(t, map[string]got{
		"t-int":   {ms, ""},
		"t-str":   {ms, ""},
		"t-float": {ms, ""},
		"t-frac":  {requestMS, "not_whole_ms"},
		"t-neg":   {requestMS, "not_positive"},
		"t-none":  {requestMS, "missing"},
	}, logs)
	assert.Equal(t, int64(3), h.p.Status().Counters["decode.unreadable_timestamps"])
}
