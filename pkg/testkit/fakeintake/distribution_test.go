package fakeintake

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDistributionPoints(t *testing.T) {
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
	_, c := start(t, Config{})
	doc := distPayload("d", 1, 1)
	r := c.post(distPath, padJSON(t, doc, MaxDistributionPayloadBytes+1))
	assert.Equal(t, http.StatusRequestEntityTooLarge, r.status)
	r = c.post(distPath, padJSON(t, doc, MaxDistributionPayloadBytes))
	assert.Equal(t, http.StatusAccepted, r.status)
}
