package pipeline

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gwpipe/gwpipe/pkg/ddlogs"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// Status is what /status shows.
type Status struct {
	telemetry.Snapshot
	Ready           string        `json:"ready"`
	InFlightBatches int64         `json:"in_flight_batches"`
	Logs            *ddlogs.Stats `json:"logs_delivery,omitempty"`
	DeadLetterDir   string        `json:"dead_letter_dir"`
}

// Status returns a snapshot of every counter.
func (p *Pipeline) Status() Status {
	s := Status{Snapshot: p.metrics.Snapshot(), Ready: "ok", InFlightBatches: p.rt.InFlight(), DeadLetterDir: p.archive.Dir()}
	if err := p.Ready(); err != nil {
		s.Ready = err.Error()
	}
	if p.logs != nil {
		st := p.logs.Stats()
		s.Logs = &st
	}
	return s
}

// flow is the handful of figures the console report shows.
type flow struct {
	at                         time.Time
	in, decoded, parsed, dead  int64
	delivered, dropped, failed int64
}

func (p *Pipeline) flow(s Status) flow {
	f := flow{at: time.Now()}
	for _, st := range s.Stages {
		switch st.Name {
		case StageIngest:
			f.in = st.RecordsOut
		case StageDecode:
			f.decoded = st.RecordsOut
			f.dropped += st.Dropped
		case StageParse:
			f.parsed = st.RecordsOut
		}
		f.dead += st.Dead
	}
	if s.Logs != nil {
		f.delivered = int64(s.Logs.LogsAccepted)
	}
	for _, code := range []string{"400", "401", "413", "415", "429", "500", "503"} {
		f.failed += s.Counters["firehose.status."+code]
	}
	return f
}

// Report writes a line every interval until ctx ends: what flowed through
// each stage, what was delivered and dead-lettered, and the p99 time from a
// Firehose request's arrival to its acknowledgement.
func (p *Pipeline) Report(ctx context.Context, w io.Writer, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	prev := p.flow(p.Status())
	start := prev.at
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := p.Status()
		cur := p.flow(s)
		secs := cur.at.Sub(prev.at).Seconds()
		rate := func(a, b int64) string { return human(float64(a-b) / secs) }
		ackP99 := s.Latencies["firehose.ack_latency"].P99
		fmt.Fprintf(w, "[%5.0fs] firehose records/s %s | events/s decoded %s parsed %s delivered %s | dead-lettered %d | in flight %d | ack p99 %.0f ms | %s\n",
			cur.at.Sub(start).Seconds(), rate(cur.in, prev.in), rate(cur.decoded, prev.decoded), rate(cur.parsed, prev.parsed),
			rate(cur.delivered, prev.delivered), cur.dead, s.InFlightBatches, ackP99, s.Ready)
		prev = cur
	}
}

// Summary writes the totals since start.
func (p *Pipeline) Summary(w io.Writer) {
	s := p.Status()
	f := p.flow(s)
	var b strings.Builder
	fmt.Fprintf(&b, "gwpipe summary after %.1fs\n", s.UptimeSeconds)
	fmt.Fprintf(&b, "  firehose records in     %d\n", f.in)
	fmt.Fprintf(&b, "  events decoded          %d (control messages dropped: %d)\n", f.decoded, s.Counters["decode.control_messages"])
	fmt.Fprintf(&b, "  events parsed           %d (with request summaries folded from execution logs)\n", f.parsed)
	fmt.Fprintf(&b, "  logs delivered (2xx)    %d\n", f.delivered)
	if p.metricsC != nil {
		ms := p.metricsC.Stats()
		fmt.Fprintf(&b, "  metric points delivered %d series points, %d distribution values\n", ms.SeriesAccepted, ms.ValuesAccepted)
	}
	fmt.Fprintf(&b, "  dead-lettered           %d (in %s)\n", f.dead, s.DeadLetterDir)
	fmt.Fprintf(&b, "  requests acknowledged   %d, refused %d, duplicates %d\n", s.Counters["firehose.status.200"], f.failed, s.Counters["firehose.duplicate_requests"])
	q := s.Latencies["firehose.ack_latency"]
	fmt.Fprintf(&b, "  ack latency             p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", q.P50, q.P99, q.Max)
	_, _ = io.WriteString(w, b.String())
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}
