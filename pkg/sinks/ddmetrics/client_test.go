package ddmetrics_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddhttp"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddmetrics"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
	"github.com/gwpipe/gwpipe/pkg/testkit/syncbuf"
)

const testKey = "test-api-key-0123456789"

var now = time.Date(2026, 3, 14, 15, 9, 20, 0, time.UTC)

func clock() time.Time { return now }

// intake starts a fake intake on 127.0.0.1 with the test clock.
func intake(t testing.TB) (*fakeintake.Server, string) {
	t.Helper()
	return fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{testKey}, Now: clock})
}

func newClient(t testing.TB, url string, mod func(*ddmetrics.Config)) *ddmetrics.Client {
	t.Helper()
	cfg := ddmetrics.DefaultConfig()
	cfg.APIURL, cfg.APIKey, cfg.Now, cfg.Logger = url, testKey, clock, slog.New(slog.DiscardHandler)
	cfg.Backoff.InitialInterval, cfg.Backoff.MaxInterval = time.Millisecond, 5*time.Millisecond
	if mod != nil {
		mod(&cfg)
	}
	c, err := ddmetrics.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func count(name string, v float64, tags ...string) record.Metric {
	return record.Metric{Name: name, Kind: record.MetricCount, Timestamp: now.Unix() - 20, Interval: 10, Value: v,
		Tags: tags, Host: "w1", Unit: "request"}
}

func dist(name string, vs []float64, tags ...string) record.Metric {
	return record.Metric{Name: name, Kind: record.MetricDistribution, Timestamp: now.Unix() - 20, Values: vs, Tags: tags, Host: "w1", Unit: "millisecond"}
}

func TestSubmitShapes(t *testing.T) {
	t.Parallel()
	for _, comp := range []string{"gzip", "zstd", "deflate", "none"} {
		t.Run(comp, func(t *testing.T) {
			srv, url := intake(t)
			c := newClient(t, url, func(cfg *ddmetrics.Config) { cfg.Compression = comp })
			ms := []record.Metric{
				count("apigateway.logs.count", 42, "apiid:a1", "stage:prod", `resource:/pets/{id}`, "status_class:2xx"),
				{Name: "gwpipe.g", Kind: record.MetricGauge, Timestamp: now.Unix(), Value: 1.5, Host: "w1"},
				{Name: "gwpipe.r", Kind: record.MetricRate, Timestamp: now.Unix(), Interval: 10, Value: 0.25},
				dist("apigateway.logs.latency", []float64{1, 2.5, 1e-3, 300000}, "apiid:a1", `quote:"x\`),
			}
			rej, err := c.Submit(context.Background(), ms)
			require.NoError(t, err)
			assert.Empty(t, rej)

			series := srv.Series()
			require.Len(t, series, 3)
			byName := map[string]fakeintake.SeriesPoint{}
			for _, p := range series {
				byName[p.Metric] = p
			}
			cnt := byName["apigateway.logs.count"]
			assert.Equal(t, fakeintake.MetricCount, cnt.Type)
			assert.Equal(t, int64(10), cnt.Interval)
			assert.Equal(t, 42.0, cnt.Value)
			assert.Equal(t, now.Unix()-20, cnt.Timestamp)
			assert.Equal(t, "w1", cnt.Host())
			assert.Equal(t, "request", cnt.Unit)
			assert.Equal(t, []string{"apiid:a1", "stage:prod", "resource:/pets/{id}", "status_class:2xx"}, cnt.Tags)
			assert.Equal(t, fakeintake.MetricGauge, byName["gwpipe.g"].Type)
			assert.Equal(t, int64(0), byName["gwpipe.g"].Interval)
			assert.Equal(t, fakeintake.MetricRate, byName["gwpipe.r"].Type)
			assert.Equal(t, "", byName["gwpipe.r"].Host())

			ds := srv.Distributions()
			require.Len(t, ds, 1)
			assert.Equal(t, "w1", ds[0].Host)
			assert.Equal(t, []float64{1, 2.5, 1e-3, 300000}, ds[0].Values)
			assert.Equal(t, []string{"apiid:a1", `quote:"x\`}, ds[0].Tags)

			st := srv.Stats()
			wantEnc := map[string]string{"gzip": "gzip", "zstd": "zstd", "deflate": "deflate", "none": "identity"}[comp]
			assert.Positive(t, st.Encodings[wantEnc])
			if comp != "none" {
				assert.Positive(t, st.Encodings["deflate"], "distribution points use deflate")
			}
			cs := c.Stats()
			assert.Equal(t, uint64(4), cs.Submitted)
			assert.Equal(t, uint64(3), cs.SeriesAccepted)
			assert.Equal(t, uint64(4), cs.ValuesAccepted)
		})
	}
}

// manySeries builds n count points with high-entropy tags, so that they
// compress badly.
func manySeries(n int, seed uint64) []record.Metric {
	rng := rand.New(rand.NewPCG(seed, seed))
	ms := make([]record.Metric, n)
	for i := range ms {
		ms[i] = count("apigateway.logs.count", float64(i+1),
			fmt.Sprintf("resource:/r/%016x%016x", rng.Uint64(), rng.Uint64()),
			fmt.Sprintf("apiid:%x", rng.Uint64()), "stage:prod")
	}
	return ms
}

func TestPayloadSplitting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		compression string
		n           int
		maxPayload  int
	}{
		// ~160 bytes per series: 40,000 series are ~6.4 MB uncompressed.
		{"identity under 512,000 bytes", "none", 40_000, 0},
		{"gzip of incompressible tags", "gzip", 40_000, 0},
		{"zstd with a small cap: split after compression", "zstd", 20_000, 64 << 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, url := intake(t)
			var mu sync.Mutex
			var results []ddmetrics.Result
			c := newClient(t, url, func(cfg *ddmetrics.Config) {
				cfg.Compression = tc.compression
				if tc.maxPayload > 0 {
					cfg.MaxPayloadBytes = tc.maxPayload
				}
				cfg.OnResult = func(r ddmetrics.Result) { mu.Lock(); results = append(results, r); mu.Unlock() }
			})
			ms := manySeries(tc.n, 7)
			rej, err := c.Submit(context.Background(), ms)
			require.NoError(t, err)
			assert.Empty(t, rej)
			st := srv.Stats()
			assert.Equal(t, int64(tc.n), st.SeriesPointsAccepted)
			assert.Zero(t, st.Responses[http.StatusRequestEntityTooLarge])
			assert.Greater(t, st.Requests[fakeintake.EndpointSeries], int64(1), "split into several requests")
			limit := ddmetrics.MaxSeriesPayloadBytes
			if tc.maxPayload > 0 {
				limit = tc.maxPayload
			}
			accepted := 0
			for _, r := range results {
				if r.Outcome == ddhttp.Accepted {
					accepted++
					assert.LessOrEqual(t, r.CompressedBytes, limit)
					assert.Less(t, r.Bytes, ddmetrics.MaxSeriesDecompressedBytes)
				}
			}
			assert.Equal(t, int(st.Requests[fakeintake.EndpointSeries]), accepted)
			// Every value arrived once.
			var sum float64
			for _, p := range srv.Series() {
				sum += p.Value
			}
			assert.Equal(t, float64(tc.n*(tc.n+1)/2), sum)
		})
	}
}

func TestDistributionValuesSplitIntoMergeablePoints(t *testing.T) {
	t.Parallel()
	srv, url := intake(t)
	c := newClient(t, url, func(cfg *ddmetrics.Config) { cfg.MaxDistributionBytes = 100_000 })
	vs := make([]float64, 60_000)
	for i := range vs {
		vs[i] = float64(i%1000) + 0.5
	}
	rej, err := c.Submit(context.Background(), []record.Metric{dist("apigateway.logs.latency", vs, "apiid:a1")})
	require.NoError(t, err)
	assert.Empty(t, rej)
	ds := srv.Distributions()
	assert.Greater(t, len(ds), 1)
	var got []float64
	for _, d := range ds {
		assert.Equal(t, now.Unix()-20, d.Timestamp, "same timestamp: distributions merge")
		got = append(got, d.Values...)
	}
	slices.Sort(got) // payloads are sent concurrently
	want := slices.Clone(vs)
	slices.Sort(want)
	assert.Equal(t, want, got)
}

func TestRetriesOn503ThenSuccess(t *testing.T) {
	t.Parallel()
	srv, url := intake(t)
	require.NoError(t, srv.SetFailure(fakeintake.Failure{Status: 503, Count: 3, Endpoints: []fakeintake.Endpoint{fakeintake.EndpointSeries}}))
	c := newClient(t, url, nil)
	rej, err := c.Submit(context.Background(), []record.Metric{count("m", 5), dist("d", []float64{1, 2})})
	require.NoError(t, err)
	assert.Empty(t, rej)
	st := srv.Stats()
	assert.Equal(t, int64(3), st.FailuresInjected)
	assert.Equal(t, int64(1), st.SeriesPointsAccepted)
	assert.Equal(t, int64(2), st.DistributionValuesAccepted)
	assert.Equal(t, uint64(3), c.Stats().Retries)
}

func TestRetryableStatuses(t *testing.T) {
	t.Parallel()
	for _, status := range []int{408, 429, 500, 502, 504} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			srv, url := intake(t)
			require.NoError(t, srv.SetFailure(fakeintake.Failure{Status: status, Count: 2}))
			c := newClient(t, url, nil)
			rej, err := c.Submit(context.Background(), []record.Metric{count("m", 5)})
			require.NoError(t, err)
			assert.Empty(t, rej)
			assert.Equal(t, int64(1), srv.Stats().SeriesPointsAccepted)
		})
	}
}

func TestBadRequestIsSplitThenRejected(t *testing.T) {
	t.Parallel()
	srv, url := intake(t)
	// Every request fails with 400: the client halves down to single
	// points, then gives them up with the reason.
	require.NoError(t, srv.SetFailure(fakeintake.Failure{Status: 400}))
	c := newClient(t, url, nil)
	ms := []record.Metric{count("a", 1), count("b", 2), count("c", 3), dist("d", []float64{1, 2, 3})}
	rs, err := c.SubmitRejections(context.Background(), ms)
	require.NoError(t, err)
	var names []string
	values := 0
	for _, r := range rs {
		names = append(names, r.Metric.Name)
		assert.Contains(t, r.Reason, "metrics API 400")
		values += len(r.Metric.Values)
	}
	slices.Sort(names)
	assert.Equal(t, []string{"a", "b", "c", "d", "d", "d"}, names, "a distribution is split down to single values")
	assert.Equal(t, 3, values)
	st := srv.Stats()
	assert.Equal(t, int64(5+5), st.Requests[fakeintake.EndpointSeries]+st.Requests[fakeintake.EndpointDistributionPoints])
	assert.Equal(t, uint64(6), c.Stats().Rejected)
}

func TestRefusedKeyIsUnhealthyAndRetried(t *testing.T) {
	t.Parallel()
	srv, url := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{"another-key"}, Now: clock})
	var logs syncbuf.Buffer
	c := newClient(t, url, func(cfg *ddmetrics.Config) {
		cfg.Logger = newLogger(&logs)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Submit(ctx, []record.Metric{count("m", 1)})
		done <- err
	}()
	require.NoError(t, srv.Wait(context.Background(), func(st fakeintake.Stats) bool { return st.Responses[http.StatusForbidden] >= 3 }))
	err := c.Healthy()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "403")
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	st := c.Stats()
	assert.Equal(t, st.Requests-1, st.Retries, "retries count the attempts sent again, not the one given up in its backoff")
	assert.NotContains(t, logs.String(), testKey)
	assert.NotContains(t, err.Error(), testKey)
}

func TestUnhealthyClearsOnSuccess(t *testing.T) {
	t.Parallel()
	srv, url := intake(t)
	require.NoError(t, srv.SetFailure(fakeintake.Failure{Status: 401, Count: 2}))
	c := newClient(t, url, nil)
	rej, err := c.Submit(context.Background(), []record.Metric{count("m", 1)})
	require.NoError(t, err)
	assert.Empty(t, rej)
	assert.NoError(t, c.Healthy())
	assert.Equal(t, int64(1), srv.Stats().SeriesPointsAccepted)
}

func TestTooOldPointsAreRejectedWithoutSending(t *testing.T) {
	t.Parallel()
	srv, url := intake(t)
	c := newClient(t, url, nil)
	old := count("old", 1)
	old.Timestamp = now.Add(-61 * time.Minute).Unix()
	future := count("future", 1)
	future.Timestamp = now.Add(11 * time.Minute).Unix()
	rs, err := c.SubmitRejections(context.Background(), []record.Metric{old, future, count("ok", 1), {Kind: record.MetricCount, Value: 1}})
	require.NoError(t, err)
	require.Len(t, rs, 3)
	assert.Contains(t, rs[0].Reason, "too old")
	assert.Contains(t, rs[1].Reason, "too new")
	assert.Contains(t, rs[2].Reason, "no name")
	assert.Equal(t, uint64(2), c.Stats().TooOld)
	assert.Equal(t, int64(1), srv.Stats().SeriesPointsAccepted)
}

// TestTooOldCountsInRejectedUnits: too_old is "of those" rejected, so a
// distribution refused for its age counts its values in both, whether it
// was too old when submitted or grew too old while retried.
func TestTooOldCountsInRejectedUnits(t *testing.T) {
	t.Parallel()
	srv, url := intake(t)
	c := newClient(t, url, nil)
	old := dist("old", []float64{1, 2, 3})
	old.Timestamp = now.Add(-61 * time.Minute).Unix()
	_, err := c.SubmitRejections(context.Background(), []record.Metric{old})
	require.NoError(t, err)
	assert.Equal(t, uint64(3), c.Stats().Rejected)
	assert.Equal(t, c.Stats().Rejected, c.Stats().TooOld, "the values rejected for their age")

	require.NoError(t, srv.SetFailure(fakeintake.Failure{Status: 503}))
	var mu sync.Mutex
	t1 := now
	c = newClient(t, url, func(cfg *ddmetrics.Config) {
		cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); t1 = t1.Add(10 * time.Minute); return t1 }
	})
	rs, err := c.SubmitRejections(context.Background(), []record.Metric{dist("d", []float64{1, 2, 3, 4})})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.Contains(t, rs[0].Reason, "too old")
	assert.Equal(t, uint64(4), c.Stats().Rejected)
	assert.Equal(t, c.Stats().Rejected, c.Stats().TooOld, "the values that aged past the limit while retried")
}

func TestPointsExpiringDuringRetriesAreRejected(t *testing.T) {
	t.Parallel()
	srv, url := intake(t)
	require.NoError(t, srv.SetFailure(fakeintake.Failure{Status: 503}))
	var mu sync.Mutex
	t1 := now
	c := newClient(t, url, func(cfg *ddmetrics.Config) {
		cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); t1 = t1.Add(10 * time.Minute); return t1 }
	})
	rs, err := c.SubmitRejections(context.Background(), []record.Metric{count("m", 1)})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.Contains(t, rs[0].Reason, "too old")
	assert.Zero(t, srv.Stats().SeriesPointsAccepted)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := ddmetrics.DefaultConfig()
	ok.APIKey = "k"
	require.NoError(t, ok.Validate(), "the defaults are valid")
	sd := ddmetrics.DefaultConfig()
	sd.Mode = ddmetrics.ModeDogStatsD
	require.NoError(t, sd.Validate(), "dogstatsd mode needs no API key")
	for addr, want := range map[string]string{"localhost:0": `dogstatsd_addr: port "0"`, "unix://": "dogstatsd_addr: a unix:// address needs the socket's path", "": "dogstatsd_addr: must be host:port"} {
		bad := sd
		bad.DogStatsDAddr = addr
		assert.ErrorContains(t, bad.Validate(), want)
	}
	for _, tc := range []struct {
		mutate func(*ddmetrics.Config)
		want   string
	}{
		{func(c *ddmetrics.Config) { c.APIKey = "" }, "api_key: is required"},
		{func(c *ddmetrics.Config) { c.Mode = "udp" }, `mode: must be api or dogstatsd, got "udp"`},
		{func(c *ddmetrics.Config) { c.Compression = "br" }, `compression: must be gzip, zstd, deflate or none, got "br"`},
		{func(c *ddmetrics.Config) { c.MaxPayloadBytes = 600_000 }, "max_payload_bytes: must be 4096..512000, got 600000"},
		{func(c *ddmetrics.Config) { c.MaxUncompressedBytes = 6_000_000 }, "max_uncompressed_bytes: must be 4096..5242879"},
		{func(c *ddmetrics.Config) { c.APIURL = "ftp://x" }, `api_url: must be a https or http URL with a host, got "ftp://x"`},
		{func(c *ddmetrics.Config) { c.APIKey = "k k" }, "api_key: contains whitespace"},
		{func(c *ddmetrics.Config) { c.Concurrency = 0 }, "concurrency: must be 1..1024, got 0"},
		{func(c *ddmetrics.Config) { c.Backoff.InitialInterval = 0 }, "retry_initial: must be positive, got 0s"},
		{func(c *ddmetrics.Config) { c.MaxAge = 2 * time.Hour }, "max_age: must be within (0, 1h0m0s], got 2h0m0s"},
	} {
		c := ok
		tc.mutate(&c)
		err := c.Validate()
		require.Error(t, err, tc.want)
		assert.Contains(t, err.Error(), tc.want)
		_, err = ddmetrics.New(c)
		assert.Error(t, err)
	}
	assert.Equal(t, "https://api.datadoghq.eu", ddmetrics.APIURL("datadoghq.eu"))
}

// TestRetryAfterIsHonoured: the metrics API's Retry-After is a floor for
// the next attempt, through the same pacing as the logs client
// (ddhttp.Sender), and may exceed our own MaxInterval.
func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	srv, url := intake(t)
	require.NoError(t, srv.SetFailure(fakeintake.Failure{Status: http.StatusTooManyRequests, Count: 2, RetryAfter: "10",
		Endpoints: []fakeintake.Endpoint{fakeintake.EndpointSeries}}))
	var (
		mu    sync.Mutex
		waits []time.Duration
	)
	c := newClient(t, url, func(cfg *ddmetrics.Config) {
		cfg.Backoff.Sleep = func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			waits = append(waits, d)
			mu.Unlock()
			return ctx.Err()
		}
	})
	rej, err := c.Submit(context.Background(), []record.Metric{count("m", 5)})
	require.NoError(t, err)
	assert.Empty(t, rej)
	assert.Equal(t, int64(1), srv.Stats().SeriesPointsAccepted)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []time.Duration{10 * time.Second, 10 * time.Second}, waits)
}

// TestConfigYAMLKeys: the keys under metrics.delivery that the README
// documents land in Config, the sender's among them; nothing else is a key.
func TestConfigYAMLKeys(t *testing.T) {
	t.Parallel()
	doc := `
mode: dogstatsd
compression: deflate
concurrency: 3
request_timeout: 5s
retry_initial: 100ms
retry_max: 2s
dogstatsd_addr: unix:///var/run/datadog/dsd.socket
`
	c := ddmetrics.DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&c))
	want := ddmetrics.DefaultConfig()
	want.Mode, want.Compression, want.Concurrency, want.RequestTimeout = "dogstatsd", "deflate", 3, 5*time.Second
	want.Backoff.InitialInterval, want.Backoff.MaxInterval = 100*time.Millisecond, 2*time.Second
	want.DogStatsDAddr = "unix:///var/run/datadog/dsd.socket"
	assert.Equal(t, want, c)
	for _, key := range []string{"api_url", "api_key", "max_age", "max_payload_bytes", "jitter", "now"} {
		dec := yaml.NewDecoder(strings.NewReader(key + ": 1\n"))
		dec.KnownFields(true)
		assert.Error(t, dec.Decode(new(ddmetrics.Config)), "%s is not a key", key)
	}
}

// A point that passes the API's age limit while its payload is retried is
// rejected alone, as too old, and the other points of the payload are sent
// again without it: the intake drops such a point silently (202) while it
// accepts the others, so sending it would count as accepted a point Datadog
// never kept. The intake's clock is the client's.
func TestPointAgeingPastTheLimitDuringRetriesIsRejectedAlone(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"series", "distribution"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			t1 := now
			read := func() time.Time { mu.Lock(); defer mu.Unlock(); return t1 }
			tick := func() time.Time { mu.Lock(); defer mu.Unlock(); t1 = t1.Add(time.Minute); return t1 }
			srv, url := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{testKey}, Now: read})
			require.NoError(t, srv.SetFailure(fakeintake.Failure{Status: 503, Count: 3}))
			c := newClient(t, url, func(cfg *ddmetrics.Config) { cfg.Now = tick })
			old, young := count("old", 1), count("young", 2)
			if kind == "distribution" {
				old, young = dist("old", []float64{1, 2, 3}), dist("young", []float64{4, 5})
			}
			old.Timestamp = now.Add(-58*time.Minute - 30*time.Second).Unix() // admitted, past the hour two minutes later
			young.Timestamp = now.Add(-time.Minute).Unix()
			rs, err := c.SubmitRejections(context.Background(), []record.Metric{old, young})
			require.NoError(t, err)
			require.Len(t, rs, 1)
			assert.Equal(t, "old", rs[0].Metric.Name)
			assert.Contains(t, rs[0].Reason, "too old")
			st, is := c.Stats(), srv.Stats()
			assert.Equal(t, st.Rejected, st.TooOld)
			assert.Zero(t, is.SeriesPointsRejectedTooOld, "nothing sent for the intake to drop")
			if kind == "series" {
				assert.Equal(t, uint64(1), st.TooOld)
				assert.Equal(t, uint64(1), st.SeriesAccepted)
				assert.Equal(t, int64(1), is.SeriesPointsAccepted)
				require.Len(t, srv.Series(), 1)
				assert.Equal(t, "young", srv.Series()[0].Metric)
			} else {
				assert.Equal(t, uint64(3), st.TooOld)
				assert.Equal(t, uint64(2), st.ValuesAccepted)
				require.Len(t, srv.Distributions(), 1)
				assert.Equal(t, "young", srv.Distributions()[0].Metric)
			}
		})
	}
}
