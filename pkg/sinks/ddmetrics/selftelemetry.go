package ddmetrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/DataDog/datadog-go/v5/statsd"

	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// Snapshotter is what SelfTelemetry reports: a telemetry registry.
type Snapshotter interface {
	Snapshot() telemetry.Snapshot
}

// SelfTelemetryConfig configures SelfTelemetry.
type SelfTelemetryConfig struct {
	// Addr is the DogStatsD address; default localhost:8125.
	Addr string
	// Prefix starts every metric name; default "gwpipe.".
	Prefix string
	// Interval between reports; default 10s.
	Interval time.Duration
	// Tags are added to every metric (e.g. "env:prod", "worker:…").
	Tags []string
	// Registry is what to report. Required.
	Registry Snapshotter
	Logger   *slog.Logger
}

// SelfTelemetry periodically sends a telemetry registry to a DogStatsD
// Agent through datadog-go: every family as <prefix><family name>, each
// series tagged with its labels (<key>:<value>):
//
//   - counters as DogStatsD counts of their growth since the previous
//     report, so that a counter's counts add up to its value;
//   - gauges as gauges (a gauge whose value is unknown is not sent);
//   - histograms as gauges <name>.p50, .p90, .p99, .max (milliseconds)
//     and a count <name>.count;
//   - and gwpipe.stage.batch_size, per stage: records per batch over the
//     interval (stage.records_in / stage.batches growth).
//
// The last report is sent by Close, after the shutdown counted what it
// handed back or lost.
type SelfTelemetry struct {
	cfg    SelfTelemetryConfig
	sd     *statsd.Client
	mu     sync.Mutex
	prev   map[string]int64
	closed bool
}

// NewSelfTelemetry opens the DogStatsD client.
func NewSelfTelemetry(cfg SelfTelemetryConfig) (*SelfTelemetry, error) {
	if cfg.Registry == nil {
		return nil, errors.New("ddmetrics: self telemetry needs a registry")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultDogStatsDAddr
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "gwpipe."
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// No client-side aggregation: each report is one value per context,
	// flushed at once.
	sd, err := statsd.New(cfg.Addr, statsd.WithoutClientSideAggregation(), statsd.WithTags(cfg.Tags))
	if err != nil {
		return nil, fmt.Errorf("ddmetrics: self telemetry dogstatsd client for %s: %w", cfg.Addr, err)
	}
	return &SelfTelemetry{cfg: cfg, sd: sd, prev: map[string]int64{}}, nil
}

// Run reports every Interval until ctx ends. The last report is Close's.
func (t *SelfTelemetry) Run(ctx context.Context) {
	tk := time.NewTicker(t.cfg.Interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			if err := t.Report(); err != nil {
				t.cfg.Logger.Warn("gwpipe self telemetry: report failed", "error", err)
			}
		}
	}
}

// Report sends one snapshot and flushes it.
func (t *SelfTelemetry) Report() error {
	s := t.cfg.Registry.Snapshot()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	return t.report(s)
}

func (t *SelfTelemetry) report(s telemetry.Snapshot) error {
	var errs []error
	check := func(err error) {
		if err != nil && len(errs) < 3 {
			errs = append(errs, err)
		}
	}
	p := t.cfg.Prefix
	// Growth of stage.batches and stage.records_in, by stage, for the batch
	// size.
	batches, records := map[string]int64{}, map[string]int64{}
	for _, f := range s.Families {
		for _, se := range f.Series {
			tags := tagsOf(f, se)
			name := p + f.Name
			key := name + "|" + strings.Join(tags, ",")
			switch f.Kind {
			case telemetry.KindCounter:
				d := t.delta(key, se.Value)
				check(t.sd.Count(name, d, tags, 1))
				if f.Name == "stage.batches" {
					batches[se.LabelValues[0]] = d
				} else if f.Name == "stage.records_in" {
					records[se.LabelValues[0]] = d
				}
			case telemetry.KindGauge:
				if f.Known(se) {
					check(t.sd.Gauge(name, float64(se.Value), tags, 1))
				}
			case telemetry.KindHistogram:
				q := se.Histogram.Quantiles
				check(t.sd.Count(name+".count", t.delta(key, q.Count), tags, 1))
				if q.Count == 0 {
					continue
				}
				check(t.sd.Gauge(name+".p50", q.P50, tags, 1))
				check(t.sd.Gauge(name+".p90", q.P90, tags, 1))
				check(t.sd.Gauge(name+".p99", q.P99, tags, 1))
				check(t.sd.Gauge(name+".max", q.Max, tags, 1))
			}
		}
	}
	for stage, n := range batches {
		if n > 0 {
			check(t.sd.Gauge(p+"stage.batch_size", float64(records[stage])/float64(n), []string{telemetry.StageLabel + ":" + stage}, 1))
		}
	}
	check(t.sd.Flush())
	if len(errs) > 0 {
		return fmt.Errorf("ddmetrics: self telemetry: %w", errors.Join(errs...))
	}
	return nil
}

// tagsOf are a series' labels as DogStatsD tags.
func tagsOf(f telemetry.Family, s telemetry.Series) []string {
	if len(f.LabelKeys) == 0 {
		return nil
	}
	tags := make([]string, len(f.LabelKeys))
	for i, k := range f.LabelKeys {
		tags[i] = k + ":" + tagValue.Replace(s.LabelValues[i])
	}
	return tags
}

// tagValue keeps a label value from breaking a DogStatsD datagram.
var tagValue = strings.NewReplacer("|", "_", ",", "_", "#", "_", "\n", "_")

// delta returns the growth of a cumulative counter since the last report
// (its value at the first report; 0 if it went backwards).
func (t *SelfTelemetry) delta(key string, v int64) int64 {
	d := v - t.prev[key]
	t.prev[key] = v
	return max(d, 0)
}

// Close sends the last report — the figures of a shutdown, what it handed
// back or lost included — then flushes and closes the DogStatsD client.
// Calling it again does nothing.
func (t *SelfTelemetry) Close() error {
	s := t.cfg.Registry.Snapshot()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	rerr := t.report(s)
	if err := t.sd.Close(); err != nil {
		return errors.Join(rerr, fmt.Errorf("ddmetrics: close self telemetry: %w", err))
	}
	return rerr
}
