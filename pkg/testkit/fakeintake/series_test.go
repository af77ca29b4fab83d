package fakeintake

import (
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSeriesValidation(t *testing.T) {
	t.Parallel()
	_, c := start(t, Config{})
	now := testNow.Unix()
	ok := func(extra string) string {
		return `{"series":[{"metric":"m","points":[{"timestamp":` + itoa(int(now)) + `,"value":1}]` + extra + `}]}`
	}
	tests := []struct {
		name   string
		body   string
		status int
		err    string // substring of the single error
	}{
		{"minimal", ok(""), 202, ""},
		{"all fields", ok(`,"type":1,"interval":10,"unit":"request","source_type_name":"apigw",` +
			`"tags":["a:b"],"resources":[{"name":"h","type":"host"}],"metadata":{"origin":{"product":1}}`), 202, ""},
		{"nulls for optional fields", ok(`,"type":null,"tags":null,"unit":null,"resources":null`), 202, ""},
		{"unknown fields ignored", ok(`,"future_field":{"x":1}`), 202, ""},
		{"not JSON", `{"series":`, 400, "malformed JSON"},
		{"control character in metric", "{\"series\":[{\"metric\":\"m\x01\\n\",\"points\":[{\"timestamp\":1,\"value\":1}]}]}", 400, "control character"},
		{"not an object", `[1]`, 400, "must be an object"},
		{"no series", `{}`, 400, `"series" array`},
		{"series not an array", `{"series":{}}`, 400, `"series" array`},
		{"empty series", `{"series":[]}`, 400, "must not be empty"},
		{"series item not an object", `{"series":[1]}`, 400, "series[0]: must be an object"},
		{"no metric", `{"series":[{"points":[{"timestamp":1,"value":1}]}]}`, 400, "metric: must be a string"},
		{"empty metric", `{"series":[{"metric":"","points":[{"timestamp":1,"value":1}]}]}`, 400, "metric: must not be empty"},
		{"no points", `{"series":[{"metric":"m"}]}`, 400, "points: must be an array"},
		{"empty points", `{"series":[{"metric":"m","points":[]}]}`, 400, "points: must not be empty"},
		{"point not an object", `{"series":[{"metric":"m","points":[[1,2]]}]}`, 400, "points[0]: must be an object"},
		{"fractional timestamp", `{"series":[{"metric":"m","points":[{"timestamp":1.5,"value":1}]}]}`, 400, "timestamp: must be an integer"},
		{"string timestamp", `{"series":[{"metric":"m","points":[{"timestamp":"1","value":1}]}]}`, 400, "timestamp: must be an integer"},
		{"missing value", `{"series":[{"metric":"m","points":[{"timestamp":1}]}]}`, 400, "value: must be a number"},
		{"string value", `{"series":[{"metric":"m","points":[{"timestamp":1,"value":"1"}]}]}`, 400, "value: must be a number"},
		{"infinite value", `{"series":[{"metric":"m","points":[{"timestamp":1,"value":1e400}]}]}`, 400, "finite"},
		{"type out of range", ok(`,"type":4`), 400, "type: must be 0 to 3"},
		{"type not an integer", ok(`,"type":"gauge"`), 400, "type: must be an integer"},
		{"negative interval", ok(`,"interval":-1`), 400, "interval: must not be negative"},
		{"tags not strings", ok(`,"tags":["a",1]`), 400, "tags[1]: must be a string"},
		{"tags not an array", ok(`,"tags":"a:b"`), 400, "tags: must be an array"},
		{"unit not a string", ok(`,"unit":1`), 400, "unit: must be a string"},
		{"resource without type", ok(`,"resources":[{"name":"h"}]`), 400, "resources[0].type: must be a string"},
		{"resource not an object", ok(`,"resources":["h"]`), 400, "resources[0]: must be an object"},
		{"metadata not an object", ok(`,"metadata":[]`), 400, "metadata: must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.post(seriesPath, []byte(tt.body))
			require.Equal(t, tt.status, r.status, "body %s", r.body)
			if tt.status == http.StatusAccepted {
				assert.JSONEq(t, `{"errors":[]}`, string(r.body))
				return
			}
			assert.Contains(t, apiError(t, r.body), tt.err)
		})
	}
}

func TestSeriesRecordsPoints(t *testing.T) {
	t.Parallel()
	s, c := start(t, Config{})
	body := `{"series":[
	  {"metric":"apigateway.request.count","type":1,"interval":10,"unit":"request",
	   "points":[{"timestamp":` + itoa(int(testNow.Unix())-10) + `,"value":42},{"timestamp":` + itoa(int(testNow.Unix())) + `,"value":7}],
	   "resources":[{"name":"api-gw","type":"host"}],"tags":["apiid:a1","stage:prod"]},
	  {"metric":"apigateway.latency","type":3,"points":[{"timestamp":` + itoa(int(testNow.Unix())) + `,"value":12.5}]}]}`
	require.Equal(t, http.StatusAccepted, c.post(seriesPath, []byte(body)).status)
	require.NoError(t, s.WaitSeriesPoints(waitCtx(t), 3))

	got := s.Series()
	require.Len(t, got, 3)
	assert.Equal(t, SeriesPoint{
		Metric: "apigateway.request.count", Type: MetricCount, Interval: 10, Unit: "request",
		Tags: []string{"apiid:a1", "stage:prod"}, Resources: []Resource{{Name: "api-gw", Type: "host"}},
		Timestamp: testNow.Unix() - 10, Value: 42, Received: testNow,
	}, got[0])
	assert.Equal(t, "api-gw", got[0].Host())
	assert.Equal(t, 7.0, got[1].Value)
	assert.Equal(t, "apigateway.latency", got[2].Metric)
	assert.Equal(t, MetricGauge, got[2].Type)
	assert.Empty(t, got[2].Host())
}

func TestSeriesAgeRules(t *testing.T) {
	t.Parallel()
	// The clock is read by the server's goroutines: keep it atomic.
	var clock atomic.Int64
	clock.Store(testNow.UnixNano())
	s, c := start(t, Config{Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }})
	ts := func(d time.Duration) int64 { return testNow.Add(d).Unix() }

	body := seriesPayload("m",
		ts(-time.Hour),             // oldest accepted
		ts(-time.Hour-time.Second), // too old
		ts(0),
		ts(10*time.Minute),             // newest accepted
		ts(10*time.Minute+time.Second), // too new
		0,                              // epoch: too old
	)
	r := c.post(seriesPath, body)
	require.Equal(t, http.StatusAccepted, r.status, "dropped points still get 202")
	assert.JSONEq(t, `{"errors":[]}`, string(r.body))

	var kept []int64
	for _, p := range s.Series() {
		kept = append(kept, p.Timestamp)
	}
	assert.Equal(t, []int64{ts(-time.Hour), ts(0), ts(10 * time.Minute)}, kept)
	st := s.Stats()
	assert.Equal(t, int64(3), st.SeriesPointsAccepted)
	assert.Equal(t, int64(2), st.SeriesPointsRejectedTooOld)
	assert.Equal(t, int64(1), st.SeriesPointsRejectedTooNew)

	// The clock is read per request: an hour later, the same payload is
	// mostly too old.
	clock.Add(int64(time.Hour + time.Second))
	require.Equal(t, http.StatusAccepted, c.post(seriesPath, body).status)
	st = s.Stats()
	assert.Equal(t, int64(5), st.SeriesPointsAccepted, "only the two newest points still fit")
}

func TestSeriesSizeLimits(t *testing.T) {
	t.Parallel()
	_, c := start(t, Config{})
	doc := seriesPayload("m", testNow.Unix())
	tests := []struct {
		name   string
		size   int
		enc    string
		status int
	}{
		{"wire at the limit", MaxSeriesPayloadBytes, "identity", 202},
		{"wire one byte over", MaxSeriesPayloadBytes + 1, "identity", 413},
		{"decompresses to just under 5 MiB", MaxSeriesDecompressedBytes - 1, "gzip", 202},
		{"decompresses to exactly 5 MiB", MaxSeriesDecompressedBytes, "gzip", 413},
		{"zstd decompresses to exactly 5 MiB", MaxSeriesDecompressedBytes, "zstd", 413},
		{"zstd1 decompresses to just under 5 MiB", MaxSeriesDecompressedBytes - 1, "zstd1", 202},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, header := encode(t, tt.enc, padJSON(t, doc, tt.size))
			r := c.post(seriesPath, body, "Content-Encoding", header)
			require.Equal(t, tt.status, r.status, "body %s", r.body)
			if tt.status == http.StatusRequestEntityTooLarge {
				assert.Contains(t, apiError(t, r.body), "payload too large")
			}
		})
	}

	// A compressed body over the wire limit is refused even if it would
	// decompress to little: random-looking data does not compress.
	noise := make([]byte, 3*MaxSeriesPayloadBytes)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	body, header := encode(t, "gzip", noise)
	require.Greater(t, len(body), MaxSeriesPayloadBytes)
	assert.Equal(t, http.StatusRequestEntityTooLarge, c.post(seriesPath, body, "Content-Encoding", header).status)
}

func TestDistributionPoints(t *testing.T) {
	t.Parallel()
	s, c := start(t, Config{})
	body := `{"series":[
	  {"metric":"apigateway.latency","host":"gw","tags":["stage:prod"],"type":"distribution",
	   "points":[[1700000000,[12.5,30,7]],[1700000010.9,[1]]]},
	  {"metric":"apigateway.integration_latency","points":[[1700000000,[3]]]}]}`
	gz, header := encode(t, "deflate", []byte(body))
	r := c.post(distPath, gz, "Content-Encoding", header)
	require.Equal(t, http.StatusAccepted, r.status, "body %s", r.body)
	assert.JSONEq(t, `{"status":"ok"}`, string(r.body))
	require.NoError(t, s.WaitDistributionPoints(waitCtx(t), 3))

	got := s.Distributions()
	require.Len(t, got, 3)
	assert.Equal(t, DistributionPoint{
		Metric: "apigateway.latency", Host: "gw", Tags: []string{"stage:prod"}, Type: "distribution",
		Timestamp: 1700000000, Values: []float64{12.5, 30, 7}, Received: testNow,
	}, got[0])
	assert.Equal(t, int64(1700000010), got[1].Timestamp, "fractional seconds are dropped")
	assert.Equal(t, "distribution", got[2].Type, "type defaults to distribution")
	st := s.Stats()
	assert.Equal(t, int64(3), st.DistributionPointsAccepted)
	assert.Equal(t, int64(5), st.DistributionValuesAccepted)
}

func TestDistributionValidation(t *testing.T) {
	t.Parallel()
	_, c := start(t, Config{})
	tests := []struct {
		name string
		body string
		err  string
	}{
		{"not JSON", `{`, "malformed JSON"},
		{"no series", `{"points":[]}`, `"series" array`},
		{"empty series", `{"series":[]}`, "must not be empty"},
		{"no metric", `{"series":[{"points":[[1,[1]]]}]}`, "series[0]: metric: must be a string"},
		{"wrong type", `{"series":[{"metric":"m","type":"gauge","points":[[1,[1]]]}]}`, `type: must be "distribution"`},
		{"host not a string", `{"series":[{"metric":"m","host":1,"points":[[1,[1]]]}]}`, "host: must be a string"},
		{"tags not strings", `{"series":[{"metric":"m","tags":[1],"points":[[1,[1]]]}]}`, "tags[0]: must be a string"},
		{"no points", `{"series":[{"metric":"m"}]}`, "points: must be an array"},
		{"empty points", `{"series":[{"metric":"m","points":[]}]}`, "points: must not be empty"},
		{"point not a pair", `{"series":[{"metric":"m","points":[[1]]}]}`, "points[0]: must be a [timestamp, [values...]] pair"},
		{"point as object", `{"series":[{"metric":"m","points":[{"timestamp":1}]}]}`, "pair"},
		{"timestamp not a number", `{"series":[{"metric":"m","points":[["1",[1]]]}]}`, "timestamp: must be a number"},
		{"negative timestamp", `{"series":[{"metric":"m","points":[[-1,[1]]]}]}`, "timestamp: out of range"},
		{"values not an array", `{"series":[{"metric":"m","points":[[1,1]]}]}`, "values: must be an array"},
		{"empty values", `{"series":[{"metric":"m","points":[[1,[]]]}]}`, "values: must not be empty"},
		{"value not a number", `{"series":[{"metric":"m","points":[[1,[1,"2"]]]}]}`, "values[1]: must be a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.post(distPath, []byte(tt.body))
			require.Equal(t, http.StatusBadRequest, r.status, "body %s", r.body)
			assert.Contains(t, apiError(t, r.body), tt.err)
		})
	}
}

func TestDistributionSizeLimit(t *testing.T) {
	t.Parallel()
	_, c := start(t, Config{})
	doc := distPayload("d", 1, 1)
	r := c.post(distPath, padJSON(t, doc, MaxDistributionPayloadBytes+1))
	assert.Equal(t, http.StatusRequestEntityTooLarge, r.status)
	r = c.post(distPath, padJSON(t, doc, MaxDistributionPayloadBytes))
	assert.Equal(t, http.StatusAccepted, r.status)
}
