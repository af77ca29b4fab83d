package ddmetrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/DataDog/datadog-go/v5/statsd"

	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// Snapshot is gwpipe's own state at one moment, as SelfTelemetry sends it.
// Counters are cumulative since the process started; SelfTelemetry sends
// their growth since its previous report as DogStatsD counts.
type Snapshot struct {
	Stages []StageCounters
	// Counters are other cumulative counts (retries, duplicates, points too
	// old…), by name: sent as <prefix><name>.
	Counters map[string]int64
	// Gauges are current values by name: sent as <prefix><name>.
	Gauges map[string]float64
	// Latencies are distributions of durations by name (delivery latency,
	// source acknowledgement latency…): sent as gauges <prefix><name>.p50,
	// .p90, .p99, .max in milliseconds, and <prefix><name>.count.
	Latencies map[string]Quantiles
}

// StageCounters are one stage's counters. All but InFlight and QueueDepth
// are cumulative.
type StageCounters struct {
	Name       string
	Batches    int64 // input batches handled
	In         int64 // records (or metric points) in
	Out        int64 // records emitted downstream
	Errors     int64 // handler errors (each retry counts)
	Dead       int64 // dead-lettered
	Dropped    int64 // dropped on purpose
	HandedBack int64 // given back unacknowledged at shutdown, for their sender to send again
	Lost       int64 // derived in the pipeline and never delivered
	InFlight   int64 // batches being handled now
	QueueDepth int64 // batches queued for the stage; -1 when unknown
}

// Quantiles summarise a latency distribution, in milliseconds.
type Quantiles struct {
	Count              int64
	P50, P90, P99, Max float64
}

// RegistrySnapshot returns a snapshot function reading a telemetry
// registry; extra functions may add to each snapshot (e.g. a client's
// Stats, see ClientCounters).
func RegistrySnapshot(reg *telemetry.Registry, extra ...func(*Snapshot)) func() Snapshot {
	return func() Snapshot {
		rs := reg.Snapshot()
		s := Snapshot{Counters: rs.Counters, Gauges: map[string]float64{}, Latencies: map[string]Quantiles{}}
		if s.Counters == nil {
			s.Counters = map[string]int64{}
		}
		for _, st := range rs.Stages {
			s.Stages = append(s.Stages, StageCounters{
				Name: st.Name, Batches: st.Batches, In: st.RecordsIn, Out: st.RecordsOut, Errors: st.Errors,
				Dead: st.Dead, Dropped: st.Dropped, HandedBack: st.HandedBack, Lost: st.Lost, InFlight: st.InFlight, QueueDepth: st.QueueDepth,
			})
		}
		for name, q := range rs.Latencies {
			s.Latencies[name] = Quantiles{Count: q.Count, P50: q.P50, P90: q.P90, P99: q.P99, Max: q.Max}
		}
		for _, f := range extra {
			f(&s)
		}
		return s
	}
}

// ClientCounters adds a metrics client's counters to a snapshot, named
// <name>.<counter> (e.g. "deliver-metrics.retries").
func ClientCounters(name string, c *Client) func(*Snapshot) {
	return func(s *Snapshot) {
		st := c.Stats()
		for k, v := range map[string]uint64{
			"submitted": st.Submitted, "series_accepted": st.SeriesAccepted, "values_accepted": st.ValuesAccepted,
			"rejected": st.Rejected, "too_old": st.TooOld, "requests": st.Requests, "retries": st.Retries,
			"splits": st.Splits, "bytes_sent": st.BytesSent,
		} {
			s.Counters[name+"."+k] = int64(v)
		}
		s.Gauges[name+".requests_in_flight"] = float64(st.InFlight)
	}
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
	// Snapshot returns the state to report. Required.
	Snapshot func() Snapshot
	Logger   *slog.Logger
}

// SelfTelemetry periodically sends gwpipe's own telemetry to a DogStatsD
// Agent through datadog-go. Per stage (tag stage:<name>):
//
//	<prefix>stage.batches, .records_in, .records_out, .errors,
//	.dead_lettered, .dropped, .handed_back, .lost     counts
//	<prefix>stage.batch_size                          gauge: records per batch over the interval
//	<prefix>stage.in_flight, <prefix>stage.queue_depth gauges
//
// and <prefix><counter> (counts), <prefix><gauge> (gauges),
// <prefix><latency>.p50/.p90/.p99/.max (gauges, ms) and .count (count) for
// the snapshot's other entries. Names are sanitised: characters other than
// letters, digits, '_' and '.' become '_' ("deliver-logs.request_latency"
// → "deliver_logs.request_latency").
type SelfTelemetry struct {
	cfg  SelfTelemetryConfig
	sd   *statsd.Client
	mu   sync.Mutex
	prev map[string]int64
}

// NewSelfTelemetry opens the DogStatsD client.
func NewSelfTelemetry(cfg SelfTelemetryConfig) (*SelfTelemetry, error) {
	if cfg.Snapshot == nil {
		return nil, errors.New("ddmetrics: self telemetry needs a Snapshot function")
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

// Run reports every Interval until ctx ends, then reports once more.
func (t *SelfTelemetry) Run(ctx context.Context) {
	tk := time.NewTicker(t.cfg.Interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := t.Report(); err != nil {
				t.cfg.Logger.Warn("gwpipe self telemetry: final report failed", "error", err)
			}
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
	s := t.cfg.Snapshot()
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	check := func(err error) {
		if err != nil && len(errs) < 3 {
			errs = append(errs, err)
		}
	}
	p := t.cfg.Prefix
	for _, st := range s.Stages {
		tags := []string{"stage:" + st.Name}
		name := sanitize(st.Name)
		dBatches := t.delta("stage.batches|"+name, st.Batches)
		dIn := t.delta("stage.records_in|"+name, st.In)
		check(t.sd.Count(p+"stage.batches", dBatches, tags, 1))
		check(t.sd.Count(p+"stage.records_in", dIn, tags, 1))
		check(t.sd.Count(p+"stage.records_out", t.delta("stage.records_out|"+name, st.Out), tags, 1))
		check(t.sd.Count(p+"stage.errors", t.delta("stage.errors|"+name, st.Errors), tags, 1))
		check(t.sd.Count(p+"stage.dead_lettered", t.delta("stage.dead|"+name, st.Dead), tags, 1))
		check(t.sd.Count(p+"stage.dropped", t.delta("stage.dropped|"+name, st.Dropped), tags, 1))
		check(t.sd.Count(p+"stage.handed_back", t.delta("stage.handed_back|"+name, st.HandedBack), tags, 1))
		check(t.sd.Count(p+"stage.lost", t.delta("stage.lost|"+name, st.Lost), tags, 1))
		if dBatches > 0 {
			check(t.sd.Gauge(p+"stage.batch_size", float64(dIn)/float64(dBatches), tags, 1))
		}
		check(t.sd.Gauge(p+"stage.in_flight", float64(st.InFlight), tags, 1))
		if st.QueueDepth >= 0 {
			check(t.sd.Gauge(p+"stage.queue_depth", float64(st.QueueDepth), tags, 1))
		}
	}
	for _, name := range sortedKeys(s.Counters) {
		n := sanitize(name)
		check(t.sd.Count(p+n, t.delta(n, s.Counters[name]), nil, 1))
	}
	for _, name := range sortedKeys(s.Gauges) {
		check(t.sd.Gauge(p+sanitize(name), s.Gauges[name], nil, 1))
	}
	for _, name := range sortedKeys(s.Latencies) {
		q, n := s.Latencies[name], sanitize(name)
		check(t.sd.Count(p+n+".count", t.delta(n+".count", q.Count), nil, 1))
		if q.Count == 0 {
			continue
		}
		check(t.sd.Gauge(p+n+".p50", q.P50, nil, 1))
		check(t.sd.Gauge(p+n+".p90", q.P90, nil, 1))
		check(t.sd.Gauge(p+n+".p99", q.P99, nil, 1))
		check(t.sd.Gauge(p+n+".max", q.Max, nil, 1))
	}
	check(t.sd.Flush())
	if len(errs) > 0 {
		return fmt.Errorf("ddmetrics: self telemetry: %w", errors.Join(errs...))
	}
	return nil
}

// delta returns the growth of a cumulative counter since the last report
// (its value at the first report; 0 if it went backwards).
func (t *SelfTelemetry) delta(key string, v int64) int64 {
	d := v - t.prev[key]
	t.prev[key] = v
	return max(d, 0)
}

// Close flushes and closes the DogStatsD client.
func (t *SelfTelemetry) Close() error {
	if err := t.sd.Close(); err != nil {
		return fmt.Errorf("ddmetrics: close self telemetry: %w", err)
	}
	return nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
