package decode

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

func gz(p string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
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

	assert.Equal(t, int64(1), reg.Counter("decode.control_messages").Load())
	assert.Equal(t, int64(1), reg.Counter("decode.empty_records").Load())
}

func TestBadRecordsAreDeadLetteredAlone(t *testing.T) {
	s, _ := newStage()
	truncated := gz(strings.Repeat(env, 50))
	in := rawBatch(
		b64(gz(env)),
		[]byte("!!!not base64!!!"),
		b64(truncated[:len(truncated)/2]),
		b64(gz(strings.Repeat(" ", 2<<20))), // bomb: over the 1 MiB limit
		b64(gz(env+"\n"+`{"messageType":"DATA_MESSAGE","logEvents":[{"id":"9"}]}`)), // second document broken
		b64(gz(`{"messageType":"DATA_MESSAGE","logEvents":[`)),
		[]byte(strings.Repeat("A", 1_500_000)), // oversized
		b64(gz(env)),
	)
	res := s.Decode(in)
	recs := all(res)
	assert.Len(t, recs, 4, "the good records on both sides survive")
	require.NotNil(t, res.Dead)
	assert.Equal(t, "decode", res.Dead.Stage)
	require.Len(t, res.Dead.Records, 6)
	reasons := []string{"invalid base64", "truncated", "exceeds the limit", "logEvents[0] has no message", "truncated JSON", "exceeds the 1024000-byte limit"}
	for i, want := range reasons {
		d := res.Dead.Records[i]
		assert.Contains(t, d.Reason, want)
		assert.Equal(t, in.Records[i+1].Message, d.Message, "the raw bytes are kept")
		assert.Equal(t, "req", d.Origin.RequestID)
	}
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

func FuzzDecode(f *testing.F) {
	f.Add(b64(gz(env)))
	f.Add(b64(gz(control + env)))
	f.Add([]byte("AAAA"))
	f.Add(b64([]byte("line one\nline two")))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, _ := newStage()
		res := s.Decode(rawBatch(data))
		n := len(all(res))
		if res.Dead != nil && n > 0 {
			t.Fatalf("a dead-lettered record also produced %d events", n)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/api-gateway/a1b2c3d4e5/prod","logStream":"s","subscriptionFilters":["f"],"logEvents":[`)
	for i := 0; i < 100; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"id":"31953106606966983378809025079804211143289615424298221568","timestamp":1432826855000,"message":"{\"apiId\":\"a1b2c3d4e5\",\"stage\":\"prod\",\"requestId\":\"3323ffe5-6ddf-45c8-896a-b45ec2284cc0\",\"ip\":\"203.0.113.7\",\"caller\":\"-\",\"user\":\"-\",\"requestTime\":1732850000000,\"httpMethod\":\"GET\",\"resourcePath\":\"/pets/{petId}\",\"status\":404,\"protocol\":\"HTTP/1.1\",\"responseLength\":512}"}`)
	}
	sb.WriteString(`]}`)
	rec := b64(gz(sb.String()))
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
