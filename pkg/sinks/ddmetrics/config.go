package ddmetrics

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gwpipe/gwpipe/pkg/config/check"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddhttp"
)

// Metrics API limits: docs/wire-formats.md#metrics-v2-series and
// docs/wire-formats.md#distribution-points.
const (
	// MaxSeriesPayloadBytes is the v2 series limit on the wire (inclusive).
	MaxSeriesPayloadBytes = 512_000
	// MaxSeriesDecompressedBytes: a series payload must decompress to fewer
	// bytes than this.
	MaxSeriesDecompressedBytes = 5_242_880
	// MaxDistributionPayloadBytes is the v1 payload limit, applied to
	// distribution points (their own limit is not documented).
	MaxDistributionPayloadBytes = 3_200_000
	// SeriesMaxAge and SeriesMaxFuture bound point timestamps.
	SeriesMaxAge    = time.Hour
	SeriesMaxFuture = 10 * time.Minute
)

// Modes (Config.Mode).
const (
	ModeAPI       = "api"       // HTTPS to the Metrics API: acknowledged, retried
	ModeDogStatsD = "dogstatsd" // datagrams to a local Agent: fire and forget
)

// Defaults (see DefaultConfig).
const (
	DefaultConcurrency            = 2
	DefaultDogStatsDAddr          = "localhost:8125"
	defaultDogStatsDFlushInterval = 100 * time.Millisecond
)

// APIURL returns the metrics API base URL for a Datadog site; an empty site
// means datadoghq.com.
func APIURL(site string) string { return ddhttp.SiteURL("api", site) }

// Config configures a Client: the keys under metrics.delivery, and the
// runtime fields the assembler sets (yaml:"-"). Start from DefaultConfig.
type Config struct {
	// Mode is "api" or "dogstatsd".
	Mode string `yaml:"mode"`
	// concurrency, request_timeout, retry_initial, retry_max: the sender's
	// (api mode).
	ddhttp.Config `yaml:",inline"`
	// Compression is "gzip", "zstd", "deflate" or "none". Series use it as
	// is (Content-Encoding gzip, zstd1, deflate); distribution points only
	// document deflate, so they use deflate unless "none".
	Compression string `yaml:"compression"`
	// DogStatsDAddr is the Agent address in dogstatsd mode ("host:port",
	// "unix:///path").
	DogStatsDAddr string `yaml:"dogstatsd_addr"`

	// The API's limits, lowered by tests only.
	//
	// MaxPayloadBytes caps a series request body on the wire: at most
	// 512,000. A body compressing larger is split.
	MaxPayloadBytes int `yaml:"-"`
	// MaxUncompressedBytes caps a series request body before compression:
	// less than the API's 5,242,880. With Compression "none" the cap is
	// MaxPayloadBytes.
	MaxUncompressedBytes int `yaml:"-"`
	// MaxDistributionBytes caps a distribution points request body, before
	// and after compression: at most 3,200,000. A point with more values
	// than fit is split into several points with the same timestamp
	// (distributions merge, they do not overwrite).
	MaxDistributionBytes int `yaml:"-"`
	// MaxAge: points older than this when submitted are rejected without
	// being sent (the API would drop them silently): at most 1h. MaxFuture
	// likewise for points ahead of the clock: at most 10m.
	MaxAge    time.Duration `yaml:"-"`
	MaxFuture time.Duration `yaml:"-"`

	// APIURL is the metrics API base URL (datadog.api_url, or from
	// datadog.site). Series go to APIURL+"/api/v2/series", distributions
	// to APIURL+"/api/v1/distribution_points".
	APIURL string `yaml:"-"`
	// APIKey is sent as DD-API-KEY (datadog.api_key); required in api
	// mode. Never logged.
	APIKey string `yaml:"-"`
	// HTTPClient, Logger, OnResult (Endpoint "series" or
	// "distribution_points", Items counts points or values).
	ddhttp.Runtime `yaml:"-"`
	// Now is the clock for the age checks; nil: time.Now.
	Now func() time.Time `yaml:"-"`
}

// DefaultConfig is the one place the defaults live (the README's
// metrics.delivery.* defaults).
func DefaultConfig() Config {
	c := Config{
		Mode:                 ModeAPI,
		Config:               ddhttp.DefaultConfig(),
		Compression:          ddhttp.Gzip,
		DogStatsDAddr:        DefaultDogStatsDAddr,
		MaxPayloadBytes:      MaxSeriesPayloadBytes,
		MaxUncompressedBytes: 4_000_000,
		MaxDistributionBytes: 3_000_000,
		MaxAge:               SeriesMaxAge,
		MaxFuture:            SeriesMaxFuture,
		APIURL:               APIURL(""),
	}
	c.Concurrency = DefaultConcurrency
	return c
}

// Validate reports every invalid field, each message starting with its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	// The sender's keys are checked in either mode: they are configuration
	// all the same, and switching the mode must not reveal a bad one.
	errs = append(errs, c.Config.Validate())
	switch c.Mode {
	case ModeAPI:
		errs = append(errs, ddhttp.ValidateAPIKey(c.APIKey), ddhttp.ValidateURL("api_url", c.APIURL))
	case ModeDogStatsD:
		if err := CheckDogStatsDAddr(c.DogStatsDAddr); err != nil {
			bad("dogstatsd_addr: %v", err)
		}
	default:
		bad("mode: must be api or dogstatsd, got %q", c.Mode)
	}
	switch c.Compression {
	case ddhttp.Gzip, ddhttp.Zstd, ddhttp.Deflate, ddhttp.None:
	default:
		bad("compression: must be gzip, zstd, deflate or none, got %q", c.Compression)
	}
	if c.MaxPayloadBytes < minPayloadBytes || c.MaxPayloadBytes > MaxSeriesPayloadBytes {
		bad("max_payload_bytes: must be %d..%d, got %d", minPayloadBytes, MaxSeriesPayloadBytes, c.MaxPayloadBytes)
	}
	if c.MaxUncompressedBytes < minPayloadBytes || c.MaxUncompressedBytes >= MaxSeriesDecompressedBytes {
		bad("max_uncompressed_bytes: must be %d..%d, got %d", minPayloadBytes, MaxSeriesDecompressedBytes-1, c.MaxUncompressedBytes)
	}
	if c.MaxDistributionBytes < minPayloadBytes || c.MaxDistributionBytes > MaxDistributionPayloadBytes {
		bad("max_distribution_bytes: must be %d..%d, got %d", minPayloadBytes, MaxDistributionPayloadBytes, c.MaxDistributionBytes)
	}
	if c.MaxAge <= 0 || c.MaxAge > SeriesMaxAge {
		bad("max_age: must be within (0, %v], got %v", SeriesMaxAge, c.MaxAge)
	}
	if c.MaxFuture <= 0 || c.MaxFuture > SeriesMaxFuture {
		bad("max_future: must be within (0, %v], got %v", SeriesMaxFuture, c.MaxFuture)
	}
	return errors.Join(errs...)
}

// CheckDogStatsDAddr checks an Agent's DogStatsD address: host:port, or a
// unix:// socket path.
func CheckDogStatsDAddr(addr string) error {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if path == "" {
			return errors.New("a unix:// address needs the socket's path")
		}
		return nil
	}
	return check.Dial(addr)
}

// minPayloadBytes is the smallest payload cap accepted.
const minPayloadBytes = 4096
