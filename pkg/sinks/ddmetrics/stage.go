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
//
// When the dead letter cannot be written, Handle fails with
// stage.Remaining and the dead letter itself (Stage "deliver-metrics", its
// Reason): the runtime retries, dead-letters, hands back or counts lost
// that, and an attempt given such a batch dead-letters it without asking
// the API again, so that a rejected point is sent and counted rejected
// once.
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
	if isLetter(in) {
		// What an earlier attempt had rejected and could not
		// dead-letter: the API refused these points already, and they
		// were counted rejected then.
		if err := out.DeadLetter(ctx, in); err != nil {
			return fmt.Errorf("deliver metrics: %d points rejected by the API not dead-lettered: %w", len(in.Metrics), err)
		}
		return nil
	}
	rejected, reasons, err := st.submit(ctx, in.Metrics)
	var (
		dead  *record.Batch
		dlErr error
	)
	if len(rejected) > 0 {
		reason := "rejected by the Datadog metrics API"
		if len(reasons) > 0 {
			reason += ": " + strings.Join(reasons, "; ")
		}
		dead = &record.Batch{ID: in.ID, Origin: in.Origin, Ack: in.Ack, Stage: StageName, Reason: reason, Metrics: rejected}
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
		if len(undelivered) == 0 {
			// Only the dead letter remains: the next attempt writes it
			// without asking the API again, which would count the
			// points rejected twice (and too old twice).
			return stage.Remaining(fmt.Errorf("deliver metrics: %d points rejected by the API not dead-lettered: %w", len(rejected), dlErr), dead)
		}
		// The submission ended early (a hand-back) and the dead letter
		// failed too: one batch cannot say which points are rejected
		// already, so they go with the undelivered ones and are
		// submitted again by whoever gets the rest.
		rest.Metrics = append(rest.Metrics, rejected...)
	}
	return stage.Remaining(fmt.Errorf("deliver metrics: %d of %d points not delivered: %w", len(rest.Metrics), len(in.Metrics), errors.Join(err, dlErr)), &rest)
}

// isLetter reports whether b is a dead letter of this stage: the points an
// earlier attempt had rejected and could not dead-letter, handed back as
// what remained of its batch (Stage and Reason say so).
func isLetter(b *record.Batch) bool { return b.Stage == StageName && b.Reason != "" }

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
