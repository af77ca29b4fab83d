package derive

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultNamespace       = "apigateway.logs."
	DefaultWindow          = 10 * time.Second
	DefaultAllowedLateness = 2 * time.Second
	// DefaultMaxAge keeps a five-minute margin under the Metrics API's
	// one-hour limit for series points
	// (docs/wire-formats.md#metrics-v2-series), for delivery retries.
	DefaultMaxAge             = 55 * time.Minute
	DefaultMaxFuture          = 10 * time.Minute
	DefaultMaxResourcesPerAPI = 500
	DefaultMaxSeriesPerWindow = 200_000
	DefaultMaxPointsPerBatch  = 5_000
	DefaultMaxValuesPerBatch  = 500_000
	// maxTagValue bounds a tag's value so that "key:value" stays within the
	// 200 characters Datadog keeps.
	maxTagValue = 180
)

// Summary modes (Config.Summaries).
const (
	SummariesAuto   = "auto"   // summaries count for stages without access logs (see package doc)
	SummariesAlways = "always" // every summary counts
	SummariesNever  = "never"  // only access logs count
)

// Error metric naming (Config.ErrorMetrics).
const (
	ErrorMetricsBoth = "both" // 4xxerror, 5xxerror (REST names) and 4xx, 5xx (HTTP API names)
	ErrorMetricsREST = "rest" // 4xxerror, 5xxerror
	ErrorMetricsHTTP = "http" // 4xx, 5xx
)

// DefaultCacheStatusKeys are the attributes read for a cache hit or miss.
// API Gateway has no $context variable for it; a custom access-log format
// can carry it (e.g. from a mapped header) under one of these names.
var DefaultCacheStatusKeys = []string{
	"apigateway.cacheStatus", "apigateway.cache.status", "apigateway.cache_status", "apigateway.cacheHit",
}

// Config configures a Deriver; it is the metrics section of gwpipe's
// configuration (but for its subsections). Constructors give zero fields
// DefaultConfig's values, documented on each field.
type Config struct {
	// Namespace prefixes every metric name; default "apigateway.logs.". It
	// must not start with "aws." (the AWS integration owns that namespace).
	Namespace string `yaml:"namespace"`
	// Window is the event-time window of counts and distributions; default
	// 10s. It must be a whole number of seconds, 1s to 1h. Its seconds are
	// also the slots for late flushes (see package doc), so windows of at
	// least 10s are recommended.
	Window time.Duration `yaml:"window"`
	// AllowedLateness is how long after a window's end (in event time, or
	// after its first record in processing time) it stays open; 2s in
	// DefaultConfig, and 0 closes a window at its end. Records later than
	// that are not lost: they are flushed in a late generation of the window
	// (see package doc).
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// MaxAge is the oldest event time (relative to Now) aggregated, and the
	// oldest point emitted; older records and points are counted as too old
	// and dropped. Default 55m (the series API accepts points up to 1h old).
	MaxAge time.Duration `yaml:"-"`
	// MaxFuture is the newest event time accepted; default 10m, the series
	// API's limit.
	MaxFuture time.Duration `yaml:"-"`
	// MaxResourcesPerAPI is K: per API (account, region, apiid) and window
	// generation, at most K distinct resource values are kept; records of
	// the others are counted under resource:other. Default 500; negative
	// means no limit.
	MaxResourcesPerAPI int `yaml:"max_resources_per_api"`
	// MaxSeriesPerWindow bounds the series one window generation holds
	// (memory guard); records that would open more are dropped and counted.
	// Default 200,000.
	MaxSeriesPerWindow int `yaml:"-"`
	// TagAllowlist are tag keys copied from rec.Tags, else from the static
	// tags (Deriver.SetStaticTags), into the metric tags, besides the fixed
	// keys (aws_account, region, apiid, apiname, stage, method, resource,
	// status_class, event_type). E.g. ["team", "env"].
	TagAllowlist []string `yaml:"tag_allowlist"`
	// Host is this worker's identity, written as the host of every point
	// so that two workers never write the same point. Default
	// "<hostname>-<pid>". See Incarnation.
	Host string `yaml:"host"`
	// Incarnation distinguishes this process from earlier ones with the
	// same Host (a restarted container keeps hostname and pid): the
	// effective host is Host + "-" + Incarnation. Default: the process
	// start time in milliseconds, base 36. NoIncarnation turns it off, for
	// a Host that is already unique per process lifetime.
	Incarnation   string `yaml:"-"`
	NoIncarnation bool   `yaml:"-"`
	// ReplayHostSuffix is appended to the host of points derived from
	// replayed records (rec.Origin.Replay or tag replay:true), so that a
	// replay never overwrites live points; default "-replay".
	ReplayHostSuffix string `yaml:"-"`
	// Summaries says whether execution-log request summaries
	// (record.KindSummary) are counted: "auto" (default), "always", "never".
	Summaries string `yaml:"summaries"`
	// AccessLogMemory is how long, in auto mode, a stage that produced an
	// access log is considered to have access logs; default 15m.
	AccessLogMemory time.Duration `yaml:"-"`
	// SummaryGrace is how long, in auto mode, the summaries of a stage
	// with no access log seen wait for one before they count; default 1m.
	SummaryGrace time.Duration `yaml:"-"`
	// ErrorMetrics selects the names of the 4xx/5xx counts: "both"
	// (default), "rest" (4xxerror, 5xxerror) or "http" (4xx, 5xx).
	ErrorMetrics string `yaml:"error_metrics"`
	// CacheStatusKeys are the attributes read for a cache hit or miss;
	// default DefaultCacheStatusKeys.
	CacheStatusKeys []string `yaml:"-"`
	// MaxPointsPerBatch and MaxValuesPerBatch bound one emitted batch:
	// default 5,000 points and 500,000 distribution values.
	MaxPointsPerBatch int `yaml:"-"`
	MaxValuesPerBatch int `yaml:"-"`
	// Tick is how often Run checks the windows for flushing; default 1s.
	Tick time.Duration `yaml:"tick"`
	// Now is the processing-time clock; default time.Now.
	Now func() time.Time `yaml:"-"`
	// Logger receives emission problems; default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// DefaultConfig holds the defaults documented on Config's fields. Host
// and Incarnation stay empty: New computes them for this process.
func DefaultConfig() Config {
	return Config{
		Namespace: DefaultNamespace, Window: DefaultWindow, AllowedLateness: DefaultAllowedLateness,
		MaxAge: DefaultMaxAge, MaxFuture: DefaultMaxFuture, MaxResourcesPerAPI: DefaultMaxResourcesPerAPI,
		MaxSeriesPerWindow: DefaultMaxSeriesPerWindow, ReplayHostSuffix: "-replay", Summaries: SummariesAuto,
		AccessLogMemory: 15 * time.Minute, SummaryGrace: time.Minute, ErrorMetrics: ErrorMetricsBoth, CacheStatusKeys: DefaultCacheStatusKeys,
		MaxPointsPerBatch: DefaultMaxPointsPerBatch, MaxValuesPerBatch: DefaultMaxValuesPerBatch, Tick: time.Second,
	}
}

// Validate reports every invalid field, each message starting with its
// key; zero fields are valid (New gives them their defaults).
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) { errs = append(errs, fmt.Errorf(key+": "+format, args...)) }
	if strings.HasPrefix(strings.ToLower(c.Namespace), "aws.") {
		bad("namespace", "%q must not start with \"aws.\": that namespace belongs to the AWS integration", c.Namespace)
	}
	if strings.ContainsAny(c.Namespace, " ,|:#") {
		bad("namespace", "%q contains a character metric names cannot have", c.Namespace)
	}
	if c.Window != 0 && (c.Window < time.Second || c.Window > time.Hour || c.Window%time.Second != 0) {
		bad("window", "%v must be a whole number of seconds between 1s and 1h", c.Window)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"allowed_lateness", c.AllowedLateness}, {"max_age", c.MaxAge}, {"max_future", c.MaxFuture}, {"access_log_memory", c.AccessLogMemory}, {"summary_grace", c.SummaryGrace}, {"tick", c.Tick}} {
		if d.v < 0 {
			bad(d.key, "must not be negative, got %s", d.v)
		}
	}
	w := c.Window
	if w == 0 {
		w = DefaultWindow
	}
	if c.MaxAge != 0 && c.MaxAge < 2*w {
		bad("max_age", "%v must be at least two windows (%v)", c.MaxAge, 2*w)
	}
	if c.MaxSeriesPerWindow < 0 || c.MaxPointsPerBatch < 0 || c.MaxValuesPerBatch < 0 {
		bad("max_series_per_window", "MaxSeriesPerWindow, MaxPointsPerBatch and MaxValuesPerBatch must not be negative")
	}
	switch c.Summaries {
	case "", SummariesAuto, SummariesAlways, SummariesNever:
	default:
		bad("summaries", "must be auto, always or never, not %q", c.Summaries)
	}
	switch c.ErrorMetrics {
	case "", ErrorMetricsBoth, ErrorMetricsREST, ErrorMetricsHTTP:
	default:
		bad("error_metrics", "must be both, rest or http, not %q", c.ErrorMetrics)
	}
	if err := validAllowlist(c.TagAllowlist); err != nil {
		errs = append(errs, err)
	}
	if strings.ContainsAny(c.Host, " ,|#") {
		bad("host", "%q contains a space, comma, | or #", c.Host)
	}
	return errors.Join(errs...)
}

// processStart is this process's incarnation: it changes on every restart.
var processStart = time.Now()

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	for _, f := range []struct{ v, d *time.Duration }{{&c.Window, &d.Window}, {&c.MaxAge, &d.MaxAge}, {&c.MaxFuture, &d.MaxFuture}, {&c.AccessLogMemory, &d.AccessLogMemory}, {&c.SummaryGrace, &d.SummaryGrace}, {&c.Tick, &d.Tick}} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	for _, f := range []struct{ v, d *int }{{&c.MaxResourcesPerAPI, &d.MaxResourcesPerAPI}, {&c.MaxSeriesPerWindow, &d.MaxSeriesPerWindow}, {&c.MaxPointsPerBatch, &d.MaxPointsPerBatch}, {&c.MaxValuesPerBatch, &d.MaxValuesPerBatch}} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	for _, f := range []struct{ v, d *string }{{&c.Namespace, &d.Namespace}, {&c.ReplayHostSuffix, &d.ReplayHostSuffix}, {&c.Summaries, &d.Summaries}, {&c.ErrorMetrics, &d.ErrorMetrics}} {
		if *f.v == "" {
			*f.v = *f.d
		}
	}
	if c.Host == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "gwpipe"
		}
		c.Host = h + "-" + strconv.Itoa(os.Getpid())
	}
	if c.Incarnation == "" {
		c.Incarnation = strconv.FormatInt(processStart.UnixMilli(), 36)
	}
	if c.CacheStatusKeys == nil {
		c.CacheStatusKeys = d.CacheStatusKeys
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// EffectiveHost is the host written on live points: Host plus the
// incarnation.
func (c Config) EffectiveHost() string {
	c = c.withDefaults()
	if c.NoIncarnation {
		return c.Host
	}
	return c.Host + "-" + c.Incarnation
}

// validAllowlist checks Config.TagAllowlist.
func validAllowlist(keys []string) error {
	var errs []error
	for _, k := range keys {
		switch {
		case k == "" || strings.ContainsAny(k, ":, "):
			errs = append(errs, fmt.Errorf("tag_allowlist: entry %q must be a bare tag key", k))
		case len(k) > maxTagValue:
			errs = append(errs, fmt.Errorf("tag_allowlist: entry %q is longer than %d bytes", k, maxTagValue))
		case fixedDim(k) >= 0:
			errs = append(errs, fmt.Errorf("tag_allowlist: entry %q is already a fixed tag key", k))
		}
	}
	return errors.Join(errs...)
}
