package config

import (
	"time"

	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddmetrics"
	"github.com/gwpipe/gwpipe/pkg/sources/cwpoller"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
)

// Metrics configures the metrics derived from logs (derive's own
// configuration) and their delivery, gwpipe's own metrics, CloudWatch
// metric streams and the CloudWatch poller.
type Metrics struct {
	Enabled       bool `yaml:"enabled"`
	derive.Config `yaml:",inline"`
	// Delivery is deliver-metrics' client: its keys, defaults and checks
	// are ddmetrics'; MetricsClient adds what comes from the datadog section.
	Delivery  ddmetrics.Config `yaml:"delivery"`
	Telemetry SelfTelemetry    `yaml:"telemetry"`
	Streams   MetricStreams    `yaml:"streams"`
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
		Delivery:  ddmetrics.DefaultConfig(),
		Telemetry: SelfTelemetry{DogStatsDAddr: ddmetrics.DefaultDogStatsDAddr, Interval: 10 * time.Second},
		Streams:   MetricStreams{Enabled: true, Config: metricstream.DefaultConfig()},
		Poller:    cwpoller.DefaultConfig(),
	}
}
