package pipeline

import (
	"context"
	"fmt"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/dedup"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// LineParser understands one record in place (package apigw).
type LineParser interface {
	Parse(b *record.Batch, rec *record.Record)
}

// Correlator folds the execution-log lines of one request into a summary
// record (package apigw).
type Correlator interface {
	Observe(rec *record.Record) (record.Record, bool)
	Expire(now int64) []record.Record
	Flush() []record.Record
}

// parseStage runs the parser over every record of a batch. Records are
// never dropped here: what cannot be parsed is marked and delivered. Request
// summaries folded from execution logs ride along in the same batch.
type parseStage struct {
	p LineParser
	c Correlator // nil: no summaries
}

func (s parseStage) Handle(ctx context.Context, in *record.Batch, out stage.Output) error {
	n := len(in.Records)
	for i := 0; i < n; i++ {
		rec := &in.Records[i]
		s.p.Parse(in, rec)
		if s.c != nil && rec.Kind == record.KindExecution {
			if sum, ok := s.c.Observe(rec); ok {
				in.Records = append(in.Records, sum)
			}
		}
	}
	return out.Emit(ctx, in)
}

// emitSummaries publishes summaries of requests that timed out or were open
// at shutdown. They carry no source acknowledgement: their lines were
// acknowledged with their own batches.
func emitSummaries(ctx context.Context, out stage.Output, sums []record.Record) error {
	if len(sums) == 0 {
		return nil
	}
	return out.Emit(ctx, &record.Batch{ID: "summaries", Origin: sums[0].Origin, Records: sums})
}

// LogDeliverer sends records to the logs intake (package ddlogs).
type LogDeliverer interface {
	Deliver(ctx context.Context, b *record.Batch) (rejected []record.Record, err error)
}

// deliverStage hands a batch to the intake client and returns only when each
// record was accepted or rejected for good; rejected ones are dead-lettered.
// Request summaries feed the metrics and are logs only when asked for.
//
// Records whose CloudWatch event id was delivered recently are dropped and
// counted: a broker redelivers a batch whose worker died before
// acknowledging it, although its logs may already be at Datadog.
type deliverStage struct {
	d         LogDeliverer
	summaries bool
	seen      *dedup.Window
	dupes     *telemetry.Counter
}

func (s *deliverStage) Handle(ctx context.Context, in *record.Batch, out stage.Output) error {
	in = s.filter(in)
	if in.Len() == 0 {
		return nil
	}
	rejected, err := s.d.Deliver(ctx, in)
	if err != nil {
		return fmt.Errorf("deliver logs: %w", err)
	}
	if s.seen != nil {
		ids := make([]string, 0, len(in.Records))
		for i := range in.Records {
			ids = append(ids, in.Records[i].EventID)
		}
		s.seen.Add(ids...)
	}
	if len(rejected) == 0 {
		return nil
	}
	dead := in.Derive(0)
	dead.Stage = "deliver-logs"
	dead.Reason = "rejected by the logs intake"
	dead.Records = rejected
	return out.DeadLetter(ctx, dead)
}

// filter returns b, or a copy without the records not to deliver: request
// summaries (unless asked for) and duplicates. The batch may be read by
// other stages at the same time: it is not modified.
func (s *deliverStage) filter(b *record.Batch) *record.Batch {
	drop := func(r *record.Record) bool {
		return (!s.summaries && r.Kind == record.KindSummary) || s.seen.Seen(r.EventID)
	}
	n := 0
	for i := range b.Records {
		if drop(&b.Records[i]) {
			n++
		}
	}
	if n == 0 {
		return b
	}
	c := *b
	c.Records = make([]record.Record, 0, len(b.Records)-n)
	for i := range b.Records {
		r := &b.Records[i]
		switch {
		case !drop(r):
			c.Records = append(c.Records, *r)
		case r.Kind != record.KindSummary:
			s.dupes.Inc()
		}
	}
	return &c
}

// archiveStage is the dlq stage: it writes dead letters to the archive and
// only then counts them, under the stage that dead-lettered them
// (StageStats.Dead). It is the one owner of that count: a dead letter
// published and never written is not reported as kept.
type archiveStage struct {
	archive stage.Handler
	metrics *telemetry.Registry
}

func (d archiveStage) Handle(ctx context.Context, in *record.Batch, out stage.Output) error {
	if err := d.archive.Handle(ctx, in, out); err != nil {
		return err
	}
	name := in.Stage
	if name == "" {
		name = "unknown"
	}
	d.metrics.Stage(name).Dead.Add(int64(in.Len()))
	return nil
}
