package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/ops/tap"
	"github.com/gwpipe/gwpipe/pkg/stages/filter"
	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
)

// tapLines reads limit events of topic from the admin endpoint.
func tapLines(t *testing.T, ctx context.Context, h *harness, topic string, limit int64) []tap.Event {
	t.Helper()
	var out bytes.Buffer
	st, err := tap.Read(ctx, http.DefaultClient, h.p.AdminAddr(), topic, limit, &out)
	require.NoError(t, err, "tap %s", topic)
	assert.Equal(t, "limit", st.End)
	assert.EqualValues(t, limit, st.Events)
	var evs []tap.Event
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var ev tap.Event
		require.NoError(t, json.Unmarshal(sc.Bytes(), &ev), "%s", sc.Text())
		evs = append(evs, ev)
	}
	return evs
}

// tapWhileSending reads limit events of topic from the admin endpoint,
// sending the Firehose request records(i) (i = 1, 2, …) until the tap has
// them: it takes what is published once it is attached. It returns the
// tap's output.
func tapWhileSending(t *testing.T, ctx context.Context, h *harness, topic string, limit int64, records func(i int) [][]byte) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		var out bytes.Buffer
		if _, err := tap.Read(ctx, http.DefaultClient, h.p.AdminAddr(), topic, limit, &out); err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- out.String()
	}()
	for i := 1; ; i++ {
		id := fmt.Sprintf("%s-%d", topic, i)
		code, _ := firehoseRequest(t, h.url, id, recordsBody(id, records(i)...), nil)
		require.Equal(t, http.StatusOK, code)
		select {
		case out := <-got:
			require.False(t, strings.HasPrefix(out, "error: "), out)
			return out
		case <-ctx.Done():
			t.Fatalf("tap %s: nothing within the time", topic)
		case <-time.After(20 * time.Millisecond): // pace the requests; the tap may not be attached yet
		}
	}
}

// TestTapReturnsEventsOfEveryTopicUnderLoad: while generated traffic runs
// as fast as the pipeline takes it, GET /tap returns the number of events
// asked for, of the topic asked for, each as its stage boundary shows it.
func TestTapReturnsEventsOfEveryTopicUnderLoad(t *testing.T) {
	h := start(t, func(c *config.Config) {
		// Metric windows of a second, so that points flow within the test.
		c.Metrics.Window, c.Metrics.AllowedLateness, c.Metrics.Tick = time.Second, 0, 100*time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	load, stopLoad := context.WithCancel(ctx)
	lc := loadConfig(h, 0, 7)
	lc.Duration = time.Minute
	running := loadgen.Start(load, lc)

	const n = 25
	for _, topic := range []string{"raw", "decoded", "parsed", "enriched", "metrics"} {
		evs := tapLines(t, ctx, h, topic, n)
		require.Len(t, evs, n, topic)
		for _, ev := range evs {
			assert.Equal(t, topic, ev.Topic)
			switch topic {
			case "raw":
				assert.Equal(t, "ingest", ev.Stage)
				assert.True(t, ev.Gzip)
				require.NotNil(t, ev.Message, "a CloudWatch envelope is text once decompressed")
				assert.Contains(t, *ev.Message, `"messageType":"DATA_MESSAGE"`)
			case "decoded":
				assert.Equal(t, "decode", ev.Stage)
				require.NotNil(t, ev.Message)
				assert.NotEmpty(t, ev.Origin.LogGroup)
			case "parsed", "enriched":
				var log map[string]any
				require.NoError(t, json.Unmarshal(ev.Log, &log))
				assert.Equal(t, "apigateway", log["ddsource"])
				assert.NotEmpty(t, log["message"])
				assert.Contains(t, log, "aws", "the attributes as delivered")
				if topic == "enriched" {
					assert.Contains(t, log["ddtags"], "aws_account:")
				}
			case "metrics":
				assert.Equal(t, "derive", ev.Stage)
				require.NotNil(t, ev.Metric)
				assert.True(t, strings.HasPrefix(ev.Metric.Name, "apigateway.logs."), ev.Metric.Name)
			}
		}
	}
	stopLoad()
	rep, _ := running.Wait() // stopped by stopLoad: the error is the cancellation
	assert.Positive(t, rep.EventsAcked)
	assert.Zero(t, rep.RequestsFailed)
}

// TestTapBlockedReaderDoesNotBlockThePipeline: a tap whose reader reads
// nothing fills its buffers; every event is still delivered and
// acknowledged, and the events it could not take are counted as dropped,
// in telemetry and on the stream once it is read.
func TestTapBlockedReaderDoesNotBlockThePipeline(t *testing.T) {
	h := start(t)
	req, err := http.NewRequest(http.MethodGet, "http://"+h.p.AdminAddr()+"/tap?topic=decoded", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	const events = 60_000
	rep, err := loadgen.Run(context.Background(), loadConfig(h, events, 3))
	require.NoError(t, err)
	require.EqualValues(t, events, rep.EventsAcked, "every event acknowledged while the tap is stuck: %+v", rep)
	require.Len(t, h.intake.Logs(), events)
	dropped := h.p.Metrics().Value("tap.dropped_events")
	assert.Positive(t, dropped, "the events the tap could not take are counted")
	assert.LessOrEqual(t, dropped, int64(events))

	// Read now: events first, and within a second a status line that
	// says how many were dropped.
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 4<<20)
	var sawEvent bool
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), `{"tap":`) {
			var st struct{ Tap tap.Status }
			require.NoError(t, json.Unmarshal(sc.Bytes(), &st))
			assert.Positive(t, st.Tap.Dropped)
			assert.True(t, sawEvent, "events come before the status")
			return
		}
		var ev tap.Event
		require.NoError(t, json.Unmarshal(sc.Bytes(), &ev))
		assert.Equal(t, "decoded", ev.Topic)
		sawEvent = true
	}
	t.Fatalf("the stream ended without saying what it dropped: %v", sc.Err())
}

// TestTapMasksCredentials: API keys and AWS access keys in the events never
// reach a tap, whatever the topic: not in the lines, not in the
// attributes, not in the raw records.
func TestTapMasksCredentials(t *testing.T) {
	h := start(t)
	const (
		apiKey    = "Xk2Pq9Lr7Ts4Vw1Yz8Bn3Mc6"
		accessKey = "AKIAIOSFODNN7EXAMPLE"
	)
	access := `{\"requestId\":\"%s\",\"httpMethod\":\"GET\",\"resourcePath\":\"/pets\",\"status\":200,\"apiKey\":\"` + apiKey + `\",\"accessKey\":\"` + accessKey + `\",\"user\":\"` + accessKey + `\"}`
	exec := `(%s) API Key: ` + apiKey
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, topic := range []string{"raw", "decoded", "parsed", "enriched"} {
		out := tapWhileSending(t, ctx, h, topic, 6, func(i int) [][]byte {
			return [][]byte{gz(envelopeOf(access, fmt.Sprint(topic, "a", i))), gz(envelopeOf(exec, fmt.Sprint(topic, "e", i)))}
		})
		assert.NotContains(t, out, apiKey, topic)
		assert.NotContains(t, out, accessKey, topic)
		assert.Contains(t, out, "REDACTED", topic)
	}
	// Delivered as they are: masking is the tap's, not the pipeline's.
	require.NoError(t, waitFor(ctx, func() bool {
		for _, l := range h.intake.Logs() {
			if strings.Contains(l.Message, apiKey) {
				return true
			}
		}
		return false
	}))
}

// TestTapDeadLetters: a record that cannot be decoded reaches a tap on the
// dead-letter topic with the stage and the reason; a bad query is refused.
func TestTapDeadLetters(t *testing.T) {
	h := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan []tap.Event, 1)
	go func() {
		var out bytes.Buffer
		if _, err := tap.Read(ctx, http.DefaultClient, h.p.AdminAddr(), "dlq", 1, &out); err != nil {
			got <- nil
			return
		}
		var ev tap.Event
		_ = json.Unmarshal(out.Bytes(), &ev)
		got <- []tap.Event{ev}
	}()
	binary := bytes.Repeat([]byte{0, 1, 2, 3, 0xff, 0xfe}, 100)
	for i := 0; ; i++ {
		code, _ := firehoseRequest(t, h.url, fmt.Sprint("bad-", i), recordsBody(fmt.Sprint("bad-", i), binary), nil)
		require.Equal(t, http.StatusOK, code)
		select {
		case evs := <-got:
			require.Len(t, evs, 1)
			assert.Equal(t, "dlq", evs[0].Topic)
			assert.Equal(t, "decode", evs[0].Stage)
			assert.Contains(t, evs[0].Reason, "binary")
			for _, q := range []string{"topic=nope", "topic=raw&limit=0", "topic=raw&limit=x"} {
				resp, err := http.Get("http://" + h.p.AdminAddr() + "/tap?" + q)
				require.NoError(t, err)
				resp.Body.Close()
				assert.Equal(t, http.StatusBadRequest, resp.StatusCode, q)
			}
			return
		case <-ctx.Done():
			t.Fatal("no dead letter reached the tap")
		case <-time.After(50 * time.Millisecond): // send another: the tap may not be attached yet
		}
	}
}

// TestTapScrubsAsConfigured: what the configuration's scrubbing rules keep
// from Datadog (filters.redact, filters.rules) does not leave the process
// through a tap either, whatever the topic.
func TestTapScrubsAsConfigured(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.Filters = filter.Config{
			Redact: []string{"ip", "email"},
			Rules:  []filter.Rule{{Name: "card", Pattern: `\b\d{4}(?:[ -]?\d{4}){3}\b`, Replace: "[card]"}},
		}
	})
	const (
		ip    = "203.0.113.77"
		email = "alice@example.com"
		card  = "4111 1111 1111 1111"
	)
	access := `{\"requestId\":\"%s\",\"ip\":\"` + ip + `\",\"caller\":\"` + email + `\",\"user\":\"` + card + `\",\"httpMethod\":\"GET\",\"status\":200}`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, topic := range []string{"raw", "decoded", "parsed", "enriched"} {
		out := tapWhileSending(t, ctx, h, topic, 2, func(i int) [][]byte {
			return [][]byte{gz(envelopeOf(access, fmt.Sprint(topic, "a", i), fmt.Sprint(topic, "b", i)))}
		})
		for _, secret := range []string{ip, email, card} {
			assert.Falsef(t, strings.Contains(out, secret), "tap %s shows %s", topic, secret)
		}
		assert.Truef(t, strings.Contains(out, "xxx.xxx.xxx.xxx") && strings.Contains(out, "[card]"), "tap %s: scrubbed as delivered", topic)
	}
}
