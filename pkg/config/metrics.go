package config

import (
	"fmt"
	"strings"
	"time"
)

// Metrics configures the metrics derived from logs and their delivery.
type Metrics struct {
	Enabled            bool          `yaml:"enabled"`
	Namespace          string        `yaml:"namespace"`
	Window             time.Duration `yaml:"window"`
	AllowedLateness    time.Duration `yaml:"allowed_lateness"`
	MaxResourcesPerAPI int           `yaml:"max_resources_per_api"`
	TagAllowlist       []string      `yaml:"tag_allowlist"`
	// Host names this worker in every point it writes, so that workers
	// never overwrite each other's points; default hostname-pid.
	Host string `yaml:"host"`
	// Summaries: whether execution-log request summaries are counted:
	// auto (for stages without access logs), always or never.
	Summaries    string          `yaml:"summaries"`
	ErrorMetrics string          `yaml:"error_metrics"` // both, rest (4xxerror/5xxerror) or http (4xx/5xx)
	Tick         time.Duration   `yaml:"tick"`          // how often windows are checked for flushing
	Delivery     MetricsDelivery `yaml:"delivery"`
	Telemetry    SelfTelemetry   `yaml:"telemetry"`
	Streams      MetricStreams   `yaml:"streams"`
	Poller       MetricPoller    `yaml:"poller"`
}

// MetricPoller reads API Gateway's CloudWatch metrics with GetMetricData,
// for accounts without a metric stream.
type MetricPoller struct {
	// Targets are "account:region" pairs, e.g. 123456789012:us-east-1.
	Targets   []string      `yaml:"targets"`
	Interval  time.Duration `yaml:"interval"`
	Lag       time.Duration `yaml:"lag"`
	StateFile string        `yaml:"state_file"` // remembers the periods fetched, across restarts
}

// MetricStreams configures CloudWatch metric-stream records arriving on the
// Firehose endpoint beside the logs.
type MetricStreams struct {
	Enabled bool `yaml:"enabled"`
	// Namespace replaces the integration's "aws." (e.g. "cloudwatch.")
	// when Datadog's own CloudWatch crawler also collects these metrics.
	Namespace      string   `yaml:"namespace"`
	PassOther      bool     `yaml:"pass_other"` // other AWS namespaces as aws.<service>.<metric>
	DropNamespaces []string `yaml:"drop_namespaces"`
	Percentiles    bool     `yaml:"percentiles"`
}

// MetricsDelivery configures deliver-metrics.
type MetricsDelivery struct {
	Mode           string        `yaml:"mode"` // api or dogstatsd
	Compression    string        `yaml:"compression"`
	Concurrency    int           `yaml:"concurrency"`
	RequestTimeout time.Duration `yaml:"request_timeout"`
	RetryInitial   time.Duration `yaml:"retry_initial"`
	RetryMax       time.Duration `yaml:"retry_max"`
	DogStatsDAddr  string        `yaml:"dogstatsd_addr"`
}

// SelfTelemetry configures gwpipe's own metrics, sent with DogStatsD.
type SelfTelemetry struct {
	Enabled       bool          `yaml:"enabled"`
	DogStatsDAddr string        `yaml:"dogstatsd_addr"`
	Interval      time.Duration `yaml:"interval"`
	Tags          []string      `yaml:"tags"`
}

// CorrelationConfig folds execution-log lines into request summaries.
type Correlation struct {
	MaxOpen int           `yaml:"max_open"` // requests open at once; the oldest is summarised when full
	MaxAge  time.Duration `yaml:"max_age"`  // a request without "Method completed" is summarised after this
	// DeliverSummaries also sends each summary to Datadog as a log.
	DeliverSummaries bool `yaml:"deliver_summaries"`
}

func defaultMetrics() Metrics {
	return Metrics{
		Enabled: true, Namespace: "apigateway.logs.", Window: 10 * time.Second, AllowedLateness: 2 * time.Second,
		MaxResourcesPerAPI: 500, Summaries: "auto", ErrorMetrics: "both", Tick: time.Second,
		Delivery: MetricsDelivery{
			Mode: "api", Compression: "gzip", Concurrency: 2, RequestTimeout: 30 * time.Second,
			RetryInitial: 500 * time.Millisecond, RetryMax: 30 * time.Second, DogStatsDAddr: "localhost:8125",
		},
		Telemetry: SelfTelemetry{DogStatsDAddr: "localhost:8125", Interval: 10 * time.Second},
		Streams:   MetricStreams{Enabled: true, Namespace: "aws.", PassOther: true, Percentiles: true},
		Poller:    MetricPoller{Interval: time.Minute, Lag: 2 * time.Minute, StateFile: "data/cwpoller-state.json"},
	}
}

func defaultCorrelation() Correlation {
	return Correlation{MaxOpen: 200_000, MaxAge: 30 * time.Second}
}

func (c Config) validateMetrics(bad func(key, format string, a ...any)) {
	m := c.Metrics
	if !m.Enabled {
		return
	}
	if strings.HasPrefix(m.Namespace, "aws.") {
		bad("metrics.namespace", "must not start with aws. (the AWS integration owns it), got %q", m.Namespace)
	}
	if m.Window < time.Second || m.Window%time.Second != 0 {
		bad("metrics.window", "must be a whole number of seconds, at least 1s, got %s", m.Window)
	}
	switch m.Summaries {
	case "auto", "always", "never":
	default:
		bad("metrics.summaries", "must be auto, always or never, not %q", m.Summaries)
	}
	switch m.ErrorMetrics {
	case "both", "rest", "http":
	default:
		bad("metrics.error_metrics", "must be both, rest or http, not %q", m.ErrorMetrics)
	}
	switch m.Delivery.Mode {
	case "api", "dogstatsd":
	default:
		bad("metrics.delivery.mode", "must be api or dogstatsd, not %q", m.Delivery.Mode)
	}
	switch m.Delivery.Compression {
	case "gzip", "zstd", "deflate", "none":
	default:
		bad("metrics.delivery.compression", "must be gzip, zstd, deflate or none, not %q", m.Delivery.Compression)
	}
	if m.Tick <= 0 {
		bad("metrics.tick", "must be positive")
	}
	if m.Delivery.Concurrency < 1 {
		bad("metrics.delivery.concurrency", "must be at least 1")
	}
	for _, t := range m.Poller.Targets {
		if a, r, ok := strings.Cut(t, ":"); !ok || len(a) != 12 || r == "" {
			bad("metrics.poller.targets", "each target is account:region (e.g. 123456789012:us-east-1), got %q", t)
		}
	}
	if c.Parse.Correlation.MaxOpen < 1 || c.Parse.Correlation.MaxAge <= 0 {
		bad("parse.correlation", fmt.Sprintf("max_open and max_age must be positive, got %d and %s", c.Parse.Correlation.MaxOpen, c.Parse.Correlation.MaxAge))
	}
}
