package decode

import (
	"errors"

	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
	"github.com/gwpipe/gwpipe/pkg/record"
)

// MetricStreams reads metric-stream data with d (package metricstream).
func MetricStreams(d *metricstream.Decoder) MetricDecoder { return metricStreams{d} }

type metricStreams struct{ d *metricstream.Decoder }

func (m metricStreams) IsFrames(data []byte) bool {
	return metricstream.IsOTel(data)
}

func (m metricStreams) IsLine(line []byte) bool {
	return metricstream.Detect(line) == metricstream.FormatJSON
}

func (m metricStreams) DecodeFrames(data []byte, fn func(record.Metric)) (int, []BadPart) {
	return m.decode(metricstream.FormatOTel, data, fn)
}

func (m metricStreams) DecodeLines(data []byte, fn func(record.Metric)) (int, []BadPart) {
	return m.decode(metricstream.FormatJSON, data, fn)
}

func (m metricStreams) decode(f metricstream.Format, data []byte, fn func(record.Metric)) (int, []BadPart) {
	n, err := m.d.DecodeAs(f, data, fn)
	if err == nil {
		return n, nil
	}
	var de *metricstream.DecodeError
	if !errors.As(err, &de) {
		return n, []BadPart{{Data: data, Reason: err.Error()}}
	}
	bad := make([]BadPart, len(de.Parts))
	for i, p := range de.Parts {
		reason := p.Err.Error()
		if p.Frame > 0 {
			// Frames are numbered in the record; lines, which the decode
			// stage hands over in runs, are numbered by the stage.
			reason = p.String()
		}
		bad[i] = BadPart{Offset: p.Offset, Data: p.Data, Reason: reason}
	}
	return n, bad
}

// MetricStreamsOff is the reason metric-stream data is dead-lettered where
// the pipeline does not read metric streams.
const MetricStreamsOff = "CloudWatch metric-stream data, which this pipeline does not read (metrics.enabled and metrics.streams.enabled are off): replay it once they are on"

// RefusedMetricStreams recognises metric-stream data without reading it:
// with metric streams off, such data is dead-lettered with MetricStreamsOff,
// never delivered as logs — the same rule for Firehose records and S3
// objects.
func RefusedMetricStreams() MetricDecoder { return refusedMetricStreams{} }

type refusedMetricStreams struct{}

func (refusedMetricStreams) IsFrames(data []byte) bool {
	return metricstream.IsOTel(data)
}

func (refusedMetricStreams) IsLine(line []byte) bool {
	return metricstream.Detect(line) == metricstream.FormatJSON
}

func (refusedMetricStreams) DecodeFrames(data []byte, _ func(record.Metric)) (int, []BadPart) {
	return 0, []BadPart{{Data: data, Reason: MetricStreamsOff}}
}

func (refusedMetricStreams) DecodeLines(data []byte, _ func(record.Metric)) (int, []BadPart) {
	return 0, []BadPart{{Data: data, Reason: MetricStreamsOff}}
}
