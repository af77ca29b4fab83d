// Package top is the live view of running gwpipe workers (gwpipe top, and
// make run in a terminal): it reads each worker's /metrics, computes rates
// and windowed p99s from two successive scrapes, and renders them as a
// full-screen view (Model, on bubbletea) or as plain lines (Frame.Plain).
//
// /metrics is the one source: every figure of the registry, labelled, with
// latency histograms as buckets, which add up across the workers of a
// fleet and give the p99 of the last interval rather than since start.
package top

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// prefix starts every gwpipe family name on /metrics.
const prefix = "gwpipe_"

// Sample is one scrape of one worker.
type Sample struct {
	Addr  string
	Taken time.Time
	Err   error
	fams  map[string]*dto.MetricFamily
}

// Scrape reads the /metrics of the admin endpoint at addr (host:port or
// a URL).
func Scrape(ctx context.Context, client *http.Client, addr string) Sample {
	s := Sample{Addr: addr, Taken: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL(addr), nil)
	if err != nil {
		s.Err = err
		return s
	}
	resp, err := client.Do(req)
	if err != nil {
		s.Err = err
		return s
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.Err = fmt.Errorf("/metrics: %s", resp.Status)
		return s
	}
	s.fams, s.Err = Parse(resp.Body)
	return s
}

// Parse reads a /metrics exposition in the Prometheus text format.
func Parse(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("/metrics: %w", err)
	}
	return fams, nil
}

// SampleOf is a sample of an exposition already read (tests, a worker's
// own registry).
func SampleOf(addr string, taken time.Time, exposition string) Sample {
	s := Sample{Addr: addr, Taken: taken}
	s.fams, s.Err = Parse(strings.NewReader(exposition))
	return s
}

func metricsURL(addr string) string {
	base := addr
	if u, err := url.Parse(addr); err != nil || u.Scheme == "" || u.Host == "" {
		base = "http://" + addr
	}
	return strings.TrimRight(base, "/") + "/metrics"
}

// family returns a family by its registry name ("stage.records_in"),
// whatever suffix the exposition gave it.
func (s Sample) family(name string) *dto.MetricFamily {
	n := prefix + strings.ReplaceAll(name, ".", "_")
	for _, suffix := range []string{"_total", "", "_seconds"} {
		if f, ok := s.fams[n+suffix]; ok {
			return f
		}
	}
	return nil
}

// has reports whether the worker registers the family.
func (s Sample) has(name string) bool { return s.family(name) != nil }

// label is a metric's value of a label.
func label(m *dto.Metric, key string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == key {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) (float64, bool) {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	case m.Gauge != nil:
		return m.Gauge.GetValue(), true
	case m.Untyped != nil:
		return m.Untyped.GetValue(), true
	}
	return 0, false
}

// values are a family's values by one label's value ("" for a family
// without it); absent series are absent.
func (s Sample) values(name, key string) map[string]float64 {
	out := map[string]float64{}
	if f := s.family(name); f != nil {
		for _, m := range f.GetMetric() {
			if v, ok := value(m); ok {
				out[label(m, key)] += v
			}
		}
	}
	return out
}

// sum adds up every series of a family.
func (s Sample) sum(name string) float64 {
	var n float64
	for _, v := range s.values(name, "") {
		n += v
	}
	return n
}

// hist is a histogram's cumulative buckets (upper bounds in seconds).
type hist struct {
	bounds []float64
	cum    []float64 // cumulative counts, the last one +Inf's
}

// histograms are a histogram family's series by one label's value.
func (s Sample) histograms(name, key string) map[string]hist {
	out := map[string]hist{}
	f := s.family(name)
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		var x hist
		for _, b := range h.GetBucket() {
			if math.IsInf(b.GetUpperBound(), +1) {
				continue
			}
			x.bounds = append(x.bounds, b.GetUpperBound())
			x.cum = append(x.cum, float64(b.GetCumulativeCount()))
		}
		x.bounds = append(x.bounds, math.Inf(+1))
		x.cum = append(x.cum, float64(h.GetSampleCount()))
		k := label(m, key)
		out[k] = x.add(out[k])
	}
	return out
}

// add adds two histograms over the same buckets (one empty is nothing).
func (h hist) add(o hist) hist {
	if len(o.cum) == 0 {
		return h
	}
	if len(h.cum) == 0 {
		return o
	}
	c := hist{bounds: h.bounds, cum: make([]float64, len(h.cum))}
	for i := range c.cum {
		c.cum[i] = h.cum[i]
		if i < len(o.cum) {
			c.cum[i] += o.cum[i]
		}
	}
	return c
}

// since is what h observed after prev (a reset, when the worker
// restarted, counts from zero).
func (h hist) since(prev hist) hist {
	if len(prev.cum) != len(h.cum) {
		return h
	}
	d := hist{bounds: h.bounds, cum: make([]float64, len(h.cum))}
	for i := range h.cum {
		d.cum[i] = h.cum[i] - prev.cum[i]
		if d.cum[i] < 0 {
			return h
		}
	}
	return d
}

func (h hist) count() float64 {
	if len(h.cum) == 0 {
		return 0
	}
	return h.cum[len(h.cum)-1]
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile
// does: linear within the bucket it falls in; the last finite bound when
// it falls in +Inf. NaN when nothing was observed.
func (h hist) quantile(q float64) float64 {
	n := h.count()
	if n == 0 {
		return math.NaN()
	}
	rank := q * n
	lower, below := 0.0, 0.0
	for i, c := range h.cum {
		if c >= rank {
			upper := h.bounds[i]
			if math.IsInf(upper, +1) {
				return lower
			}
			if c == below {
				return upper
			}
			return lower + (upper-lower)*(rank-below)/(c-below)
		}
		lower, below = h.bounds[i], c
	}
	return lower
}
