package decode

import (
	"bytes"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// fakeMetrics stands for package metricstream (tested on its own; the
// pipeline's tests use the real one): a JSON line is a datum when it names
// a metric stream; a datum holding "bad" cannot be read; every other datum
// is one point, valued its length. A binary record is "frames" when it
// starts with 0x0A "OTEL".
type fakeMetrics struct{}

var fakeFrames = []byte("\x0aOTEL")

func (fakeMetrics) IsFrames(data []byte) bool { return bytes.HasPrefix(data, fakeFrames) }

func (fakeMetrics) IsLine(line []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(line, " \t"), []byte(`{"metric_stream_name"`))
}

func (fakeMetrics) DecodeLines(data []byte, fn func(record.Metric)) (int, []BadPart) {
	n, off := 0, 0
	var bad []BadPart
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		body := bytes.TrimRight(line, "\r\n")
		switch {
		case len(bytes.TrimSpace(body)) == 0:
		case bytes.Contains(body, []byte("bad")):
			bad = append(bad, BadPart{Offset: off, Data: body, Reason: "bad datum"})
		default:
			for range bytes.Count(body, []byte(`{"metric_stream_name"`)) {
				fn(record.Metric{Name: "fake", Value: float64(len(body))})
				n++
			}
		}
		off += len(line)
	}
	return n, bad
}

func (fakeMetrics) DecodeFrames(data []byte, fn func(record.Metric)) (int, []BadPart) {
	if bytes.Contains(data, []byte("bad")) {
		return 0, []BadPart{{Data: data, Reason: "frame 1 (offset 0): bad frame"}}
	}
	fn(record.Metric{Name: "fake.frames", Value: float64(len(data))})
	return 1, nil
}

func points(res Result) []record.Metric {
	var out []record.Metric
	for _, b := range res.Batches {
		out = append(out, b.Metrics...)
	}
	return out
}

func messages(recs []record.Record) []string {
	return fields(recs, func(r record.Record) string { return string(r.Message) })
}

// fields is one string per record: what field reads from it.
func fields(recs []record.Record, field func(record.Record) string) []string {
	var out []string
	for _, r := range recs {
		out = append(out, field(r))
	}
	return out
}

func deadRecords(res Result) []record.Record {
	if res.Dead == nil {
		return nil
	}
	return res.Dead.Records
}
