package metricstream

import (
	"bytes"

	"google.golang.org/protobuf/encoding/protowire"
)

// Detect tells whether one decoded Firehose record (after base64 and any
// gzip), or one line of it, comes from a CloudWatch metric stream, and in
// which format, by its content alone:
//
//   - OpenTelemetry: the record starts, after any empty frames (a zero
//     length), with a varint length that fits in the record, the frame it
//     delimits starts with field 1 (resource_metrics) and parses as protobuf down to an AWS marker: a
//     resource attribute aws.exporter.arn or cloud.provider "aws", or a
//     metric named amazonaws.com/…. Text cannot pass: it would need a
//     length byte, then 0x0A, then nested well-formed lengths and the
//     marker strings at the right places. It is tried first: a first
//     frame of 123 bytes starts with 0x7B, which is '{'.
//   - JSON: the first line is a JSON object whose top-level keys include
//     "metric_stream_name" and "namespace" or "metric_name", or that starts
//     naming its metric stream and is cut short before it ends. A CloudWatch
//     Logs envelope ({"messageType":…}) has none of them at the top level,
//     even when its log events carry metric-stream JSON as text; an access
//     log, JSON or not, has no such keys.
//
// JSON detection reads the first line only: a caller with a record of
// several lines that may not all be metric-stream lines (the decode stage)
// asks line by line. Still-gzipped data (1f 8b) is not a metric-stream
// record: gunzip first. Detect reads at most the first line (JSON) or the
// first frame (protobuf) and does not allocate.
func Detect(data []byte) Format {
	if IsOTel(data) {
		return FormatOTel
	}
	if len(data) == 0 || len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		return FormatNone
	}
	if looksJSON(data) && probeJSON(data) {
		return FormatJSON
	}
	return FormatNone
}

// IsOTel is Detect(data) == FormatOTel, without the JSON probe: a caller
// that asks only about OpenTelemetry output (the decode stage, of every
// record) would otherwise scan a whole CloudWatch envelope's top-level
// values for metric-stream keys it cannot have.
func IsOTel(data []byte) bool {
	if len(data) == 0 || len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		return false
	}
	return probeOTel(data)
}

// probeJSON looks for the metric-stream keys among the top-level keys of
// the first line's object. A line that names its metric stream and then
// ends before the object does (a datum cut short) is one too: the JSON
// decoder then refuses it as malformed, where it would otherwise be
// delivered as a log.
func probeJSON(data []byte) bool {
	// Only the first non-blank line counts.
	i := skipWS(data, 0)
	if nl := bytes.IndexByte(data[i:], '\n'); nl >= 0 {
		data = data[:i+nl]
	}
	if i >= len(data) || data[i] != '{' {
		return false
	}
	var stream, named bool
	// cut says whether a datum that named its stream ended at pos.
	cut := func(pos int) bool { return stream && pos >= len(data) }
	i = skipWS(data, i+1)
	for i < len(data) && data[i] == '"' {
		end, err := skipValue(data, i, 0)
		if err != nil {
			return cut(end)
		}
		key := data[i+1 : end-1]
		switch string(key) {
		case "metric_stream_name":
			stream = true
		case "namespace", "metric_name":
			named = true
		}
		if stream && named {
			return true
		}
		if i = skipWS(data, end); i >= len(data) || data[i] != ':' {
			return cut(i)
		}
		if i, err = skipValue(data, skipWS(data, i+1), 0); err != nil {
			return cut(i)
		}
		if i = skipWS(data, i); i >= len(data) || data[i] != ',' {
			return cut(i)
		}
		i = skipWS(data, i+1)
	}
	return cut(i)
}

// SkipEmptyFrames returns data after its leading empty frames. A length of
// zero delimits an ExportMetricsServiceRequest with nothing in it (proto3
// writes an empty message as no bytes), which a writer flushing an empty
// batch emits: it is a valid frame that holds nothing, and the first frame
// that holds something tells what the record is.
func SkipEmptyFrames(data []byte) []byte {
	i := 0
	for i < len(data) && data[i] == 0 {
		i++
	}
	return data[i:]
}

// probeOTel checks the first frame that is not empty for a CloudWatch
// metric stream's structure and markers.
func probeOTel(data []byte) bool {
	data = SkipEmptyFrames(data)
	size, k := protowire.ConsumeVarint(data)
	if k <= 0 || size == 0 || size > uint64(len(data)-k) {
		return false
	}
	frame := data[k : k+int(size)]
	if uint64(frame[0]) != protowire.EncodeTag(fRequestResourceMetrics, protowire.BytesType) {
		return false
	}
	p := otelParser{frame: frame}
	it := iter{b: frame}
	for it.next() {
		if it.num == fRequestResourceMetrics && it.typ == protowire.BytesType {
			// The first ResourceMetrics decides.
			return it.err == nil && p.probeResourceMetrics(it.val)
		}
	}
	return false
}

// probeResourceMetrics walks a ResourceMetrics (well-formed up to the
// marker) for an AWS marker.
func (p *otelParser) probeResourceMetrics(b []byte) bool {
	it := iter{b: b}
	for it.next() {
		if it.typ != protowire.BytesType {
			continue
		}
		switch it.num {
		case fResourceMetricsResource:
			attrs := iter{b: it.val}
			for attrs.next() {
				if attrs.num != fResourceAttributes || attrs.typ != protowire.BytesType {
					continue
				}
				key, val, kind, err := p.keyValue(attrs.val)
				if err != nil {
					return false
				}
				if string(key) == "aws.exporter.arn" || string(key) == "cloud.provider" && kind == anyString && string(val) == "aws" {
					return true
				}
			}
			if attrs.err != nil {
				return false
			}
		case fResourceMetricsScope, fResourceMetricsDeprecated:
			scope := iter{b: it.val}
			for scope.next() {
				if scope.num != fScopeMetrics || scope.typ != protowire.BytesType {
					continue
				}
				m := iter{b: scope.val}
				for m.next() {
					if m.num == fMetricName && m.typ == protowire.BytesType && bytes.HasPrefix(m.val, []byte(metricNamePrefix)) {
						return true
					}
				}
				if m.err != nil {
					return false
				}
			}
			if scope.err != nil {
				return false
			}
		}
	}
	return false
}
