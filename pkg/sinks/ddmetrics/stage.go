package ddmetrics

import (
	"context"
	"fmt"
	"strings"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
)

// StageName is the deliver-metrics stage's name, written on its dead letters.
const StageName = "deliver-metrics"

// Submitter sends metric points and returns the ones rejected for good
// (Client implements it).
type Submitter interface {
	Submit(ctx context.Context, ms []record.Metric) (rejected []record.Metric, err error)
}

// rejectionSubmitter is the richer form of Submitter that says why.
type rejectionSubmitter interface {
	SubmitRejections(ctx context.Context, ms []record.Metric) ([]Rejection, error)
}

// Stage is the deliver-metrics stage: Handle returns only after every point
// of the batch was accepted by the API or rejected for good; rejected points
// go to the dead-letter topic as a batch (Stage "deliver-metrics", the
// points in Metrics, the reasons in Reason). An error (ctx ended) makes the
// runtime retry the batch: series points are idempotent (the same point
// overwrites itself), distribution values could be counted twice.
type Stage struct {
	s Submitter
}

// NewStage returns the stage around a Submitter (usually a *Client).
func NewStage(s Submitter) *Stage { return &Stage{s: s} }

// Handle implements stage.Handler.
func (st *Stage) Handle(ctx context.Context, in *record.Batch, out stage.Output) error {
	if len(in.Metrics) == 0 {
		return nil
	}
	var (
		rejected []record.Metric
		reasons  []string
	)
	if rs, ok := st.s.(rejectionSubmitter); ok {
		rej, err := rs.SubmitRejections(ctx, in.Metrics)
		if err != nil {
			return fmt.Errorf("deliver metrics: %w", err)
		}
		for _, r := range rej {
			rejected = append(rejected, r.Metric)
			reasons = appendReason(reasons, r.Reason)
		}
	} else {
		rej, err := st.s.Submit(ctx, in.Metrics)
		if err != nil {
			return fmt.Errorf("deliver metrics: %w", err)
		}
		rejected = rej
	}
	if len(rejected) == 0 {
		return nil
	}
	reason := "rejected by the Datadog metrics API"
	if len(reasons) > 0 {
		reason += ": " + strings.Join(reasons, "; ")
	}
	dead := &record.Batch{ID: in.ID, Origin: in.Origin, Ack: in.Ack, Stage: StageName, Reason: reason, Metrics: rejected}
	return out.DeadLetter(ctx, dead)
}

// appendReason keeps up to 5 distinct reasons.
func appendReason(rs []string, r string) []string {
	if len(rs) >= 5 {
		return rs
	}
	for _, x := range rs {
		if x == r {
			return rs
		}
	}
	return append(rs, r)
}
