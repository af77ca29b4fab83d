package derive_test

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeclock"
)

const ns = "apigateway.logs."

// synthetic is deterministic traffic over routes, methods and statuses,
// spread over the window starting at start.
func synthetic(n int, start time.Time) []req {
	routes := []string{"/pets", "/pets/{petId}", "/orders"}
	methods := []string{"GET", "POST"}
	statuses := []int{200, 200, 200, 201, 404, 429, 500, 503, 200, 302}
	out := make([]req, n)
	for i := range out {
		r := req{
			at:      start.Add(time.Duration(i%9000) * time.Millisecond),
			method:  methods[i%len(methods)],
			route:   routes[(i/2)%len(routes)],
			status:  statuses[i%len(statuses)],
			latMs:   float64(1 + (i*37)%500),
			integMs: float64((i * 13) % 400),
			bytes:   int64(100 + i%1000),
		}
		if i%7 == 0 {
			r.attrs = append(r.attrs, record.IntAttr("http.integration.status_code", 502))
		}
		if i%11 == 0 {
			r.integMs = -1
		}
		out[i] = r
	}
	return out
}

func classOf(status int) string { return fmt.Sprintf("%dxx", status/100) }

func TestExactCounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		n      int
		errors string
	}{
		{"small both names", 50, derive.ErrorMetricsBoth},
		{"large both names", 20_000, ""},
		{"rest names", 1000, derive.ErrorMetricsREST},
		{"http names", 1000, derive.ErrorMetricsHTTP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := fakeclock.New(t0.Add(9 * time.Second))
			d := newDeriver(t, derive.Config{Now: clk.Now, ErrorMetrics: tc.errors})
			traffic := synthetic(tc.n, t0)
			out := &sink{}
			for i := 0; i < len(traffic); i += 500 {
				require.NoError(t, d.Handle(context.Background(), batchOf(traffic[i:min(i+500, len(traffic))]...), out))
			}
			require.Empty(t, out.metrics(), "the window is still open")
			require.NoError(t, d.Flush(context.Background(), out))

			want, wantDist := exactTotals(traffic, tc.errors)
			ms := out.metrics()
			counts, dists := totals(t, ms)
			assert.Equal(t, want, counts)
			assert.Equal(t, wantDist, dists)
			for _, m := range ms {
				assert.Equal(t, t0.Unix(), m.Timestamp, "window start")
				assert.Equal(t, "w1", m.Host)
				if m.Kind == record.MetricCount {
					assert.Equal(t, int64(10), m.Interval)
				}
			}
			assert.Equal(t, int64(tc.n), d.Stats().Records)
		})
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// quantile is the nearest-rank quantile of sorted values.
func quantile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func TestDistributionQuantiles(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0.Add(9 * time.Second))
	d := newDeriver(t, derive.Config{Now: clk.Now})
	// A long-tailed latency mix on one route.
	var rs []req
	var exact []float64
	for i := range 10_000 {
		lat := 5 + float64(i%100)
		if i%100 == 0 {
			lat = 2000 + float64(i%7)
		}
		rs = append(rs, req{at: t0.Add(time.Duration(i%9000) * time.Millisecond), method: "GET", route: "/pets", status: 200, latMs: lat, integMs: -1, bytes: -1})
		exact = append(exact, lat)
	}
	out := &sink{}
	require.NoError(t, d.Handle(context.Background(), batchOf(rs...), out))
	require.NoError(t, d.Flush(context.Background(), out))
	_, dists := totals(t, out.metrics())
	got := dists[seriesKey(ns+"latency", tagsOf("get", "/pets", "2xx"))]
	sort.Float64s(exact)
	require.Len(t, got, len(exact))
	// Raw values are submitted, so Datadog's sketch sees exactly these: its
	// quantiles are within its 1% relative accuracy of the exact ones.
	for _, q := range []float64{0.5, 0.75, 0.9, 0.95, 0.99, 0.999} {
		e, g := quantile(exact, q), quantile(got, q)
		assert.InEpsilon(t, e, g, 0.01, "p%v", q*100)
	}
}

func TestWindowsAndLateness(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0)
	d := newDeriver(t, derive.Config{Now: clk.Now, AllowedLateness: 2 * time.Second})
	out := &sink{}
	ctx := context.Background()
	r := func(at time.Time) req {
		return req{at: at, method: "GET", route: "/pets", status: 200, latMs: 10, integMs: -1, bytes: -1}
	}
	countAt := func(ts int64) (n float64) {
		for _, m := range out.metrics() {
			if m.Name == ns+"count" && m.Timestamp == ts {
				n += m.Value
			}
		}
		return n
	}
	w0, w1 := t0.Unix(), t0.Unix()+10

	clk.Set(t0.Add(3 * time.Second))
	require.NoError(t, d.Handle(ctx, batchOf(r(t0.Add(time.Second)), r(t0.Add(3*time.Second))), out))
	// Event time reaches the next window, within the lateness of the first.
	clk.Set(t0.Add(11 * time.Second))
	require.NoError(t, d.Handle(ctx, batchOf(r(t0.Add(11*time.Second))), out))
	// A late record of the first window, within the allowed lateness.
	require.NoError(t, d.Handle(ctx, batchOf(r(t0.Add(9*time.Second))), out))
	assert.Empty(t, out.metrics(), "nothing closed yet")

	// The watermark passes end + lateness: window 0 closes with 3 records.
	clk.Set(t0.Add(12 * time.Second))
	require.NoError(t, d.Handle(ctx, batchOf(r(t0.Add(12*time.Second))), out))
	assert.Equal(t, 3.0, countAt(w0))
	assert.Equal(t, 0.0, countAt(w1))

	// A record of window 0 after it closed: not lost, not overwriting:
	// a late generation stamped one second later.
	require.NoError(t, d.Handle(ctx, batchOf(r(t0.Add(5*time.Second))), out))
	assert.Equal(t, int64(1), d.Stats().Late)
	require.NoError(t, d.Tick(ctx, clk.Advance(time.Second), out))
	assert.Equal(t, 0.0, countAt(w0+1), "late generations wait AllowedLateness")
	require.NoError(t, d.Tick(ctx, clk.Advance(time.Second), out))
	assert.Equal(t, 1.0, countAt(w0+1))

	// Quiet pipeline: no more records; processing time closes window 1.
	require.NoError(t, d.Tick(ctx, t0.Add(20*time.Second), out))
	assert.Equal(t, 0.0, countAt(w1), "window 1 opened at 11s: closes at 11+10+2")
	require.NoError(t, d.Tick(ctx, t0.Add(23*time.Second), out))
	assert.Equal(t, 2.0, countAt(w1))

	counts, _ := totals(t, out.metrics()) // also checks no overwrite
	assert.Equal(t, 6.0, counts[seriesKey(ns+"count", tagsOf("get", "/pets", "2xx"))])
	assert.Equal(t, int64(6), d.Stats().Records)
}

func TestLateGenerationsNeverOverwrite(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0.Add(15 * time.Second))
	d := newDeriver(t, derive.Config{Now: clk.Now, MaxAge: 30 * time.Minute})
	out := &sink{}
	ctx := context.Background()
	// The same window receives a record, is flushed, again and again.
	total := 0
	for i := range 40 {
		require.NoError(t, d.Handle(ctx, batchOf(req{at: t0.Add(time.Second), method: "GET", route: "/x", status: 200, latMs: 1, integMs: -1, bytes: -1}), out))
		total++
		clk.Advance(time.Duration(3+2*i) * time.Second)
		require.NoError(t, d.Tick(ctx, clk.Now(), out))
	}
	require.NoError(t, d.Flush(ctx, out))
	// Every slot of the window is used now: one more record is dropped and
	// counted, never written over an earlier point.
	require.NoError(t, d.Handle(ctx, batchOf(req{at: t0.Add(time.Second), method: "GET", route: "/x", status: 200, latMs: 1, integMs: -1, bytes: -1}), out))
	total++
	require.NoError(t, d.Flush(ctx, out))
	counts, _ := totals(t, out.metrics())
	st := d.Stats()
	// 28 minutes pass: the window uses every slot (the last one waits until
	// it is nearly MaxAge old); records after that are counted as dropped.
	assert.Equal(t, int64(10), st.Windows, "%+v", st)
	assert.Equal(t, float64(int64(total)-st.LateDropped), counts[seriesKey(ns+"count", tagsOf("get", "/x", "2xx"))], "%+v", st)
	assert.Zero(t, st.TooOld+st.RecordsExpired)
	assert.Equal(t, int64(1), st.LateDropped, "%+v", st)
	for _, m := range out.metrics() {
		assert.GreaterOrEqual(t, m.Timestamp, t0.Unix())
		assert.Less(t, m.Timestamp, t0.Unix()+10, "every generation stays inside its window")
	}
}

func TestTooOldAndTooNew(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0.Add(2 * time.Hour))
	reg := telemetry.NewRegistry()
	d, err := derive.New(derive.Config{Now: clk.Now, Host: "w1", NoIncarnation: true}, reg)
	require.NoError(t, err)
	out := &sink{}
	now := clk.Now()
	rs := []req{
		{at: now.Add(-90 * time.Minute), method: "GET", route: "/old", status: 200, latMs: 1, integMs: -1, bytes: -1},
		{at: now.Add(-56 * time.Minute), method: "GET", route: "/old", status: 200, latMs: 1, integMs: -1, bytes: -1},
		{at: now.Add(30 * time.Minute), method: "GET", route: "/future", status: 200, latMs: 1, integMs: -1, bytes: -1},
		{at: now.Add(-50 * time.Minute), method: "GET", route: "/replayed", status: 200, latMs: 1, integMs: -1, bytes: -1},
	}
	require.NoError(t, d.Handle(context.Background(), batchOf(rs...), out))
	require.NoError(t, d.Flush(context.Background(), out))
	st := d.Stats()
	assert.Equal(t, int64(2), st.TooOld)
	assert.Equal(t, int64(1), st.TooNew)
	assert.Equal(t, int64(1), st.Records)
	counts, _ := totals(t, out.metrics())
	assert.Equal(t, map[string]float64{seriesKey(ns+"count", tagsOf("get", "/replayed", "2xx")): 1}, counts)
	assert.Equal(t, int64(2), reg.Value("derive.records_too_old"))

	// A window that waits until it is too old by flush time is counted, not
	// emitted: here the clock jumps past MaxAge with the window still open.
	d2 := newDeriver(t, derive.Config{Now: clk.Now})
	out2 := &sink{}
	require.NoError(t, d2.Handle(context.Background(), batchOf(req{at: now.Add(-54 * time.Minute), method: "GET", route: "/a", status: 200, latMs: 1, integMs: -1, bytes: -1}), out2))
	clk.Advance(2 * time.Minute)
	require.NoError(t, d2.Tick(context.Background(), clk.Now(), out2))
	assert.Empty(t, out2.metrics())
	assert.Equal(t, int64(2), d2.Stats().PointsTooOld, "count and latency points")
}

func TestCardinalityGuard(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0.Add(5 * time.Second))
	d := newDeriver(t, derive.Config{Now: clk.Now, MaxResourcesPerAPI: 3})
	out := &sink{}
	var rs []req
	for i := range 10 {
		for j := 0; j <= i; j++ { // resource /r<i> gets i+1 records
			rs = append(rs, req{at: t0.Add(time.Second), method: "GET", route: fmt.Sprintf("/r%d", i), status: 200, latMs: 1, integMs: -1, bytes: -1})
		}
	}
	// Another API has its own budget.
	other := []string{"aws_account:123456789012", "region:us-east-1", "apiid:zzz", "stage:prod"}
	for i := range 3 {
		rs = append(rs, req{at: t0.Add(time.Second), method: "GET", route: fmt.Sprintf("/z%d", i), status: 200, latMs: 1, integMs: -1, bytes: -1, tags: other})
	}
	require.NoError(t, d.Handle(context.Background(), batchOf(rs...), out))
	require.NoError(t, d.Flush(context.Background(), out))
	counts, _ := totals(t, out.metrics())
	for i := range 3 {
		assert.Equal(t, float64(i+1), counts[seriesKey(ns+"count", tagsOf("get", fmt.Sprintf("/r%d", i), "2xx"))])
	}
	assert.Equal(t, float64(4+5+6+7+8+9+10), counts[seriesKey(ns+"count", tagsOf("get", "other", "2xx"))])
	assert.Equal(t, int64(4+5+6+7+8+9+10), d.Stats().Folded)
	resources := map[string]bool{}
	for _, m := range out.metrics() {
		for _, tg := range m.Tags {
			if len(tg) > 9 && tg[:9] == "resource:" {
				resources[tg] = true
			}
		}
	}
	assert.Len(t, resources, 3+1+3)
	var total float64
	for k, v := range counts {
		if len(k) > len(ns+"count|") && k[:len(ns+"count|")] == ns+"count|" {
			total += v
		}
	}
	assert.Equal(t, float64(len(rs)), total, "folding loses no request")
}

func TestTagAllowlist(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		allow []string
		want  []string
	}{
		{"none", nil, tagsOf("get", "/pets", "2xx")},
		{"team", []string{"team"}, tagsOf("get", "/pets", "2xx", "team:payments")},
		{"team and env, missing owner", []string{"team", "owner", "env"}, tagsOf("get", "/pets", "2xx", "team:payments", "env:prod")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := fakeclock.New(t0.Add(5 * time.Second))
			d := newDeriver(t, derive.Config{Now: clk.Now, TagAllowlist: tc.allow})
			out := &sink{}
			require.NoError(t, d.Handle(context.Background(), batchOf(req{at: t0, method: "GET", route: "/pets", status: 200, latMs: 3, integMs: -1, bytes: -1}), out))
			require.NoError(t, d.Flush(context.Background(), out))
			ms := out.metrics()
			require.Len(t, ms, 2) // count, latency
			for _, m := range ms {
				assert.ElementsMatch(t, tc.want, m.Tags)
			}
		})
	}
	_, err := derive.New(derive.Config{TagAllowlist: []string{"stage"}}, nil)
	assert.Error(t, err, "fixed keys cannot be allowlisted")
}

func TestSummaries(t *testing.T) {
	t.Parallel()
	summary := func(stageTag string, attrs ...record.Attr) req {
		return req{at: t0.Add(time.Second), kind: record.KindSummary, method: "POST", route: "/verify", status: 200,
			latMs: -1, integMs: 40, bytes: -1, attrs: attrs,
			tags: []string{"aws_account:123456789012", "region:us-east-1", "apiid:a1b2c3", "stage:" + stageTag}}
	}
	access := req{at: t0.Add(time.Second), method: "POST", route: "/verify", status: 200, latMs: 42, integMs: 40, bytes: 10,
		tags: []string{"aws_account:123456789012", "region:us-east-1", "apiid:a1b2c3", "stage:prod"}}
	hasAccess := record.BoolAttr("gwpipe.stage_has_access_logs", true)
	noAccess := record.BoolAttr("gwpipe.stage_has_access_logs", false)
	tests := []struct {
		mode    string
		records []req
		counted int64
		skipped int64
	}{
		{"auto", []req{access, summary("prod"), summary("dev")}, 2, 1},
		{"auto", []req{summary("prod"), summary("dev", hasAccess), summary("prod", noAccess)}, 2, 1},
		{"always", []req{access, summary("prod"), summary("dev")}, 3, 0},
		{"never", []req{access, summary("prod"), summary("dev")}, 1, 2},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprintf("%d-%s", i, tc.mode), func(t *testing.T) {
			clk := fakeclock.New(t0.Add(5 * time.Second))
			d := newDeriver(t, derive.Config{Now: clk.Now, Summaries: tc.mode})
			out := &sink{}
			require.NoError(t, d.Handle(context.Background(), batchOf(tc.records...), out))
			require.NoError(t, d.Flush(context.Background(), out))
			st := d.Stats()
			assert.Equal(t, tc.counted, st.Records)
			assert.Equal(t, tc.skipped, st.SummariesSkipped)
		})
	}
}

// TestSummariesWaitForAccessLogs: in auto mode a stage's request summaries
// that come before its first access log (after a start, from another batch
// or Firehose request) wait for one; if it comes within the grace they are
// not counted (the access logs count those requests), and a stage that has
// only execution logs has its summaries counted once the grace has passed,
// none lost and none twice.
func TestSummariesWaitForAccessLogs(t *testing.T) {
	t.Parallel()
	stageTags := func(stage string) []string {
		return []string{"aws_account:123456789012", "region:us-east-1", "apiid:a1b2c3", "stage:" + stage}
	}
	summary := func(stage string, sec int) req {
		return req{at: t0.Add(time.Duration(sec) * time.Second), kind: record.KindSummary, method: "GET", route: "/pets",
			status: 200, latMs: -1, integMs: -1, bytes: -1, tags: stageTags(stage)}
	}
	access := func(stage string, sec int) req {
		r := summary(stage, sec)
		r.kind = record.KindAccess
		return r
	}
	count := func(out *sink, stage string) float64 {
		counts, _ := totals(t, out.metrics())
		var n float64
		for k, v := range counts {
			if strings.HasPrefix(k, ns+derive.NameCount+"|") && strings.Contains(k, "stage:"+stage) {
				n += v
			}
		}
		return n
	}
	ctx := context.Background()
	clk := fakeclock.New(t0.Add(5 * time.Second))
	d := newDeriver(t, derive.Config{Now: clk.Now})
	out := &sink{}

	// Execution logs of prod (which has access logs) and of dev (which has
	// none) come first; their batches' memory is reused at once.
	first := batchOf(summary("prod", 1), summary("prod", 2), summary("dev", 1), summary("dev", 2))
	require.NoError(t, d.Handle(ctx, first, out))
	for i := range first.Records {
		for j := range first.Records[i].Attrs {
			if a := &first.Records[i].Attrs[j]; a.Key == "http.route" {
				copy(a.Str, "/XXXX")
			}
		}
		first.Records[i].Tags = nil
	}
	assert.EqualValues(t, 4, d.Stats().SummariesWaiting)
	assert.Zero(t, d.Stats().Records)

	clk.Advance(20 * time.Second)
	require.NoError(t, d.Handle(ctx, batchOf(access("prod", 1), access("prod", 2), summary("prod", 3), access("prod", 3)), out))
	require.NoError(t, d.Tick(ctx, clk.Now(), out))
	st := d.Stats()
	assert.EqualValues(t, 4, st.SummariesWaiting, "still within the grace")
	assert.EqualValues(t, 1, st.SummariesSkipped, "prod's access logs are known now")

	clk.Advance(41 * time.Second) // the grace of the first summaries has passed
	require.NoError(t, d.Tick(ctx, clk.Now(), out))
	st = d.Stats()
	assert.Zero(t, st.SummariesWaiting)
	assert.EqualValues(t, 3, st.SummariesSkipped, "prod's summaries: its access logs count them")

	// dev has had summaries for the grace and no access log: they count
	// at once from now on.
	require.NoError(t, d.Handle(ctx, batchOf(summary("dev", 70)), out))
	assert.Zero(t, d.Stats().SummariesWaiting)
	require.NoError(t, d.Flush(ctx, out))
	assert.Equal(t, 3.0, count(out, "prod"), "three requests of prod, each counted once")
	assert.Equal(t, 3.0, count(out, "dev"))
	counts, _ := totals(t, out.metrics())
	for k := range counts {
		assert.NotContains(t, k, "XXXX", "a waiting summary is a copy, not the batch's memory")
	}
	assert.EqualValues(t, 6, d.Stats().Records)

	// At shutdown the waiting summaries are decided with what is known.
	d2 := newDeriver(t, derive.Config{Now: clk.Now})
	out2 := &sink{}
	require.NoError(t, d2.Handle(ctx, batchOf(summary("qa", 60), summary("qa", 61)), out2))
	assert.EqualValues(t, 2, d2.Stats().SummariesWaiting)
	require.NoError(t, d2.Flush(ctx, out2))
	assert.Zero(t, d2.Stats().SummariesWaiting)
	assert.Equal(t, 2.0, count(out2, "qa"))
}

func TestSummaryLatencyAndThrottles(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0.Add(5 * time.Second))
	d := newDeriver(t, derive.Config{Now: clk.Now, Summaries: derive.SummariesAlways})
	out := &sink{}
	tags := []string{"aws_account:1", "region:eu-west-1", "apiid:x", "stage:dev"}
	rs := []req{
		{at: t0, kind: record.KindSummary, method: "GET", route: "/a", status: 200, latMs: -1, integMs: -1, bytes: -1, tags: tags,
			attrs: []record.Attr{record.IntAttr("apigateway.summary.elapsed_ms", 42), record.BoolAttr("apigateway.summary.complete", true)}},
		// Throttled by a usage plan: no status line, a throttle line.
		{at: t0, kind: record.KindSummary, method: "GET", route: "/a", latMs: -1, integMs: -1, bytes: -1, tags: tags,
			attrs: []record.Attr{record.BoolAttr("apigateway.execution.throttled", true), record.IntAttr("apigateway.summary.elapsed_ms", 3)}},
		{at: t0, kind: record.KindSummary, method: "GET", route: "/a", latMs: -1, integMs: -1, bytes: -1, tags: tags,
			attrs: []record.Attr{record.BoolAttr("apigateway.execution.quota_exceeded", true)}},
	}
	require.NoError(t, d.Handle(context.Background(), batchOf(rs...), out))
	require.NoError(t, d.Flush(context.Background(), out))
	counts, dists := totals(t, out.metrics())
	base := []string{"aws_account:1", "region:eu-west-1", "apiid:x", "stage:dev", "method:get", "resource:/a"}
	assert.Equal(t, 1.0, counts[seriesKey(ns+"count", append(base, "status_class:2xx"))])
	assert.Equal(t, 2.0, counts[seriesKey(ns+"count", append(base, "status_class:unknown"))])
	assert.Equal(t, 2.0, counts[seriesKey(ns+"throttled", append(base, "status_class:unknown"))])
	assert.Equal(t, []float64{42}, dists[seriesKey(ns+"latency", append(base, "status_class:2xx"))], "elapsed time of complete summaries only")
}

func TestWebSocketAndCache(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0.Add(5 * time.Second))
	d := newDeriver(t, derive.Config{Now: clk.Now})
	out := &sink{}
	ws := func(ev, route string, status int) req {
		return req{at: t0, route: route, status: status, latMs: -1, integMs: -1, bytes: -1,
			attrs: []record.Attr{record.StringAttr("apigateway.eventType", []byte(ev))}}
	}
	cache := func(v string) req {
		return req{at: t0, method: "GET", route: "/c", status: 200, latMs: -1, integMs: -1, bytes: -1,
			attrs: []record.Attr{record.StringAttr("apigateway.cacheStatus", []byte(v))}}
	}
	rs := []req{
		ws("CONNECT", "$connect", 200), ws("CONNECT", "$connect", 403),
		ws("MESSAGE", "sendmessage", 200), ws("MESSAGE", "sendmessage", 200), ws("MESSAGE", "sendmessage", 502),
		ws("DISCONNECT", "$disconnect", 200),
		cache("HIT"), cache("hit"), cache("MISS"), cache("-"),
	}
	require.NoError(t, d.Handle(context.Background(), batchOf(rs...), out))
	require.NoError(t, d.Flush(context.Background(), out))
	counts, _ := totals(t, out.metrics())
	sum := func(name string) (n float64) {
		for k, v := range counts {
			if len(k) > len(ns+name)+1 && k[:len(ns+name)+1] == ns+name+"|" {
				n += v
			}
		}
		return n
	}
	assert.Equal(t, 2.0, sum("connect_count"))
	assert.Equal(t, 3.0, sum("message_count"))
	assert.Equal(t, 1.0, sum("disconnect_count"))
	assert.Equal(t, 1.0, sum("client_error"))
	assert.Equal(t, 1.0, sum("execution_error"))
	assert.Equal(t, 2.0, sum("cache_hit_count"))
	assert.Equal(t, 1.0, sum("cache_miss_count"))
	assert.Equal(t, 10.0, sum("count"))
	wsTags := []string{"aws_account:123456789012", "region:us-east-1", "apiid:a1b2c3", "apiname:petstore", "stage:prod",
		"resource:$connect", "status_class:4xx", "event_type:connect"}
	assert.Equal(t, 1.0, counts[seriesKey(ns+"client_error", wsTags)])
}

func TestReplayUsesItsOwnHostAndWatermark(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0.Add(40 * time.Minute))
	d := newDeriver(t, derive.Config{Now: clk.Now})
	out := &sink{}
	ctx := context.Background()
	live := func(at time.Time) req {
		return req{at: at, method: "GET", route: "/pets", status: 200, latMs: 1, integMs: -1, bytes: -1}
	}
	replay := func(at time.Time) req { r := live(at); r.replay = true; return r }
	// Live traffic is 40 minutes ahead of the replay: the replay's windows
	// must not count as late against the live watermark.
	require.NoError(t, d.Handle(ctx, batchOf(live(clk.Now()), replay(t0), replay(t0.Add(3*time.Second))), out))
	require.NoError(t, d.Handle(ctx, batchOf(replay(t0.Add(13*time.Second))), out)) // closes the replay's first window
	assert.Equal(t, int64(0), d.Stats().Late)
	require.NoError(t, d.Flush(ctx, out))
	hosts := map[string]float64{}
	for _, m := range out.metrics() {
		if m.Name == ns+"count" {
			hosts[m.Host] += m.Value
		}
	}
	assert.Equal(t, map[string]float64{"w1": 1, "w1-replay": 3}, hosts)
	counts, _ := totals(t, out.metrics())
	assert.Equal(t, 4.0, counts[seriesKey(ns+"count", tagsOf("get", "/pets", "2xx"))], "replay:true is not a metric tag: live and replay points add up")
}

func TestEmitFailureKeepsBatches(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0.Add(5 * time.Second))
	d := newDeriver(t, derive.Config{Now: clk.Now})
	out := &sink{fail: 1}
	ctx := context.Background()
	require.NoError(t, d.Handle(ctx, batchOf(synthetic(100, t0)...), out))
	clk.Set(t0.Add(time.Minute))
	// The window closes but the output fails: the input is still done (no
	// error, so it is not retried and counted twice); the batch is kept.
	require.NoError(t, d.Handle(ctx, batchOf(), out))
	assert.Empty(t, out.metrics())
	assert.Equal(t, int64(1), d.Stats().PendingBatches)
	held := d.Stats().PendingPoints
	assert.Positive(t, held, "the points held are counted")
	require.NoError(t, d.Tick(ctx, clk.Now(), out))
	assert.Equal(t, int64(0), d.Stats().PendingBatches)
	assert.Zero(t, d.Stats().PendingPoints)
	assert.Len(t, out.metrics(), int(held), "the points held are the points emitted later")
	counts, _ := totals(t, out.metrics())
	var n float64
	for k, v := range counts {
		if k[:len(ns+"count|")] == ns+"count|" {
			n += v
		}
	}
	assert.Equal(t, 100.0, n)
}

func TestFlushEmitsEveryOpenWindow(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0.Add(35 * time.Second))
	d := newDeriver(t, derive.Config{Now: clk.Now})
	out := &sink{}
	ctx := context.Background()
	var rs []req
	for i := range 4 { // four windows, all open (processing time has not moved)
		rs = append(rs, req{at: t0.Add(time.Duration(i*10) * time.Second), method: "GET", route: "/x", status: 200, latMs: 1, integMs: -1, bytes: -1})
	}
	rs = append(rs, req{at: t0.Add(35 * time.Second), method: "GET", route: "/x", status: 200, latMs: 1, integMs: -1, bytes: -1, replay: true})
	require.NoError(t, d.Handle(ctx, batchOf(rs...), out))
	before := len(out.metrics())
	require.NoError(t, d.Flush(ctx, out))
	counts, _ := totals(t, out.metrics())
	assert.Equal(t, 5.0, counts[seriesKey(ns+"count", tagsOf("get", "/x", "2xx"))])
	assert.Less(t, before, len(out.metrics()))
	assert.Equal(t, int64(0), d.Stats().OpenSeries)
	for _, b := range out.batches {
		assert.Nil(t, b.Ack, "metric batches carry no source acknowledgement")
	}
}

func TestIgnoresOtherKindsAndMissingAttributes(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0.Add(5 * time.Second))
	d := newDeriver(t, derive.Config{Now: clk.Now})
	out := &sink{}
	b := &record.Batch{Records: []record.Record{
		{Kind: record.KindExecution, Timestamp: t0.UnixMilli()},
		{Kind: record.KindOther, Timestamp: t0.UnixMilli()},
		{Kind: record.KindAccess, Timestamp: t0.UnixMilli()}, // no attributes, no tags, no origin
		{Kind: record.KindAccess},                            // no timestamp: processing time
	}}
	require.NoError(t, d.Handle(context.Background(), b, out))
	require.NoError(t, d.Flush(context.Background(), out))
	st := d.Stats()
	assert.Equal(t, int64(2), st.Ignored)
	assert.Equal(t, int64(2), st.Records)
	counts, _ := totals(t, out.metrics())
	assert.Equal(t, map[string]float64{seriesKey(ns+"count", []string{"status_class:unknown"}): 2}, counts)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, cfg := range []derive.Config{
		{Namespace: "aws.apigateway."},
		{Window: 1500 * time.Millisecond},
		{Window: 2 * time.Hour},
		{MaxAge: 5 * time.Second},
		{Summaries: "sometimes"},
		{ErrorMetrics: "all"},
		{TagAllowlist: []string{"team:x"}},
		{Host: "a b"},
	} {
		_, err := derive.New(cfg, nil)
		assert.Error(t, err, "%+v", cfg)
	}
	d, err := derive.New(derive.Config{Host: "pod-7"}, nil)
	require.NoError(t, err)
	live, replay := d.Hosts()
	assert.Regexp(t, `^pod-7-[0-9a-z]+$`, live, "a restarted process gets a new incarnation")
	assert.Equal(t, live+"-replay", replay)
}
