package telemetry

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram records durations, from a microsecond to an hour (longer ones
// count as an hour). It keeps them two ways, both exact enough to agree:
//
//   - an HdrHistogram (3 significant digits), for the quantiles /status,
//     the report and DogStatsD show: one process's p99 read directly;
//   - counts per fixed bucket (Buckets) and the exact sum, for the
//     OpenMetrics endpoint's histogram: buckets add up across the workers
//     of a fleet (histogram_quantile over sum by le), which quantiles
//     computed in each process never do.
type Histogram struct {
	mu      sync.Mutex
	h       *hdrhistogram.Histogram
	sum     int64 // µs
	buckets [len(Buckets)]int64
}

// maxMicros is the longest duration a Histogram tells apart.
const maxMicros = int64(time.Hour / time.Microsecond)

// Buckets are the upper bounds of the exported histogram's buckets (the
// last, +Inf, is implied): from half a millisecond, the fastest intake
// answer, to a minute, beyond the longest Firehose acknowledgement
// (Firehose gives up on a request after 180 s at most; those fall in +Inf).
var Buckets = [...]time.Duration{
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
}

func newHistogram() *Histogram {
	return &Histogram{h: hdrhistogram.New(1, maxMicros, 3)}
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	us := min(max(d.Microseconds(), 1), maxMicros)
	i := 0
	for i < len(Buckets) && d > Buckets[i] {
		i++
	}
	h.mu.Lock()
	_ = h.h.RecordValue(us) // within the range: cannot fail
	h.sum += us
	if i < len(Buckets) {
		h.buckets[i]++
	}
	h.mu.Unlock()
}

// Quantiles of the durations recorded so far, in milliseconds.
type Quantiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Quantiles returns the distribution so far.
func (h *Histogram) Quantiles() Quantiles {
	s := h.Snapshot()
	return s.Quantiles
}

// HistogramSnapshot is a histogram at one moment.
type HistogramSnapshot struct {
	Count     int64
	Sum       time.Duration
	Quantiles Quantiles
	// Cumulative counts of durations ≤ Buckets[i]; Count is the +Inf
	// bucket's.
	Cumulative [len(Buckets)]int64
}

// Snapshot copies the histogram.
func (h *Histogram) Snapshot() HistogramSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	s := HistogramSnapshot{
		Count: h.h.TotalCount(),
		Sum:   time.Duration(h.sum) * time.Microsecond,
		Quantiles: Quantiles{
			Count: h.h.TotalCount(),
			P50:   ms(h.h.ValueAtQuantile(50)),
			P90:   ms(h.h.ValueAtQuantile(90)),
			P99:   ms(h.h.ValueAtQuantile(99)),
			Max:   ms(h.h.Max()),
		},
	}
	var n int64
	for i, c := range h.buckets {
		n += c
		s.Cumulative[i] = n
	}
	return s
}
