package ddlogs

import (
	"context"
	"fmt"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/dedup"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// StageName is the deliver-logs stage's name, written on its dead letters.
const StageName = "deliver-logs"

// Deliverer sends records to the logs intake (Client implements it).
type Deliverer interface {
	Deliver(ctx context.Context, b *record.Batch) (rejected []record.Record, err error)
}

// StageOptions are the deliver-logs stage's choices.
type StageOptions struct {
	// Summaries delivers request summaries as logs too (they always feed
	// the metrics).
	Summaries bool
	// Seen, when set, remembers the CloudWatch event ids delivered
	// recently, and records already delivered are dropped and counted in
	// Duplicates: a broker redelivers a batch whose worker died before
	// acknowledging it, although its logs may already be at Datadog.
	Seen       *dedup.Window
	Duplicates *telemetry.Counter
	// Filter, when set, scrubs, drops and samples what is delivered
	// (package filter), after the metrics from logs counted it.
	Filter Filter
}

// Filter returns the batch to deliver: b, or a copy (b is not modified).
type Filter interface {
	Apply(b *record.Batch) *record.Batch
}

// NewStage returns the deliver-logs stage: it hands a batch to d and
// returns only when each record was accepted or rejected for good;
// rejected ones are dead-lettered.
func NewStage(d Deliverer, opts StageOptions) stage.Handler {
	if opts.Duplicates == nil {
		opts.Duplicates = &telemetry.Counter{}
	}
	return &deliverStage{d: d, summaries: opts.Summaries, seen: opts.Seen, dupes: opts.Duplicates, logFilter: opts.Filter}
}

type deliverStage struct {
	d         Deliverer
	summaries bool
	seen      *dedup.Window
	dupes     *telemetry.Counter
	logFilter Filter // nil: none
}

func (s *deliverStage) Handle(ctx context.Context, in *record.Batch, out stage.Output) error {
	in = s.filter(in)
	if s.logFilter != nil {
		in = s.logFilter.Apply(in)
	}
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
	dead.Stage = StageName
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
