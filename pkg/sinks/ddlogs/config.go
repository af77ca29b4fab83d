package ddlogs

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gwpipe/gwpipe/pkg/sinks/ddhttp"
)

// Intake limits (specs §5).
const (
	// MaxBatchLogsLimit is the intake's maximum number of logs per request.
	MaxBatchLogsLimit = 1000
	// MaxBatchBytesLimit is the intake's maximum uncompressed request body.
	MaxBatchBytesLimit = 5_000_000
)

// Defaults applied by New to zero Config fields.
const (
	DefaultSite             = "datadoghq.com"
	DefaultMaxBatchLogs     = 1000
	DefaultMaxBatchBytes    = 4_500_000
	DefaultLinger           = 50 * time.Millisecond
	DefaultCompression      = "gzip"
	DefaultGzipLevel        = 6 // what the Datadog Agent and Forwarder use
	DefaultZstdLevel        = 1 // on access logs: the ratio of level 3 for less CPU
	DefaultConcurrency      = 4
	DefaultRequestTimeout   = 30 * time.Second
	DefaultInitialInterval  = ddhttp.DefaultInitialInterval
	DefaultMaxInterval      = ddhttp.DefaultMaxInterval
	DefaultMultiplier       = ddhttp.DefaultMultiplier
	DefaultJitter           = ddhttp.DefaultJitter
	defaultMaxPendingFactor = 1 // MaxPending defaults to Concurrency × this
)

// LogsURL returns the logs intake URL for a Datadog site ("datadoghq.eu",
// "us5.datadoghq.com", …); an empty site means datadoghq.com.
func LogsURL(site string) string {
	site = strings.TrimSpace(site)
	if site == "" {
		site = DefaultSite
	}
	return "https://http-intake.logs." + site + "/api/v2/logs"
}

// Backoff configures the delay between attempts to send one payload; zero
// fields take their defaults.
type Backoff = ddhttp.Backoff

// Config configures a Client. Zero values take the defaults documented on
// each field.
type Config struct {
	// URL is the full logs intake URL; default LogsURL("").
	URL string
	// APIKey is sent as DD-API-KEY. Required. Never logged.
	APIKey string

	// MaxBatchLogs caps logs per request: default and maximum 1000.
	MaxBatchLogs int
	// MaxBatchBytes caps a request's uncompressed body, brackets and commas
	// included: default 4,500,000, maximum 5,000,000.
	MaxBatchBytes int
	// MaxLogBytes caps one rendered log; longer logs are truncated (see
	// AppendLog). Default and maximum 1,000,000; minimum 1024; at most
	// MaxBatchBytes-2.
	MaxLogBytes int

	// Linger is the longest a partly filled payload waits for more logs,
	// from its first log; default 50ms. It goes earlier when waiting would
	// only add latency (see Client). A negative value seals a payload as soon
	// as the records of the Deliver call that opened it have been taken in.
	Linger time.Duration

	// Compression is "gzip" (default), "zstd" or "none".
	Compression string
	// CompressionLevel: 0 means the default (gzip 6, zstd 1); gzip takes
	// 1–9, zstd 1–22 (mapped to the encoder's nearest level); none takes 0.
	CompressionLevel int

	// Concurrency is the maximum number of concurrent HTTP requests; default 4.
	Concurrency int
	// MaxPending is the maximum number of sealed payloads waiting for a
	// sender; when reached, Deliver blocks (back-pressure). Default
	// Concurrency. At most MaxPending + Concurrency + 1 (the one filling)
	// payloads exist at once.
	MaxPending int

	Backoff Backoff
	// RequestTimeout bounds one HTTP attempt; default 30s.
	RequestTimeout time.Duration

	// Defaults fills the top-level fields records leave empty. When
	// Defaults.Source is empty, "apigateway" is used.
	Defaults Defaults

	// HTTPClient sends the requests; default: a client of its own with
	// keep-alive connections for Concurrency requests.
	HTTPClient *http.Client
	// Logger receives operational messages; default slog.Default().
	Logger *slog.Logger
	// OnResult, when set, is called after every HTTP attempt, from the
	// sending goroutine: keep it fast.
	OnResult func(Result)
}

// Validate reports every invalid field; zero fields are valid (defaults).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("ddlogs: "+format, args...)) }

	if c.URL != "" {
		u, err := url.Parse(c.URL)
		switch {
		case err != nil:
			bad("URL %q is not a URL: %v", c.URL, err)
		case u.Scheme != "http" && u.Scheme != "https":
			bad("URL %q must start with https:// or http://", c.URL)
		case u.Host == "":
			bad("URL %q has no host", c.URL)
		}
	}
	if c.APIKey == "" {
		bad("APIKey is required (the Datadog API key, sent as DD-API-KEY)")
	} else if strings.ContainsFunc(c.APIKey, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		bad("APIKey contains whitespace or control characters")
	}
	if c.MaxBatchLogs < 0 || c.MaxBatchLogs > MaxBatchLogsLimit {
		bad("MaxBatchLogs %d is out of range: 1..%d (0 for the default %d)", c.MaxBatchLogs, MaxBatchLogsLimit, DefaultMaxBatchLogs)
	}
	if c.MaxBatchBytes < 0 || c.MaxBatchBytes > MaxBatchBytesLimit {
		bad("MaxBatchBytes %d is out of range: at most %d (0 for the default %d)", c.MaxBatchBytes, MaxBatchBytesLimit, DefaultMaxBatchBytes)
	}
	if c.MaxLogBytes != 0 && (c.MaxLogBytes < minLogBytes || c.MaxLogBytes > MaxLogBytes) {
		bad("MaxLogBytes %d is out of range: %d..%d (0 for the default %d)", c.MaxLogBytes, minLogBytes, MaxLogBytes, MaxLogBytes)
	}
	maxBatch, maxLog := cmp.Or(c.MaxBatchBytes, DefaultMaxBatchBytes), cmp.Or(c.MaxLogBytes, MaxLogBytes)
	if c.MaxBatchBytes >= 0 && maxLog > maxBatch-2 {
		bad("MaxBatchBytes %d must leave room for one log of MaxLogBytes %d plus brackets", maxBatch, maxLog)
	}
	switch c.Compression {
	case "", "gzip":
		if c.CompressionLevel < 0 || c.CompressionLevel > 9 {
			bad("CompressionLevel %d is out of range for gzip: 1..9 (0 for the default %d)", c.CompressionLevel, DefaultGzipLevel)
		}
	case "zstd":
		if c.CompressionLevel < 0 || c.CompressionLevel > 22 {
			bad("CompressionLevel %d is out of range for zstd: 1..22 (0 for the default %d)", c.CompressionLevel, DefaultZstdLevel)
		}
	case "none":
		if c.CompressionLevel != 0 {
			bad("CompressionLevel must be 0 with Compression \"none\"")
		}
	default:
		bad("Compression %q is not one of gzip, zstd, none", c.Compression)
	}
	if c.Concurrency < 0 || c.Concurrency > 1024 {
		bad("Concurrency %d is out of range: 1..1024 (0 for the default %d)", c.Concurrency, DefaultConcurrency)
	}
	if c.MaxPending < 0 || c.MaxPending > 1<<16 {
		bad("MaxPending %d is out of range: 1..65536 (0 for the default, Concurrency)", c.MaxPending)
	}
	if c.RequestTimeout < 0 {
		bad("RequestTimeout %v must not be negative", c.RequestTimeout)
	}
	for _, p := range c.Backoff.Problems() {
		bad("%s", p)
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = LogsURL("")
	}
	c.MaxBatchLogs = cmp.Or(c.MaxBatchLogs, DefaultMaxBatchLogs)
	c.MaxBatchBytes = cmp.Or(c.MaxBatchBytes, DefaultMaxBatchBytes)
	c.MaxLogBytes = cmp.Or(c.MaxLogBytes, MaxLogBytes)
	c.Linger = cmp.Or(c.Linger, DefaultLinger)
	if c.Compression == "" {
		c.Compression = DefaultCompression
	}
	switch c.Compression {
	case "gzip":
		c.CompressionLevel = cmp.Or(c.CompressionLevel, DefaultGzipLevel)
	case "zstd":
		c.CompressionLevel = cmp.Or(c.CompressionLevel, DefaultZstdLevel)
	}
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.MaxPending = cmp.Or(c.MaxPending, c.Concurrency*defaultMaxPendingFactor)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, DefaultRequestTimeout)
	c.Backoff = c.Backoff.WithDefaults()
	if c.Defaults.Source == "" {
		c.Defaults.Source = "apigateway"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
