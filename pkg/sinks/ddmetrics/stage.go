package ddmetrics

import (
	"context"
	"errors"
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
// points in Metrics, the reasons in Reason).
//
// When the submission ends first (ctx ended: the hand-back at the drain
// deadline), Handle fails with stage.Remaining and what the API did not
// accept: the runtime retries, dead-letters, hands back or counts lost
// only those points, never the accepted ones. Series points sent twice
// would be harmless (the same point overwrites itself), distribution values
// would not: Datadog adds them up. So the batch is replaced by what remains
// rather than remembered per batch id, as the Firehose source does per
// request: a broker redelivers to any worker of the fleet, which could not
// know what another worker's intake accepted.
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
	rejected, reasons, err := st.submit(ctx, in.Metrics)
	var dlErr error
	if len(rejected) > 0 {
		reason := "rejected by the Datadog metrics API"
		if len(reasons) > 0 {
			reason += ": " + strings.Join(reasons, "; ")
		}
		dead := &record.Batch{ID: in.ID, Origin: in.Origin, Ack: in.Ack, Stage: StageName, Reason: reason, Metrics: rejected}
		dlErr = out.DeadLetter(ctx, dead)
	}
	if err == nil && dlErr == nil {
		return nil
	}
	undelivered, known := Undelivered(err)
	if err != nil && !known {
		// Nothing known to be accepted: the whole batch remains.
		return fmt.Errorf("deliver metrics: %w", err)
	}
	rest := *in
	rest.Metrics = undelivered
	if dlErr != nil {
		// Not kept anywhere: submitted again, they are rejected again
		// and dead-lettered then.
		rest.Metrics = append(rest.Metrics, rejected...)
	}
	return stage.Remaining(fmt.Errorf("deliver metrics: %d of %d points not delivered: %w", len(rest.Metrics), len(in.Metrics), errors.Join(err, dlErr)), &rest)
}

// submit sends ms and returns the points rejected for good with up to 5
// distinct reasons.
func (st *Stage) submit(ctx context.Context, ms []record.Metric) (rejected []record.Metric, reasons []string, err error) {
	rs, ok := st.s.(rejectionSubmitter)
	if !ok {
		rejected, err = st.s.Submit(ctx, ms)
		return rejected, nil, err
	}
	rej, err := rs.SubmitRejections(ctx, ms)
	for _, r := range rej {
		rejected = append(rejected, r.Metric)
		reasons = appendReason(reasons, r.Reason)
	}
	return rejected, reasons, err
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
