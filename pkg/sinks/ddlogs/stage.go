package ddlogs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/claim"
	"github.com/gwpipe/gwpipe/pkg/runtime/dedup"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// StageName is the deliver-logs stage's name, written on its dead letters.
const StageName = "deliver-logs"

// MaxLogAge is how old a log's timestamp may be for the logs intake to keep
// it: Datadog answers 202 to an older one and drops it
// (docs/wire-formats.md#datadog-logs-intake).
const MaxLogAge = 18 * time.Hour

// ReasonTooOld is the reason of the dead letters of logs older than
// MaxLogAge.
const ReasonTooOld = "older than the logs intake's 18-hour limit (Datadog would drop it): replay it with gwpipe replay --old-logs retimestamp"

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

	// Fleet, when set, knows the batches any worker of the fleet
	// delivered (package claim, on the transport's key-value store): a
	// batch is marked once delivered, and the broker redelivering it to
	// another worker — the first died after the intake accepted it and
	// before acknowledging it — finds the mark and delivers nothing,
	// counted in FleetDuplicates. A batch is known by its records' event
	// ids, which the broker carries unchanged. A look-up or mark the store
	// cannot answer is counted in FleetErrors and logged (Logger), and the
	// batch is handled as if this worker were alone.
	Fleet                        DeliveredBatches
	FleetDuplicates, FleetErrors *telemetry.Counter
	Logger                       *slog.Logger

	// MaxAge, when positive (MaxLogAge), is how old a log may be when the
	// stage takes it; an older one is dead-lettered (ReasonTooOld) rather
	// than sent to an intake that would accept and drop it, and counted
	// in TooOld. Now is the clock (nil: time.Now).
	MaxAge time.Duration
	TooOld *telemetry.Counter
	Now    func() time.Time
}

// DeliveredBatches are the batches delivered fleet-wide, by key
// (claim.Batches implements it).
type DeliveredBatches interface {
	Seen(ctx context.Context, key string) (bool, error)
	Mark(ctx context.Context, key string) error
}

// Filter returns the batch to deliver: b, or a copy (b is not modified),
// and count, which adds what it did to its counters once the batch is
// done (filter.Filters implements it).
type Filter interface {
	ApplyUncounted(b *record.Batch) (out *record.Batch, count func())
}

// NewStage returns the deliver-logs stage: it hands a batch to d and
// returns only when each record was accepted or rejected for good;
// rejected ones are dead-lettered.
func NewStage(d Deliverer, opts StageOptions) stage.Handler {
	for _, c := range []**telemetry.Counter{&opts.Duplicates, &opts.FleetDuplicates, &opts.FleetErrors, &opts.TooOld} {
		if *c == nil {
			*c = &telemetry.Counter{}
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &deliverStage{d: d, summaries: opts.Summaries, seen: opts.Seen, dupes: opts.Duplicates, logFilter: opts.Filter,
		fleet: opts.Fleet, fleetDupes: opts.FleetDuplicates, fleetErrors: opts.FleetErrors, log: opts.Logger,
		maxAge: opts.MaxAge, tooOld: opts.TooOld, now: opts.Now}
}

type deliverStage struct {
	d         Deliverer
	summaries bool
	seen      *dedup.Window
	dupes     *telemetry.Counter
	logFilter Filter // nil: none

	fleet                   DeliveredBatches // nil: this worker alone
	fleetDupes, fleetErrors *telemetry.Counter
	log                     *slog.Logger

	maxAge time.Duration // 0: no check
	tooOld *telemetry.Counter
	now    func() time.Time
}

func (s *deliverStage) Handle(ctx context.Context, in *record.Batch, out stage.Output) (err error) {
	key := ""
	if s.fleet != nil {
		key = claim.BatchKey(func(yield func(string) bool) {
			for i := range in.Records {
				if !yield(in.Records[i].EventID) {
					return
				}
			}
		})
	}
	if key != "" {
		seen, err := s.fleet.Seen(ctx, key)
		switch {
		case err != nil:
			s.fleetErrors.Inc()
			s.log.Debug("fleet-wide delivered batches unavailable: delivering as if alone", "error", err)
		case seen:
			n := 0
			for i := range in.Records {
				if in.Records[i].Kind != record.KindSummary {
					n++
				}
			}
			s.fleetDupes.Add(int64(n))
			s.remember(in, nil)
			return nil
		}
	}
	in, dupes := s.filter(in)
	// Counted once the batch is done: a batch that fails comes again and
	// would count its duplicates again.
	defer func() {
		if err == nil {
			s.dupes.Add(int64(dupes))
		}
	}()
	if s.logFilter != nil {
		var count func()
		in, count = s.logFilter.ApplyUncounted(in)
		defer func() {
			if err == nil {
				count()
			}
		}()
	}
	in, old := s.splitTooOld(in)
	if len(old) > 0 {
		// Dead-lettered once the batch's other logs were delivered: a
		// batch that fails comes again and would dead-letter them again.
		defer func() {
			if err != nil {
				return
			}
			dead := in.Derive(0)
			dead.Stage = StageName
			dead.Reason = ReasonTooOld
			dead.Records = old
			if err = out.DeadLetter(ctx, dead); err == nil {
				s.tooOld.Add(int64(len(old)))
			}
		}()
	}
	if in.Len() == 0 {
		return nil
	}
	rejected, err := s.d.Deliver(ctx, in)
	if err != nil {
		return fmt.Errorf("deliver logs: %w", err)
	}
	// Only what the intake accepted was delivered: a rejected record
	// remembered would, when dead-lettering it fails and the batch comes
	// again, be dropped as a duplicate (and counted as one) instead of
	// dead-lettered.
	s.remember(in, rejected)
	if len(rejected) > 0 {
		dead := in.Derive(0)
		dead.Stage = StageName
		dead.Reason = "rejected by the logs intake"
		dead.Records = rejected
		if err := out.DeadLetter(ctx, dead); err != nil {
			return err
		}
	}
	if key != "" {
		if err := s.fleet.Mark(ctx, key); err != nil {
			s.fleetErrors.Inc()
			s.log.Debug("could not mark a delivered batch fleet-wide", "error", err)
		}
	}
	return nil
}

// remember adds the batch's event ids to this worker's window, but for
// those of the records the intake rejected.
func (s *deliverStage) remember(in *record.Batch, rejected []record.Record) {
	if s.seen == nil {
		return
	}
	var not map[string]bool
	if len(rejected) > 0 {
		not = make(map[string]bool, len(rejected))
		for i := range rejected {
			not[rejected[i].EventID] = true
		}
	}
	ids := make([]string, 0, len(in.Records))
	for i := range in.Records {
		if !not[in.Records[i].EventID] {
			ids = append(ids, in.Records[i].EventID)
		}
	}
	s.seen.Add(ids...)
}

// filter returns b, or a copy without the records not to deliver: request
// summaries (unless asked for) and duplicates, and how many duplicates
// (summaries apart) it left out. The batch may be read by other stages at
// the same time: it is not modified.
func (s *deliverStage) filter(b *record.Batch) (*record.Batch, int) {
	var seen []bool // by record; nil without a window
	if s.seen != nil {
		seen = make([]bool, len(b.Records))
		s.seen.SeenEach(seen, func(i int) string { return b.Records[i].EventID })
	}
	drop := func(i int) bool {
		return (!s.summaries && b.Records[i].Kind == record.KindSummary) || seen != nil && seen[i]
	}
	n := 0
	for i := range b.Records {
		if drop(i) {
			n++
		}
	}
	if n == 0 {
		return b, 0
	}
	c := *b
	c.Records = make([]record.Record, 0, len(b.Records)-n)
	dupes := 0
	for i := range b.Records {
		r := &b.Records[i]
		switch {
		case !drop(i):
			c.Records = append(c.Records, *r)
		case r.Kind != record.KindSummary:
			dupes++
		}
	}
	return &c, dupes
}

// splitTooOld returns b, or a copy without the logs older than the stage's
// MaxAge (b is not modified), and those logs. A log without a timestamp is the
// intake's time, never too old.
func (s *deliverStage) splitTooOld(b *record.Batch) (*record.Batch, []record.Record) {
	if s.maxAge <= 0 {
		return b, nil
	}
	limit := s.now().Add(-s.maxAge).UnixMilli()
	old := func(r *record.Record) bool { return r.Timestamp != 0 && r.Timestamp < limit }
	n := 0
	for i := range b.Records {
		if old(&b.Records[i]) {
			n++
		}
	}
	if n == 0 {
		return b, nil
	}
	c := *b
	c.Records = make([]record.Record, 0, len(b.Records)-n)
	out := make([]record.Record, 0, n)
	for i := range b.Records {
		if r := &b.Records[i]; old(r) {
			out = append(out, *r)
		} else {
			c.Records = append(c.Records, *r)
		}
	}
	return &c, out
}
