package fakeintake

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/valyala/fastjson"
)

// MetricType is the v2 series intake type.
type MetricType int

const (
	MetricUnspecified MetricType = 0
	MetricCount       MetricType = 1
	MetricRate        MetricType = 2
	MetricGauge       MetricType = 3
)

// Resource is a series resource, e.g. {"name":"web-1","type":"host"}.
type Resource struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// SeriesPoint is one accepted point of a v2 series, with its series' fields.
// Slices are shared by the points of one series; do not modify them.
type SeriesPoint struct {
	Metric         string     `json:"metric"`
	Type           MetricType `json:"type"`
	Interval       int64      `json:"interval,omitempty"`
	Unit           string     `json:"unit,omitempty"`
	SourceTypeName string     `json:"source_type_name,omitempty"`
	Tags           []string   `json:"tags,omitempty"`
	Resources      []Resource `json:"resources,omitempty"`
	Timestamp      int64      `json:"timestamp"` // Unix seconds
	Value          float64    `json:"value"`
	Received       time.Time  `json:"received"`
}

// Host returns the name of the series' first "host" resource, if any.
func (p SeriesPoint) Host() string {
	for _, r := range p.Resources {
		if r.Type == "host" {
			return r.Name
		}
	}
	return ""
}

// parseSeries validates a v2 MetricPayload. Any invalid series rejects the
// whole payload; points outside the age window are dropped and counted.
func parseSeries(body []byte, _ *http.Request, now time.Time) (*batch, error) {
	oldest, newest := now.Add(-SeriesMaxAge).Unix(), now.Add(SeriesMaxFuture).Unix()
	b := &batch{}
	err := eachSeriesPoint(body, parseOneSeries, func(pt SeriesPoint, pv *fastjson.Value) error {
		ts, val, err := parseSeriesPoint(pv)
		if err != nil {
			return err
		}
		switch {
		case ts < oldest:
			b.tooOld++
		case ts > newest:
			b.tooNew++
		default:
			pt.Timestamp, pt.Value, pt.Received = ts, val, now
			b.series = append(b.series, pt)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// eachSeriesPoint walks a {"series":[…]} body, the envelope shared by v2
// series and v1 distribution points: parseOne validates one series and
// returns its point template and its points, point validates and keeps one
// point. The first error names the series and point it is about.
func eachSeriesPoint[T any](body []byte, parseOne func(*fastjson.Value) (T, []*fastjson.Value, error), point func(T, *fastjson.Value) error) error {
	p := parserPool.Get()
	defer parserPool.Put(p)
	list, err := seriesList(p, body)
	if err != nil {
		return err
	}
	for i, sv := range list {
		tmpl, points, err := parseOne(sv)
		if err != nil {
			return fmt.Errorf("series[%d]: %w", i, err)
		}
		for j, pv := range points {
			if err := point(tmpl, pv); err != nil {
				return fmt.Errorf("series[%d].points[%d]: %w", i, j, err)
			}
		}
	}
	return nil
}

// seriesList returns the non-empty "series" array of a {"series":[…]} body,
// the envelope shared by v2 series and v1 distribution points.
func seriesList(p *fastjson.Parser, body []byte) ([]*fastjson.Value, error) {
	root, err := parseJSON(p, body)
	if err != nil {
		return nil, err
	}
	if root.Type() != fastjson.TypeObject {
		return nil, fmt.Errorf(`payload must be an object {"series":[...]}, got %s`, root.Type())
	}
	// Before any field is read: reading makes fastjson re-escape, hiding
	// raw control characters. Metric payloads are small; the copy is cheap.
	if hasControlChar(root.MarshalTo(nil)) {
		return nil, errControlChar
	}
	sv := root.Get("series")
	if sv == nil || sv.Type() != fastjson.TypeArray {
		return nil, errors.New(`payload must have a "series" array`)
	}
	list, _ := sv.Array() // cannot fail on an array
	if len(list) == 0 {
		return nil, errors.New(`"series" must not be empty`)
	}
	return list, nil
}

// parseOneSeries validates a MetricSeries and returns a point template with
// its fields, and its points.
func parseOneSeries(v *fastjson.Value) (SeriesPoint, []*fastjson.Value, error) {
	var pt SeriesPoint
	var err error
	if pt.Metric, err = metricName(v); err != nil {
		return pt, nil, err
	}
	typ, err := optionalInt(v, "type")
	if err != nil {
		return pt, nil, err
	}
	if typ < int64(MetricUnspecified) || typ > int64(MetricGauge) {
		return pt, nil, fmt.Errorf("type: must be 0 to 3, got %d", typ)
	}
	pt.Type = MetricType(typ)
	if pt.Interval, err = optionalInt(v, "interval"); err != nil {
		return pt, nil, err
	}
	if pt.Interval < 0 {
		return pt, nil, fmt.Errorf("interval: must not be negative, got %d", pt.Interval)
	}
	if pt.Unit, err = optionalString(v, "unit"); err != nil {
		return pt, nil, err
	}
	if pt.SourceTypeName, err = optionalString(v, "source_type_name"); err != nil {
		return pt, nil, err
	}
	if pt.Tags, err = optionalStrings(v, "tags"); err != nil {
		return pt, nil, err
	}
	if pt.Resources, err = optionalResources(v); err != nil {
		return pt, nil, err
	}
	if m := v.Get("metadata"); m != nil && m.Type() != fastjson.TypeObject && m.Type() != fastjson.TypeNull {
		return pt, nil, fmt.Errorf("metadata: must be an object, got %s", m.Type())
	}
	points, err := requiredArray(v, "points")
	if err != nil {
		return pt, nil, err
	}
	return pt, points, nil
}

// metricName checks that a series is an object and returns its metric name.
func metricName(v *fastjson.Value) (string, error) {
	if v.Type() != fastjson.TypeObject {
		return "", fmt.Errorf("must be an object, got %s", v.Type())
	}
	return requiredString(v, "metric")
}

// parseSeriesPoint validates a MetricPoint {timestamp:int64, value:float64}.
func parseSeriesPoint(v *fastjson.Value) (int64, float64, error) {
	if v.Type() != fastjson.TypeObject {
		return 0, 0, fmt.Errorf("must be an object, got %s", v.Type())
	}
	tv := v.Get("timestamp")
	if tv == nil || tv.Type() != fastjson.TypeNumber {
		return 0, 0, errors.New("timestamp: must be an integer")
	}
	ts, err := tv.Int64()
	if err != nil {
		return 0, 0, errors.New("timestamp: must be an integer")
	}
	val, err := finite(v.Get("value"))
	if err != nil {
		return 0, 0, fmt.Errorf("value: %w", err)
	}
	return ts, val, nil
}

// The helpers below treat JSON null like an absent optional field, as the
// Datadog clients of other languages send nulls for unset fields.

func requiredString(v *fastjson.Value, key string) (string, error) {
	f := v.Get(key)
	if f == nil || f.Type() != fastjson.TypeString {
		return "", fmt.Errorf("%s: must be a string", key)
	}
	s := string(f.GetStringBytes())
	if s == "" {
		return "", fmt.Errorf("%s: must not be empty", key)
	}
	return s, nil
}

func optionalString(v *fastjson.Value, key string) (string, error) {
	f := v.Get(key)
	if f == nil || f.Type() == fastjson.TypeNull {
		return "", nil
	}
	if f.Type() != fastjson.TypeString {
		return "", fmt.Errorf("%s: must be a string, got %s", key, f.Type())
	}
	return string(f.GetStringBytes()), nil
}

func optionalInt(v *fastjson.Value, key string) (int64, error) {
	f := v.Get(key)
	if f == nil || f.Type() == fastjson.TypeNull {
		return 0, nil
	}
	if f.Type() != fastjson.TypeNumber {
		return 0, fmt.Errorf("%s: must be an integer, got %s", key, f.Type())
	}
	n, err := f.Int64()
	if err != nil {
		return 0, fmt.Errorf("%s: must be an integer", key)
	}
	return n, nil
}

func optionalStrings(v *fastjson.Value, key string) ([]string, error) {
	f := v.Get(key)
	if f == nil || f.Type() == fastjson.TypeNull {
		return nil, nil
	}
	if f.Type() != fastjson.TypeArray {
		return nil, fmt.Errorf("%s: must be an array of strings, got %s", key, f.Type())
	}
	items, _ := f.Array()
	out := make([]string, len(items))
	for i, it := range items {
		if it.Type() != fastjson.TypeString {
			return nil, fmt.Errorf("%s[%d]: must be a string, got %s", key, i, it.Type())
		}
		out[i] = string(it.GetStringBytes())
	}
	return out, nil
}

func requiredArray(v *fastjson.Value, key string) ([]*fastjson.Value, error) {
	f := v.Get(key)
	if f == nil || f.Type() != fastjson.TypeArray {
		return nil, fmt.Errorf("%s: must be an array", key)
	}
	items, _ := f.Array()
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: must not be empty", key)
	}
	return items, nil
}

func optionalResources(v *fastjson.Value) ([]Resource, error) {
	f := v.Get("resources")
	if f == nil || f.Type() == fastjson.TypeNull {
		return nil, nil
	}
	if f.Type() != fastjson.TypeArray {
		return nil, fmt.Errorf("resources: must be an array, got %s", f.Type())
	}
	items, _ := f.Array()
	out := make([]Resource, len(items))
	for i, it := range items {
		if it.Type() != fastjson.TypeObject {
			return nil, fmt.Errorf("resources[%d]: must be an object, got %s", i, it.Type())
		}
		name, err := requiredString(it, "name")
		if err != nil {
			return nil, fmt.Errorf("resources[%d].%w", i, err)
		}
		typ, err := requiredString(it, "type")
		if err != nil {
			return nil, fmt.Errorf("resources[%d].%w", i, err)
		}
		out[i] = Resource{Name: name, Type: typ}
	}
	return out, nil
}

// finite returns v as a finite float64. Numbers too large for a float64
// (1e400) are refused, as a Go or Java decoder on the real side would.
func finite(v *fastjson.Value) (float64, error) {
	if v == nil || v.Type() != fastjson.TypeNumber {
		return 0, errors.New("must be a number")
	}
	f, err := v.Float64()
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, errors.New("must be a finite number")
	}
	return f, nil
}

// DistributionPoint is one accepted [timestamp, [values…]] point of a v1
// distribution series, with its series' fields. Tags are shared by the points
// of one series; do not modify them.
type DistributionPoint struct {
	Metric    string    `json:"metric"`
	Host      string    `json:"host,omitempty"`
	Tags      []string  `json:"tags,omitempty"`
	Type      string    `json:"type"`      // always "distribution"
	Timestamp int64     `json:"timestamp"` // Unix seconds
	Values    []float64 `json:"values"`
	Received  time.Time `json:"received"`
}

// parseDistributions validates a v1 DistributionPointsPayload.
func parseDistributions(body []byte, _ *http.Request, now time.Time) (*batch, error) {
	b := &batch{}
	err := eachSeriesPoint(body, parseOneDistribution, func(pt DistributionPoint, pv *fastjson.Value) error {
		ts, values, err := parseDistributionPoint(pv)
		if err != nil {
			return err
		}
		pt.Timestamp, pt.Values, pt.Received = ts, values, now
		b.dists = append(b.dists, pt)
		b.distValues += int64(len(values))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

func parseOneDistribution(v *fastjson.Value) (DistributionPoint, []*fastjson.Value, error) {
	pt := DistributionPoint{Type: "distribution"}
	var err error
	if pt.Metric, err = metricName(v); err != nil {
		return pt, nil, err
	}
	if pt.Host, err = optionalString(v, "host"); err != nil {
		return pt, nil, err
	}
	if pt.Tags, err = optionalStrings(v, "tags"); err != nil {
		return pt, nil, err
	}
	typ, err := optionalString(v, "type")
	if err != nil {
		return pt, nil, err
	}
	if typ != "" && typ != "distribution" {
		return pt, nil, fmt.Errorf(`type: must be "distribution", got %q`, typ)
	}
	points, err := requiredArray(v, "points")
	if err != nil {
		return pt, nil, err
	}
	return pt, points, nil
}

// parseDistributionPoint validates [<ts seconds>, [v1, v2, …]]. The v1 model
// types the timestamp as a double, so a fraction is accepted and dropped.
func parseDistributionPoint(v *fastjson.Value) (int64, []float64, error) {
	pair, err := v.Array()
	if err != nil || len(pair) != 2 {
		return 0, nil, errors.New("must be a [timestamp, [values...]] pair")
	}
	ts, err := finite(pair[0])
	if err != nil {
		return 0, nil, fmt.Errorf("timestamp: %w", err)
	}
	if ts < 0 || ts > math.MaxInt64/2 {
		return 0, nil, fmt.Errorf("timestamp: out of range: %v", ts)
	}
	items, err := pair[1].Array()
	if err != nil {
		return 0, nil, errors.New("values: must be an array of numbers")
	}
	if len(items) == 0 {
		return 0, nil, errors.New("values: must not be empty")
	}
	values := make([]float64, len(items))
	for k, it := range items {
		if values[k], err = finite(it); err != nil {
			return 0, nil, fmt.Errorf("values[%d]: %w", k, err)
		}
	}
	return int64(ts), values, nil
}
