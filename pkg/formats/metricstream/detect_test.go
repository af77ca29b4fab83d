package metricstream

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

const (
	metricLine = `{"metric_stream_name":"MyMetricStream","account_id":"1234567890","region":"us-east-1","namespace":"AWS/ApiGateway","metric_name":"Latency","dimensions":{"ApiName":"petstore","Stage":"prod"},"timestamp":1611929698000,"value":{"max":73,"min":3,"sum":402,"count":22,"p99":70},"unit":"Milliseconds"}`
	// A CloudWatch Logs subscription envelope (after gunzip) whose log
	// event is itself metric-stream JSON: only top-level keys count.
	cwlEnvelope = `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"API-Gateway-Execution-Logs_a1b2c3d4e5/prod","logStream":"abc","subscriptionFilters":["gwpipe"],"logEvents":[{"id":"1","timestamp":1611929698000,"message":"{\"metric_stream_name\":\"x\",\"namespace\":\"AWS/ApiGateway\",\"metric_name\":\"Count\"}"}]}`
	cwlControl  = `{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1611929698000,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}`
	accessJSON  = `{"requestId":"c6af9ac6-7b61-11e6-9a41-93e8deadbeef","ip":"198.51.100.1","requestTime":"29/Jan/2021:14:14:58 +0000","httpMethod":"GET","resourcePath":"/pets","status":"200","protocol":"HTTP/1.1","responseLength":"42"}`
	accessCLF   = `198.51.100.1 - - [29/Jan/2021:14:14:58 +0000] "GET /prod/pets HTTP/1.1" 200 42 c6af9ac6-7b61-11e6-9a41-93e8deadbeef`
	accessCSV   = `198.51.100.1,-,-,29/Jan/2021:14:14:58 +0000,GET /prod/pets HTTP/1.1,200,42,c6af9ac6`
	accessXML   = `<request id="c6af9ac6-7b61-11e6-9a41-93e8deadbeef"> <ip>198.51.100.1</ip> <status>200</status> </request>`
	execLine    = `(c6af9ac6-7b61-11e6-9a41-93e8deadbeef) Method request path: {}`
)

// otel07Record builds a record in the OpenTelemetry 0.7.0 output: the same
// layout, but flat StringKeyValue labels (field 1 of the data point)
// instead of attributes.
func otel07Record() []byte {
	str := func(b []byte, num protowire.Number, s string) []byte {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendString(b, s)
	}
	msg := func(b []byte, num protowire.Number, m []byte) []byte {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendBytes(b, m)
	}
	kv := func(k, v string) []byte { // KeyValue with AnyValue string
		return msg(str(nil, 1, k), 2, str(nil, 1, v))
	}
	label := func(k, v string) []byte { return str(str(nil, 1, k), 2, v) }
	var res []byte
	res = msg(res, 1, kv("cloud.provider", "aws"))
	res = msg(res, 1, kv("cloud.account.id", "123456789012"))
	res = msg(res, 1, kv("cloud.region", "us-east-1"))
	var dp []byte
	dp = msg(dp, 1, label("Namespace", "AWS/ApiGateway"))
	dp = msg(dp, 1, label("MetricName", "Count"))
	dp = msg(dp, 1, label("ApiName", "petstore"))
	dp = msg(dp, 1, label("Stage", "prod"))
	dp = protowire.AppendTag(dp, 2, protowire.Fixed64Type)
	dp = protowire.AppendFixed64(dp, 1611929640e9)
	dp = protowire.AppendTag(dp, 3, protowire.Fixed64Type)
	dp = protowire.AppendFixed64(dp, 1611929700e9)
	dp = protowire.AppendTag(dp, 4, protowire.Fixed64Type)
	dp = protowire.AppendFixed64(dp, 22)
	dp = protowire.AppendTag(dp, 5, protowire.Fixed64Type)
	dp = protowire.AppendFixed64(dp, 0x4036000000000000) // 22.0
	metric := str(nil, 1, "amazonaws.com/AWS/ApiGateway/Count")
	metric = str(metric, 3, "1")
	metric = msg(metric, 11, msg(nil, 1, dp)) // double_summary
	ilm := msg(nil, 2, metric)
	rm := msg(nil, 1, res)
	rm = msg(rm, 2, ilm) // instrumentation_library_metrics
	frame := msg(nil, 1, rm)
	return protowire.AppendBytes(nil, frame)
}

func TestDetect(t *testing.T) {
	t.Parallel()
	datums := readDatums(t, goldenInput)
	otel := otelRecord(t, datums, 3)
	// OTLP from something other than a metric stream: no AWS marker.
	foreign := appendFrame(t, nil, otelRequestForeign())
	first, k := protowire.ConsumeVarint(otel)
	truncated := otel[:k+int(first)/2]
	tests := []struct {
		name string
		data []byte
		want Format
	}{
		{"json metric line", []byte(metricLine), FormatJSON},
		{"json record", mustRead(t, goldenInput), FormatJSON},
		{"json after blank lines", []byte("\n\r\n  " + metricLine + "\n"), FormatJSON},
		{"json keys in another order", []byte(`{"namespace":"AWS/ApiGateway","metric_stream_name":"s","x":1}`), FormatJSON},
		{"opentelemetry 1.0.0", otel, FormatOTel},
		{"opentelemetry 0.7.0", otel07Record(), FormatOTel},
		{"cloudwatch logs envelope", []byte(cwlEnvelope), FormatNone},
		{"cloudwatch logs control message", []byte(cwlControl), FormatNone},
		{"still gzipped metrics", corpus.Gzip([]byte(metricLine)), FormatNone},
		{"still gzipped envelope", corpus.Gzip([]byte(cwlEnvelope)), FormatNone},
		{"access log json", []byte(accessJSON), FormatNone},
		{"access log clf", []byte(accessCLF), FormatNone},
		{"access log csv", []byte(accessCSV), FormatNone},
		{"access log xml", []byte(accessXML), FormatNone},
		{"execution log line", []byte(execLine), FormatNone},
		{"keys only nested", []byte(`{"a":{"metric_stream_name":"s","namespace":"AWS/ApiGateway"}}`), FormatNone},
		{"keys only as values", []byte(`{"a":"metric_stream_name","b":"namespace"}`), FormatNone},
		{"stream name without metric", []byte(`{"metric_stream_name":"s","x":1}`), FormatNone},
		{"datum cut in a value", []byte(`{"metric_stream_name":"s","account_id":"1234`), FormatJSON},
		{"datum cut after a key", []byte(`{"metric_stream_name":"s","account_id"`), FormatJSON},
		{"datum cut after a comma", []byte(`{"metric_stream_name":"s",` + "\n" + metricLine), FormatJSON},
		{"datum cut in the stream name", []byte(`{"metric_stream_name":"s`), FormatJSON},
		{"cut before naming a stream", []byte(`{"account_id":"1234","metric_str`), FormatNone},
		{"stream name, then garbage", []byte(`{"metric_stream_name":"s";"namespace":"x"}`), FormatNone},
		{"keys on the second line only", []byte(accessJSON + "\n" + metricLine), FormatNone},
		{"empty", nil, FormatNone},
		{"blank", []byte(" \n\t"), FormatNone},
		{"empty object", []byte("{}"), FormatNone},
		{"otlp without aws markers", foreign, FormatNone},
		{"opentelemetry truncated in its first frame", truncated, FormatNone},
		{"zero-length frame", []byte{0}, FormatNone},
		{"zero-length frames only", []byte{0, 0, 0}, FormatNone},
		{"opentelemetry after empty frames", append([]byte{0, 0}, otel...), FormatOTel},
		{"otlp without aws markers after an empty frame", append([]byte{0}, foreign...), FormatNone},
		{"length prefix only", []byte{0x80}, FormatNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Detect(tt.data))
		})
	}
}

// An empty frame (length 0: an ExportMetricsServiceRequest with nothing in
// it, which a writer flushing an empty batch emits) holds nothing, before
// the first frame as between two: the record is still a metric stream's
// and every point of its other frames is read. Detect took a record that
// started with one for something else (binary, dead-lettered): its points
// were never read.
func TestEmptyFramesHoldNothing(t *testing.T) {
	t.Parallel()
	datums := readDatums(t, goldenInput)
	otel := otelRecord(t, datums, 3)
	want, err := decodeAll(t, DefaultConfig(), otel)
	require.NoError(t, err)
	require.NotEmpty(t, want)
	first, k := protowire.ConsumeVarint(otel)
	split := k + int(first)
	for name, rec := range map[string][]byte{
		"before the first frame": append([]byte{0, 0}, otel...),
		"between frames":         append(append(append([]byte{}, otel[:split]...), 0), otel[split:]...),
		"after the last frame":   append(append([]byte{}, otel...), 0),
	} {
		t.Run(name, func(t *testing.T) {
			require.True(t, IsOTel(rec))
			require.Equal(t, FormatOTel, Detect(rec))
			got, err := decodeAll(t, DefaultConfig(), rec)
			require.NoError(t, err)
			assert.Equal(t, renderAll(want), renderAll(got))
		})
	}
}

// Random bytes and random text are never taken for metrics.
func TestDetectRandom(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	const printable = " abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/:.,;\"'[]{}()<>=+*&^%$#@!\t\n"
	for i := range 20000 {
		b := make([]byte, 1+rng.IntN(256))
		for j := range b {
			if i%2 == 0 {
				b[j] = byte(rng.UintN(256))
			} else {
				b[j] = printable[rng.IntN(len(printable))]
			}
		}
		require.Equal(t, FormatNone, Detect(b), "%q", b)
	}
}

func otelRequestForeign() *colmetricpb.ExportMetricsServiceRequest {
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	return &colmetricpb.ExportMetricsServiceRequest{ResourceMetrics: []*metricpb.ResourceMetrics{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: str("checkout")}}},
		ScopeMetrics: []*metricpb.ScopeMetrics{{Metrics: []*metricpb.Metric{{
			Name: "http.server.requests",
			Data: &metricpb.Metric_Summary{Summary: &metricpb.Summary{DataPoints: []*metricpb.SummaryDataPoint{{Count: 1, Sum: 1}}}},
		}}}},
	}}}
}

// Metric-stream records arrive on the same Firehose endpoint as logs, in
// the same requests. Decoded as the Firehose source decodes records (base64,
// then gunzip when gzipped), each is told apart by content: the log records
// are left alone, every metric point arrives, and a malformed metric line
// is reported with its bytes while the rest of its record decodes.
func TestMixedFirehoseRequest(t *testing.T) {
	t.Parallel()
	datums := readDatums(t, goldenInput)
	badLine := `{"metric_stream_name":"MyMetricStream","account_id":"123456789012","region":"us-east-1","namespace":"AWS/ApiGateway","metric_name":"Count","timestamp":1611929640000,"value":{"sum":"lots"}}`
	type fhRecord struct {
		Data string `json:"data"`
	}
	records := [][]byte{
		corpus.Gzip([]byte(cwlEnvelope)),
		mustRead(t, goldenInput),
		[]byte(accessCLF),
		otelRecord(t, datums, 7),
		corpus.Gzip([]byte(cwlControl)),
		[]byte(metricLine + "\n" + badLine + "\n" + metricLine + "\n"),
		[]byte(accessJSON),
	}
	body := struct {
		RequestID string     `json:"requestId"`
		Timestamp int64      `json:"timestamp"`
		Records   []fhRecord `json:"records"`
	}{RequestID: "ed4d2b40-0c6a-4bf5-b3d2-8f7e1c7c8a21", Timestamp: 1611929700000}
	for _, r := range records {
		body.Records = append(body.Records, fhRecord{Data: base64.StdEncoding.EncodeToString(r)})
	}
	raw, err := json.Marshal(body)
	require.NoError(t, err)

	// What the Firehose source and decode stage do with the request.
	require.NoError(t, json.Unmarshal(raw, &body))
	dec, err := NewDecoder(DefaultConfig())
	require.NoError(t, err)
	var formats []Format
	var points []record.Metric
	var bad []BadPart
	for _, r := range body.Records {
		data, err := base64.StdEncoding.DecodeString(r.Data)
		require.NoError(t, err)
		if len(data) > 2 && data[0] == 0x1f && data[1] == 0x8b {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			require.NoError(t, err)
			var buf bytes.Buffer
			_, err = buf.ReadFrom(zr)
			require.NoError(t, err)
			data = buf.Bytes()
		}
		f := Detect(data)
		formats = append(formats, f)
		if f == FormatNone {
			continue
		}
		_, err = dec.Decode(data, func(m record.Metric) { points = append(points, m) })
		var de *DecodeError
		if err != nil {
			require.ErrorAs(t, err, &de)
			bad = append(bad, de.Parts...)
		}
	}
	assert.Equal(t, []Format{FormatNone, FormatJSON, FormatNone, FormatOTel, FormatNone, FormatJSON, FormatNone}, formats)

	golden := len(lines(mustRead(t, goldenOut)))
	// Golden points twice (JSON and OpenTelemetry), and the documentation's
	// example line twice (4 points each); the cache ratio of the second
	// copy pairs up too.
	assert.Len(t, points, 2*golden+2*4)
	require.Len(t, bad, 1)
	assert.Equal(t, 2, bad[0].Line)
	assert.Equal(t, badLine, string(bad[0].Data))
	assert.Contains(t, bad[0].Err.Error(), `value "sum"`)
}
