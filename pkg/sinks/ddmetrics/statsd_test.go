package ddmetrics_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddmetrics"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

func TestDogStatsDMode(t *testing.T) {
	t.Parallel()
	l := listenStatsd(t)
	cfg := ddmetrics.DefaultConfig()
	cfg.Mode, cfg.DogStatsDAddr, cfg.Now = ddmetrics.ModeDogStatsD, l.addr(), clock
	c, err := ddmetrics.New(cfg)
	require.NoError(t, err)
	defer c.Close()
	vs := make([]float64, 500)
	for i := range vs {
		vs[i] = float64(i)
	}
	old := count("apigateway.logs.count", 1)
	old.Timestamp = now.Unix() - 7200
	rej, err := c.Submit(context.Background(), []record.Metric{
		count("apigateway.logs.count", 42, "apiid:a1", "status_class:2xx"),
		dist("apigateway.logs.latency", vs, "apiid:a1"),
		old,
	})
	require.NoError(t, err)
	require.Len(t, rej, 1, "too old for the API: not sent")

	lines := l.waitFor(t, func(lines []string) bool {
		n := 0
		for _, d := range parseAll(lines, "apigateway.logs.latency") {
			n += len(d.values)
		}
		return n >= len(vs) && len(parseAll(lines, "apigateway.logs.count")) >= 1
	})
	counts := parseAll(lines, "apigateway.logs.count")
	require.Len(t, counts, 1)
	assert.Equal(t, []string{"42"}, counts[0].values)
	assert.Equal(t, "c", counts[0].typ)
	assert.Equal(t, strconv.FormatInt(now.Unix()-20, 10), counts[0].ts, "counts keep their window's timestamp")
	assert.Subset(t, counts[0].tags, []string{"apiid:a1", "status_class:2xx", "host:w1"})

	var got []float64
	for _, d := range parseAll(lines, "apigateway.logs.latency") {
		assert.Equal(t, "d", d.typ)
		assert.Empty(t, d.ts, "distributions carry no timestamp")
		assert.Contains(t, d.tags, "host:w1")
		for _, v := range d.values {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			got = append(got, f)
		}
	}
	slices.Sort(got)
	assert.Equal(t, vs, got, "every value, unsampled")
}

func TestSelfTelemetry(t *testing.T) {
	t.Parallel()
	l := listenStatsd(t)
	reg := telemetry.NewRegistry()
	st := reg.Stage("deliver-logs")
	st.Batches.Add(4)
	st.RecordsIn.Add(400)
	st.RecordsOut.Add(390)
	st.Dead.Add(10)
	st.HandedBack.Add(6)
	st.Lost.Add(2)
	st.InFlight.Add(3)
	st.QueueDepth.Set(0)
	reg.Counter("derive.points_too_old", "help").Add(7)
	reg.Histogram("deliver_logs.request_latency", "help").Observe(120e6) // 120 ms
	reg.Gauge("queue.raw", "help").Set(5)
	reg.Counter("firehose.status", "help", telemetry.L("code", "429")).Add(3)
	reg.Stage("ingest") // a source: its queue depth is unknown, not sent
	tel, err := ddmetrics.NewSelfTelemetry(ddmetrics.SelfTelemetryConfig{
		Addr: l.addr(), Tags: []string{"worker:w1"}, Registry: reg,
	})
	require.NoError(t, err)
	defer tel.Close()

	require.NoError(t, tel.Report())
	find := func(lines []string, name string, tag string) (vals []string) {
		for _, d := range parseAll(lines, name) {
			if d.name == name && (tag == "" || slices.Contains(d.tags, tag)) {
				vals = append(vals, d.values...)
			}
		}
		return vals
	}
	// The datagrams of one report may arrive in any order: wait for every
	// metric asserted below.
	lines := l.waitFor(t, func(lines []string) bool {
		for _, name := range []string{"gwpipe.deliver_logs.request_latency.p99", "gwpipe.queue.raw", "gwpipe.stage.records_in",
			"gwpipe.stage.records_out", "gwpipe.stage.dead_lettered", "gwpipe.stage.handed_back", "gwpipe.stage.lost", "gwpipe.stage.batch_size",
			"gwpipe.stage.in_flight", "gwpipe.derive.points_too_old", "gwpipe.firehose.status", "gwpipe.stage.queue_depth"} {
			if len(find(lines, name, "")) == 0 {
				return false
			}
		}
		return true
	})
	assert.Equal(t, []string{"400"}, find(lines, "gwpipe.stage.records_in", "stage:deliver-logs"))
	assert.Equal(t, []string{"390"}, find(lines, "gwpipe.stage.records_out", "stage:deliver-logs"))
	assert.Equal(t, []string{"10"}, find(lines, "gwpipe.stage.dead_lettered", "stage:deliver-logs"))
	assert.Equal(t, []string{"6"}, find(lines, "gwpipe.stage.handed_back", "stage:deliver-logs"))
	assert.Equal(t, []string{"2"}, find(lines, "gwpipe.stage.lost", "stage:deliver-logs"))
	assert.Equal(t, []string{"100"}, find(lines, "gwpipe.stage.batch_size", "stage:deliver-logs"))
	assert.Equal(t, []string{"3"}, find(lines, "gwpipe.stage.in_flight", "stage:deliver-logs"))
	assert.Equal(t, []string{"7"}, find(lines, "gwpipe.derive.points_too_old", "worker:w1"))
	assert.Equal(t, []string{"5"}, find(lines, "gwpipe.queue.raw", ""))
	assert.Equal(t, []string{"3"}, find(lines, "gwpipe.firehose.status", "code:429"), "labels become tags")
	assert.Equal(t, []string{"0"}, find(lines, "gwpipe.stage.queue_depth", "stage:deliver-logs"))
	assert.Empty(t, find(lines, "gwpipe.stage.queue_depth", "stage:ingest"), "unknown: not sent")
	p99 := find(lines, "gwpipe.deliver_logs.request_latency.p99", "")
	require.Len(t, p99, 1)
	v, err := strconv.ParseFloat(p99[0], 64)
	require.NoError(t, err)
	assert.InDelta(t, 120, v, 1)

	// The second report sends what grew since the first.
	st.RecordsIn.Add(50)
	st.Batches.Add(1)
	require.NoError(t, tel.Report())
	lines = l.waitFor(t, func(lines []string) bool {
		return len(find(lines, "gwpipe.stage.records_in", "stage:deliver-logs")) >= 2 && len(find(lines, "gwpipe.derive.points_too_old", "")) >= 2
	})
	assert.Equal(t, []string{"400", "50"}, find(lines, "gwpipe.stage.records_in", "stage:deliver-logs"))
	assert.Equal(t, []string{"7", "0"}, find(lines, "gwpipe.derive.points_too_old", ""))

	// What a shutdown counts after the last periodic report goes out with
	// Close; a report after Close sends nothing.
	st.HandedBack.Add(4)
	require.NoError(t, tel.Close())
	require.NoError(t, tel.Report())
	lines = l.waitFor(t, func(lines []string) bool {
		return len(find(lines, "gwpipe.stage.handed_back", "stage:deliver-logs")) >= 3
	})
	assert.Equal(t, []string{"6", "0", "4"}, find(lines, "gwpipe.stage.handed_back", "stage:deliver-logs"))
}

func TestStageDeadLettersRejectedPoints(t *testing.T) {
	t.Parallel()
	srv, url := intake(t)
	require.NoError(t, srv.SetFailure(fakeintake400()))
	c := newClient(t, url, nil)
	st := ddmetrics.NewStage(c)
	out := &captureOutput{}
	in := &record.Batch{ID: "m1", Metrics: []record.Metric{count("a", 1), count("b", 2)}}
	require.NoError(t, st.Handle(context.Background(), in, out))
	require.Len(t, out.dead, 1)
	d := out.dead[0]
	assert.Equal(t, "deliver-metrics", d.Stage)
	assert.Contains(t, d.Reason, "400")
	assert.Len(t, d.Metrics, 2)
	assert.Empty(t, d.Records)

	srv.ClearFailure()
	out = &captureOutput{}
	require.NoError(t, st.Handle(context.Background(), &record.Batch{Metrics: []record.Metric{count("c", 3)}}, out))
	assert.Empty(t, out.dead)
	assert.Equal(t, int64(1), srv.Stats().SeriesPointsAccepted)

	// ctx ending is an error: the runtime retries the batch.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.Error(t, st.Handle(ctx, &record.Batch{Metrics: []record.Metric{count("c", 3)}}, out))
}

type captureOutput struct {
	emitted, dead []*record.Batch
}

func (o *captureOutput) Emit(_ context.Context, b *record.Batch) error {
	o.emitted = append(o.emitted, b)
	return nil
}

func (o *captureOutput) DeadLetter(_ context.Context, b *record.Batch) error {
	o.dead = append(o.dead, b)
	return nil
}

func BenchmarkSubmit(b *testing.B) {
	for _, comp := range []string{"gzip", "zstd"} {
		b.Run(comp, func(b *testing.B) {
			_, url := intake(b)
			c := newClient(b, url, func(cfg *ddmetrics.Config) { cfg.Compression = comp })
			// One window of a busy worker: 1,000 series × (count, 4xx,
			// latency of 20 values).
			var ms []record.Metric
			for i := range 1000 {
				tags := []string{"aws_account:123456789012", "region:us-east-1", "apiid:a1b2c3", "apiname:petstore", "stage:prod",
					"method:get", fmt.Sprintf("resource:/r%d/{id}", i), "status_class:4xx", "team:payments"}
				vs := make([]float64, 20)
				for j := range vs {
					vs[j] = float64(j*7 + i%13)
				}
				ms = append(ms, count("apigateway.logs.count", 20, tags...), count("apigateway.logs.4xxerror", 20, tags...),
					dist("apigateway.logs.latency", vs, tags...))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				rej, err := c.Submit(context.Background(), ms)
				if err != nil || len(rej) > 0 {
					b.Fatal(err, len(rej))
				}
			}
			b.ReportMetric(float64(len(ms))*float64(b.N)/b.Elapsed().Seconds(), "points/s")
		})
	}
}

func fakeintake400() fakeintake.Failure { return fakeintake.Failure{Status: 400} }
