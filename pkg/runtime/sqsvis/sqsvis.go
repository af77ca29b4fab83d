// Package sqsvis changes the visibility of SQS messages a worker holds: the
// one place that knows the batch call's limits, so that the SQS source
// (which streams S3 objects for a message) and the SQS fleet transport
// (which hands messages to stage handlers) keep messages invisible the
// same way.
package sqsvis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// MaxVisibility is SQS's limit on a message's total invisibility since it
// was received: a change that would go beyond it is refused.
const MaxVisibility = 12 * time.Hour

// margin keeps a renewal clear of MaxVisibility despite clock skew between
// this process and SQS, which counts from its own receive time.
const margin = time.Minute

// batchLimit is how many entries one ChangeMessageVisibilityBatch takes.
const batchLimit = 10

// API is the call it makes (*sqs.Client has it).
type API interface {
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// Held is one message a worker holds.
type Held struct {
	Handle string
	// Received is when it was received; zero when unknown (no cap applies).
	Received time.Time
}

// Outcome says what a Change did.
type Outcome struct {
	Changed int
	// Skipped were past the 12-hour limit: SQS would refuse, and they
	// become visible when their current timeout ends.
	Skipped int
	// Refused are entries SQS did not change (typically deleted or
	// released meanwhile).
	Refused []types.BatchResultErrorEntry
	// Failed counts the messages of calls that failed as a whole; Err joins
	// those calls' errors.
	Failed int
	Err    error
}

// Change sets the visibility of held messages of one queue to visibility
// from now, ten per call, each call bounded by perCall (0: by ctx alone),
// so that one slow call does not leave the later ones no time. A renewal
// never asks beyond the 12-hour limit counted from a message's receipt: it
// is shortened to what is left.
func Change(ctx context.Context, c API, queue string, held []Held, visibility, perCall time.Duration, now time.Time) Outcome {
	var o Outcome
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, 0, len(held))
	for _, h := range held {
		v := visibility
		if !h.Received.IsZero() && v > 0 {
			left := MaxVisibility - now.Sub(h.Received) - margin
			if left < time.Second {
				o.Skipped++
				continue
			}
			v = min(v, left)
		}
		entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{
			Id: aws.String(strconv.Itoa(len(entries) % batchLimit)), ReceiptHandle: aws.String(h.Handle),
			VisibilityTimeout: int32(v / time.Second),
		})
	}
	var errs []error
	for len(entries) > 0 {
		part := entries[:min(batchLimit, len(entries))]
		entries = entries[len(part):]
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if perCall > 0 {
			cctx, cancel = context.WithTimeout(ctx, perCall)
		}
		out, err := c.ChangeMessageVisibilityBatch(cctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(queue), Entries: part})
		cancel()
		if err != nil {
			o.Failed += len(part)
			errs = append(errs, fmt.Errorf("sqs change visibility of %d messages in %s: %w", len(part), queue, err))
			continue
		}
		o.Changed += len(out.Successful)
		o.Refused = append(o.Refused, out.Failed...)
	}
	o.Err = errors.Join(errs...)
	return o
}
