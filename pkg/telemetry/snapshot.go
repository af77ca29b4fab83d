package telemetry

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Snapshot is every series of a registry at one moment. The views —
// /status (Status), the console report, DogStatsD, OpenMetrics — render
// it; none keeps figures of its own.
type Snapshot struct {
	Taken    time.Time
	Uptime   time.Duration
	Families []Family // in registration order
}

// Family is a metric family: its name (dotted snake_case, e.g.
// "firehose.ack_latency"), its help text, its kind and its label keys.
type Family struct {
	Name      string
	Help      string
	Kind      Kind
	LabelKeys []string
	// UnknownBelowZero: a negative value means unknown (a queue depth not
	// known yet); views that cannot say so leave the series out.
	UnknownBelowZero bool
	Series           []Series // in registration order
}

// Series is one series of a family.
type Series struct {
	LabelValues []string // in the order of the family's LabelKeys
	// Value of a counter or gauge; a histogram's count.
	Value     int64
	Histogram *HistogramSnapshot // histograms only
}

// Labels returns the series' labels.
func (f Family) Labels(s Series) []Label {
	out := make([]Label, len(f.LabelKeys))
	for i, k := range f.LabelKeys {
		out[i] = Label{k, s.LabelValues[i]}
	}
	return out
}

// Known reports whether a series' value is known.
func (f Family) Known(s Series) bool { return !f.UnknownBelowZero || s.Value >= 0 }

// Family returns the family of that name.
func (s Snapshot) Family(name string) (Family, bool) {
	for _, f := range s.Families {
		if f.Name == name {
			return f, true
		}
	}
	return Family{}, false
}

func (s Snapshot) series(name string, labelValues []string) (Series, bool) {
	f, ok := s.Family(name)
	if !ok {
		return Series{}, false
	}
	for _, se := range f.Series {
		if slices.Equal(se.LabelValues, labelValues) {
			return se, true
		}
	}
	return Series{}, false
}

// Value is a series' value (0 if absent).
func (s Snapshot) Value(name string, labelValues ...string) int64 {
	se, _ := s.series(name, labelValues)
	return se.Value
}

// Quantiles are a histogram series' quantiles (zero if absent).
func (s Snapshot) Quantiles(name string, labelValues ...string) Quantiles {
	se, _ := s.series(name, labelValues)
	if se.Histogram == nil {
		return Quantiles{}
	}
	return se.Histogram.Quantiles
}

// ByLabel returns the values of a family with one label, by its value.
func (s Snapshot) ByLabel(name string) map[string]int64 {
	f, _ := s.Family(name)
	out := make(map[string]int64, len(f.Series))
	for _, se := range f.Series {
		if len(se.LabelValues) == 1 {
			out[se.LabelValues[0]] = se.Value
		}
	}
	return out
}

// Sum adds up every series of a family.
func (s Snapshot) Sum(name string) int64 {
	f, _ := s.Family(name)
	var n int64
	for _, se := range f.Series {
		n += se.Value
	}
	return n
}

// Key names a series in /status: the family's name, then its label values
// ("firehose.status" code=200 → "firehose.status.200").
func Key(name string, labelValues []string) string {
	if len(labelValues) == 0 {
		return name
	}
	return name + "." + strings.Join(labelValues, ".")
}

// Status is the /status view of a snapshot, every key snake_case:
//
//   - stages: the "stage.<field>" families, one object per stage (or
//     source) in registration order, {"name": …, "<field>": value…};
//   - counters, gauges: every other counter and gauge, by Key;
//   - latencies: every histogram, by Key, as quantiles in milliseconds.
type Status struct {
	UptimeSeconds float64              `json:"uptime_seconds"`
	Stages        []StageStatus        `json:"stages"`
	Counters      map[string]int64     `json:"counters"`
	Gauges        map[string]int64     `json:"gauges"`
	Latencies     map[string]Quantiles `json:"latencies"`
}

// StageStatus is one stage's series.
type StageStatus struct {
	Name    string
	Figures map[string]int64 // by field: "records_in", "queue_depth"…
}

// MarshalJSON writes {"name": …, "<field>": value, …}.
func (s StageStatus) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(s.Figures)+1)
	for k, v := range s.Figures {
		m[k] = v
	}
	m["name"] = s.Name
	return json.Marshal(m)
}

// Status renders the snapshot for /status.
func (s Snapshot) Status() Status {
	st := Status{UptimeSeconds: s.Uptime.Seconds(), Counters: map[string]int64{}, Gauges: map[string]int64{}, Latencies: map[string]Quantiles{}}
	stages := map[string]int{}
	for _, f := range s.Families {
		field, isStage := strings.CutPrefix(f.Name, "stage.")
		isStage = isStage && slices.Equal(f.LabelKeys, []string{StageLabel})
		for _, se := range f.Series {
			switch {
			case isStage:
				name := se.LabelValues[0]
				i, ok := stages[name]
				if !ok {
					i = len(st.Stages)
					stages[name] = i
					st.Stages = append(st.Stages, StageStatus{Name: name, Figures: map[string]int64{}})
				}
				st.Stages[i].Figures[field] = se.Value
			case f.Kind == KindHistogram:
				st.Latencies[Key(f.Name, se.LabelValues)] = se.Histogram.Quantiles
			case f.Kind == KindGauge:
				st.Gauges[Key(f.Name, se.LabelValues)] = se.Value
			default:
				st.Counters[Key(f.Name, se.LabelValues)] = se.Value
			}
		}
	}
	return st
}
