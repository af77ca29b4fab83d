package pipeline

import (
	"fmt"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
	"github.com/gwpipe/gwpipe/pkg/stages/decode"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// metricStreams is the reader of CloudWatch metric-stream data the
// configuration asks for, shared by the decode stage and the readers of S3
// objects (SQS notifications, replay); nil when metric streams are off. Its
// figures are registered on reg, unless nil.
func metricStreams(cfg config.Config, reg *telemetry.Registry) (decode.MetricDecoder, error) {
	ms := cfg.Metrics.Streams
	if !cfg.Metrics.Enabled || !ms.Enabled {
		return nil, nil
	}
	dec, err := metricstream.NewDecoder(ms.Config)
	if err != nil {
		return nil, fmt.Errorf("metrics.streams: %w", err)
	}
	if reg != nil {
		dec.RegisterMetrics(reg)
	}
	return decode.MetricStreams(dec), nil
}
