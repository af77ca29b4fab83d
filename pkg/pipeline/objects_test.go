package pipeline

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

// objectOutcome is what reached the intake and the archive from objects.
type objectOutcome struct {
	ids, lines []string
	points     map[string]int // metric-stream points (aws.*) by name
	dead       []dlq.Entry
}

func outcome(logs []fakeintake.Log, series []fakeintake.SeriesPoint, dead []dlq.Entry) objectOutcome {
	o := objectOutcome{points: map[string]int{}, dead: dead}
	for _, l := range logs {
		if id := logID(l); id != "" {
			o.ids = append(o.ids, id)
		} else {
			o.lines = append(o.lines, l.Message)
		}
	}
	for _, p := range series {
		if strings.HasPrefix(p.Metric, "aws.") { // apigateway.logs.* are derived from the logs
			o.points[p.Metric]++
		}
	}
	return o
}

// expected is what the objects' manifests say must come out; dead letters
// as "reason substring" and their data (base64; "" for none).
type expected struct {
	ids, lines []string
	points     map[string]int
	dead       [][2]string
}

func expect(t *testing.T, objects ...corpus.Object) expected {
	e := expected{points: map[string]int{}}
	for _, o := range objects {
		m := o.Manifest
		e.ids = append(e.ids, m.EventIDs()...)
		e.lines = append(e.lines, m.Lines...)
		for name, n := range m.MetricPoints {
			e.points[name] += n
		}
		for i, d := range m.DeadLetters {
			data, ok, err := o.DeadData(i)
			require.NoError(t, err)
			b64 := ""
			if ok {
				b64 = base64.StdEncoding.EncodeToString(data)
			}
			e.dead = append(e.dead, [2]string{d.Reason, b64})
		}
	}
	return e
}

// check compares, each exactly once: events by id, lines by content,
// metric-stream points by name, dead letters by reason and data.
func (e expected) check(t *testing.T, got objectOutcome, source string) {
	t.Helper()
	assert.ElementsMatch(t, e.ids, got.ids, "each event delivered once")
	assert.ElementsMatch(t, e.lines, got.lines, "each line delivered once, unchanged")
	assert.Equal(t, e.points, got.points, "metric-stream points by name")
	require.Len(t, got.dead, len(e.dead), "dead letters: %+v", got.dead)
	left := append([][2]string(nil), e.dead...)
	for _, d := range got.dead {
		assert.Equal(t, "s3-read", d.Stage)
		assert.Equal(t, "raw", d.Kind, "replayable: the decode stage reads it again")
		assert.Equal(t, source, d.Origin.Source)
		found := -1
		for i, w := range left {
			if strings.Contains(d.Reason, w[0]) && string(d.Data) == w[1] {
				found = i
				break
			}
		}
		if assert.GreaterOrEqual(t, found, 0, "unexpected dead letter %q (%d bytes)", d.Reason, len(d.Data)) {
			left = append(left[:found], left[found+1:]...)
		}
	}
}

func putObject(t *testing.T, a *awsEnv, bucket, key string, body []byte) {
	t.Helper()
	_, err := a.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	require.NoError(t, err)
}

// TestCorpusObjectsReplayed puts every object of the corpus
// (pkg/testkit/corpus: Firehose objects whose items are mixed,
// metric streams in JSON and OpenTelemetry, lines that are not text, a
// binary object) in S3 and replays each with `gwpipe replay` into the fake
// intake: what reaches the logs intake, the metrics API and the
// dead-letter archive is exactly what its manifest says. The replay
// returns once the intake acknowledged everything it sent.
func TestCorpusObjectsReplayed(t *testing.T) {
	a := startAWS(t)
	a.bucket(t, "gw-corpus")
	e := newReplayEnv(t, 100_000)
	corpus.EachObject(t, func(t *testing.T, o corpus.Object) {
		prefix := "corpus/" + o.Name + "/"
		putObject(t, a, "gw-corpus", prefix+o.Key, o.Body)
		logs0, series0 := len(e.intake.Logs()), len(e.intake.Series())
		env := *e
		env.cfg.DLQ.Dir = t.TempDir()
		res, err := env.run(t, context.Background(), func(r *config.Replay) {
			r.Bucket, r.Prefix, r.From = "gw-corpus", prefix, "-2h"
		}, ReplayOptions{})
		require.NoError(t, err)

		want := expect(t, o)
		want.check(t, outcome(e.intake.Logs()[logs0:], e.intake.Series()[series0:], readDLQ(t, env.cfg.DLQ.Dir)), "replay")
		assert.EqualValues(t, len(want.ids)+len(want.lines), res.Sent)
		assert.EqualValues(t, len(want.dead), res.DeadLetters)
		assert.EqualValues(t, res.Points, res.PointsSent, "every point of the range sent")
		assert.Zero(t, res.PointsTooOld)
		if len(want.points) > 0 {
			assert.Positive(t, res.Points)
		}
	})
}

// TestCorpusObjectsThroughSQS writes every object of the corpus to a
// bucket whose notifications go to the queue gwpipe reads: the same
// outcome as the replay's, through the SQS source.
func TestCorpusObjectsThroughSQS(t *testing.T) {
	a := startAWS(t)
	a.bucket(t, "gw-corpus-live")
	q, qARN := a.queue(t, "gw-corpus-notifications")
	a.notify(t, "gw-corpus-live", qARN, "")
	h := sqsHarness(t, q)

	cases, err := corpus.ObjectCases()
	require.NoError(t, err)
	now := time.Now()
	var objects []corpus.Object
	for _, c := range cases {
		o, err := c.Render(now)
		require.NoError(t, err)
		objects = append(objects, o)
		putObject(t, a, "gw-corpus-live", c.Name+"/"+o.Key, o.Body)
	}
	want := expect(t, objects...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	require.NoError(t, h.intake.WaitLogs(ctx, len(want.ids)+len(want.lines)))
	a.waitDrained(t, q) // every message deleted: each object acknowledged end to end
	want.check(t, outcome(h.intake.Logs(), h.intake.Series(), readDLQ(t, h.dlqDir)), "s3")
	st := h.p.Status()
	assert.Zero(t, st.Counters["sqs.messages_failed"])
	// Control messages dropped from objects are counted, as decode counts
	// those of the Firehose endpoint.
	control := 0
	for _, o := range objects {
		control += o.Manifest.ControlMessages
	}
	require.Positive(t, control, "the corpus has control messages in objects")
	assert.EqualValues(t, control, st.Counters["sqs.object_control_messages"])
	assert.EqualValues(t, len(objects), st.Counters["sqs.objects_read"])
}

// TestReplayDeadLetteredMetrics is "fix and replay" for metrics: points
// the metrics API refused (kind "metric") and a metric-stream part the
// decode stage archived (kind "raw") are sent again by a replay of the
// archive as metric points, to the metrics API, with the replay's
// acknowledgement; none of them becomes a log.
func TestReplayDeadLetteredMetrics(t *testing.T) {
	h := start(t)
	require.NoError(t, h.intake.SetFailure(fakeintake.Failure{Status: 400, Endpoints: []fakeintake.Endpoint{fakeintake.EndpointSeries}}))
	ts := time.Now().Add(-3 * time.Minute).Truncate(time.Minute)
	datum := func(metric, stage string, sum float64) string {
		return fmt.Sprintf(`{"metric_stream_name":"gwpipe","account_id":"123456789012","region":"us-east-1","namespace":"AWS/ApiGateway",`+
			`"metric_name":%q,"dimensions":{"ApiName":"petstore","Stage":%q},"timestamp":%d,"value":{"max":1,"min":0,"sum":%g,"count":%g},"unit":"Count"}`,
			metric, stage, ts.UnixMilli(), sum, sum)
	}
	stream := datum("Count", "refused", 40) + "\n" + datum("5XXError", "refused", 2) + "\n"
	status, resp := firehoseRequest(t, h.url, "refused-metrics", recordsBody("refused-metrics", []byte(stream)), nil)
	require.Equal(t, 200, status, "dead-lettered counts as handled: %v", resp)
	entries := readDLQ(t, h.dlqDir)
	require.Len(t, entries, 2)
	for _, e := range entries {
		assert.Equal(t, "deliver-metrics", e.Stage)
		assert.Equal(t, "metric", e.Kind)
	}
	h.intake.ClearFailure()

	// A metric-stream line as the decode stage archives a part: the base64
	// of its bytes, kind raw.
	part := dlq.Entry{V: 1, Time: time.Now(), Stage: "decode", Reason: "line 1: metric stream: (a reason a newer gwpipe fixed)", Kind: "raw",
		Origin: dlq.Origin{Source: "firehose", RequestID: "older"}, Data: []byte(base64.StdEncoding.EncodeToString([]byte(datum("Count", "archived", 7))))}
	b, err := json.Marshal(part)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(h.dlqDir, "dlq-20260101T000000Z-older-1-1.jsonl"), append(b, '\n'), 0o644))

	e := &replayEnv{intake: h.intake, cfg: h.p.Config(), log: h.p.Logger()}
	e.cfg.DLQ.Dir = t.TempDir()
	logs0 := len(h.intake.Logs())
	res, err := e.run(t, context.Background(), func(r *config.Replay) { r.DLQ = h.dlqDir }, ReplayOptions{})
	require.NoError(t, err)
	assert.EqualValues(t, 3, res.Points)
	assert.EqualValues(t, 3, res.PointsSent)
	assert.Zero(t, res.Sent, "no log")
	assert.Len(t, h.intake.Logs(), logs0, "none of it is a log")
	assert.Empty(t, readDLQ(t, e.cfg.DLQ.Dir), "nothing dead-lettered again")

	got := map[string]float64{}
	for _, p := range h.intake.Series() {
		for _, tag := range p.Tags {
			if stage, ok := strings.CutPrefix(tag, "stage:"); ok {
				got[p.Metric+"/"+stage] = p.Value
				assert.Equal(t, ts.Unix(), p.Timestamp, "%s keeps its own timestamp", p.Metric)
			}
		}
	}
	assert.Equal(t, map[string]float64{"aws.apigateway.count/refused": 40, "aws.apigateway.5xxerror/refused": 2, "aws.apigateway.count/archived": 7}, got)

	series := len(h.intake.Series())
	again, err := e.run(t, context.Background(), func(r *config.Replay) { r.DLQ = h.dlqDir }, ReplayOptions{})
	require.NoError(t, err)
	assert.Zero(t, again.PointsSent, "the archive's ledger says the letters were settled")
	assert.EqualValues(t, 2, again.ObjectsAlreadyDone, "both files of the archive")
	assert.Len(t, h.intake.Series(), series)
}
