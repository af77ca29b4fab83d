package metricstream

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// countLine is a Count datum: one point.
func countLine(stage string, sum int) string {
	return fmt.Sprintf(`{"metric_stream_name":"s","account_id":"123456789012","region":"us-east-1","namespace":"AWS/ApiGateway","metric_name":"Count","dimensions":{"ApiName":"petstore","Stage":%q},"timestamp":1611929640000,"value":{"max":1,"min":1,"sum":%d,"count":%d},"unit":"Count"}`, stage, sum, sum)
}

// A malformed line is reported with its line number, offset and bytes; the
// lines around it decode.
func TestDecodeJSONMalformedLines(t *testing.T) {
	t.Parallel()
	good := countLine("prod", 3)
	tests := []struct {
		name string
		line string
		err  string
	}{
		{"truncated", `{"metric_stream_name":"s","namespace":"AWS/ApiGateway"`, "unterminated object"},
		{"not json", `metric_stream_name=s namespace=AWS/ApiGateway`, "expected '{'"},
		{"string statistic", strings.Replace(good, `"sum":3`, `"sum":"3"`, 1), `value "sum": offset`},
		{"number out of range", strings.Replace(good, `"sum":3`, `"sum":1e999`, 1), "out of range"},
		{"dimension not a string", strings.Replace(good, `"Stage":"prod"`, `"Stage":7`, 1), `dimension "Stage": expected a string`},
		{"namespace not a string", strings.Replace(good, `"namespace":"AWS/ApiGateway"`, `"namespace":["AWS/ApiGateway"]`, 1), "namespace: expected a string"},
		{"no namespace", strings.Replace(good, `"namespace":"AWS/ApiGateway",`, ``, 1), "no namespace"},
		{"no metric name", strings.Replace(good, `"metric_name":"Count",`, ``, 1), "no metric name"},
		{"no timestamp", strings.Replace(good, `"timestamp":1611929640000,`, ``, 1), "no timestamp"},
		{"no value", strings.Replace(good, `"value":{"max":1,"min":1,"sum":3,"count":3},`, ``, 1), "no statistics"},
		{"negative count", strings.Replace(good, `"count":3`, `"count":-3`, 1), "negative sample count"},
		{"bad escape", strings.Replace(good, `"Stage":"prod"`, `"Stage":"pr\qod"`, 1), "invalid escape"},
		{"trailing garbage", good + ` x`, "expected '{'"},
		{"deep nesting", strings.Replace(good, `"unit":"Count"`, `"x":`+strings.Repeat("[", 100)+strings.Repeat("]", 100), 1), "nested too deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := good + "\n" + tt.line + "\r\n\n" + good + "\r\n"
			got, err := decodeAll(t, DefaultConfig(), []byte(rec))
			var de *DecodeError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, FormatJSON, de.Format)
			require.Len(t, de.Parts, 1)
			p := de.Parts[0]
			assert.Equal(t, 2, p.Line)
			assert.Equal(t, len(good)+1, p.Offset)
			assert.Equal(t, tt.line+"\r", string(p.Data), "the bad line, as it was")
			assert.ErrorContains(t, p.Err, tt.err)
			assert.Contains(t, err.Error(), "line 2")
			if tt.name == "trailing garbage" {
				// The object before the garbage decoded: its point went
				// out, and goes out again if the dead letter is replayed
				// (the same point, overwritten in Datadog).
				assert.Len(t, got, 3)
				return
			}
			require.Len(t, got, 2, "both good lines decode")
			for _, m := range got {
				assert.Equal(t, "aws.apigateway.count", m.Name)
				assert.Equal(t, 3.0, m.Value)
			}
		})
	}
}

func TestDecodeJSONSyntax(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rec  string
		want []string // rendered points
	}{
		{
			name: "escapes and unicode",
			rec: `{"metric_stream_name":"s","account_id":"123456789012","region":"us-east-1","namespace":"AWS\/ApiGateway","metric_name":"Count",` +
				`"dimensions":{"ApiName":"caf\u00e9 \"api\" \ud83d\ude00","Stage":"\u00c9t\u00e9"},"timestamp":1611929640000,"value":{"sum":2}}`,
			want: []string{`aws.apigateway.count count ts=1611929640 interval=60 value=2 unit=operation tags=apiname:café_api,stage:été,region:us-east-1,aws_account:123456789012`},
		},
		{
			name: "objects on one line, unknown fields and nulls",
			rec: `{"x":{"y":[1,true,false,null,"}"]},"metric_stream_name":"s","account_id":"1","region":"r","namespace":"AWS/ApiGateway","metric_name":"Count","timestamp":1.61192964E12,"value":{"sum":1,"p99":null,"TM(10%:90%)":3}}` +
				` {"metric_stream_name":"s","account_id":"1","region":"r","namespace":"AWS/ApiGateway","metric_name":"Count","timestamp":1611929700000,"value":{"sum":2}}`,
			want: []string{
				`aws.apigateway.count count ts=1611929640 interval=60 value=1 unit=operation tags=region:r,aws_account:1`,
				`aws.apigateway.count count ts=1611929700 interval=60 value=2 unit=operation tags=region:r,aws_account:1`,
			},
		},
		{
			name: "white space everywhere",
			rec: " { \"metric_stream_name\" : \"s\" , \"account_id\" : \"1\" , \"region\" : \"r\" , \"namespace\" : \"AWS/ApiGateway\" , " +
				"\"metric_name\" : \"Count\" , \"dimensions\" : { } , \"timestamp\" : 1611929640000 , \"value\" : { \"sum\" : 5 } } \n\n",
			want: []string{`aws.apigateway.count count ts=1611929640 interval=60 value=5 unit=operation tags=region:r,aws_account:1`},
		},
		{
			name: "extra statistics are not percentiles",
			rec: `{"metric_stream_name":"s","account_id":"1","region":"r","namespace":"AWS/ApiGateway","metric_name":"Latency","timestamp":1611929640000,` +
				`"value":{"count":3.0,"sum":20.0,"max":18.0,"min":0.0,"p99":17.0,"TM(25%:75%)":16.43,"IQM":16.0,"tm99":15.8,"wm98":16.2,"PR(:300)":85.0}}`,
			want: []string{
				`aws.apigateway.latency gauge ts=1611929640 interval=0 value=6.666666666666667 unit=millisecond tags=region:r,aws_account:1`,
				`aws.apigateway.latency.maximum gauge ts=1611929640 interval=0 value=18 unit=millisecond tags=region:r,aws_account:1`,
				`aws.apigateway.latency.minimum gauge ts=1611929640 interval=0 value=0 unit=millisecond tags=region:r,aws_account:1`,
				`aws.apigateway.latency.p99 gauge ts=1611929640 interval=0 value=17 unit=millisecond tags=region:r,aws_account:1`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeAll(t, DefaultConfig(), []byte(tt.rec))
			require.NoError(t, err)
			assert.Equal(t, tt.want, renderAll(got))
		})
	}
}

// frameOf wraps a raw (possibly corrupt) message in a length prefix.
func frameOf(msg []byte) []byte { return append(protowire.AppendVarint(nil, uint64(len(msg))), msg...) }

// A corrupt frame is reported with its bytes (length prefix included) and
// emits nothing; the frames around it decode. The reported bytes alone
// are a record that fails the same way, so a replayed dead letter is
// refused again rather than half decoded.
func TestDecodeOTelMalformedFrames(t *testing.T) {
	t.Parallel()
	datums := readDatums(t, goldenInput)
	good := otelRecord(t, datums[2:4], 10) // Count and 4XXError: 2 points
	valid := otelRequest(datums[2:3])
	b, err := proto.Marshal(valid)
	require.NoError(t, err)

	nanSum := proto.Clone(valid).(*colmetricpb.ExportMetricsServiceRequest)
	nanSum.ResourceMetrics[0].ScopeMetrics[0].Metrics[0].GetSummary().DataPoints[0].Sum = math.NaN()
	noName := proto.Clone(valid).(*colmetricpb.ExportMetricsServiceRequest)
	dp := noName.ResourceMetrics[0].ScopeMetrics[0].Metrics[0].GetSummary().DataPoints[0]
	dp.Attributes = dp.Attributes[2:] // Dimensions only
	noName.ResourceMetrics[0].ScopeMetrics[0].Metrics[0].Name = "requests"
	gauge := proto.Clone(valid).(*colmetricpb.ExportMetricsServiceRequest)
	ms := &gauge.ResourceMetrics[0].ScopeMetrics[0].Metrics
	*ms = append(*ms, &metricpb.Metric{Name: "amazonaws.com/AWS/ApiGateway/Count",
		Data: &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{DataPoints: []*metricpb.NumberDataPoint{{}}}}})

	tests := []struct {
		name   string
		bad    []byte
		err    string
		points int // from the bad frame itself
	}{
		{"garbage inside a frame", frameOf([]byte{0x0a, 0xff, 0xff, 0x01, 0x02}), "offset 0: unexpected EOF", 0},
		{"truncated message", frameOf(b[:len(b)-3]), "offset", 0},
		{"non-finite sum", appendFrame(t, nil, nanSum), "non-finite", 0},
		{"no namespace", appendFrame(t, nil, noName), "no namespace", 0},
		{"not a summary", appendFrame(t, nil, gauge), "not a summary", 1},
		// Protobuf of something else parses (unknown fields are skipped)
		// but must not vanish unnoticed.
		{"foreign protobuf without data points", frameOf([]byte{0x0a, 0x02, 0x3a, 0x00}), "no data points", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := append(append(append([]byte{}, good...), tt.bad...), good...)
			got, err := decodeAll(t, DefaultConfig(), rec)
			var de *DecodeError
			require.ErrorAs(t, err, &de)
			require.Len(t, de.Parts, 1)
			p := de.Parts[0]
			assert.Equal(t, 2, p.Frame)
			assert.Equal(t, len(good), p.Offset)
			assert.Equal(t, tt.bad, p.Data)
			assert.ErrorContains(t, p.Err, tt.err)
			assert.Len(t, got, 4+tt.points)

			_, err = decodeAll(t, DefaultConfig(), p.Data)
			require.ErrorAs(t, err, &de)
			assert.ErrorContains(t, de.Parts[0].Err, tt.err)
		})
	}

	t.Run("length overruns the record", func(t *testing.T) {
		rec := append(append([]byte{}, good...), protowire.AppendVarint(nil, 1000)...)
		rec = append(rec, 0x0a, 0x00)
		got, err := decodeAll(t, DefaultConfig(), rec)
		var de *DecodeError
		require.ErrorAs(t, err, &de)
		assert.Len(t, got, 2)
		require.Len(t, de.Parts, 1)
		assert.Equal(t, rec[len(good):], de.Parts[0].Data)
		assert.ErrorContains(t, de.Parts[0].Err, "overruns")
	})
	t.Run("invalid length prefix", func(t *testing.T) {
		rec := append(append([]byte{}, good...), bytes.Repeat([]byte{0xff}, 11)...)
		got, err := decodeAll(t, DefaultConfig(), rec)
		var de *DecodeError
		require.ErrorAs(t, err, &de)
		assert.Len(t, got, 2)
		assert.ErrorContains(t, de.Parts[0].Err, "frame length")
	})
}

// The OpenTelemetry 0.7.0 output, whose data points carry flat labels,
// decodes too.
func TestDecodeOTel070(t *testing.T) {
	t.Parallel()
	got, err := decodeAll(t, DefaultConfig(), otel07Record())
	require.NoError(t, err)
	assert.Equal(t, []string{
		"aws.apigateway.count count ts=1611929640 interval=60 value=22 unit=operation tags=apiname:petstore,stage:prod,region:us-east-1,aws_account:123456789012",
	}, renderAll(got))
}

// Points without a recorded value, and fields the decoder does not know,
// are skipped; a data point may name its metric by its name alone.
func TestDecodeOTelEdgeCases(t *testing.T) {
	t.Parallel()
	datums := readDatums(t, goldenInput)
	req := otelRequest(datums[2:3])
	m := req.ResourceMetrics[0].ScopeMetrics[0].Metrics[0]
	dp := m.GetSummary().DataPoints[0]
	dp.Attributes = dp.Attributes[2:] // no Namespace/MetricName attributes: from the name
	flagged := proto.Clone(dp).(*metricpb.SummaryDataPoint)
	flagged.Flags = uint32(metricpb.DataPointFlags_DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK)
	m.GetSummary().DataPoints = append(m.GetSummary().DataPoints, flagged)
	rec := appendFrame(t, nil, req)
	got, err := decodeAll(t, DefaultConfig(), rec)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"aws.apigateway.count count ts=1611929640 interval=60 value=22 unit=operation tags=apiname:petstore,stage:prod,region:us-east-1,aws_account:123456789012",
	}, renderAll(got))

	// An empty frame is valid and holds nothing.
	got, err = decodeAll(t, DefaultConfig(), []byte{0})
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestDecoderStats(t *testing.T) {
	t.Parallel()
	d, err := NewDecoder(DefaultConfig())
	require.NoError(t, err)
	rec := []byte(countLine("prod", 1) + "\nnope\n")
	n, err := d.Decode(rec, func(record.Metric) {})
	require.Error(t, err)
	assert.Equal(t, 1, n)
	s := d.Stats()
	assert.Equal(t, int64(1), s.Records)
	assert.Equal(t, int64(1), s.Malformed)
	assert.Equal(t, int64(1), s.Datums)
	assert.Equal(t, int64(1), s.Points)
}

// One Decoder serves concurrent Firehose requests.
func TestDecodeConcurrent(t *testing.T) {
	t.Parallel()
	d, err := NewDecoder(DefaultConfig())
	require.NoError(t, err)
	rec := mustRead(t, goldenInput)
	otel := otelRecord(t, readDatums(t, goldenInput), 6)
	want := len(lines(mustRead(t, goldenOut)))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			data := rec
			if i%2 == 1 {
				data = otel
			}
			for range 50 {
				n, err := d.Decode(data, func(record.Metric) {})
				// The cache ratio pairs within each record; across
				// goroutines the halves may pair with another copy's,
				// which yields the same ratio.
				assert.NoError(t, err)
				assert.InDelta(t, want, n, 1)
			}
		})
	}
	wg.Wait()
}

// Decoding a record of a known series does not allocate.
func TestDecodeAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	d, err := NewDecoder(DefaultConfig())
	require.NoError(t, err)
	var b strings.Builder
	for i := range 50 {
		b.WriteString(countLine(fmt.Sprint("s", i%5), i))
		b.WriteByte('\n')
	}
	rec := []byte(b.String())
	otel := otelRecord(t, readDatums(t, goldenInput)[:5], 5)
	sink := func(record.Metric) {}
	for name, data := range map[string][]byte{"json": rec, "opentelemetry": otel} {
		_, err := d.Decode(data, sink)
		require.NoError(t, err)
		allocs := testing.AllocsPerRun(100, func() { _, _ = d.Decode(data, sink) })
		assert.Zero(t, allocs, name)
	}
}

// A first frame of 123 bytes starts with its length, 0x7B, which is '{':
// the record is still OpenTelemetry, detected and decoded as such.
func TestOTelFrameThatStartsWithABrace(t *testing.T) {
	t.Parallel()
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	frame := func(stage string) *colmetricpb.ExportMetricsServiceRequest {
		return &colmetricpb.ExportMetricsServiceRequest{ResourceMetrics: []*metricpb.ResourceMetrics{{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
				{Key: "cloud.provider", Value: str("aws")},
			}},
			ScopeMetrics: []*metricpb.ScopeMetrics{{Metrics: []*metricpb.Metric{{
				Name: "amazonaws.com/AWS/ApiGateway/Count",
				Data: &metricpb.Metric_Summary{Summary: &metricpb.Summary{DataPoints: []*metricpb.SummaryDataPoint{{
					StartTimeUnixNano: 1611929640e9, Count: 1, Sum: 1,
					Attributes: []*commonpb.KeyValue{{Key: "Stage", Value: str(stage)}},
				}}}},
			}}}},
		}}}
	}
	var rec []byte
	for pad := 0; pad < 60 && (len(rec) == 0 || rec[0] != '{'); pad++ {
		rec = appendFrame(t, nil, frame(strings.Repeat("p", pad)))
	}
	require.Equal(t, byte('{'), rec[0], "a first frame of 123 bytes")
	rec = append(rec, otelRecord(t, readDatums(t, goldenInput)[:2], 1)...)
	assert.Equal(t, FormatOTel, Detect(rec))
	got, err := decodeAll(t, DefaultConfig(), rec)
	require.NoError(t, err)
	assert.NotEmpty(t, got)
}
