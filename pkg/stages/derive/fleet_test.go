package derive_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddmetrics"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeclock"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

const fleetKey = "fleet-test-key"

// delivery is a stage.Output that hands every metric batch to the
// deliver-metrics stage right away: derive → deliver-metrics → intake.
type delivery struct {
	t     testing.TB
	stage *ddmetrics.Stage
	dead  *sink
}

func (o *delivery) Emit(ctx context.Context, b *record.Batch) error {
	return o.stage.Handle(ctx, b, o.dead)
}

func (o *delivery) DeadLetter(ctx context.Context, b *record.Batch) error {
	return o.dead.DeadLetter(ctx, b)
}

func newDelivery(t testing.TB, url string, clk func() time.Time) *delivery {
	t.Helper()
	cfg := ddmetrics.DefaultConfig()
	cfg.APIURL, cfg.APIKey, cfg.Now, cfg.Logger = url, fleetKey, clk, slog.New(slog.DiscardHandler)
	cfg.Backoff.InitialInterval, cfg.Backoff.MaxInterval = time.Millisecond, 5*time.Millisecond
	c, err := ddmetrics.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &delivery{t: t, stage: ddmetrics.NewStage(c), dead: &sink{}}
}

// intakeTotals reads what the intake accepted: count sums and distribution
// values by series (metric and tags, across hosts and timestamps), after
// checking that no two accepted count points share (metric, tags, host,
// timestamp) — such points would overwrite each other in Datadog.
func intakeTotals(t testing.TB, srv *fakeintake.Server) (map[string]float64, map[string][]float64, int) {
	t.Helper()
	var ms []record.Metric
	for _, p := range srv.Series() {
		ms = append(ms, record.Metric{Name: p.Metric, Kind: record.MetricCount, Timestamp: p.Timestamp, Value: p.Value, Tags: p.Tags, Host: p.Host()})
	}
	for _, p := range srv.Distributions() {
		ms = append(ms, record.Metric{Name: p.Metric, Kind: record.MetricDistribution, Timestamp: p.Timestamp, Values: p.Values, Tags: p.Tags, Host: p.Host})
	}
	c, d := totals(t, ms)
	return c, d, len(srv.Series())
}

// traffic is three windows of requests, delivered out of order (each
// record arrives 0-4 s after its event time), with a few stragglers that
// arrive a minute late.
type arrival struct {
	at time.Time // processing time
	r  req
}

func fleetTraffic(n int, seed uint64) []arrival {
	rng := rand.New(rand.NewPCG(seed, seed))
	base := synthetic(n, t0)
	out := make([]arrival, n)
	for i, r := range base {
		r.at = t0.Add(time.Duration(rng.IntN(30_000)) * time.Millisecond)
		delay := time.Duration(rng.IntN(4000)) * time.Millisecond
		if i%97 == 0 {
			delay = time.Minute
		}
		out[i] = arrival{at: r.at.Add(delay), r: r}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// run feeds arrivals to workers (pick chooses the worker of each record) in
// batches of up to 100 ms of arrivals, ticking every simulated second, then
// flushes: a clean shutdown.
func run(t testing.TB, clk *fakeclock.Clock, arrivals []arrival, workers []*derive.Deriver, outs []stage.Output, pick func(i int) int) {
	t.Helper()
	ctx := context.Background()
	batches := make([][]req, len(workers))
	next := arrivals[0].at.Truncate(100 * time.Millisecond).Add(100 * time.Millisecond)
	lastTick := clk.Now()
	flush := func() {
		for w := range workers {
			if len(batches[w]) > 0 {
				require.NoError(t, workers[w].Handle(ctx, batchOf(batches[w]...), outs[w]))
				batches[w] = batches[w][:0]
			}
		}
		if clk.Now().Sub(lastTick) >= time.Second {
			for w := range workers {
				require.NoError(t, workers[w].Tick(ctx, clk.Now(), outs[w]))
			}
			lastTick = clk.Now()
		}
	}
	for i, a := range arrivals {
		for !a.at.Before(next) {
			clk.Set(next)
			flush()
			next = next.Add(100 * time.Millisecond)
		}
		w := pick(i)
		batches[w] = append(batches[w], a.r)
	}
	clk.Set(next)
	flush()
	for w := range workers {
		require.NoError(t, workers[w].Flush(ctx, outs[w]))
	}
}

func TestFleetOfTwoMatchesOneWorker(t *testing.T) {
	t.Parallel()
	const n = 30_000
	arrivals := fleetTraffic(n, 1)
	reqs := make([]req, n)
	for i, a := range arrivals {
		reqs[i] = a.r
	}
	wantCounts, wantDists := exactTotals(reqs, derive.ErrorMetricsBoth)

	// One worker.
	clk1 := fakeclock.New(arrivals[0].at)
	srv1, url1 := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{fleetKey}, Now: clk1.Now})
	solo := newDeriver(t, derive.Config{Now: clk1.Now, Host: "solo", NoIncarnation: true})
	run(t, clk1, arrivals, []*derive.Deriver{solo}, []stage.Output{newDelivery(t, url1, clk1.Now)}, func(int) int { return 0 })
	soloCounts, soloDists, soloPoints := intakeTotals(t, srv1)

	// Two workers on split traffic (as a load balancer or broker would
	// split it: any record to any worker), into another intake.
	clk2 := fakeclock.New(arrivals[0].at)
	srv2, url2 := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{fleetKey}, Now: clk2.Now})
	w1 := newDeriver(t, derive.Config{Now: clk2.Now, Host: "w1", NoIncarnation: true})
	w2 := newDeriver(t, derive.Config{Now: clk2.Now, Host: "w2", NoIncarnation: true})
	rng := rand.New(rand.NewPCG(9, 9))
	split := make([]int, n)
	for i := range split {
		split[i] = rng.IntN(2)
	}
	run(t, clk2, arrivals, []*derive.Deriver{w1, w2}, []stage.Output{newDelivery(t, url2, clk2.Now), newDelivery(t, url2, clk2.Now)},
		func(i int) int { return split[i] })
	fleetCounts, fleetDists, fleetPoints := intakeTotals(t, srv2)

	assert.Equal(t, wantCounts, soloCounts, "one worker: exact counts at the intake")
	assert.Equal(t, wantDists, soloDists, "one worker: exact distributions at the intake")
	assert.Equal(t, soloCounts, fleetCounts, "two workers: the same totals")
	assert.Equal(t, soloDists, fleetDists, "two workers: the same distributions")
	assert.Greater(t, fleetPoints, soloPoints, "each worker writes its own points (host)")
	for _, w := range []*derive.Deriver{solo, w1, w2} {
		st := w.Stats()
		assert.Positive(t, st.Late, "stragglers were counted in late generations")
		assert.Zero(t, st.TooOld+st.LateDropped+st.SeriesDropped+st.PointsTooOld)
	}
	assert.Zero(t, srv1.Stats().SeriesPointsRejectedTooOld+srv2.Stats().SeriesPointsRejectedTooOld)
}

func TestReplayBesideLiveTraffic(t *testing.T) {
	t.Parallel()
	// Live traffic for three windows, and a replay of logs of the same
	// windows that live delivery had missed (e.g. restored from the
	// dead-letter archive), running at the same time: in the same worker, or
	// in a worker of its own.
	live := fleetTraffic(6000, 2)
	replayed := fleetTraffic(3000, 3)
	for i := range replayed {
		replayed[i].r.replay = true
		replayed[i].r.route = "/pets" // share series with live traffic
	}
	var all []req
	for _, a := range live {
		all = append(all, a.r)
	}
	for _, a := range replayed {
		r := a.r
		r.replay = false // the replay:true tag is not a metric tag
		all = append(all, r)
	}
	wantCounts, wantDists := exactTotals(all, derive.ErrorMetricsBoth)
	// The replay runs ten times faster than real time beside live traffic.
	merged := append([]arrival(nil), live...)
	for i, a := range replayed {
		merged = append(merged, arrival{at: live[0].at.Add(time.Duration(i) * time.Millisecond), r: a.r})
	}
	sort.SliceStable(merged, func(i, j int) bool { return merged[i].at.Before(merged[j].at) })

	for _, tc := range []struct {
		name    string
		workers int
		pick    func(a arrival) int
	}{
		{"same worker", 1, func(arrival) int { return 0 }},
		{"own worker", 2, func(a arrival) int {
			if a.r.replay {
				return 1
			}
			return 0
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := fakeclock.New(merged[0].at)
			srv, url := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{fleetKey}, Now: clk.Now})
			var ws []*derive.Deriver
			var outs []stage.Output
			for i := range tc.workers {
				ws = append(ws, newDeriver(t, derive.Config{Now: clk.Now, Host: fmt.Sprintf("w%d", i+1), NoIncarnation: true}))
				outs = append(outs, newDelivery(t, url, clk.Now))
			}
			run(t, clk, merged, ws, outs, func(i int) int { return tc.pick(merged[i]) })
			counts, dists, _ := intakeTotals(t, srv) // fails on any overwrite
			assert.Equal(t, wantCounts, counts, "no double counting, nothing lost")
			assert.Equal(t, wantDists, dists)
			hosts := map[string]bool{}
			for _, p := range srv.Series() {
				hosts[p.Host()] = true
			}
			if tc.workers == 1 {
				assert.Equal(t, map[string]bool{"w1": true, "w1-replay": true}, hosts)
			} else {
				assert.Equal(t, map[string]bool{"w1": true, "w2-replay": true}, hosts)
			}
		})
	}
}

// TestArrivalToFlushBound checks, on the simulated clock, how long after
// its log arrives a request's window generation is flushed: at most
// Window + AllowedLateness + one tick + the 100 ms batching of the test
// (13.1 s with the defaults), which leaves the delivery to the API within
// the 15 s target. Traffic arrives 0.5-5 s after its event time, out of
// order, and stops before the end, so the last windows close on processing
// time.
func TestArrivalToFlushBound(t *testing.T) {
	t.Parallel()
	for _, lateness := range []time.Duration{0, 5 * time.Second} {
		t.Run(fmt.Sprint(lateness), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 5))
			var arrivals []arrival
			for i := range 20_000 {
				at := t0.Add(time.Duration(rng.IntN(60_000)) * time.Millisecond)
				r := req{at: at, method: "GET", route: fmt.Sprintf("/r%d", i%5), status: 200, latMs: 1, integMs: -1, bytes: -1}
				arrivals = append(arrivals, arrival{at: at.Add(500*time.Millisecond + time.Duration(rng.IntN(4500))*time.Millisecond), r: r})
			}
			sort.SliceStable(arrivals, func(i, j int) bool { return arrivals[i].at.Before(arrivals[j].at) })
			clk := fakeclock.New(arrivals[0].at)
			rec := &flushRecorder{clk: clk, flushes: map[int64][]time.Time{}}
			d := newDeriver(t, derive.Config{Now: clk.Now, AllowedLateness: lateness})
			// Keep ticking for a minute after the last arrival: quiet pipeline.
			tail := arrivals[len(arrivals)-1]
			tail.at = tail.at.Add(time.Minute)
			tail.r.at = tail.at
			run(t, clk, append(arrivals, tail), []*derive.Deriver{d}, []stage.Output{rec}, func(int) int { return 0 })

			effLateness := lateness
			if effLateness == 0 {
				effLateness = derive.DefaultAllowedLateness
			}
			bound := derive.DefaultWindow + effLateness + time.Second + 100*time.Millisecond
			var worst time.Duration
			var lat []time.Duration
			for _, a := range arrivals {
				handled := a.at.Truncate(100 * time.Millisecond).Add(100 * time.Millisecond)
				start := a.r.at.Unix() - a.r.at.Unix()%10
				var f time.Time
				for ts := start; ts < start+10; ts++ {
					for _, ft := range rec.flushes[ts] {
						if !ft.Before(handled) && (f.IsZero() || ft.Before(f)) {
							f = ft
						}
					}
				}
				require.False(t, f.IsZero(), "record at %v never flushed", a.r.at)
				l := f.Sub(a.at)
				lat = append(lat, l)
				worst = max(worst, l)
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			t.Logf("arrival → flush (simulated): p50 %v, p99 %v, max %v (bound %v)", lat[len(lat)/2], lat[len(lat)*99/100], worst, bound)
			assert.LessOrEqual(t, worst, bound)
		})
	}
}

// flushRecorder is a stage.Output that notes when each timestamp's points
// were emitted, on the simulated clock.
type flushRecorder struct {
	clk     *fakeclock.Clock
	flushes map[int64][]time.Time
}

func (f *flushRecorder) Emit(_ context.Context, b *record.Batch) error {
	seen := map[int64]bool{}
	for _, m := range b.Metrics {
		if !seen[m.Timestamp] {
			seen[m.Timestamp] = true
			f.flushes[m.Timestamp] = append(f.flushes[m.Timestamp], f.clk.Now())
		}
	}
	return nil
}

func (f *flushRecorder) DeadLetter(context.Context, *record.Batch) error { return nil }
