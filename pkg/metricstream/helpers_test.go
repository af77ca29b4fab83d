package metricstream

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// awsDatum is one JSON-output object, as AWS documents the format
// (CloudWatch-metric-streams-formats-json), read with encoding/json: an
// oracle independent of the decoder under test.
type awsDatum struct {
	MetricStreamName string             `json:"metric_stream_name"`
	AccountID        string             `json:"account_id"`
	Region           string             `json:"region"`
	Namespace        string             `json:"namespace"`
	MetricName       string             `json:"metric_name"`
	Dimensions       map[string]string  `json:"dimensions"`
	Timestamp        int64              `json:"timestamp"`
	Value            map[string]float64 `json:"value"`
	Unit             string             `json:"unit"`
}

func readDatums(t testing.TB, path string) []awsDatum {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []awsDatum
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var d awsDatum
		require.NoError(t, json.Unmarshal(sc.Bytes(), &d))
		out = append(out, d)
	}
	require.NoError(t, sc.Err())
	return out
}

// ucum is CloudWatch's unit translation for the OpenTelemetry output
// (CloudWatch-metric-streams-formats-opentelemetry-translation-100).
var ucum = map[string]string{
	"Seconds": "s", "Microseconds": "us", "Milliseconds": "ms", "Bytes": "By",
	"Kilobytes": "kBy", "Bits": "bit", "Percent": "%", "Count": "{Count}", "None": "1",
}

// otelRequest builds the ExportMetricsServiceRequest CloudWatch writes for
// datums: one ResourceMetrics per run of datums of one account and region,
// with cloud.provider, cloud.account.id, cloud.region and aws.exporter.arn;
// one summary metric per datum named amazonaws.com/<namespace>/<metric>;
// startTimeUnixNano the period start, timeUnixNano its end; count and sum;
// quantile 0 the minimum, 1 the maximum, the percentiles in between; and
// the attributes Namespace, MetricName and Dimensions (a kvlist).
func otelRequest(datums []awsDatum) *colmetricpb.ExportMetricsServiceRequest {
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	req := &colmetricpb.ExportMetricsServiceRequest{}
	var rm *metricpb.ResourceMetrics
	var lastAcct, lastRegion string
	for _, d := range datums {
		if rm == nil || d.AccountID != lastAcct || d.Region != lastRegion {
			lastAcct, lastRegion = d.AccountID, d.Region
			rm = &metricpb.ResourceMetrics{
				Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
					{Key: "cloud.provider", Value: str("aws")},
					{Key: "cloud.account.id", Value: str(d.AccountID)},
					{Key: "cloud.region", Value: str(d.Region)},
					{Key: "aws.exporter.arn", Value: str(fmt.Sprintf("arn:aws:cloudwatch:%s:%s:metric-stream/%s", d.Region, d.AccountID, d.MetricStreamName))},
				}},
				ScopeMetrics: []*metricpb.ScopeMetrics{{}},
			}
			req.ResourceMetrics = append(req.ResourceMetrics, rm)
		}
		var dims []*commonpb.KeyValue
		for _, k := range sortedKeys(d.Dimensions) {
			dims = append(dims, &commonpb.KeyValue{Key: k, Value: str(d.Dimensions[k])})
		}
		var qs []*metricpb.SummaryDataPoint_ValueAtQuantile
		for stat, v := range d.Value {
			var q float64
			switch {
			case stat == "min":
				q = 0
			case stat == "max":
				q = 1
			case strings.HasPrefix(stat, "p"):
				p, err := strconv.ParseFloat(stat[1:], 64)
				if err != nil {
					continue
				}
				q = p / 100
			default:
				continue
			}
			qs = append(qs, &metricpb.SummaryDataPoint_ValueAtQuantile{Quantile: q, Value: v})
		}
		sort.Slice(qs, func(i, j int) bool { return qs[i].Quantile < qs[j].Quantile })
		start := uint64(d.Timestamp) * 1e6
		unit := ucum[d.Unit]
		rm.ScopeMetrics[0].Metrics = append(rm.ScopeMetrics[0].Metrics, &metricpb.Metric{
			Name: "amazonaws.com/" + d.Namespace + "/" + d.MetricName,
			Unit: unit,
			Data: &metricpb.Metric_Summary{Summary: &metricpb.Summary{DataPoints: []*metricpb.SummaryDataPoint{{
				StartTimeUnixNano: start,
				TimeUnixNano:      start + 60e9,
				Count:             uint64(d.Value["count"]),
				Sum:               d.Value["sum"],
				QuantileValues:    qs,
				Attributes: []*commonpb.KeyValue{
					{Key: "Namespace", Value: str(d.Namespace)},
					{Key: "MetricName", Value: str(d.MetricName)},
					{Key: "Dimensions", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{
						KvlistValue: &commonpb.KeyValueList{Values: dims}}}},
				},
			}}}},
		})
	}
	return req
}

// otelRecord frames the datums as CloudWatch does: each
// ExportMetricsServiceRequest preceded by its length as an unsigned varint,
// at most perFrame datums each.
func otelRecord(t testing.TB, datums []awsDatum, perFrame int) []byte {
	t.Helper()
	var out []byte
	for len(datums) > 0 {
		n := min(perFrame, len(datums))
		out = appendFrame(t, out, otelRequest(datums[:n]))
		datums = datums[n:]
	}
	return out
}

func appendFrame(t testing.TB, out []byte, req proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(req)
	require.NoError(t, err)
	out = protowire.AppendVarint(out, uint64(len(b)))
	return append(out, b...)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// render writes a point on one line, for golden files and comparisons.
func render(m record.Metric) string {
	return fmt.Sprintf("%s %s ts=%d interval=%d value=%s unit=%s tags=%s",
		m.Name, m.Kind, m.Timestamp, m.Interval, strconv.FormatFloat(m.Value, 'g', -1, 64), m.Unit, strings.Join(m.Tags, ","))
}

func renderAll(ms []record.Metric) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = render(m)
	}
	return out
}

// decodeAll decodes data with a fresh decoder of cfg.
func decodeAll(t testing.TB, cfg Config, data []byte) ([]record.Metric, error) {
	t.Helper()
	d, err := NewDecoder(cfg)
	require.NoError(t, err)
	var got []record.Metric
	n, err := d.Decode(data, func(m record.Metric) { got = append(got, m) })
	require.Equal(t, len(got), n, "Decode's count matches the points emitted")
	return got, err
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func lines(b []byte) [][]byte { return bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) }
