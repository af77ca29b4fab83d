package pipeline

import (
	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/sources/s3obj"
	"github.com/gwpipe/gwpipe/pkg/stages/decode"
)

// objectConfig bounds the S3 object reader with the decode stage's limits
// and gives it the metric-stream reader (nil when metric streams are off:
// metric-stream data in objects is then dead-lettered, never a log).
func objectConfig(cfg config.Config, eventsPerBatch int, streams decode.MetricDecoder) s3obj.Config {
	return s3obj.Config{
		EventsPerBatch: eventsPerBatch,
		MaxItemBytes:   cfg.Decode.MaxDecompressedBytes,
		// The decode stage's limits but for the request bound: an object is
		// not a request.
		Decode: decode.Config{
			MaxRecordBytes: cfg.Decode.MaxRecordBytes, MaxDecompressedBytes: cfg.Decode.MaxDecompressedBytes,
			MaxEventsPerBatch: eventsPerBatch,
		},
		Metrics: streams,
		// Dead letters of deliver-logs were counted by derive before they
		// were refused: a replay delivers them without counting them again.
		CountedStages: theGraph().besideDerive(),
	}
}
