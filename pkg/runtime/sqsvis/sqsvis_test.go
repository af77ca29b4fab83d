package sqsvis

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/testkit/moto"
)

// recorder answers every call, or fails the calls listed in fail (by order).
type recorder struct {
	calls []*sqs.ChangeMessageVisibilityBatchInput
	fail  map[int]bool
	hang  map[int]bool // calls that answer only when their context ends
}

func (r *recorder) ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	r.calls = append(r.calls, in)
	if r.hang[len(r.calls)-1] {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if r.fail[len(r.calls)-1] {
		return nil, errors.New("throttled")
	}
	out := &sqs.ChangeMessageVisibilityBatchOutput{}
	for _, e := range in.Entries {
		if aws.ToString(e.ReceiptHandle) == "gone" {
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("ReceiptHandleIsInvalid")})
			continue
		}
		out.Successful = append(out.Successful, types.ChangeMessageVisibilityBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

func TestChangeBatchesTenWithIDsUniquePerCall(t *testing.T) {
	r := &recorder{}
	held := make([]Held, 23)
	for i := range held {
		held[i] = Held{Handle: fmt.Sprint("h", i)}
	}
	o := Change(context.Background(), r, "q", held, time.Minute, 0, time.Now())
	assert.Equal(t, 23, o.Changed)
	require.Len(t, r.calls, 3)
	seen := 0
	for _, c := range r.calls {
		ids := map[string]bool{}
		for _, e := range c.Entries {
			ids[aws.ToString(e.Id)] = true
			assert.Equal(t, int32(60), e.VisibilityTimeout)
		}
		assert.Len(t, ids, len(c.Entries), "ids are unique within a call, as SQS requires")
		seen += len(c.Entries)
	}
	assert.Equal(t, 23, seen)
}

func TestRenewalNeverAsksBeyondTwelveHours(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := &recorder{}
	held := []Held{
		{Handle: "young", Received: now.Add(-time.Hour)},
		{Handle: "old", Received: now.Add(-(MaxVisibility - 10*time.Minute))},
		{Handle: "spent", Received: now.Add(-(MaxVisibility - 30*time.Second))},
		{Handle: "unknown"},
	}
	o := Change(context.Background(), r, "q", held, time.Hour, 0, now)
	assert.Equal(t, 3, o.Changed)
	assert.Equal(t, 1, o.Skipped, "a message at the limit is left to come back")
	got := map[string]int32{}
	for _, e := range r.calls[0].Entries {
		got[aws.ToString(e.ReceiptHandle)] = e.VisibilityTimeout
	}
	assert.Equal(t, map[string]int32{"young": 3600, "old": int32((9 * time.Minute) / time.Second), "unknown": 3600}, got)

	// Releasing (visibility 0) is never capped or skipped.
	r = &recorder{}
	o = Change(context.Background(), r, "q", held, 0, 0, now)
	assert.Equal(t, 4, o.Changed)
	assert.Zero(t, o.Skipped)
}

func TestChangeReportsRefusedAndFailedCalls(t *testing.T) {
	r := &recorder{fail: map[int]bool{1: true}}
	held := make([]Held, 15)
	for i := range held {
		held[i] = Held{Handle: fmt.Sprint("h", i)}
	}
	held[0].Handle = "gone"
	o := Change(context.Background(), r, "q", held, time.Minute, 0, time.Now())
	assert.Equal(t, 9, o.Changed)
	require.Len(t, o.Refused, 1)
	assert.Equal(t, "ReceiptHandleIsInvalid", aws.ToString(o.Refused[0].Code))
	assert.Equal(t, 5, o.Failed)
	require.Error(t, o.Err)
	assert.Contains(t, o.Err.Error(), "5 messages in q")
}

// Through the real protocol: a held message stays invisible once renewed,
// and comes back at once when released.
func TestChangeAgainstSQS(t *testing.T) {
	ctx := context.Background()
	c := sqs.NewFromConfig(moto.Config(t))
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("vis"), Attributes: map[string]string{"VisibilityTimeout": "1"}})
	require.NoError(t, err)
	url := aws.ToString(q.QueueUrl)
	_, err = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("m")})
	require.NoError(t, err)
	receive := func(wait int32) []types.Message {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, WaitTimeSeconds: wait})
		require.NoError(t, err)
		return out.Messages
	}
	msgs := receive(5)
	require.Len(t, msgs, 1)
	held := []Held{{Handle: aws.ToString(msgs[0].ReceiptHandle), Received: time.Now()}}

	o := Change(ctx, c, url, held, time.Hour, 0, time.Now())
	require.NoError(t, o.Err)
	assert.Equal(t, 1, o.Changed)
	// Past the queue's own 1 s timeout the renewed message is still held.
	assert.Empty(t, receive(2), "renewed: not visible to another worker")

	o = Change(ctx, c, url, held, 0, 0, time.Now())
	require.NoError(t, o.Err)
	assert.Equal(t, 1, o.Changed)
	assert.Len(t, receive(5), 1, "released: visible again at once")
}

// A call that hangs uses up its own time, not the later calls': they are
// still made, and change their messages.
func TestEachCallHasItsOwnTime(t *testing.T) {
	r := &recorder{hang: map[int]bool{0: true}}
	held := make([]Held, 15)
	for i := range held {
		held[i] = Held{Handle: fmt.Sprint("h", i)}
	}
	o := Change(context.Background(), r, "q", held, time.Minute, 20*time.Millisecond, time.Now())
	assert.Equal(t, 10, o.Failed)
	assert.Equal(t, 5, o.Changed, "the second call had its own time")
	require.ErrorIs(t, o.Err, context.DeadlineExceeded)
}
