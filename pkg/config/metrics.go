package config

import (
	"time"

	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
	"github.com/gwpipe/gwpipe/pkg/sources/cwpoller"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
)

// Metrics configures the metrics derived from logs (derive's own
// configuration) and their delivery, gwpipe's own metrics, CloudWatch
// metric streams and the CloudWatch poller.
type Metrics struct {
	Enabled       bool `yaml:"enabled"`
	derive.Config `yaml:",inline"`
	Delivery      MetricsDelivery `yaml:"delivery"`
	Telemetry     SelfTelemetry   `yaml:"telemetry"`
	Streams       MetricStreams   `yaml:"streams"`
	// Poller reads API Gateway's CloudWatch metrics with GetMetricData,
	// for accounts without a metric stream.
	Poller cwpoller.Config `yaml:"poller"`
}

// MetricStreams configures CloudWatch metric-stream records arriving on the
// Firehose endpoint beside the logs.
type MetricStreams struct {
	Enabled             bool `yaml:"enabled"`
	metricstream.Config `yaml:",inline"`
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

func defaultMetrics() Metrics {
	return Metrics{
		Enabled: true, Config: derive.DefaultConfig(),
		Delivery: MetricsDelivery{
			Mode: "api", Compression: "gzip", Concurrency: 2, RequestTimeout: 30 * time.Second,
			RetryInitial: 500 * time.Millisecond, RetryMax: 30 * time.Second, DogStatsDAddr: "localhost:8125",
		},
		Telemetry: SelfTelemetry{DogStatsDAddr: "localhost:8125", Interval: 10 * time.Second},
		Streams:   MetricStreams{Enabled: true, Config: metricstream.DefaultConfig()},
		Poller:    cwpoller.DefaultConfig(),
	}
}
