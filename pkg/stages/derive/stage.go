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
		if err := out.Emit(ctx, &record.Batch{ID: in.ID, Origin: in.Origin, Ack: in.Ack, Metrics: in.Metrics}); err != nil {
			return err
		}
	}
	if len(in.Records) == 0 {
		return nil
	}
	return h.d.Handle(ctx, in, out)
}
