package ddmetrics

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

// Metrics API limits (specs §6.1, §6.2).
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

// Defaults applied by New to zero Config fields.
const (
	DefaultSite                   = "datadoghq.com"
	DefaultCompression            = "gzip"
	DefaultConcurrency            = 4
	DefaultRequestTimeout         = 30 * time.Second
	DefaultInitialInterval        = ddhttp.DefaultInitialInterval
	DefaultMaxInterval            = ddhttp.DefaultMaxInterval
	DefaultMultiplier             = ddhttp.DefaultMultiplier
	DefaultJitter                 = ddhttp.DefaultJitter
	DefaultMaxUncompressedBytes   = 4_000_000
	DefaultMaxDistributionBytes   = 3_000_000
	DefaultDogStatsDAddr          = "localhost:8125"
	defaultDogStatsDFlushInterval = 100 * time.Millisecond
)

// APIURL returns the metrics API base URL for a Datadog site; an empty site
// means datadoghq.com.
func APIURL(site string) string {
	site = strings.TrimSpace(site)
	if site == "" {
		site = DefaultSite
	}
	return "https://api." + site
}

// Backoff configures the delay between attempts to send one payload; zero
// fields take their defaults.
type Backoff = ddhttp.Backoff

// Config configures a Client. Zero values take the defaults documented on
// each field.
type Config struct {
	// Mode is "api" (default) or "dogstatsd".
	Mode string

	// APIURL is the metrics API base URL; default APIURL(""). Series go to
	// APIURL+"/api/v2/series", distributions to
	// APIURL+"/api/v1/distribution_points".
	APIURL string
	// APIKey is sent as DD-API-KEY; required in api mode. Never logged.
	APIKey string
	// Compression is "gzip" (default), "zstd", "deflate" or "none". Series
	// use it as is (Content-Encoding gzip, zstd1, deflate); distribution
	// points only document deflate, so they use deflate unless "none".
	Compression string
	// Concurrency is the maximum number of concurrent HTTP requests; default 4.
	Concurrency int
	Backoff     Backoff
	// RequestTimeout bounds one HTTP attempt; default 30s.
	RequestTimeout time.Duration
	// MaxPayloadBytes caps a series request body on the wire; default and
	// maximum 512,000. A body compressing larger is split.
	MaxPayloadBytes int
	// MaxUncompressedBytes caps a series request body before compression;
	// default 4,000,000, less than the API's 5,242,880. With Compression
	// "none" the cap is MaxPayloadBytes.
	MaxUncompressedBytes int
	// MaxDistributionBytes caps a distribution points request body, before
	// and after compression; default 3,000,000, at most 3,200,000. A point
	// with more values than fit is split into several points with the same
	// timestamp (distributions merge, they do not overwrite).
	MaxDistributionBytes int
	// MaxAge: points older than this when submitted are rejected without
	// being sent (the API would drop them silently); default 1h. MaxFuture
	// likewise for points ahead of the clock; default 10m.
	MaxAge    time.Duration
	MaxFuture time.Duration

	// DogStatsDAddr is the Agent address in dogstatsd mode ("host:port",
	// "unix:///path"); default localhost:8125.
	DogStatsDAddr string

	// HTTPClient sends the requests; default: a client of its own with
	// keep-alive connections for Concurrency requests.
	HTTPClient *http.Client
	// Logger receives operational messages; default slog.Default().
	Logger *slog.Logger
	// OnResult, when set, is called after every HTTP attempt, from the
	// sending goroutine: keep it fast.
	OnResult func(Result)
	// Now is the clock for the age checks; default time.Now.
	Now func() time.Time
}

// Validate reports every invalid field; zero fields are valid (defaults).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("ddmetrics: "+format, args...)) }
	switch c.Mode {
	case "", ModeAPI:
		if c.APIKey == "" {
			bad("APIKey is required in api mode (the Datadog API key, sent as DD-API-KEY)")
		} else if strings.ContainsFunc(c.APIKey, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
			bad("APIKey contains whitespace or control characters")
		}
	case ModeDogStatsD:
	default:
		bad("Mode %q is not one of api, dogstatsd", c.Mode)
	}
	if c.APIURL != "" {
		u, err := url.Parse(c.APIURL)
		switch {
		case err != nil:
			bad("APIURL %q is not a URL: %v", c.APIURL, err)
		case u.Scheme != "http" && u.Scheme != "https":
			bad("APIURL %q must start with https:// or http://", c.APIURL)
		case u.Host == "":
			bad("APIURL %q has no host", c.APIURL)
		}
	}
	switch c.Compression {
	case "", "gzip", "zstd", "deflate", "none":
	default:
		bad("Compression %q is not one of gzip, zstd, deflate, none", c.Compression)
	}
	if c.Concurrency < 0 || c.Concurrency > 1024 {
		bad("Concurrency %d is out of range: 1..1024 (0 for the default %d)", c.Concurrency, DefaultConcurrency)
	}
	if c.RequestTimeout < 0 {
		bad("RequestTimeout %v must not be negative", c.RequestTimeout)
	}
	if c.MaxPayloadBytes < 0 || c.MaxPayloadBytes > MaxSeriesPayloadBytes {
		bad("MaxPayloadBytes %d is out of range: at most %d (0 for the default)", c.MaxPayloadBytes, MaxSeriesPayloadBytes)
	} else if c.MaxPayloadBytes > 0 && c.MaxPayloadBytes < 4096 {
		bad("MaxPayloadBytes %d is too small: at least 4096", c.MaxPayloadBytes)
	}
	if c.MaxUncompressedBytes < 0 || c.MaxUncompressedBytes >= MaxSeriesDecompressedBytes {
		bad("MaxUncompressedBytes %d is out of range: less than %d (0 for the default %d)", c.MaxUncompressedBytes, MaxSeriesDecompressedBytes, DefaultMaxUncompressedBytes)
	} else if c.MaxUncompressedBytes > 0 && c.MaxUncompressedBytes < 4096 {
		bad("MaxUncompressedBytes %d is too small: at least 4096", c.MaxUncompressedBytes)
	}
	if c.MaxDistributionBytes < 0 || c.MaxDistributionBytes > MaxDistributionPayloadBytes {
		bad("MaxDistributionBytes %d is out of range: at most %d (0 for the default %d)", c.MaxDistributionBytes, MaxDistributionPayloadBytes, DefaultMaxDistributionBytes)
	} else if c.MaxDistributionBytes > 0 && c.MaxDistributionBytes < 4096 {
		bad("MaxDistributionBytes %d is too small: at least 4096", c.MaxDistributionBytes)
	}
	if c.MaxAge < 0 || c.MaxAge > SeriesMaxAge || c.MaxFuture < 0 || c.MaxFuture > SeriesMaxFuture {
		bad("MaxAge must be within 0..1h and MaxFuture within 0..10m (0 for the API's limits)")
	}
	for _, p := range c.Backoff.Problems() {
		bad("%s", p)
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeAPI
	}
	if c.APIURL == "" {
		c.APIURL = APIURL("")
	}
	c.APIURL = strings.TrimRight(c.APIURL, "/")
	if c.Compression == "" {
		c.Compression = DefaultCompression
	}
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, DefaultRequestTimeout)
	c.MaxPayloadBytes = cmp.Or(c.MaxPayloadBytes, MaxSeriesPayloadBytes)
	c.MaxUncompressedBytes = cmp.Or(c.MaxUncompressedBytes, DefaultMaxUncompressedBytes)
	if c.Compression == "none" {
		c.MaxUncompressedBytes = min(c.MaxUncompressedBytes, c.MaxPayloadBytes)
	}
	c.MaxDistributionBytes = cmp.Or(c.MaxDistributionBytes, DefaultMaxDistributionBytes)
	c.MaxAge = cmp.Or(c.MaxAge, SeriesMaxAge)
	c.MaxFuture = cmp.Or(c.MaxFuture, SeriesMaxFuture)
	c.Backoff = c.Backoff.WithDefaults()
	if c.DogStatsDAddr == "" {
		c.DogStatsDAddr = DefaultDogStatsDAddr
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
