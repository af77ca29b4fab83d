package fakeintake

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// validBodies are minimal valid payloads per endpoint path, with the success
// answer of each.
var validBodies = []struct {
	path string
	body []byte
	ok   string
}{
	{logsPath, []byte(`[{"message":"hello"}]`), `{}`},
	{seriesPath, seriesPayload("m", testNow.Unix()), `{"errors":[]}`},
	{distPath, distPayload("d", testNow.Unix(), 1, 2), `{"status":"ok"}`},
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	_, c := start(t, Config{APIKeys: []string{"good", " other "}})
	tests := []struct {
		name   string
		key    string
		status int
	}{
		{"missing", "", http.StatusUnauthorized},
		{"invalid", "bad", http.StatusForbidden},
		{"valid", "good", http.StatusAccepted},
		{"valid, configured with spaces", "other", http.StatusAccepted},
	}
	for _, ep := range validBodies {
		for _, tt := range tests {
			t.Run(ep.path+"/"+tt.name, func(t *testing.T) {
				r := c.post(ep.path, ep.body, "DD-API-KEY", tt.key)
				require.Equal(t, tt.status, r.status, "body %s", r.body)
				if tt.status == http.StatusAccepted {
					assert.JSONEq(t, ep.ok, string(r.body))
					return
				}
				if ep.path == logsPath {
					status, title, detail := logsError(t, r.body)
					assert.Equal(t, http.StatusText(tt.status), title)
					assert.Equal(t, itoa(tt.status), status)
					assert.NotEmpty(t, detail)
				} else {
					assert.NotEmpty(t, apiError(t, r.body))
				}
			})
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestAnyKeyAcceptedWhenNoneConfigured(t *testing.T) {
	t.Parallel()
	s, c := start(t, Config{})
	assert.Equal(t, http.StatusAccepted, c.post(logsPath, validBodies[0].body, "DD-API-KEY", "whatever").status)
	assert.Equal(t, http.StatusUnauthorized, c.post(logsPath, validBodies[0].body, "DD-API-KEY", "").status)
	st := s.Stats()
	assert.Equal(t, int64(1), st.LogsAccepted)
	assert.Equal(t, map[int]int64{202: 1, 401: 1}, st.Responses)
}

func TestEncodings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		enc       string // as passed to encode
		header    string // Content-Encoding sent, when not encode's
		wantStats string
		status    map[string]int // by path; default 202
	}{
		{enc: "identity", wantStats: "identity"},
		{enc: "", wantStats: "identity"},
		{enc: "gzip", wantStats: "gzip"},
		{enc: "gzip", header: "GZIP", wantStats: "gzip"},
		{enc: "deflate", wantStats: "deflate"},
		{enc: "deflate-raw", wantStats: "deflate"},
		{enc: "zstd", wantStats: "zstd"},
		{enc: "zstd1", wantStats: "zstd", status: map[string]int{logsPath: 415, distPath: 415}},
		{enc: "gzip", header: "br", status: map[string]int{logsPath: 415, seriesPath: 415, distPath: 415}},
		{enc: "gzip", header: "gzip, identity", status: map[string]int{logsPath: 415, seriesPath: 415, distPath: 415}},
		{enc: "gzip", header: "x-gzip", status: map[string]int{logsPath: 415, seriesPath: 415, distPath: 415}},
	}
	for _, ep := range validBodies {
		for _, tt := range tests {
			name := ep.path + "/" + tt.enc + "/" + tt.header
			t.Run(name, func(t *testing.T) {
				s, c := start(t, Config{})
				body, header := encode(t, tt.enc, ep.body)
				if tt.header != "" {
					header = tt.header
				}
				want := http.StatusAccepted
				if st, ok := tt.status[ep.path]; ok {
					want = st
				}
				r := c.post(ep.path, body, "Content-Encoding", header)
				require.Equal(t, want, r.status, "body %s", r.body)
				st := s.Stats()
				if want != http.StatusAccepted {
					assert.Empty(t, st.Encodings, "a refused encoding is not read")
					return
				}
				assert.Equal(t, map[string]int64{tt.wantStats: 1}, st.Encodings)
				assert.Equal(t, int64(len(body)), st.BytesReceived)
				assert.Equal(t, int64(len(ep.body)), st.BytesUncompressed)
			})
		}
	}
}

func TestCorruptCompressedBody(t *testing.T) {
	t.Parallel()
	_, c := start(t, Config{})
	for _, enc := range []string{"gzip", "deflate", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			body, header := encode(t, enc, validBodies[0].body)
			body = body[:len(body)/2] // cut short
			r := c.post(logsPath, body, "Content-Encoding", header)
			assert.Equal(t, http.StatusBadRequest, r.status, "body %s", r.body)
		})
	}
	r := c.post(logsPath, []byte("not gzip at all"), "Content-Encoding", "gzip")
	assert.Equal(t, http.StatusBadRequest, r.status)
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	_, c := start(t, Config{})
	r := c.do(context.Background(), http.MethodGet, logsPath, nil)
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)
}

func TestHealthStatsAndReset(t *testing.T) {
	t.Parallel()
	s, c := start(t, Config{})
	assert.Equal(t, http.StatusOK, c.do(context.Background(), http.MethodGet, "/healthz", nil).status)

	for _, ep := range validBodies {
		require.Equal(t, http.StatusAccepted, c.post(ep.path, ep.body).status)
	}
	require.Equal(t, http.StatusBadRequest, c.post(logsPath, []byte(`[`)).status)

	r := c.do(context.Background(), http.MethodGet, "/stats", nil)
	require.Equal(t, http.StatusOK, r.status)
	var got Stats
	require.NoError(t, json.Unmarshal(r.body, &got))
	want := s.Stats()
	assert.Equal(t, want, got)
	assert.Equal(t, map[Endpoint]int64{EndpointLogs: 2, EndpointSeries: 1, EndpointDistributionPoints: 1}, got.Requests)
	assert.Equal(t, map[int]int64{202: 3, 400: 1}, got.Responses)
	assert.Equal(t, map[int]int64{202: 1, 400: 1}, got.EndpointResponses[EndpointLogs])
	assert.Equal(t, int64(1), got.LogsAccepted)
	assert.Equal(t, int64(1), got.SeriesPointsAccepted)
	assert.Equal(t, int64(1), got.DistributionPointsAccepted)
	assert.Equal(t, int64(2), got.DistributionValuesAccepted)
	assert.Equal(t, map[string]int64{"identity": 4}, got.Encodings)

	require.Equal(t, http.StatusNoContent, c.post("/admin/reset", nil).status)
	assert.Empty(t, s.Logs())
	assert.Empty(t, s.Series())
	assert.Empty(t, s.Distributions())
	assert.Equal(t, newStats(), s.Stats())
}

func TestKeepBoundsMemory(t *testing.T) {
	t.Parallel()
	s, c := start(t, Config{Keep: 5})
	for i := range 4 {
		body := []byte(`[{"message":"a` + itoa(i) + `"},{"message":"b` + itoa(i) + `"}]`)
		require.Equal(t, http.StatusAccepted, c.post(logsPath, body).status)
	}
	var msgs []string
	for _, l := range s.Logs() {
		msgs = append(msgs, l.Message)
	}
	assert.Equal(t, []string{"b1", "a2", "b2", "a3", "b3"}, msgs)
	st := s.Stats()
	assert.Equal(t, int64(8), st.LogsAccepted)
	assert.Equal(t, int64(3), st.LogsEvicted)
}

func TestRing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		max     int
		pushes  [][]int
		want    []int
		evicted int64
	}{
		{"under capacity", 5, [][]int{{1, 2}, {3}}, []int{1, 2, 3}, 0},
		{"exactly full", 3, [][]int{{1, 2, 3}}, []int{1, 2, 3}, 0},
		{"wraps", 3, [][]int{{1, 2}, {3, 4}, {5}}, []int{3, 4, 5}, 2},
		{"push larger than capacity", 3, [][]int{{1}, {2, 3, 4, 5, 6, 7}}, []int{5, 6, 7}, 4},
		{"many wraps", 2, [][]int{{1}, {2}, {3}, {4}, {5}}, []int{4, 5}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ring[int]{max: tt.max}
			var evicted int64
			for _, p := range tt.pushes {
				evicted += r.push(p)
			}
			assert.Equal(t, tt.want, r.snapshot())
			assert.Equal(t, tt.evicted, evicted)
			assert.LessOrEqual(t, cap(r.buf), tt.max)
		})
	}
}

func TestServeShutsDownOnCancel(t *testing.T) {
	t.Parallel()
	s, err := New(Config{})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()

	c := &client{t: t, base: "http://" + ln.Addr().String()}
	// A request held by a long latency must not hold up shutdown.
	require.NoError(t, s.SetFailure(Failure{LatencyMS: time.Hour.Milliseconds()}))
	slow := make(chan error, 1)
	go func() {
		_, err := c.try(context.Background(), http.MethodPost, logsPath, validBodies[0].body)
		slow <- err
	}()
	require.NoError(t, s.Wait(waitCtx(t), func(st Stats) bool { return st.DelaysInFlight == 1 }))
	s.ClearFailure()
	require.Equal(t, http.StatusAccepted, c.post(logsPath, validBodies[0].body).status)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	// The held request is dropped without an answer: a client must not
	// mistake it for a success.
	require.Error(t, <-slow)
	require.NoError(t, s.Close())
	st := s.Stats()
	assert.Equal(t, int64(1), st.LogsAccepted)
	assert.Equal(t, map[int]int64{202: 1, statusClientClosed: 1}, st.Responses)
	assert.Equal(t, int64(0), st.DelaysInFlight)
}

func TestNewRejectsNegativeKeep(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Keep: -1})
	require.Error(t, err)
}

// GET /api/v1/validate answers as the Datadog API does: 200 {"valid":true}
// for a valid key, 403 otherwise.
func TestValidateKey(t *testing.T) {
	t.Parallel()
	_, c := start(t, Config{APIKeys: []string{"good"}})
	for key, want := range map[string]int{"good": http.StatusOK, "bad": http.StatusForbidden, "": http.StatusForbidden} {
		req, err := http.NewRequest(http.MethodGet, c.base+"/api/v1/validate", nil)
		require.NoError(t, err)
		if key != "" {
			req.Header.Set("DD-API-KEY", key)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, want, resp.StatusCode, "key %q", key)
	}
}
