package derive

import (
	"context"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
)

// Name is the stage's name, as `gwpipe run --stages` takes it.
const Name = "derive"

// NewStage returns the derive stage around d: it computes metrics from a
// batch's logs (d.Handle) and forwards the CloudWatch metric points the
// batch carries (metric streams, the poller) to the metrics topic beside
// them. The forwarded batch carries the source's acknowledgement: it
// completes when the metrics API accepted the points.
func NewStage(d *Deriver) stage.Handler { return metricsThrough{d} }

type metricsThrough struct{ d *Deriver }

func (h metricsThrough) Handle(ctx context.Context, in *record.Batch, out stage.Output) error {
	if len(in.Metrics) > 0 {
		// Stage and Reason go along: what remains of an earlier attempt
		// may be deliver-metrics' dead letter (see below).
		err := out.Emit(ctx, &record.Batch{ID: in.ID, Origin: in.Origin, Ack: in.Ack, Metrics: in.Metrics, Stage: in.Stage, Reason: in.Reason})
		if rest, ok := stage.EmitRest(err); ok {
			// The stage downstream, called in memory, delivered part of
			// the points: what remains of the input is the rest of them
			// and the records, not yet counted.
			r := *in
			r.Metrics, r.Stage, r.Reason = rest.Metrics, rest.Stage, rest.Reason
			return stage.Remaining(err, &r)
		}
		if err != nil {
			return err
		}
	}
	if len(in.Records) == 0 {
		return nil
	}
	return h.d.Handle(ctx, in, out)
}
