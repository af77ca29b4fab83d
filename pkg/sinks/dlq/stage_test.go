package dlq

import (
	"context"
	"errors"
	"testing"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage/stagetest"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// TestStageCountsOnlyWhatTheArchiveWrote: a letter counts as dead under
// the stage that dead-lettered it ("unknown" when unnamed) once written,
// and not at all when the write failed.
func TestStageCountsOnlyWhatTheArchiveWrote(t *testing.T) {
	reg := telemetry.NewRegistry()
	var fail error
	archive := stage.HandlerFunc(func(context.Context, *record.Batch, stage.Output) error { return fail })
	s := NewStage(archive, reg)
	two := &record.Batch{Stage: "decode", Records: make([]record.Record, 2)}
	if err := s.Handle(context.Background(), two, &stagetest.Output{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Handle(context.Background(), &record.Batch{Records: make([]record.Record, 1)}, &stagetest.Output{}); err != nil {
		t.Fatal(err)
	}
	fail = errors.New("disk full")
	if err := s.Handle(context.Background(), two, &stagetest.Output{}); err == nil {
		t.Fatal("a failed write succeeded")
	}
	if n := reg.Stage("decode").Dead.Load(); n != 2 {
		t.Errorf("decode dead = %d, want 2 (the failed write is not counted)", n)
	}
	if n := reg.Stage("unknown").Dead.Load(); n != 1 {
		t.Errorf("unknown dead = %d, want 1", n)
	}
}
