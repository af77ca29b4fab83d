package stage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
)

func sampleBatch() *record.Batch {
	o1 := &record.Origin{Source: "firehose", RequestID: "req-1", SourceARN: "arn:aws:firehose:us-east-1:1:deliverystream/x", Stream: "x",
		Account: "123456789012", Region: "us-east-1", LogGroup: "API-Gateway-Execution-Logs_a1b2c3d4e5/prod", LogStream: "abc"}
	o2 := &record.Origin{Source: "replay", Replay: true, Counted: true, LogGroup: "g"}
	return &record.Batch{
		ID: "req-1/0", Origin: o1, Stage: "decode", Reason: "why",
		Records: []record.Record{
			{Origin: o1, EventID: "3195310660696698337880902507980421", Timestamp: 1700000000000, Message: []byte("(r) Method completed with status: 200"),
				Kind: record.KindExecution, Source: "apigateway", Service: "svc", Level: record.LevelWarn, TimeFixed: true, ParseError: "pe", Reason: "rs",
				Tags: []string{"aws_account:123456789012", "stage:prod"},
				Attrs: []record.Attr{record.StringAttr("http.method", []byte("GET")), record.IntAttr("http.status_code", 404),
					record.NumberAttr("apigateway.responseLength", []byte("512")), record.BoolAttr("apigateway.canary", true), {Key: "x", Kind: record.Null}}},
			{Origin: o2, Message: []byte{0, 1, 2, 0xff}, Timestamp: -5},
			{},
		},
		Metrics: []record.Metric{
			{Name: "apigateway.logs.count", Kind: record.MetricCount, Timestamp: 1700000000, Interval: 10, Value: 42, Host: "w1", Unit: "request", Tags: []string{"stage:prod"}},
			{Name: "apigateway.logs.latency", Kind: record.MetricDistribution, Timestamp: 1700000000, Values: []float64{1.5, 2, 300},
				Sketch: &record.Sketch{Count: 3, Sum: 303.5, Min: 1.5, Max: 300, Keys: []int32{-3, 0, 1200}, Counts: []uint32{1, 1, 1}}},
		},
	}
}

func TestBinaryCodecRoundTrip(t *testing.T) {
	t.Parallel()
	in := sampleBatch()
	msg, err := BinaryCodec{}.Marshal(context.Background(), in)
	require.NoError(t, err)
	out, err := BinaryCodec{}.Unmarshal(msg)
	require.NoError(t, err)

	assert.Equal(t, in.ID, out.ID)
	assert.Equal(t, in.Stage, out.Stage)
	assert.Equal(t, in.Reason, out.Reason)
	assert.Equal(t, *in.Origin, *out.Origin)
	require.Len(t, out.Records, 3)
	assert.Same(t, out.Origin, out.Records[0].Origin, "origins are shared after decoding, as before")
	for i := range in.Records {
		a, b := in.Records[i], out.Records[i]
		if a.Origin != nil {
			assert.Equal(t, *a.Origin, *b.Origin)
		} else {
			assert.Nil(t, b.Origin)
		}
		a.Origin, b.Origin = nil, nil
		assert.Equal(t, a, b, "record %d", i)
	}
	assert.Equal(t, in.Metrics, out.Metrics)
	assert.Nil(t, out.Ack, "the in-process acknowledgement does not cross a broker")
}

func TestBinaryCodecRejectsGarbage(t *testing.T) {
	t.Parallel()
	payload, err := EncodeBatch(sampleBatch())
	require.NoError(t, err)
	for name, p := range map[string][]byte{
		"empty":     nil,
		"not zstd":  []byte("hello"),
		"truncated": payload[:len(payload)/2],
	} {
		_, err := DecodeBatch(p)
		assert.Error(t, err, name)
	}
	_, err = BinaryCodec{}.Unmarshal(message.NewMessage("id", []byte("garbage")))
	assert.True(t, IsPermanent(err), "an undecodable message is poison, not worth retrying")
}

func TestBinaryCodecRandomBatches(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		b := make([]byte, r.IntN(20))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return string(b)
	}
	for n := 0; n < 200; n++ {
		in := &record.Batch{ID: str(), Origin: &record.Origin{Source: str(), LogGroup: str(), Replay: r.IntN(2) == 0}}
		for i := r.IntN(30); i > 0; i-- {
			in.Records = append(in.Records, record.Record{Origin: in.Origin, EventID: str(), Timestamp: r.Int64() - r.Int64(),
				Message: []byte(str() + "x"), Tags: []string{str()}, Attrs: []record.Attr{record.IntAttr(str(), r.Int64()), record.StringAttr(str(), []byte(str()+"y"))}})
		}
		p, err := EncodeBatch(in)
		require.NoError(t, err)
		out, err := DecodeBatch(p)
		require.NoError(t, err)
		require.Len(t, out.Records, len(in.Records))
		for i := range in.Records {
			assert.Equal(t, in.Records[i].EventID, out.Records[i].EventID)
			assert.Equal(t, in.Records[i].Message, out.Records[i].Message)
			assert.Equal(t, in.Records[i].Timestamp, out.Records[i].Timestamp)
			assert.Equal(t, in.Records[i].Attrs, out.Records[i].Attrs)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	p, _ := EncodeBatch(sampleBatch())
	f.Add(p)
	plain, _ := EncodeBatchWith(sampleBatch(), CompressNone)
	f.Add(plain)
	f.Add(plain[:len(plain)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(data)
		if err == nil && b == nil {
			t.Fatal("nil batch without error")
		}
	})
}

func BenchmarkBinaryCodec(b *testing.B) {
	in := &record.Batch{ID: "x", Origin: &record.Origin{Source: "firehose", LogGroup: "/aws/api-gateway/a1b2c3d4e5/prod", Account: "123456789012"}}
	msg := []byte(`{"apiId":"a1b2c3d4e5","stage":"prod","requestId":"3323ffe5-6ddf-45c8-896a-b45ec2284cc0","ip":"203.0.113.7","caller":"-","user":"-","requestTime":1732850000000,"httpMethod":"GET","resourcePath":"/pets/{petId}","status":404,"protocol":"HTTP/1.1","responseLength":512}`)
	for i := 0; i < 1000; i++ {
		in.Records = append(in.Records, record.Record{Origin: in.Origin, EventID: "31953106606966983378809025079804211143289615424298221568", Timestamp: 1700000000000, Message: msg,
			Attrs: []record.Attr{record.StringAttr("http.method", msg[100:103]), record.IntAttr("http.status_code", 404), record.StringAttr("http.route", msg[120:133])}})
	}
	b.ReportAllocs()
	var size int
	for i := 0; i < b.N; i++ {
		p, _ := EncodeBatch(in)
		size = len(p)
		if _, err := DecodeBatch(p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(size)/1000, "bytes/record")
}

// BenchmarkBinaryCodecRaw: a raw batch as ingest publishes it (10 records
// of 20 KB of gzip), encoded and decoded.
func BenchmarkBinaryCodecRaw(b *testing.B) {
	in := noiseBatch(10)
	b.SetBytes(200_000)
	b.ReportAllocs()
	for b.Loop() {
		p, _ := EncodeBatch(in)
		if _, err := DecodeBatch(p); err != nil {
			b.Fatal(err)
		}
	}
}

// Workers with either compression setting share a topic: the reader tells
// the two apart by the magic bytes.
func TestBinaryCodecReadsBothCompressions(t *testing.T) {
	t.Parallel()
	in := sampleBatch()
	s2p, err := EncodeBatchWith(in, CompressS2)
	require.NoError(t, err)
	plain, err := EncodeBatchWith(in, CompressNone)
	require.NoError(t, err)
	assert.Equal(t, "GWB", string(plain[:3]))
	assert.NotEqual(t, "GWB", string(s2p[:3]))
	a, err := DecodeBatch(s2p)
	require.NoError(t, err)
	b, err := DecodeBatch(plain)
	require.NoError(t, err)
	assert.Equal(t, a, b)
	_, err = DecodeBatch(plain[:len(plain)-3])
	assert.Error(t, err, "a truncated plain batch is refused")
	for _, name := range []string{"s2", "none"} {
		_, err := ParseCompression(name)
		assert.NoError(t, err)
	}
	_, err = ParseCompression("zstd")
	assert.ErrorContains(t, err, "s2 or none")
}

// TestBinaryCodecSendsIncompressibleBatchesPlain: a batch of gzip records,
// as ingest publishes them, gains nothing from S2; it goes plain, and
// reads back the same. A batch of text is compressed.
func TestBinaryCodecSendsIncompressibleBatchesPlain(t *testing.T) {
	t.Parallel()
	noise := noiseBatch(5)
	p, err := EncodeBatchWith(noise, CompressS2)
	require.NoError(t, err)
	assert.Equal(t, magic[:], p[:4], "sent plain")
	back, err := DecodeBatch(p)
	require.NoError(t, err)
	require.Len(t, back.Records, 5)
	assert.Equal(t, noise.Records[4].Message, back.Records[4].Message)

	text, err := EncodeBatchWith(sampleBatch(), CompressS2)
	require.NoError(t, err)
	plain, err := EncodeBatchWith(sampleBatch(), CompressNone)
	require.NoError(t, err)
	assert.NotEqual(t, magic[:], text[:4], "a compressible batch is compressed")
	assert.Less(t, len(text), len(plain))
}

func TestBinaryCodecValuesThatAliasTheMessage(t *testing.T) {
	t.Parallel()
	msg := []byte(`{"httpMethod":"GET","resourcePath":"/pets/{petId}","status":404}`)
	in := &record.Batch{Records: []record.Record{
		{Message: msg, Attrs: []record.Attr{record.StringAttr("http.method", msg[15:18]), record.StringAttr("http.route", msg[36:49]),
			record.StringAttr("other", []byte("not in the message")), record.IntAttr("http.status_code", 404)}},
		{Message: msg, Attrs: []record.Attr{record.StringAttr("http.method", msg[15:18])}}, // the key again: a reference
	}}
	p, err := EncodeBatch(in)
	require.NoError(t, err)
	out, err := DecodeBatch(p)
	require.NoError(t, err)
	for i := range in.Records {
		assert.Equal(t, in.Records[i].Attrs, out.Records[i].Attrs)
	}
	assert.Equal(t, "GET", string(out.Records[0].Attrs[0].Str))
	assert.Equal(t, "/pets/{petId}", string(out.Records[0].Attrs[1].Str))
}

// BenchmarkBinaryCodecParsed is a batch as it travels after parsing: 2,000
// access logs of one origin, ~20 attributes each aliasing their message,
// and a shared tag list.
func BenchmarkBinaryCodecParsed(b *testing.B) {
	o := &record.Origin{Source: "firehose", LogGroup: "/aws/api-gateway/a1b2c3d4e5/prod", Account: "123456789012", Region: "us-east-1"}
	tags := []string{"aws_account:123456789012", "region:us-east-1", "apiid:a1b2c3d4e5", "stage:prod", "apiname:petstore", "team:payments"}
	in := &record.Batch{ID: "x", Origin: o}
	for i := 0; i < 2000; i++ {
		msg := []byte(fmt.Sprintf(`{"apiId":"a1b2c3d4e5","stage":"prod","requestId":"3323ffe5-6ddf-45c8-896a-%012d","ip":"203.0.113.%d","caller":"-","user":"-","requestTime":%d,"httpMethod":"GET","resourcePath":"/pets/{petId}","status":404,"protocol":"HTTP/1.1","responseLength":512}`, i, i%250, 1732850000000+i))
		var attrs []record.Attr
		for j := 0; j < 20; j++ {
			attrs = append(attrs, record.StringAttr(fmt.Sprintf("apigateway.field%02d", j), msg[10+j:14+j]))
		}
		in.Records = append(in.Records, record.Record{Origin: o, EventID: fmt.Sprintf("3195310660696698337880902507980421114328961542429%07d", i),
			Timestamp: 1732850000000 + int64(i), Message: msg, Kind: record.KindAccess, Tags: tags, Attrs: attrs})
	}
	for _, c := range []struct {
		name string
		c    Compression
	}{{"s2", CompressS2}, {"none", CompressNone}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var size int
			for b.Loop() {
				p, _ := EncodeBatchWith(in, c.c)
				size = len(p)
				if _, err := DecodeBatch(p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(in.Records))/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(size)/float64(len(in.Records)), "bytes/record")
		})
	}
}

// noiseBatch is a raw batch as ingest publishes it: n records of 20 KB
// that compress no better than gzip does.
func noiseBatch(n int) *record.Batch {
	rng := rand.New(rand.NewPCG(7, 8))
	b := &record.Batch{ID: "raw"}
	for range n {
		msg := make([]byte, 20_000)
		for i := range msg {
			msg[i] = byte(rng.Uint32())
		}
		b.Records = append(b.Records, record.Record{Kind: record.KindLine, Message: msg})
	}
	return b
}
