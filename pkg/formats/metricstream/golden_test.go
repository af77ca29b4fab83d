package metricstream

import (
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

const (
	goldenInput = "testdata/apigateway.ndjson"
	goldenOut   = "testdata/apigateway.golden"
	goldenOTel  = "testdata/apigateway.otel.bin"
)

func checkGolden(t *testing.T, path string, got []string) {
	t.Helper()
	text := strings.Join(got, "\n") + "\n"
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	}
	assert.Equal(t, string(mustRead(t, path)), text)
}

// The JSON output, one object per line as AWS documents it (the first line
// is the documentation's example, on API Gateway), decodes to the golden
// points, in order.
func TestGoldenJSON(t *testing.T) {
	t.Parallel()
	data := mustRead(t, goldenInput)
	require.Equal(t, FormatJSON, Detect(data))
	got, err := decodeAll(t, DefaultConfig(), data)
	require.NoError(t, err)
	checkGolden(t, goldenOut, renderAll(got))
}

// The same data points in the OpenTelemetry 1.0.0 output, built with the
// generated OTLP types as AWS documents it, in several frames, decode to
// the very same points.
func TestGoldenOTel(t *testing.T) {
	t.Parallel()
	rec := otelRecord(t, readDatums(t, goldenInput), 5)
	if *update {
		require.NoError(t, os.WriteFile(goldenOTel, rec, 0o644))
	}
	require.Equal(t, rec, mustRead(t, goldenOTel), "the stored record is what the generated types build")
	require.Equal(t, FormatOTel, Detect(rec))
	got, err := decodeAll(t, DefaultConfig(), rec)
	require.NoError(t, err)
	want := lines(mustRead(t, goldenOut))
	gotLines := renderAll(got)
	wantLines := make([]string, len(want))
	for i, l := range want {
		wantLines[i] = string(l)
	}
	slices.Sort(gotLines)
	slices.Sort(wantLines)
	assert.Equal(t, wantLines, gotLines)
}

// Spot checks of the golden points, spelled out: names as the Datadog
// integration names them, values, timestamps (seconds, the period start)
// and the integration's tag keys.
func TestAPIGatewayPoints(t *testing.T) {
	t.Parallel()
	petstore := []string{"apiname:petstore", "stage:prod", "region:us-east-1", "aws_account:123456789012"}
	want := []record.Metric{
		// The documentation's example: avg = 402/22, max, min, p99.
		{Name: "aws.apigateway.latency", Kind: record.MetricGauge, Timestamp: 1611929698, Value: 402.0 / 22, Unit: "millisecond",
			Tags: []string{"apiname:petstore", "stage:prod", "region:us-east-1", "aws_account:1234567890"}},
		{Name: "aws.apigateway.latency.maximum", Kind: record.MetricGauge, Timestamp: 1611929698, Value: 73, Unit: "millisecond",
			Tags: []string{"apiname:petstore", "stage:prod", "region:us-east-1", "aws_account:1234567890"}},
		{Name: "aws.apigateway.latency.p99", Kind: record.MetricGauge, Timestamp: 1611929698, Value: 70, Unit: "millisecond",
			Tags: []string{"apiname:petstore", "stage:prod", "region:us-east-1", "aws_account:1234567890"}},
		{Name: "aws.apigateway.integration_latency.p99_9", Kind: record.MetricGauge, Timestamp: 1611929640, Value: 59.5, Unit: "millisecond", Tags: petstore},
		{Name: "aws.apigateway.count", Kind: record.MetricCount, Timestamp: 1611929640, Interval: 60, Value: 22, Unit: "operation", Tags: petstore},
		{Name: "aws.apigateway.4xxerror", Kind: record.MetricCount, Timestamp: 1611929640, Interval: 60, Value: 3, Unit: "operation", Tags: petstore},
		{Name: "aws.apigateway.5xxerror", Kind: record.MetricCount, Timestamp: 1611929640, Interval: 60, Value: 1, Unit: "operation", Tags: petstore},
		{Name: "aws.apigateway.cache_hit_count", Kind: record.MetricCount, Timestamp: 1611929640, Interval: 60, Value: 15, Unit: "operation", Tags: petstore},
		{Name: "aws.apigateway.cache_miss_count", Kind: record.MetricCount, Timestamp: 1611929640, Interval: 60, Value: 5, Unit: "operation", Tags: petstore},
		{Name: "aws.apigateway.cache_hit_ratio", Kind: record.MetricGauge, Timestamp: 1611929640, Value: 0.75, Unit: "fraction", Tags: petstore},
		// Detailed metrics: method and resource; the API name normalised
		// as the enrichment stage normalises it.
		{Name: "aws.apigateway.latency", Kind: record.MetricGauge, Timestamp: 1611929640, Value: 7.5, Unit: "millisecond",
			Tags: []string{"apiname:petstore_api", "stage:prod", "region:us-east-1", "aws_account:123456789012", "method:get", "resource:/pets/{petId}"}},
		// HTTP API: ApiId, "$default" normalised, the route split.
		{Name: "aws.apigateway.4xx", Kind: record.MetricCount, Timestamp: 1611929640, Interval: 60, Value: 2, Unit: "operation",
			Tags: []string{"apiid:a1b2c3d4e5", "stage:_default", "region:us-east-1", "aws_account:123456789012"}},
		{Name: "aws.apigateway.5xx", Kind: record.MetricCount, Timestamp: 1611929640, Interval: 60, Value: 0, Unit: "operation",
			Tags: []string{"apiid:a1b2c3d4e5", "stage:_default", "region:us-east-1", "aws_account:123456789012"}},
		{Name: "aws.apigateway.data_processed_bytes", Kind: record.MetricCount, Timestamp: 1611929640, Interval: 60, Value: 20480, Unit: "byte",
			Tags: []string{"apiid:a1b2c3d4e5", "stage:_default", "region:us-east-1", "aws_account:123456789012"}},
		{Name: "aws.apigateway.latency", Kind: record.MetricGauge, Timestamp: 1611929640, Value: 5, Unit: "millisecond",
			Tags: []string{"apiid:a1b2c3d4e5", "stage:_default", "region:us-east-1", "aws_account:123456789012", "method:get", "resource:/pets/{id}"}},
		// WebSocket: the count and the integration's .sum.
		{Name: "aws.apigateway.connect_count", Kind: record.MetricCount, Timestamp: 1611929640, Interval: 60, Value: 4, Unit: "operation",
			Tags: []string{"apiid:ws0123abcd", "stage:production", "region:us-east-1", "aws_account:123456789012", "resource:$connect"}},
		{Name: "aws.apigateway.connect_count.sum", Kind: record.MetricCount, Timestamp: 1611929640, Interval: 60, Value: 4, Unit: "operation",
			Tags: []string{"apiid:ws0123abcd", "stage:production", "region:us-east-1", "aws_account:123456789012", "resource:$connect"}},
		// Other namespaces, generic mapping.
		{Name: "aws.lambda.duration", Kind: record.MetricGauge, Timestamp: 1611929640, Value: 100, Unit: "millisecond",
			Tags: []string{"functionname:authorizer", "region:us-east-1", "aws_account:123456789012"}},
		{Name: "aws.cloudwatch.metricstreams.metric_update.samplecount", Kind: record.MetricGauge, Timestamp: 1611929640, Value: 2,
			Tags: []string{"region:us-east-1", "aws_account:123456789012"}},
		{Name: "myapp.orders.orders_placed.sum", Kind: record.MetricGauge, Timestamp: 1611929640, Value: 7,
			Tags: []string{"env:prod", "region:us-east-1", "aws_account:123456789012"}},
		{Name: "aws.apigateway.count", Kind: record.MetricCount, Timestamp: 1611929640, Interval: 60, Value: 9, Unit: "operation",
			Tags: []string{"apiname:orders", "stage:v1", "region:eu-west-1", "aws_account:210987654321"}},
	}
	datums := readDatums(t, goldenInput)
	for name, rec := range map[string][]byte{
		"json":          mustRead(t, goldenInput),
		"opentelemetry": otelRecord(t, datums, 4),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := decodeAll(t, DefaultConfig(), rec)
			require.NoError(t, err)
			for _, w := range want {
				assert.Contains(t, renderAll(got), render(w))
			}
			for _, m := range got {
				assert.Equal(t, len(m.Tags), cap(m.Tags), "%s: tag slices are full, so that appending copies", m.Name)
			}
		})
	}
}
