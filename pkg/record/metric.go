package record

// MetricKind is how the Datadog API treats a metric point.
type MetricKind uint8

const (
	MetricCount        MetricKind = iota // a count over Interval seconds
	MetricGauge                          // a value at a time
	MetricRate                           // a per-second rate over Interval seconds
	MetricDistribution                   // a distribution (see Sketch)
)

func (k MetricKind) String() string {
	switch k {
	case MetricCount:
		return "count"
	case MetricGauge:
		return "gauge"
	case MetricRate:
		return "rate"
	case MetricDistribution:
		return "distribution"
	}
	return "unknown"
}

// Metric is one point of a metric derived from logs or forwarded from
// CloudWatch. Batches carry them on the metrics topic (Batch.Metrics).
type Metric struct {
	Name      string
	Kind      MetricKind
	Timestamp int64 // seconds since the epoch (window start for counts)
	Interval  int64 // seconds, for counts and rates
	Value     float64
	// Values are a distribution's raw points (Datadog builds the sketch
	// server-side, so points from many submitters merge exactly); Sketch is
	// the compact alternative. Both are nil for other kinds.
	Values []float64
	Sketch *Sketch
	Tags   []string // "key:value"
	// Host is the resource the point is written for. Submitters that could
	// write the same (metric, tags, timestamp) must use distinct hosts, or
	// one point would overwrite the other.
	Host string
	Unit string
}

// Sketch is a mergeable distribution summary: exact count, sum, min and max,
// and the counts of a DDSketch's bins (keys in the Datadog Agent's
// logarithmic mapping, as the sketches payload carries them).
type Sketch struct {
	Count  int64
	Sum    float64
	Min    float64
	Max    float64
	Keys   []int32
	Counts []uint32
}
