package corpus

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Datum is one metric-stream datum in the JSON output format
// (CloudWatch-metric-streams-formats-json), read with encoding/json.
type Datum struct {
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

// ucum is CloudWatch's unit translation for the OpenTelemetry output.
var ucum = map[string]string{
	"Seconds": "s", "Microseconds": "us", "Milliseconds": "ms", "Bytes": "By", "Kilobytes": "kBy",
	"Bits": "bit", "Percent": "%", "Count": "{Count}", "None": "1",
}

// otelFrames encodes datums, written as JSON lines, as the OpenTelemetry
// 1.0.0 output of a metric stream (CloudWatch-metric-streams-formats-
// opentelemetry-100): ExportMetricsServiceRequest messages, each preceded
// by its length as a varint. A blank line starts a new frame; a line
// "!raw <base64>" is a frame of those bytes (not a metric stream's).
func otelFrames(src string) ([]byte, error) {
	var out []byte
	var frame []Datum
	flush := func() error {
		if len(frame) == 0 {
			return nil
		}
		b, err := proto.Marshal(ExportRequest(frame))
		if err != nil {
			return err
		}
		out = protowire.AppendBytes(out, b)
		frame = frame[:0]
		return nil
	}
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			if err := flush(); err != nil {
				return nil, err
			}
		case strings.HasPrefix(line, "!raw "):
			if err := flush(); err != nil {
				return nil, err
			}
			b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, "!raw "))
			if err != nil {
				return nil, fmt.Errorf("otel: %w", err)
			}
			out = protowire.AppendBytes(out, b)
		default:
			var d Datum
			if err := json.Unmarshal([]byte(line), &d); err != nil {
				return nil, fmt.Errorf("otel: datum %q: %w", line, err)
			}
			frame = append(frame, d)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// ExportRequest is one frame: a ResourceMetrics per account and region
// (attributes cloud.provider, cloud.account.id, cloud.region,
// aws.exporter.arn), a summary metric amazonaws.com/<namespace>/<metric>
// per datum with one data point: the period's start and end, count, sum,
// quantile 0 the minimum, 1 the maximum, the percentiles between, and the
// attributes Namespace, MetricName and Dimensions.
func ExportRequest(ds []Datum) *colmetricpb.ExportMetricsServiceRequest {
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	req := &colmetricpb.ExportMetricsServiceRequest{}
	var sm *metricpb.ScopeMetrics
	var acct, region string
	for _, d := range ds {
		if sm == nil || d.AccountID != acct || d.Region != region {
			acct, region = d.AccountID, d.Region
			sm = &metricpb.ScopeMetrics{}
			req.ResourceMetrics = append(req.ResourceMetrics, &metricpb.ResourceMetrics{
				Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
					{Key: "cloud.provider", Value: str("aws")},
					{Key: "cloud.account.id", Value: str(acct)},
					{Key: "cloud.region", Value: str(region)},
					{Key: "aws.exporter.arn", Value: str("arn:aws:cloudwatch:" + region + ":" + acct + ":metric-stream/" + d.MetricStreamName)},
				}},
				ScopeMetrics: []*metricpb.ScopeMetrics{sm},
			})
		}
		names := make([]string, 0, len(d.Dimensions))
		for k := range d.Dimensions {
			names = append(names, k)
		}
		sort.Strings(names)
		var dims []*commonpb.KeyValue
		for _, k := range names {
			dims = append(dims, &commonpb.KeyValue{Key: k, Value: str(d.Dimensions[k])})
		}
		var qs []*metricpb.SummaryDataPoint_ValueAtQuantile
		for stat, v := range d.Value {
			q, ok := quantile(stat)
			if ok {
				qs = append(qs, &metricpb.SummaryDataPoint_ValueAtQuantile{Quantile: q, Value: v})
			}
		}
		sort.Slice(qs, func(i, j int) bool { return qs[i].Quantile < qs[j].Quantile })
		start := uint64(d.Timestamp) * 1e6
		sm.Metrics = append(sm.Metrics, &metricpb.Metric{
			Name: "amazonaws.com/" + d.Namespace + "/" + d.MetricName,
			Unit: ucum[d.Unit],
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

// quantile reads a statistic's quantile: min 0, max 1, pNN NN/100.
func quantile(stat string) (float64, bool) {
	switch {
	case stat == "min":
		return 0, true
	case stat == "max":
		return 1, true
	case strings.HasPrefix(stat, "p"):
		p, err := strconv.ParseFloat(stat[1:], 64)
		return p / 100, err == nil
	}
	return 0, false
}
