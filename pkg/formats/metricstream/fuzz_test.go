package metricstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"testing"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// The corpora live under testdata/fuzz/<target>; the seeds below are the
// records the other tests use.

func FuzzDecodeJSON(f *testing.F) {
	for _, l := range lines(mustRead(f, goldenInput)) {
		f.Add(l)
	}
	f.Add(mustRead(f, goldenInput))
	f.Add([]byte(metricLine + "\n" + countLine("prod", 3) + "\r\n{\"metric_stream_name\":\n"))
	f.Add([]byte(cacheLine("CacheHitCount", "prod", 60, 1) + cacheLine("CacheMissCount", "prod", 60, 1)))
	f.Add([]byte(`{"metric_stream_name":"s","namespace":"AWS/ApiGateway","metric_name":"Latency","dimensions":{"ApiName":"\ud83d"},"timestamp":-1,"value":{"p99.9":1e308,"p1.":2}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data)
		for _, line := range bytes.Split(data, []byte("\n")) {
			if wellFormed(line) {
				if _, err := decodeAll(t, DefaultConfig(), line); err != nil {
					t.Fatalf("encoding/json reads a valid data point the decoder refuses: %q: %v", line, err)
				}
			}
		}
	})
}

// wellFormed reports, with encoding/json as the oracle, that line is one
// metric-stream object the decoder must take: the documented fields with
// their documented types, a timestamp in milliseconds, some statistics.
func wellFormed(line []byte) bool {
	if bytes.Count(line, []byte("{"))+bytes.Count(line, []byte("[")) > 60 {
		return false // deeper than the decoder's nesting limit
	}
	var obj map[string]any
	if json.Unmarshal(line, &obj) != nil || obj == nil || duplicateKeys(line) {
		return false
	}
	for _, k := range []string{"account_id", "region", "unit", "metric_stream_name"} {
		if v, ok := obj[k]; ok {
			if _, s := v.(string); !s && k != "metric_stream_name" {
				return false
			}
		}
	}
	ns, _ := obj["namespace"].(string)
	metric, _ := obj["metric_name"].(string)
	ts, _ := obj["timestamp"].(float64)
	if ns == "" || metric == "" || ts < 1000 || ts > 1e15 {
		return false
	}
	if d, ok := obj["dimensions"]; ok {
		dims, isMap := d.(map[string]any)
		if !isMap {
			return false
		}
		for _, v := range dims {
			if _, s := v.(string); !s {
				return false
			}
		}
	}
	vals, ok := obj["value"].(map[string]any)
	if !ok {
		return false
	}
	stats := 0
	for k, v := range vals {
		switch {
		case k == "count" || k == "sum" || k == "min" || k == "max":
			if v == nil {
				continue
			}
			x, isNum := v.(float64)
			if !isNum || k == "count" && x < 0 {
				return false
			}
			stats++
		case isPercentile([]byte(k)):
			if _, isNum := v.(float64); !isNum && v != nil {
				return false
			}
		}
	}
	return stats > 0
}

// duplicateKeys reports an object, at any depth, with a key twice: the
// oracle keeps the last, the decoder checks each.
func duplicateKeys(line []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(line))
	type frame struct {
		keys   map[string]bool
		object bool
		key    bool // the next token in the object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].key = true
				}
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				return true
			}
			top.keys[k] = true
			top.key = false
			continue
		}
		switch d, _ := tok.(json.Delim); d {
		case '{':
			stack = append(stack, &frame{keys: map[string]bool{}, object: true, key: true})
		case '[':
			stack = append(stack, &frame{})
		case '}', ']':
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return false
			}
			if t := stack[len(stack)-1]; t.object {
				t.key = true
			}
		default:
			if top != nil && top.object {
				top.key = true
			}
		}
	}
}

func FuzzDecodeOTel(f *testing.F) {
	datums := readDatums(f, goldenInput)
	f.Add(otelRecord(f, datums, 4))
	f.Add(otelRecord(f, datums[:1], 1))
	f.Add(otel07Record())
	f.Add(appendFrame(f, nil, otelRequestForeign()))
	f.Add([]byte{0})
	f.Add(append([]byte{0}, otelRecord(f, datums[:1], 1)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data)
		checkAgainstGenerated(t, data)
	})
}

func FuzzDetect(f *testing.F) {
	for _, s := range []string{metricLine, cwlEnvelope, cwlControl, accessJSON, accessCLF, accessCSV, accessXML, execLine, "", "{}", "\n{"} {
		f.Add([]byte(s))
	}
	f.Add(otelRecord(f, readDatums(f, goldenInput), 6))
	f.Add(otel07Record())
	f.Add(append([]byte{0, 0}, otelRecord(f, readDatums(f, goldenInput)[:2], 1)...)) // empty frames first
	f.Fuzz(func(t *testing.T, data []byte) {
		format := Detect(data)
		if IsOTel(data) != (format == FormatOTel) {
			t.Fatalf("IsOTel says %v, Detect says %s", IsOTel(data), format)
		}
		switch format {
		case FormatJSON:
			if !looksJSON(data) {
				t.Fatalf("JSON detected in data that does not start with '{'")
			}
		case FormatOTel:
			if !probeOTel(data) {
				t.Fatalf("OpenTelemetry detected in data whose first frame is not a metric stream's")
			}
		case FormatNone:
		default:
			t.Fatalf("unknown format %d", format)
		}
		if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b && format != FormatNone {
			t.Fatalf("gzipped data detected as %s", format)
		}
		if format != FormatNone {
			checkDecode(t, data)
		}
	})
}

// checkDecode decodes data and checks what any record must give: no
// panic, a count that matches the points, points Datadog can take, and bad
// parts that are the record's own bytes, in order.
func checkDecode(t *testing.T, data []byte) {
	d, err := NewDecoder(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var got []record.Metric
	n, err := d.Decode(data, func(m record.Metric) { got = append(got, m) })
	if n != len(got) {
		t.Fatalf("Decode returned %d, emitted %d", n, len(got))
	}
	for _, m := range got {
		if m.Name == "" || m.Timestamp <= 0 || math.IsNaN(m.Value) || math.IsInf(m.Value, 0) || len(m.Tags) != cap(m.Tags) {
			t.Fatalf("bad point %+v", m)
		}
		if m.Kind == record.MetricCount && m.Interval <= 0 {
			t.Fatalf("count without interval %+v", m)
		}
	}
	if err == nil {
		return
	}
	var de *DecodeError
	if !errors.As(err, &de) || len(de.Parts) == 0 {
		t.Fatalf("error is not a DecodeError with parts: %v", err)
	}
	prev := -1
	for _, p := range de.Parts {
		if p.Offset <= prev || p.Offset+len(p.Data) > len(data) || !bytes.Equal(data[p.Offset:p.Offset+len(p.Data)], p.Data) || p.Err == nil {
			t.Fatalf("bad part %v is not the record's bytes at its offset", p)
		}
		prev = p.Offset
	}
	_ = err.Error()
}

// checkAgainstGenerated compares the wire reader with proto.Unmarshal into
// the generated OTLP types, frame by frame: a frame they accept, re-encoded
// canonically, must be well-formed to the reader and hold the same number
// of summary data points for both. (The raw frame may differ: the reader
// also reads fields the 1.0.0 types do not know, 0.7.0 labels and field
// 1000, and refuses them when they are malformed.)
func checkAgainstGenerated(t *testing.T, data []byte) {
	for off := 0; off < len(data); {
		size, k := protowire.ConsumeVarint(data[off:])
		if k < 0 || size > uint64(len(data)-off-k) {
			return
		}
		frame := data[off+k : off+k+int(size)]
		off += k + int(size)
		var req colmetricpb.ExportMetricsServiceRequest
		if proto.Unmarshal(frame, &req) != nil {
			continue
		}
		clearUnknown(req.ProtoReflect())
		canon, err := proto.Marshal(&req)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					want += len(m.GetSummary().GetDataPoints())
				}
			}
		}
		p := otelParser{sc: new(scratch), frame: canon}
		if err := p.request(canon); err != nil {
			t.Fatalf("canonical frame refused: %v", err)
		}
		if p.points != want {
			t.Fatalf("reader found %d data points, proto.Unmarshal %d", p.points, want)
		}
	}
}

// clearUnknown drops the fields the generated types do not know (the
// reader reads some of them: 0.7.0 labels, deprecated field 1000).
func clearUnknown(m protoreflect.Message) {
	m.SetUnknown(nil)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Message() == nil || fd.IsMap():
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				clearUnknown(v.List().Get(i).Message())
			}
		default:
			clearUnknown(v.Message())
		}
		return true
	})
}
