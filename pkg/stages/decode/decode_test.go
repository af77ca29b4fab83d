package decode

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

var gzWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

func gz(p string) []byte {
	var b bytes.Buffer
	zw := gzWriters.Get().(*gzip.Writer)
	defer gzWriters.Put(zw)
	zw.Reset(&b)
	_, _ = zw.Write([]byte(p))
	_ = zw.Close()
	return b.Bytes()
}

func b64(p []byte) []byte { return []byte(base64.StdEncoding.EncodeToString(p)) }

const env = `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"API-Gateway-Execution-Logs_a1b2c3d4e5/prod","logStream":"abc","subscriptionFilters":["f"],"logEvents":[` +
	`{"id":"1001","timestamp":1700000000000,"message":"(r1) Method completed with status: 200"},` +
	`{"id":"1002","timestamp":1700000000001,"message":"(r1) X-ray Tracing ID : 1-5c755b5d"}]}`
const control = `{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1741312971934,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}`

func rawBatch(datas ...[]byte) *record.Batch {
	o := &record.Origin{Source: "firehose", RequestID: "req", Account: "999999999999", Region: "eu-west-1"}
	b := &record.Batch{ID: "req/0", Origin: o}
	for _, d := range datas {
		b.Records = append(b.Records, record.Record{Origin: o, Kind: record.KindRaw, Message: d, Timestamp: 42})
	}
	return b
}

func newStage() (*Stage, *telemetry.Registry) {
	reg := telemetry.NewRegistry()
	return New(Config{MaxRecordBytes: 1_024_000, MaxDecompressedBytes: 1 << 20, MaxEventsPerBatch: 3}, reg), reg
}

func all(res Result) []record.Record {
	var out []record.Record
	for _, b := range res.Batches {
		out = append(out, b.Records...)
	}
	return out
}

func TestDecodeEnvelopesAndLines(t *testing.T) {
	s, reg := newStage()
	in := rawBatch(
		b64(gz(env)),
		b64(gz(control)),
		b64(gz(env+"\n"+env)), // two documents in one record
		b64([]byte(`{"requestId":"abc","status":200,"responseLength":-}`+"\n")),                  // direct access log line
		b64([]byte("203.0.113.7 - - [29/Jun/2023:12:01:02 +0000] \"GET / HTTP/1.1\" 200\r\n\n")), // plain line
		[]byte(""),       // Firehose permits empty records
		b64([]byte(env)), // already decompressed by Firehose
	)
	res := s.Decode(in)
	require.Nil(t, res.Dead)
	recs := all(res)
	require.Len(t, recs, 2+4+1+1+2)
	for _, b := range res.Batches {
		assert.LessOrEqual(t, b.Len(), 3, "MaxEventsPerBatch")
	}
	r := recs[0]
	assert.Equal(t, "1001", r.EventID)
	assert.Equal(t, int64(1700000000000), r.Timestamp)
	assert.Equal(t, "(r1) Method completed with status: 200", string(r.Message))
	assert.Equal(t, record.KindLine, r.Kind)
	assert.Equal(t, "123456789012", r.Origin.Account, "the envelope owner is the account")
	assert.Equal(t, "eu-west-1", r.Origin.Region)
	assert.Equal(t, "API-Gateway-Execution-Logs_a1b2c3d4e5/prod", r.Origin.LogGroup)
	assert.Equal(t, "abc", r.Origin.LogStream)

	line := recs[6]
	assert.Equal(t, `{"requestId":"abc","status":200,"responseLength":-}`, string(line.Message))
	assert.Equal(t, "999999999999", line.Origin.Account, "direct lines keep the request's origin")
	assert.Equal(t, int64(42), line.Timestamp)
	assert.Equal(t, `203.0.113.7 - - [29/Jun/2023:12:01:02 +0000] "GET / HTTP/1.1" 200`, string(recs[7].Message))
	assert.Equal(t, "1002", recs[9].EventID)

	assert.Equal(t, int64(1), reg.Value("decode.control_messages"))
	assert.Equal(t, int64(1), reg.Value("decode.empty_records"))
}

func TestBadRecordsAreDeadLetteredAlone(t *testing.T) {
	s, _ := newStage()
	truncated := gz(strings.Repeat(env, 50))
	broken := `{"messageType":"DATA_MESSAGE","logEvents":[{"id":"9"}]}`
	in := rawBatch(
		b64(gz(env)),
		[]byte("!!!not base64!!!"),
		b64(truncated[:len(truncated)/2]),
		b64(gz(strings.Repeat(" ", 2<<20))), // bomb: over the 1 MiB limit
		b64(gz(env+"\n"+broken)),            // second document broken: it alone is dead-lettered
		b64(gz(`{"messageType":"DATA_MESSAGE","logEvents":[`)),
		[]byte(strings.Repeat("A", 1_500_000)), // oversized
		b64(gz(env)),
	)
	res := s.Decode(in)
	recs := all(res)
	assert.Len(t, recs, 6, "the good records on both sides survive, and the good document beside the broken one")
	require.NotNil(t, res.Dead)
	assert.Equal(t, "decode", res.Dead.Stage)
	require.Len(t, res.Dead.Records, 6)
	// Records from which nothing could be read are kept exactly as the
	// source delivered them.
	whole := []struct {
		dead, in int
		reason   string
	}{
		{0, 1, "invalid base64"}, {1, 2, "truncated"}, {2, 3, "exceeds the limit: more than 1048576 bytes (decode.max_decompressed_bytes)"},
		{4, 5, "line 1: CloudWatch envelope: truncated JSON document"}, {5, 6, "exceeds the 1024000-byte limit"},
	}
	for _, w := range whole {
		d := res.Dead.Records[w.dead]
		assert.Contains(t, d.Reason, w.reason)
		assert.Equal(t, in.Records[w.in].Message, d.Message, "the raw bytes are kept")
		assert.Equal(t, record.KindRaw, d.Kind)
		assert.Equal(t, "req", d.Origin.RequestID)
	}
	// A part is kept as raw data too: base64 of its decoded bytes, which a
	// replay decodes again.
	part := res.Dead.Records[3]
	assert.Equal(t, "line 2: CloudWatch envelope: logEvents[0] has no message string", part.Reason)
	assert.Equal(t, record.KindRaw, part.Kind)
	assert.Equal(t, string(b64([]byte(broken))), string(part.Message))
	assert.Equal(t, []string{"1001", "1002"}, ids(recs[2:4]))
}

func ids(recs []record.Record) []string {
	return fields(recs, func(r record.Record) string { return r.EventID })
}

func TestExtractedFieldsOverrideAccountAndRegion(t *testing.T) {
	s, _ := newStage()
	doc := `{"messageType":"DATA_MESSAGE","owner":"111122223333","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":5,"message":"m","extractedFields":{"@aws.account":"999888777666","@aws.region":"us-west-2"}},{"id":"2","timestamp":6,"message":"n"}]}`
	recs := all(s.Decode(rawBatch(b64(gz(doc)))))
	require.Len(t, recs, 2)
	assert.Equal(t, "999888777666", recs[0].Origin.Account)
	assert.Equal(t, "us-west-2", recs[0].Origin.Region)
	assert.Equal(t, "111122223333", recs[1].Origin.Account)
}

func BenchmarkDecode(b *testing.B) {
	event := `{"id":"31953106606966983378809025079804211143289615424298221568","timestamp":1432826855000,"message":"{\"apiId\":\"a1b2c3d4e5\",\"stage\":\"prod\",\"requestId\":\"3323ffe5-6ddf-45c8-896a-b45ec2284cc0\",\"ip\":\"203.0.113.7\",\"caller\":\"-\",\"user\":\"-\",\"requestTime\":1732850000000,\"httpMethod\":\"GET\",\"resourcePath\":\"/pets/{petId}\",\"status\":404,\"protocol\":\"HTTP/1.1\",\"responseLength\":512}"}`
	rec := b64(gz(envelopeWith("/aws/api-gateway/a1b2c3d4e5/prod", slices.Repeat([]string{event}, 100))))
	datas := make([][]byte, 10)
	for i := range datas {
		datas[i] = rec
	}
	s := New(Config{MaxRecordBytes: 1_024_000, MaxDecompressedBytes: 32 << 20, MaxEventsPerBatch: 2000}, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Decode(rawBatch(datas...))
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

// envelopeOf is a DATA_MESSAGE with one event per id.
func envelopeOf(group string, ids ...string) string {
	events := make([]string, len(ids))
	for i, id := range ids {
		events[i] = `{"id":"` + id + `","timestamp":1700000000000,"message":"event ` + id + `"}`
	}
	return envelopeWith(group, events)
}

// envelopeWith is a DATA_MESSAGE of group holding events (JSON objects).
func envelopeWith(group string, events []string) string {
	return `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"` + group +
		`","logStream":"s","subscriptionFilters":["f"],"logEvents":[` + strings.Join(events, ",") + `]}`
}

func gzMembers(parts ...string) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, gz(p)...)
	}
	return out
}

// Issue 12, item 1: a record that mixes envelopes with other lines. Each
// envelope, and each other line, is read on its own, whatever separates
// them (a newline, nothing at all as in {..}{..}, or gzip member
// boundaries): no event is lost, no envelope's text is delivered as a log.
func TestMixedRecordsEachItemOnItsOwn(t *testing.T) {
	a, b := envelopeOf("g", "a1", "a2"), envelopeOf("g", "b1")
	jsonLine := `{"requestId":"r-1","httpMethod":"GET","status":200,"responseLength":-}`
	clf := `203.0.113.7 - - [29/Jun/2023:12:01:02 +0000] "GET /pets HTTP/1.1" 200 512 r-2`
	cases := map[string][]byte{
		"newlines":                       []byte(a + "\n" + jsonLine + "\n" + b + "\n"),
		"no separator":                   []byte(a + jsonLine + b),
		"spaces and crlf":                []byte(a + " " + jsonLine + "\r\n\r\n" + b),
		"gzip":                           gz(a + "\n" + jsonLine + "\n" + b),
		"gzip members, no separator":     gzMembers(a, jsonLine, b),
		"gzip members, newline-ended":    gzMembers(a+"\n", jsonLine+"\n", b+"\n"),
		"a text line between envelopes":  []byte(a + "\n" + clf + "\n" + b),
		"gzip members with a text line":  gzMembers(a+"\n", clf+"\n", b),
		"pretty-printed envelope":        []byte(strings.ReplaceAll(a, `,"`, ",\n  \"") + "\n" + jsonLine + "\n" + b),
		"envelope then line on one line": []byte(a + jsonLine + "\n" + b),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			s, reg := newStage()
			res := s.Decode(rawBatch(b64(data)))
			require.Nil(t, res.Dead, "%v", deadRecords(res))
			recs := all(res)
			var gotIDs, lines []string
			for _, r := range recs {
				if r.EventID != "" {
					gotIDs = append(gotIDs, r.EventID)
					continue
				}
				lines = append(lines, string(r.Message))
			}
			assert.Equal(t, []string{"a1", "a2", "b1"}, gotIDs, "every event once")
			require.Len(t, lines, 1, "the other line once, and no envelope text: %q", lines)
			assert.Contains(t, []string{jsonLine, clf}, lines[0])
			assert.Equal(t, "g", recs[0].Origin.LogGroup)
			assert.Zero(t, reg.Value("decode.control_messages"))
		})
	}
}

// Issue 12, item 2: metric-stream lines are recognised line by line, not
// from the record's first line.
func TestMetricStreamLinesAmongOtherLines(t *testing.T) {
	metric := func(i int) string {
		return fmt.Sprintf(`{"metric_stream_name":"s","namespace":"AWS/ApiGateway","metric_name":"Count","n":%d}`, i)
	}
	foreign := []string{
		`{"requestId":"r-1","status":200,"responseLength":-}`,
		`203.0.113.7 - - [29/Jun/2023:12:01:02 +0000] "GET / HTTP/1.1" 200 5 r-2`,
		`<request id="r-3"> <status>200</status> </request>`,
		`203.0.113.7,29/Jun/2023:12:01:02 +0000,GET,/pets,HTTP/1.1,200,5,r-4`,
	}
	var metrics []string
	for i := range 88 {
		metrics = append(metrics, metric(i))
	}
	interleaved := []string{metrics[0], foreign[0], metrics[1], metrics[2], foreign[1], foreign[2], metrics[3], foreign[3]}
	cases := map[string]struct {
		lines  []string
		points int
	}{
		"foreign lines first": {append(append([]string{}, foreign...), metrics...), 88},
		"metric lines first":  {append(append([]string{}, metrics...), foreign...), 88},
		"interleaved":         {interleaved, 4},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s, _ := newStage()
			s.WithMetricStreams(fakeMetrics{})
			res := s.Decode(rawBatch(b64(gz(strings.Join(c.lines, "\n")))))
			require.Nil(t, res.Dead)
			assert.ElementsMatch(t, foreign, messages(all(res)), "the foreign lines are logs")
			assert.Len(t, points(res), c.points, "every metric line is a point")
		})
	}
	t.Run("a bad metric line is dead-lettered alone, with its line number", func(t *testing.T) {
		s, _ := newStage()
		s.WithMetricStreams(fakeMetrics{})
		bad := `{"metric_stream_name":"s","namespace":"bad"}`
		res := s.Decode(rawBatch(b64([]byte(foreign[0] + "\n" + metric(1) + "\n" + bad + "\n" + metric(2) + "\n" + foreign[1]))))
		assert.Len(t, points(res), 2)
		assert.Equal(t, []string{foreign[0], foreign[1]}, messages(all(res)))
		require.Len(t, deadRecords(res), 1)
		d := deadRecords(res)[0]
		assert.Equal(t, "line 3: metric stream: bad datum", d.Reason)
		assert.Equal(t, string(b64([]byte(bad))), string(d.Message))
	})
	t.Run("binary metric-stream records", func(t *testing.T) {
		s, _ := newStage()
		s.WithMetricStreams(fakeMetrics{})
		good, bad := append(append([]byte{}, fakeFrames...), "\x00\x01 frames"...), append(append([]byte{}, fakeFrames...), "\x00bad"...)
		in := rawBatch(b64(good), b64(gz(string(good))), b64(bad))
		res := s.Decode(in)
		assert.Len(t, points(res), 2)
		require.Len(t, deadRecords(res), 1, "a record from which nothing could be read is dead-lettered whole")
		assert.Equal(t, in.Records[2].Message, deadRecords(res)[0].Message)
		assert.Equal(t, "metric stream: frame 1 (offset 0): bad frame", deadRecords(res)[0].Reason)
	})
}

// Issue 12, item 3: binary that is neither gzip nor a known format is
// dead-lettered whole, byte for byte as delivered; no log is built from it.
func TestBinaryRecordsAreDeadLetteredWhole(t *testing.T) {
	junk := randomBytes(rand.New(rand.NewPCG(12, 3)), 600)
	// An unrecognised protobuf: 0x0A, the tag of field 1, is also '\n'.
	var pb []byte
	for i := range 40 {
		pb = protowire.AppendTag(pb, 1, protowire.BytesType)
		var kv []byte
		kv = protowire.AppendTag(kv, 1, protowire.BytesType)
		kv = protowire.AppendString(kv, fmt.Sprintf("attribute.%d", i))
		kv = protowire.AppendTag(kv, 2, protowire.VarintType)
		kv = protowire.AppendVarint(kv, uint64(i*1000))
		pb = protowire.AppendBytes(pb, kv)
	}
	utf16 := []byte{}
	for _, r := range "GET /pets 200\nGET /pets/1 404\n" {
		utf16 = append(utf16, byte(r), 0)
	}
	cases := map[string][]byte{
		"random bytes":             junk,
		"unrecognised protobuf":    pb,
		"gzipped protobuf":         gz(string(pb)),
		"UTF-16 text":              utf16,
		"text with a binary tail":  append([]byte("a short line\n"), junk[:200]...),
		"binary lines outweighing": []byte("ok\n\x01\x02\x03\x04\x05\x06\n\xff\xfe\xfd\xfc\n"),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			s, reg := newStage()
			s.WithMetricStreams(fakeMetrics{})
			in := rawBatch(b64(data))
			res := s.Decode(in)
			assert.Empty(t, all(res), "no log from binary")
			assert.Empty(t, points(res))
			require.Len(t, deadRecords(res), 1)
			d := deadRecords(res)[0]
			assert.Equal(t, in.Records[0].Message, d.Message, "byte for byte as delivered")
			assert.Equal(t, record.KindRaw, d.Kind)
			assert.Contains(t, d.Reason, "binary record (not text, gzip or a metric stream)")
			assert.EqualValues(t, 1, reg.Value("decode.binary_records"))
		})
	}
}

// Issue 12, item 3: one line that is not text, in a record that is, is
// dead-lettered alone with the reason; its neighbours go on.
func TestOneNonTextLineDoesNotSinkItsNeighbours(t *testing.T) {
	s, reg := newStage()
	data := "line one\nline \xff two\n\x1b[31mcoloured\x1b[0m\tline three\r\nctl \x01 here\n" + envelopeOf("g", "e1") + "\nline five\n"
	res := s.Decode(rawBatch(b64(gz(data))))
	assert.Equal(t, []string{"line one", "\x1b[31mcoloured\x1b[0m\tline three", "event e1", "line five"}, messages(all(res)))
	dead := deadRecords(res)
	require.Len(t, dead, 2)
	assert.Equal(t, "line 2: not text: invalid UTF-8 at byte 5", dead[0].Reason)
	assert.Equal(t, string(b64([]byte("line \xff two"))), string(dead[0].Message))
	assert.Equal(t, "line 4: not text: control byte 0x01 at byte 4", dead[1].Reason)
	assert.EqualValues(t, 2, reg.Value("decode.non_text_lines"))
	assert.Zero(t, reg.Value("decode.binary_records"))
}

// Issue 12, item 4: a messageType other than DATA_MESSAGE and
// CONTROL_MESSAGE is dead-lettered with the reason and counted as such,
// never dropped as a control message.
func TestUnknownMessageTypeIsDeadLettered(t *testing.T) {
	s, reg := newStage()
	unknown := `{"messageType":"DATA_MESSAGE_V2","owner":"111122223333","logGroup":"/aws/api-gateway/x","logStream":"s","logEvents":[{"id":"u1","timestamp":1,"message":"m"}]}`
	in := rawBatch(
		b64(gz(envelopeOf("g", "d1")+"\n"+unknown+"\n"+control)),
		b64(gz(unknown)),
	)
	res := s.Decode(in)
	assert.Equal(t, []string{"d1"}, ids(all(res)))
	dead := deadRecords(res)
	require.Len(t, dead, 2)
	assert.Equal(t, `line 2: CloudWatch envelope: unknown messageType "DATA_MESSAGE_V2" (neither DATA_MESSAGE nor CONTROL_MESSAGE)`, dead[0].Reason)
	assert.Equal(t, string(b64([]byte(unknown))), string(dead[0].Message))
	assert.Equal(t, "/aws/api-gateway/x", dead[0].Origin.LogGroup, "the dead letter says where it came from")
	assert.Equal(t, "111122223333", dead[0].Origin.Account)
	assert.Equal(t, in.Records[1].Message, dead[1].Message, "alone in its record: the record whole")
	assert.Contains(t, dead[1].Reason, "unknown messageType")
	assert.EqualValues(t, 2, reg.Value("decode.unknown_message_types"))
	assert.EqualValues(t, 1, reg.Value("decode.control_messages"), "only the real control message")
}

// A dead part is raw data that decodes again to the same outcome: the
// archive can be replayed (once the cause is fixed) without duplicates.
func TestDeadPartsDecodeAgain(t *testing.T) {
	s, _ := newStage()
	s.WithMetricStreams(fakeMetrics{})
	unknown := `{"messageType":"NEW","logEvents":[]}`
	data := envelopeOf("g", "x1") + "\n" + unknown + "\nok line\nnot \xff text\n" + `{"metric_stream_name":"bad"}` + "\nanother ok line"
	res := s.Decode(rawBatch(b64(gz(data))))
	dead := deadRecords(res)
	require.Len(t, dead, 3)
	for _, d := range dead {
		again := s.Decode(rawBatch(d.Message))
		require.Len(t, deadRecords(again), 1, d.Reason)
		assert.Empty(t, all(again))
		// The same cause (a non-text line alone is a binary record).
		cause := func(r string) string { return r[strings.LastIndex(r, ": ")+2:] }
		assert.Equal(t, cause(d.Reason), cause(deadRecords(again)[0].Reason))
		assert.Equal(t, d.Message, deadRecords(again)[0].Message, "and the same bytes")
	}
}

// Bytes a source hands over already decoded (gzip from SQS) are archived
// as raw base64 data, so that a replay decodes them instead of taking them
// for a log line.
func TestUndecodableLineRecordIsArchivedAsRaw(t *testing.T) {
	s, _ := newStage()
	truncated := gz(strings.Repeat(env, 20))
	truncated = truncated[:len(truncated)/2]
	in := rawBatch()
	in.Records = append(in.Records, record.Record{Origin: in.Origin, Kind: record.KindLine, Message: truncated})
	res := s.Decode(in)
	require.Len(t, deadRecords(res), 1)
	d := deadRecords(res)[0]
	assert.Equal(t, record.KindRaw, d.Kind)
	assert.Equal(t, string(b64(truncated)), string(d.Message))
	assert.Contains(t, d.Reason, "truncated")
}

// Found by FuzzDecode: three characters of unpadded base64 overran a
// buffer sized for padded input.
func TestShortUnpaddedBase64(t *testing.T) {
	s, _ := newStage()
	res := s.Decode(rawBatch([]byte("000"), []byte("YQ"), []byte("YWI"), []byte("Y")))
	assert.Equal(t, []string{"a", "ab"}, messages(all(res)), "padding is optional")
	dead := deadRecords(res)
	require.Len(t, dead, 2)
	assert.Contains(t, dead[0].Reason, "binary record", "000 is the bytes d3 4d")
	assert.Contains(t, dead[1].Reason, "invalid base64")
}

// With metric streams off, their data is still recognised: it is
// dead-lettered with the reason, never delivered as logs (the rule S3
// objects follow too).
func TestMetricStreamDataIsRefusedWhenStreamsAreOff(t *testing.T) {
	datum := `{"metric_stream_name":"s","account_id":"123456789012","region":"us-east-1","namespace":"AWS/ApiGateway","metric_name":"Count","dimensions":{"ApiName":"petstore","Stage":"prod"},"timestamp":1611929640000,"value":{"max":1,"min":1,"sum":3,"count":3},"unit":"Count"}`
	line := `203.0.113.7 - - [29/Jun/2023:12:01:02 +0000] "GET / HTTP/1.1" 200 5 r-2`
	s, _ := newStage()
	s.WithMetricStreams(RefusedMetricStreams())
	res := s.Decode(rawBatch(b64(gz(line + "\n" + datum + "\n" + datum))))
	assert.Equal(t, []string{line}, messages(all(res)), "only the log line is a log")
	assert.Empty(t, points(res))
	dead := deadRecords(res)
	require.Len(t, dead, 1, "the run of datums is one dead letter")
	assert.Contains(t, dead[0].Reason, MetricStreamsOff)
}

// TestEmptyRecordsAreDroppedAsTheirFigureSays: a record of nothing but
// white space (Firehose permits them) is dropped — neither emitted nor
// dead-lettered — and decode.empty_records says so to whoever reads its
// help (the README's metrics table is generated from it).
func TestEmptyRecordsAreDroppedAsTheirFigureSays(t *testing.T) {
	s, reg := newStage()
	res := s.Decode(rawBatch([]byte(""), b64([]byte(" \n\t\r\n")), b64([]byte("a line\n"))))
	assert.Empty(t, res.Dead, "an empty record is no dead letter")
	require.Len(t, all(res), 1)
	assert.Equal(t, "a line", string(all(res)[0].Message))
	assert.Equal(t, int64(2), reg.Value("decode.empty_records"))
	f, ok := reg.Snapshot().Family("decode.empty_records")
	require.True(t, ok)
	assert.Contains(t, f.Help, "dropped")
	assert.NotContains(t, f.Help, "dead-lettered")
}
