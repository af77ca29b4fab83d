package decode

import (
	"errors"
	"fmt"
)

// Config bounds the work one record may cause; it is the decode section
// of gwpipe's configuration.
type Config struct {
	// MaxRecordBytes bounds a decoded record, before gunzip (Firehose's own
	// limit is 1,024,000).
	MaxRecordBytes int `yaml:"max_record_bytes"`
	// MaxDecompressedBytes bounds a record after gunzip.
	MaxDecompressedBytes int `yaml:"max_decompressed_bytes"`
	// MaxEventsPerBatch bounds the events of one output batch.
	MaxEventsPerBatch int `yaml:"max_events_per_batch"`
	// MaxUnitDecompressedBytes bounds what the records of one source unit
	// (a Firehose request, an SQS message) decompress to together; the
	// records beyond it are dead-lettered. 0: no bound. Where decode runs
	// in another process than the source, it applies to each raw batch.
	MaxUnitDecompressedBytes int64 `yaml:"max_request_decompressed_bytes"`
}

// DefaultConfig is Firehose's record limit, 8 MiB per record decompressed
// (a CloudWatch record holds about 1 MB of events), 2000 events per batch
// and 1 GiB per request.
func DefaultConfig() Config {
	return Config{MaxRecordBytes: 1_024_000, MaxDecompressedBytes: 8 << 20, MaxEventsPerBatch: 2000, MaxUnitDecompressedBytes: 1 << 30}
}

// Validate reports every field out of range.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, fmt.Errorf(key+": "+format, a...)) }
	if c.MaxRecordBytes <= 0 {
		bad("max_record_bytes", "must be a positive number of bytes, got %d", c.MaxRecordBytes)
	}
	if c.MaxDecompressedBytes <= 0 {
		bad("max_decompressed_bytes", "must be a positive number of bytes, got %d", c.MaxDecompressedBytes)
	}
	if c.MaxEventsPerBatch <= 0 {
		bad("max_events_per_batch", "must be positive, got %d", c.MaxEventsPerBatch)
	}
	if c.MaxUnitDecompressedBytes < int64(c.MaxDecompressedBytes) {
		bad("max_request_decompressed_bytes", "must be at least max_decompressed_bytes (%d), got %d", c.MaxDecompressedBytes, c.MaxUnitDecompressedBytes)
	}
	return errors.Join(errs...)
}
