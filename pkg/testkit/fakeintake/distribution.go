package fakeintake

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/valyala/fastjson"
)

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
	p := parserPool.Get()
	defer parserPool.Put(p)
	list, err := seriesList(p, body)
	if err != nil {
		return nil, err
	}
	b := &batch{}
	for i, sv := range list {
		tmpl, points, err := parseOneDistribution(sv)
		if err != nil {
			return nil, fmt.Errorf("series[%d]: %w", i, err)
		}
		tmpl.Received = now
		for j, pv := range points {
			ts, values, err := parseDistributionPoint(pv)
			if err != nil {
				return nil, fmt.Errorf("series[%d].points[%d]: %w", i, j, err)
			}
			pt := tmpl
			pt.Timestamp, pt.Values = ts, values
			b.dists = append(b.dists, pt)
			b.distValues += int64(len(values))
		}
	}
	return b, nil
}

func parseOneDistribution(v *fastjson.Value) (DistributionPoint, []*fastjson.Value, error) {
	pt := DistributionPoint{Type: "distribution"}
	if v.Type() != fastjson.TypeObject {
		return pt, nil, fmt.Errorf("must be an object, got %s", v.Type())
	}
	var err error
	if pt.Metric, err = requiredString(v, "metric"); err != nil {
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
