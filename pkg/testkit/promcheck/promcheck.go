// Package promcheck reads a /metrics exposition with Prometheus's own text
// parser and holds it against the telemetry snapshot it should show.
package promcheck

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gwpipe/gwpipe/pkg/telemetry"
	"github.com/gwpipe/gwpipe/pkg/telemetry/openmetrics"
)

// Parse reads an exposition in the Prometheus text format (version 0.0.4),
// names checked by the classic rules every scraper accepts.
func Parse(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	return fams, nil
}

// LabelKey identifies a sample by its labels, in key order.
func LabelKey(m *dto.Metric) string {
	kv := make([]string, 0, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		kv = append(kv, l.GetName()+"="+l.GetValue())
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

func seriesKey(f telemetry.Family, s telemetry.Series) string {
	kv := make([]string, len(f.LabelKeys))
	for i, k := range f.LabelKeys {
		kv[i] = k + "=" + s.LabelValues[i]
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

// Agree reports every difference between snap and an exposition of the
// same moment: a family or series missing on either side, another type,
// help or value. Counters and gauges must be equal; a histogram's count,
// sum and cumulative buckets too. A gauge whose value is unknown must be
// absent.
func Agree(snap telemetry.Snapshot, fams map[string]*dto.MetricFamily) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	left := maps.Clone(fams)
	for _, f := range snap.Families {
		name := openmetrics.Name(f)
		pf, ok := left[name]
		delete(left, name)
		want := map[string]telemetry.Series{}
		for _, s := range f.Series {
			if f.Known(s) {
				want[seriesKey(f, s)] = s
			}
		}
		if !ok {
			if len(want) > 0 {
				bad("%s (%s): not exposed", name, f.Name)
			}
			continue
		}
		if pf.GetHelp() != f.Help {
			bad("%s: help %q, want %q", name, pf.GetHelp(), f.Help)
		}
		wantType := map[telemetry.Kind]dto.MetricType{
			telemetry.KindCounter: dto.MetricType_COUNTER, telemetry.KindGauge: dto.MetricType_GAUGE, telemetry.KindHistogram: dto.MetricType_HISTOGRAM,
		}[f.Kind]
		if pf.GetType() != wantType {
			bad("%s: type %s, want %s", name, pf.GetType(), wantType)
			continue
		}
		for _, m := range pf.GetMetric() {
			k := LabelKey(m)
			s, ok := want[k]
			if !ok {
				bad("%s{%s}: exposed, not in the registry (or unknown)", name, k)
				continue
			}
			delete(want, k)
			switch f.Kind {
			case telemetry.KindCounter:
				if got := m.GetCounter().GetValue(); got != float64(s.Value) {
					bad("%s{%s} = %v, want %d", name, k, got, s.Value)
				}
			case telemetry.KindGauge:
				if got := m.GetGauge().GetValue(); got != float64(s.Value) {
					bad("%s{%s} = %v, want %d", name, k, got, s.Value)
				}
			case telemetry.KindHistogram:
				errs = append(errs, agreeHistogram(name+"{"+k+"}", m.GetHistogram(), s.Histogram))
			}
		}
		for k := range want {
			bad("%s{%s}: not exposed", name, k)
		}
	}
	for name := range left {
		bad("%s: exposed, not in the registry", name)
	}
	return errors.Join(errs...)
}

func agreeHistogram(name string, h *dto.Histogram, want *telemetry.HistogramSnapshot) error {
	var errs []error
	if h.GetSampleCount() != uint64(want.Count) {
		errs = append(errs, fmt.Errorf("%s: count %d, want %d", name, h.GetSampleCount(), want.Count))
	}
	// The sum goes through a decimal rendering of float64 seconds.
	if d := math.Abs(h.GetSampleSum() - want.Sum.Seconds()); d > 1e-9*max(1, want.Sum.Seconds()) {
		errs = append(errs, fmt.Errorf("%s: sum %v s, want %v s", name, h.GetSampleSum(), want.Sum.Seconds()))
	}
	bs := h.GetBucket()
	if n := len(bs); n > 0 && math.IsInf(bs[n-1].GetUpperBound(), 1) {
		if bs[n-1].GetCumulativeCount() != uint64(want.Count) {
			errs = append(errs, fmt.Errorf("%s: bucket +Inf holds %d, want %d", name, bs[n-1].GetCumulativeCount(), want.Count))
		}
		bs = bs[:n-1]
	}
	if len(bs) != len(telemetry.Buckets) {
		return errors.Join(append(errs, fmt.Errorf("%s: %d buckets, want %d", name, len(bs), len(telemetry.Buckets)))...)
	}
	for i, b := range bs {
		if b.GetUpperBound() != telemetry.Buckets[i].Seconds() || b.GetCumulativeCount() != uint64(want.Cumulative[i]) {
			errs = append(errs, fmt.Errorf("%s: bucket le=%v holds %d, want le=%v holding %d",
				name, b.GetUpperBound(), b.GetCumulativeCount(), telemetry.Buckets[i].Seconds(), want.Cumulative[i]))
		}
	}
	return errors.Join(errs...)
}
