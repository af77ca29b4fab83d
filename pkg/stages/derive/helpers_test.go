package derive_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
)

// t0 is window-aligned (seconds divisible by 10).
var t0 = time.Date(2026, 3, 14, 15, 9, 20, 0, time.UTC)

// sink is a stage.Output that keeps what it is given.
type sink struct {
	mu      sync.Mutex
	batches []*record.Batch
	dead    []*record.Batch
	fail    int // the next fail Emit calls fail
}

func (s *sink) Emit(_ context.Context, b *record.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return errors.New("output unavailable")
	}
	s.batches = append(s.batches, b)
	return nil
}

func (s *sink) DeadLetter(_ context.Context, b *record.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = append(s.dead, b)
	return nil
}

func (s *sink) metrics() []record.Metric {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []record.Metric
	for _, b := range s.batches {
		out = append(out, b.Metrics...)
	}
	return out
}

// req describes one synthetic request log.
type req struct {
	at      time.Time // event time
	method  string
	route   string
	status  int
	latMs   float64 // < 0: absent
	integMs float64 // < 0: absent
	bytes   int64   // < 0: absent
	tags    []string
	attrs   []record.Attr
	kind    record.Kind
	replay  bool
}

var apiTags = []string{"aws_account:123456789012", "region:us-east-1", "apiid:a1b2c3", "apiname:petstore", "stage:prod", "team:payments", "env:prod"}

func (r req) record() record.Record {
	kind := r.kind
	if kind == 0 {
		kind = record.KindAccess
	}
	attrs := []record.Attr{
		record.StringAttr("http.request_id", []byte("id")),
	}
	if r.method != "" {
		attrs = append(attrs, record.StringAttr("http.method", []byte(r.method)))
	}
	if r.route != "" {
		attrs = append(attrs, record.StringAttr("http.route", []byte(r.route)))
	}
	if r.status != 0 {
		attrs = append(attrs, record.IntAttr("http.status_code", int64(r.status)))
	}
	if r.latMs >= 0 {
		attrs = append(attrs, record.IntAttr("duration", int64(r.latMs*1e6)))
	}
	if r.integMs >= 0 {
		attrs = append(attrs, record.NumberAttr("apigateway.integrationLatency", []byte(fmt.Sprint(r.integMs))))
	}
	if r.bytes >= 0 {
		attrs = append(attrs, record.IntAttr("network.bytes_written", r.bytes))
	}
	attrs = append(attrs, r.attrs...)
	tags := r.tags
	if tags == nil {
		tags = apiTags
	}
	o := &record.Origin{Source: "firehose", Account: "123456789012", Region: "us-east-1", Replay: r.replay}
	if r.replay {
		tags = append(slices.Clip(tags), "replay:true")
	}
	return record.Record{Origin: o, Timestamp: r.at.UnixMilli(), Kind: kind, Attrs: attrs, Tags: tags}
}

func batchOf(rs ...req) *record.Batch {
	b := &record.Batch{ID: "in"}
	for _, r := range rs {
		b.Records = append(b.Records, r.record())
	}
	return b
}

func newDeriver(t testing.TB, cfg derive.Config) *derive.Deriver {
	t.Helper()
	if cfg.Host == "" {
		cfg.Host = "w1"
		cfg.NoIncarnation = true
	}
	d, err := derive.New(cfg, nil)
	require.NoError(t, err)
	return d
}

// pointKey identifies a point the way Datadog does for overwrites.
func pointKey(m record.Metric) string {
	tags := slices.Clone(m.Tags)
	sort.Strings(tags)
	return fmt.Sprintf("%s|%s|%s|%d", m.Name, strings.Join(tags, ","), m.Host, m.Timestamp)
}

// seriesKey identifies a series across hosts and timestamps.
func seriesKey(name string, tags []string) string {
	tags = slices.Clone(tags)
	sort.Strings(tags)
	return name + "|" + strings.Join(tags, ",")
}

// totals sums count points and gathers distribution values by series
// (across hosts and timestamps), after checking no two points would
// overwrite each other.
func totals(t testing.TB, ms []record.Metric) (map[string]float64, map[string][]float64) {
	t.Helper()
	seen := map[string]bool{}
	counts, dists := map[string]float64{}, map[string][]float64{}
	for _, m := range ms {
		k := pointKey(m)
		if m.Kind != record.MetricDistribution {
			require.False(t, seen[k], "two count points would overwrite each other: %s", k)
			seen[k] = true
			counts[seriesKey(m.Name, m.Tags)] += m.Value
		} else {
			dists[seriesKey(m.Name, m.Tags)] = append(dists[seriesKey(m.Name, m.Tags)], m.Values...)
		}
	}
	for k := range dists {
		sort.Float64s(dists[k])
	}
	return counts, dists
}

// tagsOf is the tag set the deriver writes for the standard test API.
func tagsOf(method, route, class string, extra ...string) []string {
	ts := []string{"aws_account:123456789012", "region:us-east-1", "apiid:a1b2c3", "apiname:petstore", "stage:prod"}
	if method != "" {
		ts = append(ts, "method:"+method)
	}
	if route != "" {
		ts = append(ts, "resource:"+route)
	}
	ts = append(ts, "status_class:"+class)
	return append(ts, extra...)
}

// exactTotals computes what the intake must hold for a traffic, with the
// error metrics named as errors (a derive.Config.ErrorMetrics) says.
func exactTotals(rs []req, errors string) (map[string]float64, map[string][]float64) {
	counts, dists := map[string]float64{}, map[string][]float64{}
	for _, r := range rs {
		tags := tagsOf(lower(r.method), r.route, classOf(r.status))
		counts[seriesKey(ns+"count", tags)]++
		switch r.status / 100 {
		case 4, 5:
			class := strconv.Itoa(r.status / 100)
			if errors != derive.ErrorMetricsHTTP {
				counts[seriesKey(ns+class+"xxerror", tags)]++
			}
			if errors != derive.ErrorMetricsREST {
				counts[seriesKey(ns+class+"xx", tags)]++
			}
		}
		if r.status == 429 {
			counts[seriesKey(ns+"throttled", tags)]++
		}
		for _, a := range r.attrs {
			if a.Key == "http.integration.status_code" {
				counts[seriesKey(ns+"integration_error", tags)]++
			}
		}
		dists[seriesKey(ns+"latency", tags)] = append(dists[seriesKey(ns+"latency", tags)], r.latMs)
		if r.integMs >= 0 {
			dists[seriesKey(ns+"integration_latency", tags)] = append(dists[seriesKey(ns+"integration_latency", tags)], r.integMs)
		}
		dists[seriesKey(ns+"response_size", tags)] = append(dists[seriesKey(ns+"response_size", tags)], float64(r.bytes))
	}
	for k := range dists {
		sort.Float64s(dists[k])
	}
	return counts, dists
}
