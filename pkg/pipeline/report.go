package pipeline

import (
	"context"
	"fmt"
	"io"
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gwpipe/gwpipe/pkg/redact"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// Status is what /status shows: every figure of the registry
// (telemetry.Status: stages, counters, gauges, latencies; every key
// snake_case), whether the pipeline can deliver, and where dead letters go.
type Status struct {
	telemetry.Status
	Ready         string `json:"ready"`
	DeadLetterDir string `json:"dead_letter_dir"`
	// LastReload is the last configuration reload (SIGHUP): when, its
	// result, the keys applied and those left for a restart.
	LastReload *ReloadReport `json:"last_reload,omitempty"`

	snap telemetry.Snapshot // what Status was rendered from
}

// Status returns a snapshot of every figure.
func (p *Pipeline) Status() Status {
	snap := p.metrics.Snapshot()
	s := Status{Status: snap.Status(), Ready: "ok", DeadLetterDir: redact.URL(p.cfg.DLQ.Location()), LastReload: p.LastReload(), snap: snap}
	if err := p.readiness(); err != nil { // as /readyz: draining included
		s.Ready = err.Error()
	}
	return s
}

// flow is what the console report and the summary show, each figure read
// from the one series that owns it.
type flow struct {
	at              time.Time
	in              int64 // Firehose records taken in (ingest records_in)
	decoded, parsed int64 // events out of decode and of the sources that decode objects; records out of parse
	control         int64 // CloudWatch control messages dropped, by decode and by those sources
	delivered       int64 // logs the intake accepted
	dead            int64 // records the archive wrote, every stage
	deadBy          map[string]int64
	handedBack      int64 // records handed back, every stage
	handedBackBy    map[string]int64
	lost            int64 // records nothing will send again, every stage
	lostBy          map[string]int64
	// Logs the filters kept from Datadog on purpose, by rule: without
	// them the logs parsed and the logs delivered do not add up.
	filtered               bool // filters are configured (their families exist)
	filterDropped, sampled int64
	filterDroppedBy        map[string]int64
	sampledBy              map[string]int64

	// The sources that run (their families exist): the live line and the
	// summary speak only of those. sqsDeleted counts SQS messages deleted
	// (done with, copies included), as sqs.messages_deleted does.
	firehose, sqs bool
	sqsDeleted    int64

	// Firehose requests: acknowledged (200); refused before they were
	// admitted; admitted and answered 503 after ack_timeout (timedOut) or
	// 500 (failed); admitted and handed back at shutdown; retries not sent
	// twice.
	acked, refused, timedOut, failed, handedBackRequests, duplicates int64
}

func (p *Pipeline) flow(s Status) flow {
	snap := s.snap
	nonZero := func(m map[string]int64) map[string]int64 {
		maps.DeleteFunc(m, func(_ string, v int64) bool { return v == 0 })
		return m
	}
	f := flow{
		at:      snap.Taken,
		in:      snap.Value("stage.records_in", StageIngest),
		decoded: snap.Value("stage.records_out", StageDecode),
		control: snap.Value("decode.control_messages") + snap.Value("sqs.object_control_messages"),
		parsed:  snap.Value("stage.records_out", StageParse),
		dead:    snap.Sum("stage.dead_lettered"), deadBy: nonZero(snap.ByLabel("stage.dead_lettered")),
		handedBack: snap.Sum("stage.handed_back"), handedBackBy: nonZero(snap.ByLabel("stage.handed_back")),
		lost: snap.Sum("stage.lost"), lostBy: nonZero(snap.ByLabel("stage.lost")),
		delivered:          snap.Value("deliver_logs.logs_accepted"),
		handedBackRequests: snap.Value("firehose.requests_handed_back"),
		timedOut:           snap.Value("firehose.requests_timed_out"),
		failed:             snap.Value("firehose.requests_failed"),
		duplicates:         snap.Value("firehose.duplicate_requests"),
		filterDropped:      snap.Sum("filters.dropped"), filterDroppedBy: nonZero(snap.ByLabel("filters.dropped")),
		sampled: snap.Sum("filters.sampled_out"), sampledBy: nonZero(snap.ByLabel("filters.sampled_out")),
	}
	_, f.filtered = snap.Family("filters.dropped")
	_, f.firehose = snap.Family("firehose.ack_latency")
	_, f.sqs = snap.Family("sqs.messages_received")
	f.sqsDeleted = snap.Value("sqs.messages_deleted")
	// What a source read from S3 objects enters decoded: it was decoded
	// there, not by the decode stage.
	for _, e := range p.graph.entries {
		if e.enters == topicDecoded {
			f.decoded += snap.Value("stage.records_out", e.name)
		}
	}
	for code, v := range snap.ByLabel("firehose.status") {
		if code == "200" {
			f.acked = v
		} else {
			f.refused += v
		}
	}
	// Refused is what was answered an error before admission: a request
	// admitted and answered 503 (handed back, not delivered within
	// ack_timeout) or 500 (delivery failed) has its own figure.
	// A request handed back after its client had gone was answered
	// nothing.
	f.refused -= f.handedBackRequests - snap.Value("firehose.requests_handed_back_unanswered") + f.timedOut + f.failed
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
// totals at cur. Each source's figures appear only where it runs: an
// SQS-only run showed Firehose records and an ack p99 of zero.
func reportLine(start time.Time, prev, cur flow, s Status) string {
	secs := cur.at.Sub(prev.at).Seconds()
	rate := func(a, b int64) string {
		if secs <= 0 {
			return "0"
		}
		return human(float64(a-b) / secs)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%5.0fs] ", cur.at.Sub(start).Seconds())
	if cur.firehose {
		fmt.Fprintf(&b, "firehose records/s %s | ", rate(cur.in, prev.in))
	}
	if cur.sqs {
		fmt.Fprintf(&b, "sqs messages deleted/s %s | ", rate(cur.sqsDeleted, prev.sqsDeleted))
	}
	fmt.Fprintf(&b, "events/s decoded %s parsed %s delivered %s | dead-lettered %d | in flight %d | ",
		rate(cur.decoded, prev.decoded), rate(cur.parsed, prev.parsed), rate(cur.delivered, prev.delivered),
		cur.dead, s.snap.Value("runtime.in_flight_batches"))
	if cur.firehose {
		fmt.Fprintf(&b, "ack p99 %s | ", p99(s.snap.Quantiles("firehose.ack_latency")))
	}
	if cur.sqs {
		fmt.Fprintf(&b, "sqs message p99 %s | ", p99(s.snap.Quantiles("sqs.message_latency")))
	}
	b.WriteString(s.Ready)
	b.WriteByte('\n')
	return b.String()
}

// Summary writes the totals since start, one figure per labelled line.
func (p *Pipeline) Summary(w io.Writer) {
	s := p.Status()
	f := p.flow(s)
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "  %-25s %s\n", label, fmt.Sprintf(format, args...))
	}
	snap := s.snap
	fmt.Fprintf(&b, "gwpipe summary after %.1fs\n", s.UptimeSeconds)
	// Each source's lines only where it runs: an SQS-only run printed
	// Firehose lines of zeros.
	firehose := f.firehose
	if firehose {
		line("firehose requests", "%d acknowledged, %d refused, %d timed out, %d failed, %d handed back, %d duplicates",
			f.acked, f.refused, f.timedOut, f.failed, f.handedBackRequests, f.duplicates)
		if n := snap.Value("firehose.records_not_resent"); n > 0 {
			// A retry's records an earlier attempt delivered are not taken in
			// again: without this the line would fall short of what Firehose sent.
			line("firehose records in", "%d (and %d of retries not sent again: delivered or dead-lettered by an earlier attempt)", f.in, n)
		} else {
			line("firehose records in", "%d", f.in)
		}
	}
	if f.sqs {
		sqsLines(line, snap)
	}
	line("events decoded", "%d (control messages dropped: %d)", f.decoded, f.control)
	line("events parsed", "%d (with request summaries folded from execution logs)", f.parsed)
	line("logs delivered (2xx)", "%d", f.delivered)
	if f.filtered {
		line("logs filtered", "%d dropped by filters%s, %d sampled out%s (not sent to Datadog; counted in the metrics from logs)",
			f.filterDropped, byStage(f.filterDroppedBy), f.sampled, byStage(f.sampledBy))
	}
	if _, ok := snap.Family("deliver_metrics.series_accepted"); ok {
		line("metric points delivered", "%d series points, %d distribution values", snap.Value("deliver_metrics.series_accepted"), snap.Value("deliver_metrics.values_accepted"))
	}
	line("dead-lettered", "%d written to %s%s", f.dead, s.DeadLetterDir, byStage(f.deadBy))
	line("handed back", "%s", handedBack(f, s))
	if parked := parkedByStage(snap); len(parked) > 0 {
		var n int64
		for _, v := range parked {
			n += v
		}
		line("transport dead letters", "%s in the SQS dead-letter queues%s, last counted: handed out transport.sqs.max_receive_count times, read by no worker, not at Datadog until moved back (aws sqs start-message-move-task)",
			plural(n, "message"), byStage(parked))
	}
	if f.lost > 0 {
		line("lost", "%d metric points and request summaries derived here, undelivered at the end; no sender has them to send again%s", f.lost, byStage(f.lostBy))
	}
	if firehose {
		line("ack latency", "%s", latency(snap.Quantiles("firehose.ack_latency"), "no request acknowledged"))
	}
	if _, ok := snap.Family("sqs.message_latency"); ok {
		line("sqs message latency", "%s", latency(snap.Quantiles("sqs.message_latency"), "no message delivered or dead-lettered"))
	}
	_, _ = io.WriteString(w, b.String())
}

// latency is a latency line's figures; with no sample it says so, where
// quantiles of nothing would read as a latency of 0 ms.
func latency(q telemetry.Quantiles, none string) string {
	if q.Count == 0 {
		return "none (" + none + ")"
	}
	return fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, max %.1f ms", q.P50, q.P99, q.Max)
}

// p99 is the live line's latency: "-" before the first sample.
func p99(q telemetry.Quantiles) string {
	if q.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f ms", q.P99)
}

// sqsLines are the SQS source's: its messages, as the Firehose requests
// line has them, the records it hands the decode stage, and the S3
// objects it reads.
func sqsLines(line func(label, format string, args ...any), snap telemetry.Snapshot) {
	v := snap.Value
	line("sqs messages", "%d deleted (%d with nothing to read), %d failed (%d unrecognised), %d handed back, %d duplicates; %d receives",
		v("sqs.messages_deleted"), v("sqs.messages_skipped"), v("sqs.messages_failed"), v("sqs.messages_unrecognised"),
		v("sqs.messages_handed_back"), v("sqs.duplicate_messages"), v("sqs.messages_received"))
	if n := v("sqs.messages_not_deleted") + v("sqs.deletes_pending"); n > 0 {
		// Their content reached Datadog (or the archive), but SQS gives
		// them out again: without this line the duplicates are a mystery.
		line("sqs not deleted", "%s delivered and not deleted (%d deletes failed, %d still pending at exit): SQS gives them out again, and their content is delivered again",
			plural(n, "message"), v("sqs.messages_not_deleted"), v("sqs.deletes_pending"))
	}
	line("sqs records in", "%d", v("stage.records_out", SourceSQS))
	line("s3 objects read", "%d (%d bytes, %d events), %d unreadable (dead-lettered by name), %d duplicates (not read again)",
		v("sqs.objects_read"), v("sqs.object_bytes"), v("stage.records_out", SourceSQSS3), v("sqs.objects_unreadable"), v("sqs.duplicate_objects"))
}

// parkedByStage is what waits in each stage's transport dead-letter
// queue, where the broker last answered and something waits.
func parkedByStage(snap telemetry.Snapshot) map[string]int64 {
	fam, ok := snap.Family("transport.dead_letter_backlog")
	if !ok {
		return nil
	}
	parked := map[string]int64{}
	for _, se := range fam.Series {
		if se.Value > 0 {
			parked[se.LabelValues[0]] = se.Value
		}
	}
	return parked
}

// handedBack describes what was given back unacknowledged at shutdown, in
// each sender's unit.
func handedBack(f flow, s Status) string {
	var parts []string
	if n := f.handedBackBy[StageIngest]; n > 0 || f.handedBackRequests > 0 {
		part := fmt.Sprintf("%d firehose records in %s (answered 503: Firehose sends them again)", n, plural(f.handedBackRequests, "request"))
		// Firehose acknowledges a request whole: what of it was delivered
		// before the hand-back is sent again by its retry, after the
		// restart that forgets it.
		if d := s.snap.Value("firehose.handed_back_records_delivered"); d > 0 {
			// Counted over the whole request, with what an earlier attempt
			// delivered (not in the records handed back): all of it is sent
			// again.
			part += fmt.Sprintf("; %s of those requests already delivered or dead-lettered: the retry delivers them again", plural(d, "record"))
		}
		parts = append(parts, part)
	}
	if n := s.snap.Value("sqs.messages_handed_back"); n > 0 {
		part := fmt.Sprintf("%s (visible again for redelivery)", plural(n, "SQS message"))
		if stuck := s.snap.Value("sqs.handed_back_not_visible"); stuck > 0 {
			// SQS did not answer the calls that show them again: they
			// come back only after their visibility timeout.
			part = fmt.Sprintf("%s (%d visible again for redelivery, %d not: SQS did not answer in time, they come back when their visibility timeout ends)",
				plural(n, "SQS message"), n-stuck, stuck)
		}
		// A message comes back whole: what of it was delivered is
		// delivered again by the process that takes it.
		if d := s.snap.Value("sqs.handed_back_objects_delivered"); d > 0 {
			part += fmt.Sprintf("; %s of those messages already delivered or dead-lettered: the redelivery delivers them again", plural(d, "S3 object"))
		}
		parts = append(parts, part)
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
