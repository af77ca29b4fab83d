package metricstream

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// benchData is a realistic mix from one account: stages with the
// per-minute REST metrics (Count, 4XX, 5XX, cache hits and misses, Latency
// and IntegrationLatency with p50/p90/p99) and detailed Count metrics for
// three methods. 500 data points, about 150 KB of JSON: a metric stream's
// Firehose record. It returns the JSON record and its data points.
func benchData(tb testing.TB) ([]byte, []awsDatum) {
	var b strings.Builder
	n := 0
	add := func(metric, dims, value, unit string) {
		if n == 500 {
			return
		}
		fmt.Fprintf(&b, `{"metric_stream_name":"gwpipe","account_id":"123456789012","region":"us-east-1","namespace":"AWS/ApiGateway","metric_name":%q,"dimensions":{%s},"timestamp":1700000040000,"value":{%s},"unit":%q}`+"\n",
			metric, dims, value, unit)
		n++
	}
	for s := 0; n < 500; s++ {
		dims := fmt.Sprintf(`"ApiName":"api-%d","Stage":"prod"`, s)
		add("Count", dims, `"max":1.0,"min":1.0,"sum":1234.0,"count":1234.0`, "Count")
		add("4XXError", dims, `"max":1.0,"min":0.0,"sum":12.0,"count":1234.0`, "Count")
		add("5XXError", dims, `"max":1.0,"min":0.0,"sum":1.0,"count":1234.0`, "Count")
		add("CacheHitCount", dims, `"max":1.0,"min":0.0,"sum":900.0,"count":1234.0`, "Count")
		add("CacheMissCount", dims, `"max":1.0,"min":0.0,"sum":334.0,"count":1234.0`, "Count")
		add("Latency", dims, `"max":812.0,"min":3.0,"sum":45678.0,"count":1234.0,"p50":21.0,"p90":88.0,"p99":402.5`, "Milliseconds")
		add("IntegrationLatency", dims, `"max":800.0,"min":1.0,"sum":40000.0,"count":1234.0,"p50":18.0,"p90":80.0,"p99":390.0`, "Milliseconds")
		for _, m := range []string{"GET", "POST", "DELETE"} {
			add("Count", dims+fmt.Sprintf(`,"Method":%q,"Resource":"/items/{id}"`, m), `"max":1.0,"min":1.0,"sum":400.0,"count":400.0`, "Count")
		}
	}
	path := filepath.Join(tb.TempDir(), "bench.ndjson")
	require.NoError(tb, os.WriteFile(path, []byte(b.String()), 0o644))
	return []byte(b.String()), readDatums(tb, path)
}

func benchDecode(b *testing.B, data []byte, datums int) {
	d, err := NewDecoder(DefaultConfig())
	require.NoError(b, err)
	points := 0
	sink := func(record.Metric) { points++ }
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(data, sink); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(datums*b.N)/b.Elapsed().Seconds(), "datapoints/s")
	b.ReportMetric(float64(points)/b.Elapsed().Seconds(), "ddpoints/s")
}

// Run with -cpu 1: data points per second are then per CPU-second.
func BenchmarkDecodeJSON(b *testing.B) {
	data, ds := benchData(b)
	benchDecode(b, data, len(ds))
}

func BenchmarkDecodeOTel(b *testing.B) {
	_, ds := benchData(b)
	benchDecode(b, otelRecord(b, ds, 100), len(ds))
}

func BenchmarkDetect(b *testing.B) {
	js, ds := benchData(b)
	for name, data := range map[string][]byte{
		"json":          js,
		"opentelemetry": otelRecord(b, ds, 100),
		"cwlogs":        []byte(cwlEnvelope),
		"accesslog":     []byte(accessCLF),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Detect(data)
			}
		})
	}
}

// BenchmarkOTelGenerated is what the generated OTLP types cost to merely
// unmarshal the same record, mapping not included: the reason the decoder
// reads the wire itself.
func BenchmarkOTelGenerated(b *testing.B) {
	_, ds := benchData(b)
	data := otelRecord(b, ds, 100)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		for off := 0; off < len(data); {
			size, k := protowire.ConsumeVarint(data[off:])
			var req colmetricpb.ExportMetricsServiceRequest
			if err := proto.Unmarshal(data[off+k:off+k+int(size)], &req); err != nil {
				b.Fatal(err)
			}
			off += k + int(size)
		}
	}
	b.ReportMetric(float64(len(ds)*b.N)/b.Elapsed().Seconds(), "datapoints/s")
}
