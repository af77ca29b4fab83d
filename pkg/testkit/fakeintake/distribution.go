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
