package ddlogs

import (
	"errors"
	"fmt"
	"time"

	"github.com/gwpipe/gwpipe/pkg/sinks/ddhttp"
)

// Intake limits (docs/wire-formats.md#datadog-logs-intake).
const (
	// MaxBatchLogsLimit is the intake's maximum number of logs per request.
	MaxBatchLogsLimit = 1000
	// MaxBatchBytesLimit is the intake's maximum uncompressed request body.
	MaxBatchBytesLimit = 5_000_000
	// minBatchBytes is the smallest request body cap accepted.
	minBatchBytes = 1024
	// maxPendingLimit bounds Config.MaxPending.
	maxPendingLimit = 1 << 16
)

// LogsURL returns the logs intake URL for a Datadog site ("datadoghq.eu",
// "us5.datadoghq.com", …); an empty site means datadoghq.com.
func LogsURL(site string) string { return ddhttp.SiteURL("http-intake.logs", site) + "/api/v2/logs" }

// Config configures a Client: the keys under datadog.logs, and the
// runtime fields the assembler sets (yaml:"-"). Start from DefaultConfig.
type Config struct {
	// concurrency, request_timeout, retry_initial, retry_max: the sender's.
	ddhttp.Config `yaml:",inline"`

	// Compression is "gzip", "zstd" or "none".
	Compression string `yaml:"compression"`
	// CompressionLevel: gzip takes 1–9, zstd 1–22 (mapped to the encoder's
	// nearest level); ignored with none.
	CompressionLevel int `yaml:"compression_level"`
	// MaxBatchLogs caps logs per request: at most 1000 (the intake's limit).
	MaxBatchLogs int `yaml:"max_batch_logs"`
	// MaxBatchBytes caps a request's uncompressed body, brackets and
	// commas included: at most 5,000,000 (the intake's limit).
	MaxBatchBytes int `yaml:"max_batch_bytes"`
	// MaxLogBytes caps one rendered log; longer logs are truncated (see
	// AppendLog): 1024 to 1,000,000, and at most MaxBatchBytes-2.
	MaxLogBytes int `yaml:"max_log_bytes"`
	// Linger is the longest a partly filled payload waits for more logs,
	// from its first log. It goes earlier when waiting would only add
	// latency (see Client). 0 seals a payload as soon as the records of
	// the Deliver call that opened it have been taken in.
	Linger time.Duration `yaml:"linger"`

	// MaxPending is the maximum number of sealed payloads waiting for a
	// sender; when reached, Deliver blocks (back-pressure). 0 means
	// Concurrency. At most MaxPending + Concurrency + 1 (the one filling)
	// payloads exist at once.
	MaxPending int `yaml:"-"`

	// URL is the full logs intake URL (datadog.logs_url, or from
	// datadog.site).
	URL string `yaml:"-"`
	// APIKey is sent as DD-API-KEY (datadog.api_key). Never logged.
	APIKey string `yaml:"-"`
	// Defaults fills the top-level fields records leave empty. When
	// Defaults.Source is empty, "apigateway" is used.
	Defaults Defaults `yaml:"-"`
	// HTTPClient, Logger, OnResult (Items counts logs).
	ddhttp.Runtime `yaml:"-"`
	// KeepOldLogs turns off the deliver-logs stage's check of MaxLogAge:
	// the dry runs of gwpipe parse and gwpipe test show the log of a line
	// from any time, as the intake would receive it.
	KeepOldLogs bool `yaml:"-"`
}

// DefaultConfig is the one place the defaults live (the README's
// datadog.logs.* defaults).
func DefaultConfig() Config {
	return Config{
		Config:      ddhttp.DefaultConfig(),
		Compression: ddhttp.Gzip,
		// Level 1: on access logs most of level 6's ratio for a fraction
		// of its CPU.
		CompressionLevel: 1,
		MaxBatchLogs:     MaxBatchLogsLimit,
		MaxBatchBytes:    4_500_000,
		MaxLogBytes:      MaxLogBytes,
		Linger:           50 * time.Millisecond,
		URL:              LogsURL(""),
	}
}

// Validate reports every invalid field, each message starting with its key.
func (c Config) Validate() error {
	errs := []error{c.Config.Validate()}
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	errs = append(errs, ddhttp.ValidateURL("url", c.URL), ddhttp.ValidateAPIKey(c.APIKey))
	switch c.Compression {
	case ddhttp.Gzip:
		if c.CompressionLevel < 1 || c.CompressionLevel > 9 {
			bad("compression_level: must be 1 to 9 with gzip, got %d", c.CompressionLevel)
		}
	case ddhttp.Zstd:
		if c.CompressionLevel < 1 || c.CompressionLevel > 22 {
			bad("compression_level: must be 1 to 22 with zstd, got %d", c.CompressionLevel)
		}
	case ddhttp.None:
	default:
		bad("compression: must be gzip, zstd or none, got %q", c.Compression)
	}
	if c.MaxBatchLogs < 1 || c.MaxBatchLogs > MaxBatchLogsLimit {
		bad("max_batch_logs: must be 1 to %d (the intake's limit), got %d", MaxBatchLogsLimit, c.MaxBatchLogs)
	}
	if c.MaxBatchBytes < minBatchBytes || c.MaxBatchBytes > MaxBatchBytesLimit {
		bad("max_batch_bytes: must be %d..%d (the intake's limit), got %d", minBatchBytes, MaxBatchBytesLimit, c.MaxBatchBytes)
	}
	switch {
	case c.MaxLogBytes < minLogBytes || c.MaxLogBytes > MaxLogBytes:
		bad("max_log_bytes: must be %d..%d, got %d", minLogBytes, MaxLogBytes, c.MaxLogBytes)
	case c.MaxLogBytes > c.MaxBatchBytes-2:
		bad("max_log_bytes: must leave room in max_batch_bytes (%d) for the brackets, at most %d, got %d", c.MaxBatchBytes, c.MaxBatchBytes-2, c.MaxLogBytes)
	}
	if c.Linger < 0 {
		bad("linger: must not be negative, got %v", c.Linger)
	}
	if c.MaxPending < 0 || c.MaxPending > maxPendingLimit {
		bad("max_pending: must be 0..%d (0: concurrency), got %d", maxPendingLimit, c.MaxPending)
	}
	return errors.Join(errs...)
}
