package firehose

import (
	"errors"
	"fmt"
	"time"

	"github.com/gwpipe/gwpipe/pkg/config/check"
	"github.com/gwpipe/gwpipe/pkg/tlsreload"
)

// Config tunes the endpoint; it is the sources.firehose section of gwpipe's
// configuration.
type Config struct {
	// Enabled, Listen and ReusePort say whether and where the pipeline
	// serves the endpoint. ReusePort opens the listener with SO_REUSEPORT,
	// so that several worker processes on one host share the port and the
	// kernel spreads connections across them (and a new process can take
	// over before the old one drains).
	Enabled   bool   `yaml:"enabled"`
	Listen    string `yaml:"listen"`
	ReusePort bool   `yaml:"reuse_port"`
	// AccessKeys are the accepted X-Amz-Firehose-Access-Key values. One is
	// required unless AllowUnauthenticated is set.
	AccessKeys           []string `yaml:"access_keys"`
	AllowUnauthenticated bool     `yaml:"allow_unauthenticated"`
	MaxBodyBytes         int64    `yaml:"max_body_bytes"`         // request body as received
	MaxDecompressedBytes int64    `yaml:"max_decompressed_bytes"` // request body after Content-Encoding
	// MaxInFlightBytes bounds the bytes this source holds for requests
	// admitted and not yet acknowledged: their records, counted as they
	// arrive.
	MaxInFlightBytes int64 `yaml:"max_inflight_bytes"`
	// A body must start arriving within BodyReadTimeout and then keep
	// coming at MinBodyRate bytes per second on average, or the request
	// is answered 408: a slow client holds a connection, never the others'
	// memory.
	BodyReadTimeout time.Duration `yaml:"body_read_timeout"`
	MinBodyRate     int64         `yaml:"min_body_rate"`
	AckTimeout      time.Duration `yaml:"ack_timeout"`       // how long a request waits for delivery
	RecordsPerBatch int           `yaml:"records_per_batch"` // records per batch published downstream
	DedupTTL        time.Duration `yaml:"dedup_ttl"`         // how long a delivered request id is remembered
	DefaultRegion   string        `yaml:"default_region"`    // of records whose source ARN names none
	// TLS serves the endpoint over HTTPS (TLS 1.2 and later) with this
	// certificate, read again when its files change: Firehose delivers
	// only over HTTPS, so without a load balancer in front the endpoint
	// must terminate TLS itself.
	TLS tlsreload.Config `yaml:"tls"`

	// DecodeRecords hands records over with their base64 undone (record
	// kind Line, as the SQS source hands over what it decoded), in place
	// in the request's memory; records that are not standard padded
	// base64, or whose bytes would exceed DecodeMaxBytes, go as they came
	// (kind Raw), for the decode stage to read or dead-letter. The pipeline
	// sets it when the records cross a broker to a decode stage in another
	// process: a quarter fewer bytes for the broker to store and deliver,
	// and for both workers to encode, compress and read.
	DecodeRecords  bool `yaml:"-"`
	DecodeMaxBytes int  `yaml:"-"`
}

// DefaultConfig serves on :8088, requires an access key, and answers within
// Firehose's 3-minute request timeout.
func DefaultConfig() Config {
	return Config{
		Enabled: true, Listen: ":8088",
		MaxBodyBytes: 64 << 20, MaxDecompressedBytes: 96 << 20, MaxInFlightBytes: 128 << 20,
		BodyReadTimeout: 10 * time.Second, MinBodyRate: 64 << 10,
		AckTimeout: 120 * time.Second, RecordsPerBatch: 250, DedupTTL: 10 * time.Minute,
	}
}

// firehoseTimeout is how long Firehose waits for an answer.
const firehoseTimeout = 3 * time.Minute

// Validate reports every problem of an enabled endpoint's configuration.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, fmt.Errorf(key+": "+format, a...)) }
	if err := check.Listen(c.Listen); err != nil {
		bad("listen", "%v", err)
	}
	if err := c.TLS.Validate(); err != nil {
		all := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			all = j.Unwrap()
		}
		for _, e := range all {
			errs = append(errs, fmt.Errorf("tls.%w", e)) // each starts with its key
		}
	}
	if len(c.AccessKeys) == 0 && !c.AllowUnauthenticated {
		bad("access_keys", "at least one access key is required (or set sources.firehose.allow_unauthenticated: true to accept any request)")
	}
	for i, k := range c.AccessKeys {
		if k == "" || len(k) > 4096 {
			bad("access_keys", "key %d must be 1 to 4096 bytes", i)
		}
	}
	if c.MaxBodyBytes < 1<<20 {
		bad("max_body_bytes", "must be at least 1 MiB, got %d", c.MaxBodyBytes)
	}
	if c.MaxDecompressedBytes < c.MaxBodyBytes {
		bad("max_decompressed_bytes", "must be at least max_body_bytes")
	}
	if c.MaxInFlightBytes < c.MaxDecompressedBytes {
		bad("max_inflight_bytes", "must be at least max_decompressed_bytes, or no request of the maximum size could be admitted")
	}
	if c.BodyReadTimeout <= 0 || c.BodyReadTimeout >= firehoseTimeout {
		bad("body_read_timeout", "must be positive and below Firehose's 3-minute request timeout, got %s", c.BodyReadTimeout)
	}
	if c.MinBodyRate <= 0 {
		bad("min_body_rate", "must be a positive number of bytes per second, got %d", c.MinBodyRate)
	}
	if c.AckTimeout <= 0 || c.AckTimeout >= firehoseTimeout {
		bad("ack_timeout", "must be positive and below Firehose's 3-minute request timeout, got %s", c.AckTimeout)
	}
	if c.RecordsPerBatch <= 0 || c.RecordsPerBatch > MaxRecords {
		bad("records_per_batch", "must be 1 to %d, got %d", MaxRecords, c.RecordsPerBatch)
	}
	if c.DedupTTL < 0 {
		bad("dedup_ttl", "must not be negative, got %s", c.DedupTTL)
	}
	return errors.Join(errs...)
}
