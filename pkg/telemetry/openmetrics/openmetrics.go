// Package openmetrics serves a telemetry registry at /metrics in the
// OpenMetrics and Prometheus text formats, through prometheus/client_golang:
// the same snapshot /status and DogStatsD read, named for Prometheus.
package openmetrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// Prefix starts every name.
const Prefix = "gwpipe_"

// Name is a family's exposed name: Prefix, the dotted name with '_' for
// '.', then the unit Prometheus expects — counters end in _total,
// histograms (durations) in _seconds ("firehose.ack_latency" →
// gwpipe_firehose_ack_latency_seconds).
func Name(f telemetry.Family) string {
	n := Prefix + strings.ReplaceAll(f.Name, ".", "_")
	switch f.Kind {
	case telemetry.KindCounter:
		return n + "_total"
	case telemetry.KindHistogram:
		return n + "_seconds"
	}
	return n
}

// Collector exposes a registry to a Prometheus registry. Its families
// appear as components register them, so it describes none in advance
// (an unchecked collector).
type Collector struct{ reg *telemetry.Registry }

// NewCollector returns the registry's collector.
func NewCollector(reg *telemetry.Registry) Collector { return Collector{reg} }

// Describe describes nothing: the families are known only at collection.
func (Collector) Describe(chan<- *prometheus.Desc) {}

// Collect exports one snapshot: counters and gauges as they are (a gauge
// whose value is unknown is left out), histograms as Prometheus histograms
// over telemetry.Buckets with their exact count and sum, in seconds.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.reg.Snapshot().Families {
		desc := prometheus.NewDesc(Name(f), f.Help, f.LabelKeys, nil)
		for _, s := range f.Series {
			switch f.Kind {
			case telemetry.KindCounter:
				ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(s.Value), s.LabelValues...)
			case telemetry.KindGauge:
				if f.Known(s) {
					ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(s.Value), s.LabelValues...)
				}
			case telemetry.KindHistogram:
				h := s.Histogram
				buckets := make(map[float64]uint64, len(telemetry.Buckets))
				for i, le := range telemetry.Buckets {
					buckets[le.Seconds()] = uint64(h.Cumulative[i])
				}
				ch <- prometheus.MustNewConstHistogram(desc, uint64(h.Count), h.Sum.Seconds(), buckets, s.LabelValues...)
			}
		}
	}
}

// Handler serves the registry: OpenMetrics to a scraper that asks for it
// (Prometheus does), the Prometheus text format otherwise, gzip when
// accepted. A scrape reads the registry once; two at a time at most.
func Handler(reg *telemetry.Registry, log *slog.Logger) http.Handler {
	pr := prometheus.NewRegistry()
	pr.MustRegister(NewCollector(reg))
	opts := promhttp.HandlerOpts{EnableOpenMetrics: true, ErrorHandling: promhttp.ContinueOnError, MaxRequestsInFlight: 2}
	if log != nil {
		opts.ErrorLog = errorLog{log}
	}
	return promhttp.HandlerFor(pr, opts)
}

// errorLog is promhttp's Logger on slog.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) {
	l.log.Warn("/metrics: collecting or encoding failed", "error", fmt.Sprint(v...))
}
