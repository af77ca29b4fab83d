package dlq

import (
	"context"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// StageName is the dlq stage's name: it runs in every process, whatever
// stages the process runs.
const StageName = "dlq"

// NewStage returns the dlq stage: it writes dead letters to archive and
// only then counts them, under the stage that dead-lettered them
// (StageStats.Dead). It is the one owner of that count: a dead letter
// published and never written is not reported as kept.
func NewStage(archive stage.Handler, metrics *telemetry.Registry) stage.Handler {
	return archiveStage{archive: archive, metrics: metrics}
}

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
