package s3obj

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/stages/decode"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

func streams(t testing.TB) decode.MetricDecoder {
	t.Helper()
	d, err := metricstream.NewDecoder(metricstream.DefaultConfig())
	require.NoError(t, err)
	return decode.MetricStreams(d)
}

// datum is a metric-stream datum (JSON output) that makes one point,
// aws.apigateway.count, with the stage as its tag.
func datum(stage string, count int) string {
	return fmt.Sprintf(`{"metric_stream_name":"apigw","account_id":"123456789012","region":"us-east-1","namespace":"AWS/ApiGateway","metric_name":"Count",`+
		`"dimensions":{"ApiName":"petstore","Stage":%q},"timestamp":1767225600000,"value":{"max":1,"min":1,"sum":%d,"count":%d},"unit":"Count"}`, stage, count, count)
}

const (
	accessJSON = `{"requestId":"r1","ip":"203.0.113.7","httpMethod":"GET","resourcePath":"/pets","status":200,"protocol":"HTTP/1.1","responseLength":12}`
	accessCLF  = `203.0.113.8 - - [04/Mar/2026:05:06:07 +0000] "GET /pets HTTP/1.1" 200 512 r2`
)

func unbase64(t testing.TB, p []byte) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(string(p))
	require.NoError(t, err)
	return string(b)
}

func deadData(t testing.TB, dead []record.Record) []string {
	out := make([]string, len(dead))
	for i, d := range dead {
		out[i] = unbase64(t, d.Message)
	}
	return out
}

// The headline defect: an object whose first line is an access log read
// every later line as one, envelopes included (their events never came).
func TestEnvelopesAfterAnAccessLogLine(t *testing.T) {
	t.Parallel()
	docA := envelopeDoc(group, "sA", ev{"1", 1, "a1"}, ev{"2", 2, "a2"})
	docB := envelopeDoc(group, "sB", ev{"3", 3, "b1"})
	docC := envelopeDoc(group, "sC", ev{"4", 4, "c1"})
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"newline-delimited", []byte(accessJSON + "\n" + string(docA) + "\n" + accessCLF + "\n" + string(docB) + string(docC) + "\n")},
		{"gzip", corpus.Gzip([]byte(accessJSON + "\n" + string(docA) + "\n" + accessCLF + "\n" + string(docB) + string(docC)))},
		{"gzip members, no delimiters", concat(corpus.Gzip([]byte(accessJSON)), corpus.Gzip(docA), corpus.Gzip([]byte("\n"+accessCLF+"\n")), corpus.Gzip(docB), corpus.Gzip(docC))},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := readObject(t, c.data, Object{Bucket: "b", Key: "2026/03/04/05/amazon-apigateway-pets-1-2026-03-04-05-06-07-ab"}, Config{})
			assert.Equal(t, LayoutAccessLines, out.stats.Layout, "the first item names the layout, and decides nothing else")
			assert.Equal(t, []string{accessJSON, "a1", "a2", accessCLF, "b1", "c1"}, messages(out.events))
			assert.Equal(t, []string{"", "1", "2", "", "3", "4"}, ids(out.events))
			assert.Equal(t, group, out.events[1].Origin.LogGroup)
			assert.Equal(t, "sC", out.events[5].Origin.LogStream)
			assert.Empty(t, out.dead)
		})
	}
}

// The decode stage's rule: a JSON document that is not an envelope is an
// ordinary log line, wherever it stands (it used to be dead-lettered in an
// object that starts with an envelope). One with a messageType or logEvents
// key that is not an envelope is dead-lettered: an envelope's JSON is never
// a log.
func TestJSONThatIsNotAnEnvelopeIsALine(t *testing.T) {
	t.Parallel()
	doc := envelopeDoc(group, "s", ev{"1", 1, "ok1"})
	nested := `{"request":{"messageType":"DATA_MESSAGE"},"status":200}`
	broken := `{"messageType":"DATA_MESSAGE","logEvents":[{"id":"9","timestamp":1}]}`
	noType := `{"logEvents":[{"id":"8","timestamp":1,"message":"x"}]}`
	unknown := `{"messageType":"DATA_MESSAGE_V2","owner":"1","logGroup":"g","logStream":"s","logEvents":[{"id":"5","timestamp":1,"message":"new"}]}`
	data := corpus.Gzip(concat(doc, []byte(`{"hello":"world"}`), []byte(nested), []byte(broken), []byte("\n"+noType+"\n"), []byte(unknown), []byte(controlDoc), doc))
	out := readObject(t, data, Object{Bucket: "b", Key: "k"}, Config{})
	assert.Equal(t, LayoutEnvelopes, out.stats.Layout)
	assert.Equal(t, []string{"ok1", `{"hello":"world"}`, nested, "ok1"}, messages(out.events))
	require.Len(t, out.dead, 3)
	assert.Equal(t, []string{broken, noType, unknown}, deadData(t, out.dead))
	at := len(doc) + len(`{"hello":"world"}`) + len(nested)
	assert.Contains(t, out.dead[0].Reason, fmt.Sprintf("line 1 (decompressed offset %d): CloudWatch envelope: logEvents[0] has no message string", at))
	assert.Contains(t, out.dead[1].Reason, "line 2")
	assert.Contains(t, out.dead[1].Reason, "logEvents without messageType")
	assert.Contains(t, out.dead[2].Reason, `unknown messageType "DATA_MESSAGE_V2"`)
	assert.Equal(t, "g", out.dead[2].Origin.LogGroup, "the envelope's own origin")
	assert.EqualValues(t, 1, out.stats.Unknown)
	assert.EqualValues(t, 1, out.stats.Control)
}

// Metric-stream datums (Firehose archives a metric stream's JSON output to
// S3) are points, recognised line by line wherever they stand; without a
// metric-stream reader they are dead-lettered with the reason, a run of
// consecutive ones in one dead letter. Never logs.
func TestMetricStreamDatumsInAnObject(t *testing.T) {
	t.Parallel()
	bad := `{"metric_stream_name":"apigw","namespace":"AWS/ApiGateway","metric_name":"Count","value":{"sum":1}}`
	data := corpus.Gzip([]byte(strings.Join([]string{accessJSON, datum("prod", 3), datum("beta", 4), bad, accessCLF, datum("dev", 5)}, "\n") + "\n"))

	t.Run("read", func(t *testing.T) {
		out := readObject(t, data, Object{Bucket: "b", Key: "k"}, Config{Metrics: streams(t)})
		assert.Equal(t, []string{accessJSON, accessCLF}, messages(out.events))
		require.Len(t, out.points, 3)
		for i, want := range []struct {
			stage string
			v     float64
		}{{"prod", 3}, {"beta", 4}, {"dev", 5}} {
			assert.Equal(t, "aws.apigateway.count", out.points[i].Name)
			assert.Equal(t, want.v, out.points[i].Value)
			assert.Contains(t, out.points[i].Tags, "stage:"+want.stage)
		}
		require.Len(t, out.dead, 1)
		assert.Equal(t, bad, unbase64(t, out.dead[0].Message))
		assert.Contains(t, out.dead[0].Reason, "line 4 (decompressed offset")
		assert.Contains(t, out.dead[0].Reason, "metric stream:")
	})
	t.Run("not read", func(t *testing.T) {
		out := readObject(t, data, Object{Bucket: "b", Key: "k"}, Config{})
		assert.Equal(t, []string{accessJSON, accessCLF}, messages(out.events), "never logs")
		assert.Empty(t, out.points)
		assert.Equal(t, []string{datum("prod", 3) + "\n" + datum("beta", 4) + "\n" + bad, datum("dev", 5)}, deadData(t, out.dead))
		assert.Contains(t, out.dead[0].Reason, "lines 2 to 4 (3 items from decompressed offset")
		assert.Contains(t, out.dead[0].Reason, MetricStreamsOff)
		assert.Contains(t, out.dead[1].Reason, "line 6 (decompressed offset")
	})
	t.Run("runs are bounded", func(t *testing.T) {
		var lines []string
		for i := range 10 {
			lines = append(lines, datum(fmt.Sprint("s", i), i))
		}
		out := readObject(t, []byte(strings.Join(lines, "\n")), Object{Bucket: "b", Key: "k"},
			Config{Decode: decode.Config{MaxRecordBytes: 3*len(lines[0]) + 10}})
		require.Len(t, out.dead, 4, "three datums per dead letter, which a replay reads as one record")
		assert.Equal(t, strings.Join(lines, "\n"), strings.Join(deadData(t, out.dead), "\n"), "every datum once, in order")
	})
}

// An object of a metric stream's OpenTelemetry output: length-delimited
// frames, binary, read frame by frame.
func TestMetricStreamFramesObject(t *testing.T) {
	t.Parallel()
	frames := otelFrames(t, 3)
	corrupt := protowire.AppendBytes(nil, []byte{0x0a, 0x05, 0x01})
	data := corpus.Gzip(concat(frames, corrupt))

	out := readObject(t, data, Object{Bucket: "b", Key: "k"}, Config{Metrics: streams(t)})
	assert.Equal(t, LayoutMetricFrames, out.stats.Layout)
	assert.Empty(t, out.events)
	require.Len(t, out.points, 3)
	assert.Equal(t, "aws.apigateway.count", out.points[0].Name)
	require.Len(t, out.dead, 1, "the corrupt frame alone")
	assert.Equal(t, string(corrupt), unbase64(t, out.dead[0].Message))

	out = readObject(t, data, Object{Bucket: "b", Key: "k"}, Config{})
	assert.Empty(t, out.events, "never logs")
	require.Len(t, out.dead, 1, "the frames in one dead letter, as they came")
	assert.Equal(t, string(concat(frames, corrupt)), unbase64(t, out.dead[0].Message))
	assert.Contains(t, out.dead[0].Reason, "4 frames from decompressed offset 0: "+MetricStreamsOff)

	truncated := concat(frames, protowire.AppendVarint(nil, 500), []byte{0x0a, 0x01})
	out = readObject(t, truncated, Object{Bucket: "b", Key: "k"}, Config{Metrics: streams(t)})
	assert.Len(t, out.points, 3)
	require.Len(t, out.dead, 1)
	assert.Contains(t, out.dead[0].Reason, "cut short by the end of the object")
}

// An empty frame (length 0: an ExportMetricsServiceRequest with nothing in
// it) holds nothing: the frames after it are read. An object with one in
// the middle lost every frame after it ("no length from 1 to … bytes", the
// rest of the object not read: 3 of 6 points), and an object that started
// with one was dead-lettered as binary (0 of 3).
func TestEmptyFramesInAMetricStreamObject(t *testing.T) {
	t.Parallel()
	frames := otelFrames(t, 3)
	for name, c := range map[string]struct {
		data   []byte
		points int
	}{
		"between frames":         {concat(frames, []byte{0}, frames), 6},
		"a run of them":          {concat(frames, make([]byte, 10_000), frames), 6},
		"before the first frame": {concat([]byte{0, 0}, frames), 3},
		"at the end":             {concat(frames, []byte{0}), 3},
	} {
		t.Run(name, func(t *testing.T) {
			out := readObject(t, corpus.Gzip(c.data), Object{Bucket: "b", Key: "k"}, Config{Metrics: streams(t)})
			assert.Equal(t, LayoutMetricFrames, out.stats.Layout)
			assert.Len(t, out.points, c.points)
			assert.Empty(t, out.dead)
		})
	}
}

// Firehose concatenates records into an object: a record that starts with
// a UTF-8 byte-order mark puts one at the start of a line. The decode stage
// drops the mark at a record's start; an object of the same records is read
// alike. The second datum was a log event ("\ufeff{"metric_stream_name"…").
func TestAByteOrderMarkStartsNoLine(t *testing.T) {
	t.Parallel()
	const bom = "\ufeff"
	data := bom + datum("a", 1) + "\n" + bom + datum("b", 2) + "\n" + bom + accessCLF + "\n" + bom + "\n"
	out := readObject(t, []byte(data), Object{Bucket: "b", Key: "k"}, Config{Metrics: streams(t)})
	assert.Len(t, out.points, 2)
	assert.Equal(t, []string{accessCLF}, messages(out.events))
	assert.Empty(t, out.dead)
}

// Lines that are not text are dead-lettered (consecutive ones together),
// whatever the object starts with: no log is built from binary bytes.
func TestLinesThatAreNotText(t *testing.T) {
	t.Parallel()
	doc := string(envelopeDoc(group, "s", ev{"1", 1, "ok1"}))
	data := []byte(strings.Join([]string{doc, "caf\xe9 latin-1", "\x00\x01\x02", accessCLF, "ESC \x1b[1mbold\x1b[0m is text", "\xff\xfe"}, "\n"))
	out := readObject(t, data, Object{Bucket: "b", Key: "k"}, Config{})
	assert.Equal(t, []string{"ok1", accessCLF, "ESC \x1b[1mbold\x1b[0m is text"}, messages(out.events))
	assert.Equal(t, []string{"caf\xe9 latin-1\n\x00\x01\x02", "\xff\xfe"}, deadData(t, out.dead))
	assert.Contains(t, out.dead[0].Reason, "lines 2 to 3 (2 items from decompressed offset 199): not text (line 2: invalid UTF-8 at byte 3)")
	assert.Contains(t, out.dead[1].Reason, "line 6 (decompressed offset")
	assert.Contains(t, out.dead[1].Reason, "not text: invalid UTF-8 at byte 0")
}

// An object that is binary (half its first bytes or more not text) is
// dead-lettered by name, not shredded into lines.
func TestBinaryObject(t *testing.T) {
	t.Parallel()
	png := concat([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), []byte(strings.Repeat("\x00\x10\x80\xff", 300)), []byte("\ntext line\n"))
	out := readObject(t, corpus.Gzip(png), Object{Bucket: "b", Key: "img/logo.png"}, Config{})
	assert.Equal(t, LayoutBinary, out.stats.Layout)
	assert.Empty(t, out.events, "not one line of it is a log")
	require.Len(t, out.dead, 1)
	assert.Empty(t, out.dead[0].Message, "named, not copied: the object stays where it is")
	assert.Contains(t, out.dead[0].Reason, "object s3://b/img/logo.png is binary")
	assert.Contains(t, out.dead[0].Reason, "are not text")

	forced := readObject(t, png, Object{Bucket: "b", Key: "k"}, Config{Layout: LayoutAccessLines})
	assert.Equal(t, []string{"text line"}, messages(forced.events), "read as lines when asked")
	assert.NotEmpty(t, forced.dead)
}

// Items as the decode stage cuts them: a line holding one object is the
// line as it came, objects back to back are items of their own, a
// pretty-printed document is one item, a '{' that never closes is a line,
// text after an object makes the line one item.
func TestItemsAreCutAsTheDecodeStageCutsThem(t *testing.T) {
	t.Parallel()
	pretty := "{\n  \"requestId\": \"p1\",\n  \"status\": 200\n}"
	data := []byte("  " + accessJSON + "  \r\n" + // kept as it came, but the \r
		`{"a":1}{"b":2}` + "\n" +
		pretty + "\n" +
		"{ not json\n" +
		`{"c":3} and text` + "\n" +
		"\t  indented line\n" +
		"\n\n  \n" +
		"last line\n" +
		"\xff")
	out := readObject(t, data, Object{Bucket: "b", Key: "k"}, Config{})
	assert.Equal(t, []string{"  " + accessJSON + "  ", `{"a":1}`, `{"b":2}`, pretty, "{ not json", `{"c":3} and text`, "\t  indented line", "last line"}, messages(out.events))
	require.Len(t, out.dead, 1)
	assert.Contains(t, out.dead[0].Reason, fmt.Sprintf("line 14 (decompressed offset %d)", len(data)-1), "lines are counted across every kind of item")
}

// Export-task objects keep their layout (a message's continuation lines),
// but an envelope whole on a line is an envelope, and a message that is not
// text is dead-lettered.
func TestExportObjects(t *testing.T) {
	t.Parallel()
	key := "e/API-Gateway-Execution-Logs_x/prod/0f8e7d6c-1234-4abc-9def-0123456789ab/s/000000.gz"
	doc := envelopeDoc(group, "s", ev{"1", 1, "ok1"})
	data := corpus.Gzip([]byte("2026-03-04T05:06:07.123Z body: {\n  \"a\": 1\n}\n" + string(doc) + "\n2026-03-04T05:06:08Z bad \xff\n2026-03-04T05:06:09Z last\n"))
	out := readObject(t, data, Object{Bucket: "b", Key: key}, Config{})
	assert.Equal(t, LayoutExport, out.stats.Layout)
	assert.Equal(t, []string{"body: {\n  \"a\": 1\n}", "ok1", "last"}, messages(out.events))
	require.Len(t, out.dead, 1)
	assert.Contains(t, out.dead[0].Reason, "export-task message: not text: invalid UTF-8 at byte 4")
	assert.Equal(t, "bad \xff", unbase64(t, out.dead[0].Message))
}

// A Firehose object is never an export, whatever its first line.
func TestFirehoseObjectStartingWithATimestamp(t *testing.T) {
	t.Parallel()
	doc := envelopeDoc(group, "s", ev{"1", 1, "ok1"})
	data := []byte("2026-03-04T05:06:07.123Z INFO started\n" + string(doc) + "\n")
	out := readObject(t, data, Object{Bucket: "b", Key: "fh/2026/03/04/05/gw-logs-1-2026-03-04-05-06-07-abcd"}, Config{})
	assert.Equal(t, LayoutAccessLines, out.stats.Layout)
	assert.Equal(t, []string{"2026-03-04T05:06:07.123Z INFO started", "ok1"}, messages(out.events))
}

// Replaying the dead-letter archive: a metric-stream part the decode stage
// dead-lettered becomes points again (or, without a metric-stream reader,
// a dead letter again, never a log); a refused point is sent again; a line
// that is not text is not a log (see TestDeadLetteredBytesReplay).
func TestDeadLetterArchiveOfMetrics(t *testing.T) {
	t.Parallel()
	ts := time.Now().Unix()
	data := concat(
		dlqLine(t, dlq.Entry{Stage: "decode", Reason: "line 2: metric stream: …", Kind: "raw", Data: []byte(b64([]byte(datum("prod", 7))))}),
		dlqLine(t, dlq.Entry{Stage: "deliver-metrics", Reason: "rejected", Kind: "metric",
			Metric: &dlq.Metric{Name: "aws.apigateway.latency", Type: "gauge", Timestamp: ts, Value: 42, Tags: []string{"stage:prod"}}}),
		dlqLine(t, dlq.Entry{Stage: "deliver-logs", Reason: "rejected", Kind: "line", Data: []byte("not \x00 text")}),
		dlqLine(t, dlq.Entry{Stage: "deliver-logs", Reason: "rejected", Kind: "line", Data: []byte("a line")}),
	)
	out := readObject(t, data, Object{URL: "dlq.jsonl", Replay: true}, Config{Metrics: streams(t)})
	assert.Equal(t, LayoutDLQ, out.stats.Layout)
	assert.Equal(t, []string{"a line"}, messages(out.events))
	require.Len(t, out.points, 2)
	assert.Equal(t, "aws.apigateway.count", out.points[0].Name)
	assert.Equal(t, record.Metric{Name: "aws.apigateway.latency", Kind: record.MetricGauge, Timestamp: ts, Value: 42, Tags: []string{"stage:prod"}}, out.points[1])
	require.Len(t, out.dead, 1)
	assert.Contains(t, out.dead[0].Reason, "binary record")
	assert.Contains(t, out.dead[0].Reason, "control byte 0x00 at byte 4")
	assert.Equal(t, "not \x00 text", string(unbase64(t, out.dead[0].Message)), "archived again as raw data, byte for byte")

	out = readObject(t, data, Object{URL: "dlq.jsonl", Replay: true}, Config{})
	assert.Equal(t, []string{"a line"}, messages(out.events), "the datum is not a log")
	require.Len(t, out.points, 1, "the refused point")
	require.Len(t, out.dead, 2)
	assert.Contains(t, out.dead[0].Reason, MetricStreamsOff)
	assert.Equal(t, datum("prod", 7), unbase64(t, out.dead[0].Message), "as it was, to replay once metric streams are on")
}

// Firehose error backups of metric-stream records: points.
func TestErrorBackupOfMetricStreamRecords(t *testing.T) {
	t.Parallel()
	rec := func(raw []byte) string {
		return fmt.Sprintf(`{"attemptsMade":5,"arrivalTimestamp":1,"errorCode":"HttpEndpoint.DestinationException","rawData":%q}`, b64(raw))
	}
	data := []byte(rec([]byte(datum("prod", 2)+"\n"+datum("beta", 3)+"\n")) + "\n" + rec(corpus.Gzip([]byte(accessJSON))) + "\n")
	out := readObject(t, data, Object{Bucket: "b", Key: "k"}, Config{Metrics: streams(t)})
	assert.Equal(t, LayoutErrorBackup, out.stats.Layout)
	assert.Len(t, out.points, 2)
	assert.Equal(t, []string{accessJSON}, messages(out.events))

	out = readObject(t, data, Object{Bucket: "b", Key: "k"}, Config{})
	assert.Equal(t, []string{accessJSON}, messages(out.events), "never logs")
	require.Len(t, out.dead, 1)
	assert.Contains(t, out.dead[0].Reason, MetricStreamsOff)
}

// In the dead-letter archive, points carry the entry they came from, as
// records do (a replay's ledger settles entries), and SkipItem skips them.
func TestDeadLetterArchivePointsAreNumberedByEntry(t *testing.T) {
	t.Parallel()
	ts := time.Now().Unix()
	metric := func(v float64) []byte {
		return dlqLine(t, dlq.Entry{Stage: "deliver-metrics", Reason: "rejected", Kind: "metric",
			Metric: &dlq.Metric{Name: "aws.apigateway.count", Type: "count", Timestamp: ts, Interval: 60, Value: v}})
	}
	data := concat(
		metric(1),
		dlqLine(t, dlq.Entry{Stage: "deliver-logs", Reason: "rejected", Kind: "line", Data: []byte("a line")}),
		dlqLine(t, dlq.Entry{Stage: "decode", Reason: "r", Kind: "raw", Data: []byte(b64([]byte(datum("a", 1) + "\n" + datum("b", 2))))}),
		metric(4),
	)
	for _, skip := range []bool{false, true} {
		cfg := Config{Metrics: streams(t)}
		if skip {
			cfg.SkipItem = func(item int64) bool { return item == 2 }
		}
		r := NewReader(bytes.NewReader(data), Object{URL: "dlq.jsonl", Replay: true}, cfg)
		var items []int64
		var values []float64
		eachChunk(t, r, func(c Chunk) {
			require.Len(t, c.Items, c.Batch.Len(), "an entry for every record or point")
			items = append(items, c.Items...)
			for _, m := range c.Batch.Metrics {
				values = append(values, m.Value)
			}
		})
		if skip {
			assert.Equal(t, []int64{0, 1, 3}, items)
			assert.Equal(t, []float64{1, 4}, values)
			assert.EqualValues(t, 1, r.Stats().Skipped)
		} else {
			assert.Equal(t, []int64{0, 1, 2, 2, 3}, items)
			assert.Equal(t, []float64{1, 1, 2, 4}, values)
		}
	}
}

// A batch dead-lettered whole before decode (its handler failed for good)
// is archived with the kind its records travelled under: bytes a source
// handed over undecoded — gzip from SQS, a Firehose record an ingest
// worker decoded for a broker — are kind "line" but not text. A replay
// decodes them as the raw records they are, in one pass.
func TestDeadLetteredBytesReplay(t *testing.T) {
	t.Parallel()
	env := fmt.Sprintf(`{"messageType":"DATA_MESSAGE","owner":"111122223333","logGroup":"/aws/apigw/access","logStream":"s","subscriptionFilters":["f"],"logEvents":[{"id":"e1","timestamp":%d,"message":"first"},{"id":"e2","timestamp":%d,"message":"second"}]}`,
		time.Now().UnixMilli(), time.Now().UnixMilli())
	data := concat(
		dlqLine(t, dlq.Entry{Stage: "decode", Reason: "stage decode: broker unreachable", Kind: "line", Data: corpus.Gzip([]byte(env))}),
		dlqLine(t, dlq.Entry{Stage: "decode", Reason: "stage decode: broker unreachable", Kind: "line", Data: []byte("a line")}),
	)
	out := readObject(t, data, Object{URL: "dlq.jsonl", Replay: true}, Config{})
	assert.Equal(t, []string{"first", "second", "a line"}, messages(out.events))
	assert.Empty(t, out.dead)
}

// otelFrames is a metric stream's OpenTelemetry output of n datums, one
// length-delimited frame each (streams s0, s1, …).
func otelFrames(t *testing.T, n int) []byte {
	t.Helper()
	var frames []byte
	for i := range n {
		var d corpus.Datum
		require.NoError(t, jsonUnmarshal(datum(fmt.Sprint("s", i), i+1), &d))
		b, err := proto.Marshal(corpus.ExportRequest([]corpus.Datum{d}))
		require.NoError(t, err)
		frames = protowire.AppendBytes(frames, b)
	}
	return frames
}
