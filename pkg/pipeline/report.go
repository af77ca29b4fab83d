package pipeline

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gwpipe/gwpipe/pkg/runtime/membudget"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddlogs"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddmetrics"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// Status is what /status shows; every key is snake_case.
type Status struct {
	telemetry.Snapshot
	Ready           string           `json:"ready"`
	InFlightBatches int64            `json:"in_flight_batches"`
	Memory          membudget.Stats  `json:"memory"`
	Logs            *ddlogs.Stats    `json:"logs_delivery,omitempty"`
	Metrics         *ddmetrics.Stats `json:"metrics_delivery,omitempty"`
	DeadLetterDir   string           `json:"dead_letter_dir"`
}

// Status returns a snapshot of every counter.
func (p *Pipeline) Status() Status {
	s := Status{Snapshot: p.metrics.Snapshot(), Ready: "ok", InFlightBatches: p.rt.InFlight(), Memory: p.memory.Stats(), DeadLetterDir: p.archive.Dir()}
	if err := p.Ready(); err != nil {
		s.Ready = err.Error()
	}
	if p.logs != nil {
		st := p.logs.Stats()
		s.Logs = &st
	}
	if p.metricsC != nil {
		st := p.metricsC.Stats()
		s.Metrics = &st
	}
	return s
}

// flow is what the console report and the summary show, each figure read
// from the one counter that owns it.
type flow struct {
	at              time.Time
	in              int64 // Firehose records taken in (ingest records_in)
	decoded, parsed int64 // events out of decode, records out of parse
	delivered       int64 // logs the intake accepted
	dead            int64 // records the archive wrote, every stage
	deadBy          map[string]int64
	handedBack      int64 // records handed back, every stage
	handedBackBy    map[string]int64
	lost            int64 // records nothing will send again, every stage
	lostBy          map[string]int64

	acked, refused, handedBackRequests, duplicates int64 // Firehose requests
}

func (p *Pipeline) flow(s Status) flow {
	f := flow{at: time.Now(), deadBy: map[string]int64{}, handedBackBy: map[string]int64{}, lostBy: map[string]int64{}}
	for _, st := range s.Stages {
		switch st.Name {
		case StageIngest:
			f.in = st.RecordsIn
		case StageDecode:
			f.decoded = st.RecordsOut
		case StageParse:
			f.parsed = st.RecordsOut
		}
		f.dead += st.Dead
		f.handedBack += st.HandedBack
		f.lost += st.Lost
		if st.Dead > 0 {
			f.deadBy[st.Name] = st.Dead
		}
		if st.HandedBack > 0 {
			f.handedBackBy[st.Name] = st.HandedBack
		}
		if st.Lost > 0 {
			f.lostBy[st.Name] = st.Lost
		}
	}
	if s.Logs != nil {
		f.delivered = int64(s.Logs.LogsAccepted)
	}
	f.handedBackRequests = s.Counters["firehose.requests_handed_back"]
	f.duplicates = s.Counters["firehose.duplicate_requests"]
	for name, v := range s.Counters {
		code, ok := strings.CutPrefix(name, "firehose.status.")
		switch {
		case !ok:
		case code == "200":
			f.acked = v
		default:
			f.refused += v
		}
	}
	// A request answered 503 because its records were handed back was
	// admitted, not refused.
	f.refused -= f.handedBackRequests
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
		_, _ = io.WriteString(w, reportLine(start, prev, cur, s))
		prev = cur
	}
}

// reportLine is one line of the live report: rates between prev and cur,
// totals at cur.
func reportLine(start time.Time, prev, cur flow, s Status) string {
	secs := cur.at.Sub(prev.at).Seconds()
	rate := func(a, b int64) string {
		if secs <= 0 {
			return "0"
		}
		return human(float64(a-b) / secs)
	}
	return fmt.Sprintf("[%5.0fs] firehose records/s %s | events/s decoded %s parsed %s delivered %s | dead-lettered %d | in flight %d | ack p99 %.0f ms | %s\n",
		cur.at.Sub(start).Seconds(), rate(cur.in, prev.in), rate(cur.decoded, prev.decoded), rate(cur.parsed, prev.parsed),
		rate(cur.delivered, prev.delivered), cur.dead, s.InFlightBatches, s.Latencies["firehose.ack_latency"].P99, s.Ready)
}

// Summary writes the totals since start, one figure per labelled line.
func (p *Pipeline) Summary(w io.Writer) {
	s := p.Status()
	f := p.flow(s)
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "  %-25s %s\n", label, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(&b, "gwpipe summary after %.1fs\n", s.UptimeSeconds)
	line("firehose requests", "%d acknowledged, %d refused, %d handed back, %d duplicates", f.acked, f.refused, f.handedBackRequests, f.duplicates)
	line("firehose records in", "%d", f.in)
	line("events decoded", "%d (control messages dropped: %d)", f.decoded, s.Counters["decode.control_messages"])
	line("events parsed", "%d (with request summaries folded from execution logs)", f.parsed)
	line("logs delivered (2xx)", "%d", f.delivered)
	if s.Metrics != nil {
		line("metric points delivered", "%d series points, %d distribution values", s.Metrics.SeriesAccepted, s.Metrics.ValuesAccepted)
	}
	line("dead-lettered", "%d written to %s%s", f.dead, s.DeadLetterDir, byStage(f.deadBy))
	line("handed back", "%s", handedBack(f, s))
	if f.lost > 0 {
		line("lost", "%d metric points and request summaries derived here, undelivered at the end; no sender has them to send again%s", f.lost, byStage(f.lostBy))
	}
	q := s.Latencies["firehose.ack_latency"]
	line("ack latency", "p50 %.1f ms, p99 %.1f ms, max %.1f ms", q.P50, q.P99, q.Max)
	_, _ = io.WriteString(w, b.String())
}

// handedBack describes what was given back unacknowledged at shutdown, in
// each sender's unit.
func handedBack(f flow, s Status) string {
	var parts []string
	if n := f.handedBackBy[StageIngest]; n > 0 || f.handedBackRequests > 0 {
		parts = append(parts, fmt.Sprintf("%d firehose records in %s (answered 503: Firehose sends them again)", n, plural(f.handedBackRequests, "request")))
	}
	if n := s.Counters["sqs.messages_handed_back"]; n > 0 {
		parts = append(parts, fmt.Sprintf("%s (visible again for redelivery)", plural(n, "SQS message")))
	}
	broker := map[string]int64{}
	var onBroker int64
	for name, n := range f.handedBackBy {
		if name != StageIngest {
			broker[name] = n
			onBroker += n
		}
	}
	if onBroker > 0 {
		parts = append(parts, fmt.Sprintf("%d records left on the broker for redelivery%s", onBroker, byStage(broker)))
	}
	if len(parts) == 0 {
		return "0 (everything admitted was delivered or dead-lettered)"
	}
	return strings.Join(parts, "; ")
}

// byStage renders " (stage n, stage n)" in stage name order, or "".
func byStage(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = k + " " + strconv.FormatInt(m[k], 10)
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.FormatInt(n, 10) + " " + what + "s"
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
