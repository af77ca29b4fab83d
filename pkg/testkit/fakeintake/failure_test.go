package fakeintake

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFailureCount(t *testing.T) {
	t.Parallel()
	s, c := start(t, Config{})
	require.NoError(t, s.SetFailure(Failure{Status: 503, Count: 2}))

	var statuses []int
	for range 4 {
		statuses = append(statuses, c.post(logsPath, validBodies[0].body).status)
	}
	assert.Equal(t, []int{503, 503, 202, 202}, statuses)
	assert.False(t, s.FailureState().Active, "the failure cleared itself after count hits")

	st := s.Stats()
	assert.Equal(t, int64(2), st.LogsAccepted, "failed requests are not recorded")
	assert.Equal(t, int64(2), st.FailuresInjected)
	assert.Len(t, s.Logs(), 2)
}

func TestFailureBodyShapes(t *testing.T) {
	t.Parallel()
	s, c := start(t, Config{})
	require.NoError(t, s.SetFailure(Failure{Status: 429}))
	for _, ep := range validBodies {
		t.Run(ep.path, func(t *testing.T) {
			// Even without an API key: the outage is in front of the intake.
			r := c.post(ep.path, ep.body, "DD-API-KEY", "")
			require.Equal(t, http.StatusTooManyRequests, r.status)
			if ep.path == logsPath {
				status, title, detail := logsError(t, r.body)
				assert.Equal(t, "429", status)
				assert.Equal(t, "Too Many Requests", title)
				assert.Equal(t, "injected failure", detail)
			} else {
				assert.Equal(t, "injected failure", apiError(t, r.body))
			}
		})
	}
}

// runRate sends n requests with a seeded rate and returns which failed.
func runRate(t *testing.T, seed uint64, n int) []bool {
	s, c := start(t, Config{})
	require.NoError(t, s.SetFailure(Failure{Status: 500, Rate: 0.3, Seed: seed}))
	failed := make([]bool, n)
	for i := range failed {
		r := c.post(logsPath, validBodies[0].body)
		require.Contains(t, []int{202, 500}, r.status)
		failed[i] = r.status == 500
	}
	st := s.Stats()
	assert.Equal(t, st.FailuresInjected, st.Responses[500])
	assert.Equal(t, int64(n)-st.FailuresInjected, st.LogsAccepted)
	return failed
}

func TestFailureRateIsSeeded(t *testing.T) {
	t.Parallel()
	const n = 200
	a := runRate(t, 42, n)
	b := runRate(t, 42, n)
	assert.Equal(t, a, b, "same seed, same sequence")

	hits := 0
	for _, f := range a {
		if f {
			hits++
		}
	}
	// 30% of 200 is 60; the bounds are beyond 5 standard deviations (6.5).
	assert.InDelta(t, 60, hits, 33)
	assert.NotEqual(t, a, runRate(t, 43, n), "another seed, another sequence")
}

func TestFailureEndpointsFilter(t *testing.T) {
	t.Parallel()
	s, c := start(t, Config{})
	require.NoError(t, s.SetFailure(Failure{Status: 500, Endpoints: []Endpoint{EndpointSeries}}))
	for _, ep := range validBodies {
		want := http.StatusAccepted
		if ep.path == seriesPath {
			want = http.StatusInternalServerError
		}
		assert.Equal(t, want, c.post(ep.path, ep.body).status, ep.path)
	}
	s.ClearFailure()
	assert.Equal(t, http.StatusAccepted, c.post(seriesPath, validBodies[1].body).status)
}

func TestFailureLatencyOnly(t *testing.T) {
	s, c := start(t, Config{})
	const latency = 50 * time.Millisecond
	require.NoError(t, s.SetFailure(Failure{LatencyMS: latency.Milliseconds(), Count: 1}))
	began := time.Now()
	r := c.post(logsPath, validBodies[0].body)
	assert.Equal(t, http.StatusAccepted, r.status, "latency alone does not fail the request")
	assert.GreaterOrEqual(t, time.Since(began), latency)
	st := s.Stats()
	assert.Equal(t, int64(1), st.DelaysInjected)
	assert.Equal(t, int64(0), st.FailuresInjected)
	assert.Equal(t, int64(1), st.LogsAccepted)
}

func TestFailureLatencyHonoursCancellation(t *testing.T) {
	t.Parallel()
	s, c := start(t, Config{})
	require.NoError(t, s.SetFailure(Failure{Status: 503, LatencyMS: time.Hour.Milliseconds()}))

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.try(ctx, http.MethodPost, logsPath, validBodies[0].body)
		errc <- err
	}()
	require.NoError(t, s.Wait(waitCtx(t), func(st Stats) bool { return st.DelaysInFlight == 1 }))
	cancel()
	require.True(t, errors.Is(<-errc, context.Canceled))

	// The server notices the cancellation and gives up on the request.
	require.NoError(t, s.Wait(waitCtx(t), func(st Stats) bool { return st.Responses[statusClientClosed] == 1 }))
	st := s.Stats()
	assert.Equal(t, int64(0), st.DelaysInFlight)
	assert.Equal(t, int64(0), st.FailuresInjected)
	assert.Equal(t, int64(0), st.LogsAccepted)
}

func TestFailureValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		f    Failure
	}{
		{"status below 400", Failure{Status: 200}},
		{"status above 599", Failure{Status: 600}},
		{"rate above 1", Failure{Status: 500, Rate: 1.5}},
		{"negative rate", Failure{Status: 500, Rate: -0.1}},
		{"nothing to inject", Failure{}},
		{"negative latency", Failure{Status: 500, LatencyMS: -1}},
		{"negative count", Failure{Status: 500, Count: -1}},
		{"unknown endpoint", Failure{Status: 500, Endpoints: []Endpoint{"metrics"}}},
	}
	s, err := New(Config{})
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Error(t, s.SetFailure(tt.f))
			assert.False(t, s.FailureState().Active)
		})
	}
}

func TestFailureAdminAPI(t *testing.T) {
	t.Parallel()
	s, c := start(t, Config{})
	ctx := context.Background()

	r := c.post("/admin/fail", []byte(`{"status":503,"rate":1.0,"latency_ms":0,"count":3,"endpoints":["logs","series"]}`))
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	var state FailureState
	require.NoError(t, json.Unmarshal(r.body, &state))
	assert.NotZero(t, state.Failure.Seed, "the drawn seed is reported")
	state.Failure.Seed = 0
	assert.Equal(t, FailureState{
		Active:    true,
		Failure:   Failure{Status: 503, Rate: 1, Count: 3, Endpoints: []Endpoint{EndpointLogs, EndpointSeries}},
		Remaining: 3,
	}, state)

	assert.Equal(t, 503, c.post(logsPath, validBodies[0].body).status)
	r = c.do(ctx, http.MethodGet, "/admin/fail", nil)
	require.NoError(t, json.Unmarshal(r.body, &state))
	assert.Equal(t, 2, state.Remaining)

	assert.Equal(t, http.StatusNoContent, c.do(ctx, http.MethodDelete, "/admin/fail", nil).status)
	assert.Equal(t, 202, c.post(logsPath, validBodies[0].body).status)
	assert.False(t, s.FailureState().Active)

	// Defaults: rate 1 and every endpoint.
	require.Equal(t, http.StatusOK, c.post("/admin/fail", []byte(`{"status":500}`)).status)
	assert.Equal(t, allEndpoints, s.FailureState().Failure.Endpoints)
	assert.Equal(t, 500, c.post(distPath, validBodies[2].body).status)
	s.ClearFailure()

	for _, body := range []string{
		`{"status":503,"latency":100}`, // unknown field: a typo of latency_ms
		`{"status":99}`,
		`{"status":503,"endpoints":["nope"]}`,
		`not json`,
	} {
		r := c.post("/admin/fail", []byte(body))
		assert.Equal(t, http.StatusBadRequest, r.status, body)
		assert.NotEmpty(t, apiError(t, r.body))
	}
	assert.False(t, s.FailureState().Active)
}
