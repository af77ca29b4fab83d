package top

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exposition is a /metrics page of a worker that has handled n records
// per stage, with lat observations of the handling time in the 5-10 ms
// bucket and one in the 50-100 ms bucket.
func exposition(n, lat int) string {
	var b strings.Builder
	b.WriteString("# TYPE gwpipe_stage_records_in_total counter\n")
	for _, st := range []string{"dlq", "decode", "ingest", "parse"} {
		fmt.Fprintf(&b, "gwpipe_stage_records_in_total{stage=%q} %d\n", st, n)
	}
	b.WriteString("# TYPE gwpipe_stage_records_out_total counter\n")
	for _, st := range []string{"dlq", "decode", "ingest", "parse"} {
		fmt.Fprintf(&b, "gwpipe_stage_records_out_total{stage=%q} %d\n", st, 2*n)
	}
	b.WriteString("# TYPE gwpipe_stage_in_flight gauge\ngwpipe_stage_in_flight{stage=\"decode\"} 3\n")
	b.WriteString("# TYPE gwpipe_stage_queue_depth gauge\ngwpipe_stage_queue_depth{stage=\"decode\"} 7\n")
	b.WriteString("# TYPE gwpipe_stage_errors_total counter\ngwpipe_stage_errors_total{stage=\"parse\"} 2\n")
	b.WriteString("# TYPE gwpipe_stage_dead_lettered_total counter\ngwpipe_stage_dead_lettered_total{stage=\"decode\"} 1\n")
	b.WriteString("# TYPE gwpipe_runtime_handle_latency_seconds histogram\n")
	for _, le := range []struct {
		le string
		n  int
	}{{"0.005", 0}, {"0.01", lat}, {"0.05", lat}, {"0.1", lat + 1}, {"+Inf", lat + 1}} {
		fmt.Fprintf(&b, "gwpipe_runtime_handle_latency_seconds_bucket{stage=\"decode\",le=%q} %d\n", le.le, le.n)
	}
	fmt.Fprintf(&b, "gwpipe_runtime_handle_latency_seconds_sum{stage=\"decode\"} 1\ngwpipe_runtime_handle_latency_seconds_count{stage=\"decode\"} %d\n", lat+1)
	fmt.Fprintf(&b, "# TYPE gwpipe_firehose_status_total counter\ngwpipe_firehose_status_total{code=\"200\"} %d\ngwpipe_firehose_status_total{code=\"503\"} 4\ngwpipe_firehose_status_total{code=\"401\"} 0\n", n/10)
	// Of the 503s, one request admitted and not delivered within
	// ack_timeout, two handed back at shutdown: one refused at the door.
	b.WriteString("# TYPE gwpipe_firehose_requests_timed_out_total counter\ngwpipe_firehose_requests_timed_out_total 1\n")
	b.WriteString("# TYPE gwpipe_firehose_requests_handed_back_total counter\ngwpipe_firehose_requests_handed_back_total 2\n")
	b.WriteString("# TYPE gwpipe_firehose_requests_failed_total counter\ngwpipe_firehose_requests_failed_total 0\n")
	fmt.Fprintf(&b, "# TYPE gwpipe_deliver_logs_logs_accepted_total counter\ngwpipe_deliver_logs_logs_accepted_total %d\n", n)
	fmt.Fprintf(&b, "# TYPE gwpipe_deliver_logs_bytes_accepted_total counter\ngwpipe_deliver_logs_bytes_accepted_total %d\n", 100*n)
	b.WriteString("# TYPE gwpipe_deliver_logs_logs_rejected_total counter\ngwpipe_deliver_logs_logs_rejected_total 5\n")
	b.WriteString("# TYPE gwpipe_deliver_logs_retries_total counter\ngwpipe_deliver_logs_retries_total 6\n")
	b.WriteString("# TYPE gwpipe_filters_dropped_total counter\ngwpipe_filters_dropped_total{rule=\"health\"} 11\ngwpipe_filters_dropped_total{rule=\"exclude_at_match\"} 3\n")
	b.WriteString("# TYPE gwpipe_filters_sampled_out_total counter\ngwpipe_filters_sampled_out_total{rule=\"ok\"} 20\n")
	fmt.Fprintf(&b, "# TYPE gwpipe_enrich_records_tagged_total counter\ngwpipe_enrich_records_tagged_total %d\n", n)
	b.WriteString("# TYPE gwpipe_enrich_records_partial_total counter\ngwpipe_enrich_records_partial_total 9\n")
	fmt.Fprintf(&b, "# TYPE gwpipe_awstags_hits_total counter\ngwpipe_awstags_hits_total %d\n", n)
	fmt.Fprintf(&b, "# TYPE gwpipe_awstags_misses_total counter\ngwpipe_awstags_misses_total %d\n", n/4)
	return b.String()
}

// TestFrameRatesAndP99FromTwoScrapes: rates are the counters' increase
// over the time between two scrapes, the p99 is the histogram's over the
// same interval, and every stage is shown in pipeline order.
func TestFrameRatesAndP99FromTwoScrapes(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := &Poller{Addrs: []string{"w1"}}
	first := p.Next(map[string]Sample{"w1": SampleOf("w1", t0, exposition(1000, 10))})
	require.Len(t, first.Stages, 4)
	assert.True(t, math.IsNaN(first.Stages[0].InRate), "no rate before a second scrape")

	f := p.Next(map[string]Sample{"w1": SampleOf("w1", t0.Add(2*time.Second), exposition(3000, 1000))})
	var names []string
	for _, s := range f.Stages {
		names = append(names, s.Stage)
	}
	assert.Equal(t, []string{"ingest", "decode", "parse", "dlq"}, names, "pipeline order")
	d := f.Stages[1]
	assert.InDelta(t, 1000, d.InRate, 1e-9)
	assert.InDelta(t, 2000, d.OutRate, 1e-9)
	assert.EqualValues(t, 3, d.InFlight)
	assert.EqualValues(t, 7, d.Queue)
	assert.EqualValues(t, 1, d.Dead)
	assert.True(t, math.IsNaN(f.Stages[0].Queue), "a queue depth not exposed is unknown")
	// 990 new observations in 5-10 ms (the slow one is older): the p99
	// (rank 980.1) is in that bucket, 9.95 ms.
	assert.InDelta(t, 0.005+0.005*980.1/990, d.P99, 1e-9)
	assert.True(t, math.IsNaN(f.Stages[0].P99), "no histogram, no p99")

	require.Len(t, f.Sources, 1)
	assert.InDelta(t, 100, f.Sources[0].Rate, 1e-9)
	// A 503 answered after admission (ack_timeout, shutdown) is no refusal.
	assert.Equal(t, map[string]float64{"503": 1}, f.Sources[0].Refused)
	assert.Equal(t, map[string]float64{"timed_out": 1, "handed_back": 2}, f.Sources[0].NotAcked)
	require.Len(t, f.Delivery, 1)
	assert.InDelta(t, 1000, f.Delivery[0].Rate, 1e-9)
	assert.EqualValues(t, 5, f.Delivery[0].Refused)
	assert.EqualValues(t, 6, f.Delivery[0].Retries)
	assert.EqualValues(t, 34, f.Delivery[0].Filtered, "dropped by filters or sampled out, every rule")
	assert.InDelta(t, 100_000, f.Delivery[0].ByteRate, 1e-9)
	require.Len(t, f.Enrich, 1)
	assert.InDelta(t, 0.8, f.Enrich[0].HitRate, 1e-9, "2000 hits of 2500 lookups in the interval")
	assert.EqualValues(t, 9, f.Enrich[0].Partial)

	var plain bytes.Buffer
	require.NoError(t, f.Plain(&plain))
	assert.Contains(t, plain.String(), "stage=decode in=1000/s out=2000/s in_flight=3 queue=7 errors=0 dead=1 broker_dlq=- p99=10.0ms")
	assert.Contains(t, plain.String(), "source=firehose requests=100/s refused=503:1 not_acked=handed_back:2,timed_out:1")
	assert.Contains(t, plain.String(), "deliver=logs accepted=1000/s total=3000 refused=5 filtered=34 retries=6")
	assert.Contains(t, plain.String(), "enrich=tags tag_cache_hits=80.0% partial_tags=9")
}

// TestFrameOfAFleet: several workers give one row per worker and stage,
// and a total per stage whose rates add up and whose p99 is over the
// merged buckets; a worker that does not answer is named, the others
// still shown.
func TestFrameOfAFleet(t *testing.T) {
	t0 := time.Unix(1000, 0)
	addrs := []string{"w1", "w2", "w3"}
	p := &Poller{Addrs: addrs}
	p.Next(map[string]Sample{
		"w1": SampleOf("w1", t0, exposition(0, 0)), "w2": SampleOf("w2", t0, exposition(0, 0)),
		"w3": {Addr: "w3", Taken: t0, Err: errors.New("connection refused")},
	})
	f := p.Next(map[string]Sample{
		"w1": SampleOf("w1", t0.Add(time.Second), exposition(100, 0)), "w2": SampleOf("w2", t0.Add(time.Second), exposition(300, 1000)),
		"w3": {Addr: "w3", Taken: t0.Add(time.Second), Err: errors.New("connection refused")},
	})
	var total *StageRow
	rows := map[string]int{}
	for i, s := range f.Stages {
		rows[s.Worker]++
		if s.Worker == Total && s.Stage == "decode" {
			total = &f.Stages[i]
		}
	}
	assert.Equal(t, map[string]int{"w1": 4, "w2": 4, Total: 4}, rows)
	require.NotNil(t, total)
	assert.InDelta(t, 400, total.InRate, 1e-9)
	assert.EqualValues(t, 6, total.InFlight)
	assert.EqualValues(t, 14, total.Queue)
	// Over the interval w2 handled 1000 batches in 5-10 ms, w1 none.
	assert.InDelta(t, 0.00995, total.P99, 1e-9)

	view := ansi.Strip(f.View("gwpipe top", 0))
	assert.Contains(t, view, "WORKER")
	assert.Contains(t, view, "w3: connection refused")
	var plain bytes.Buffer
	require.NoError(t, f.Plain(&plain))
	assert.Contains(t, plain.String(), "worker=total stage=decode in=400/s")
	assert.Contains(t, plain.String(), `worker=w3 error="connection refused"`)
}

// TestModelRedrawsAndQuits: the model shows each frame it is given and
// asks for the next poll; q quits.
func TestModelRedrawsAndQuits(t *testing.T) {
	t0 := time.Now()
	n := 0
	p := &Poller{Addrs: []string{"w1"}, Scrape: func(context.Context, string) Sample {
		n++
		return SampleOf("w1", t0.Add(time.Duration(n)*time.Second), exposition(1000*n, 10*n))
	}}
	m := NewModel(context.Background(), p, time.Second, "gwpipe top")
	assert.Contains(t, m.Text(), "reading w1")
	cmd := m.Init()
	var model tea.Model = m
	for range 2 {
		msg := cmd()
		model, cmd = model.Update(msg)
		require.NotNil(t, cmd, "a frame schedules the next poll")
		cmd = m.poll // the tick would wait the interval: poll now
	}
	text := ansi.Strip(model.(Model).Text())
	for _, st := range []string{"ingest", "decode", "parse", "dlq"} {
		assert.Regexp(t, `(?m)^ `+st+` +1000/s +2000/s`, text)
	}
	assert.True(t, model.(Model).View().AltScreen)
	_, cmd = model.Update(tea.KeyPressMsg{Code: 'q', Text: "q"})
	require.NotNil(t, cmd)
	assert.IsType(t, tea.QuitMsg{}, cmd())
}

// TestFrameOfABrokerFleet: workers on a broker read the same backlog of a
// stage, so the fleet's queue is one of theirs, not the sum (which
// counted it once per worker); the stage's transport dead-letter queue is
// shown, unknown until the broker answered.
func TestFrameOfABrokerFleet(t *testing.T) {
	t0 := time.Unix(1000, 0)
	page := func(queue, parked int) string {
		return strings.Replace(exposition(0, 0), `gwpipe_stage_queue_depth{stage="decode"} 7`, fmt.Sprintf(`gwpipe_stage_queue_depth{stage="decode"} %d`, queue), 1) +
			fmt.Sprintf("# TYPE gwpipe_transport_shared gauge\ngwpipe_transport_shared 1\n# TYPE gwpipe_transport_dead_letter_backlog gauge\ngwpipe_transport_dead_letter_backlog{stage=\"decode\"} %d\n", parked)
	}
	p := &Poller{Addrs: []string{"w1", "w2"}}
	f := p.Next(map[string]Sample{"w1": SampleOf("w1", t0, page(7, 3)), "w2": SampleOf("w2", t0, page(9, -1))})
	rows := map[string]StageRow{}
	for _, s := range f.Stages {
		if s.Stage == "decode" {
			rows[s.Worker] = s
		}
	}
	require.Len(t, rows, 3)
	assert.EqualValues(t, 9, rows[Total].Queue, "the broker's backlog once, the latest read")
	assert.EqualValues(t, 3, rows["w1"].BrokerDLQ)
	assert.True(t, math.IsNaN(rows["w2"].BrokerDLQ), "-1: the broker has not answered")
	assert.EqualValues(t, 3, rows[Total].BrokerDLQ)
	assert.Contains(t, ansi.Strip(f.View("gwpipe top", 0)), "BROKER DLQ")
	var plain bytes.Buffer
	require.NoError(t, f.Plain(&plain))
	assert.Contains(t, plain.String(), "worker=total stage=decode")
	assert.Regexp(t, `worker=total stage=decode .*queue=9 .*broker_dlq=3 `, plain.String())
}
