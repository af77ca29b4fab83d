package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// sqsWorker runs the stage deliver on topic enriched with a visibility
// timeout of a second.
func sqsWorker(t *testing.T, awsCfg aws.Config, prefix string, subscribers int, h Handler) (*Runtime, *SQS) {
	t.Helper()
	tr, err := NewSQS(context.Background(), SQSConfig{AWS: awsCfg, TopicPrefix: prefix, VisibilityTimeout: time.Second, Subscribers: subscribers,
		Consumers: map[string][]string{"enriched": {"deliver"}, "dlq": {"archive"}}}, nil)
	require.NoError(t, err)
	rt, err := New(Config{MaxRetries: 0}, tr, nil, telemetry.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, rt.Add(Stage{Name: "deliver", Input: "enriched", Handler: h}))
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() { _ = rt.Close() })
	return rt, tr
}

// TestSQSKeepsHeldMessagesInvisible: a batch handled for longer than the
// visibility timeout, and the batches received with it that wait behind
// it, are not received by the other worker meanwhile: each is handled
// once.
func TestSQSKeepsHeldMessagesInvisible(t *testing.T) {
	awsCfg := motoAWS(t)
	slow := newSlowIntake("0", 3*time.Second) // three visibility timeouts
	a, _ := sqsWorker(t, awsCfg, "lease-", 1, slow)
	b, _ := sqsWorker(t, awsCfg, "lease-", 1, slow)
	emitBatches(t, a, 4, 5)
	<-slow.done
	// Everything handled, the slow batch included, before the workers stop.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, id := range []string{"0", "1", "2", "3"} {
			_, ok := slow.calls.Load(id)
			assert.True(c, ok, id)
		}
	}, 30*time.Second, 50*time.Millisecond)
	for _, rt := range []*Runtime{a, b} {
		require.NoError(t, rt.Shutdown(context.Background()))
	}
	slow.assertEachOnce(t, "0", "1", "2", "3")
}

// TestSQSStopFinishesHandlersInFlight: stopping a worker lets the batches
// it is handling finish and deletes them from the queue (watermill-aws
// dropped the deletion once its subscription had stopped, and the next
// worker handled them again after the visibility timeout); what it had
// received and not handed over goes back to the queue.
func TestSQSStopFinishesHandlersInFlight(t *testing.T) {
	awsCfg := motoAWS(t)
	started := make(chan string, 100)
	release := make(chan struct{})
	first := newCollector()
	rt, tr := sqsWorker(t, awsCfg, "stop-", 2, HandlerFunc(func(ctx context.Context, in *record.Batch, out Output) error {
		started <- in.ID
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return first.Handle(ctx, in, out)
	}))
	emitBatches(t, rt, 6, 5)
	inFlight := <-started
	stopMidBatch(t, rt, release)
	first.mu.Lock()
	assert.Equal(t, 1, first.ids[inFlight+"-0"], "the batch in flight was finished")
	handled := len(first.ids)
	first.mu.Unlock()

	second := newCollector()
	sqsWorker(t, awsCfg, "stop-", 2, second)
	url, err := tr.sqs.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String(tr.QueueName("deliver", "enriched"))})
	require.NoError(t, err)
	// Empty only once every message was deleted: one whose deletion was
	// dropped comes back to the second worker first.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		out, err := tr.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: url.QueueUrl,
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
		require.NoError(c, err)
		assert.Equal(c, "0", out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
		assert.Equal(c, "0", out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	}, 60*time.Second, 100*time.Millisecond)
	second.mu.Lock()
	defer second.mu.Unlock()
	first.mu.Lock()
	defer first.mu.Unlock()
	for id := range first.ids {
		assert.Zero(t, second.ids[id], "record %s handled again", id)
	}
	assert.Len(t, second.ids, 30-handled, "the next worker gets the rest")
}

// failDeletes makes every DeleteMessage fail, as a throttled or unreachable
// SQS would, after the leases' hook saw the call go out.
func failDeletes(o *sqs.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("failDeletes", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if _, ok := in.Parameters.(*sqs.DeleteMessageInput); ok {
				return middleware.InitializeOutput{}, middleware.Metadata{}, errors.New("injected: delete failed")
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
	})
}

// receiveFour sends four messages ("0" to "3") to a new queue whose
// visibility timeout outlasts the test, and receives them in one receive
// through a worker client whose leases hold them.
func receiveFour(t *testing.T, queue string, opts ...func(*sqs.Options)) (plain *sqs.Client, l *leases, worker *sqs.Client, q *sqs.CreateQueueOutput, got *sqs.ReceiveMessageOutput) {
	t.Helper()
	awsCfg := motoAWS(t)
	ctx := context.Background()
	plain = sqs.NewFromConfig(awsCfg)
	q, err := plain.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(queue), Attributes: map[string]string{"VisibilityTimeout": "60"}})
	require.NoError(t, err)
	for i := range 4 {
		_, err := plain.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(fmt.Sprint(i))})
		require.NoError(t, err)
	}
	l = newLeases(plain, 60*time.Second, watermill.NopLogger{})
	worker = sqs.NewFromConfig(awsCfg, append([]func(*sqs.Options){l.option}, opts...)...)
	got, err = worker.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	require.NoError(t, err)
	require.Len(t, got.Messages, 4, "one receive")
	return plain, l, worker, q, got
}

// TestSQSLeasesEndWhenTheReceiveIsGivenUp: after a failed delete
// watermill-aws hands over nothing more of that receive; the messages it
// gives up become visible at once for another worker (they were renewed,
// and held from every worker, for as long as this one ran), and the ones
// handed over stay held.
func TestSQSLeasesEndWhenTheReceiveIsGivenUp(t *testing.T) {
	ctx := context.Background()
	plain, l, worker, q, got := receiveFour(t, "giveup", failDeletes)
	defer l.close()
	handed := got.Messages[:2]
	l.settle(aws.ToString(handed[1].ReceiptHandle), true) // acknowledged; its delete fails:
	_, err := worker.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: handed[1].ReceiptHandle})
	require.Error(t, err)

	again, err := plain.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	require.NoError(t, err)
	var bodies []string
	for _, m := range again.Messages {
		bodies = append(bodies, aws.ToString(m.Body))
	}
	assert.ElementsMatch(t, []string{aws.ToString(got.Messages[2].Body), aws.ToString(got.Messages[3].Body)}, bodies,
		"the messages given up are visible again; those handed over are not")
	l.mu.Lock()
	defer l.mu.Unlock()
	assert.Len(t, l.held, 1, "only the message handed over and not settled is still renewed")
	assert.Contains(t, l.held, aws.ToString(handed[0].ReceiptHandle))
}

// TestSQSLeasesReleasedWhenTheSubscriptionEnds: what a worker received and
// still holds when its subscription ends (watermill-aws drops the message
// it was handing over when its subscription ends, and the rest of that
// receive with it) becomes visible at once for another worker, not after
// the visibility timeout: a SIGTERMed delivery worker left metric batches
// invisible, and late, behind it (and one more receive towards the
// redrive policy).
func TestSQSLeasesReleasedWhenTheSubscriptionEnds(t *testing.T) {
	ctx := context.Background()
	plain, l, worker, q, got := receiveFour(t, "ended")
	done := got.Messages[0] // handed over, acknowledged and deleted
	l.settle(aws.ToString(done.ReceiptHandle), true)
	_, err := worker.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: done.ReceiptHandle})
	require.NoError(t, err)

	l.close() // the subscription ended with three messages never handed over

	again, err := plain.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	require.NoError(t, err)
	var bodies []string
	for _, m := range again.Messages {
		bodies = append(bodies, aws.ToString(m.Body))
	}
	assert.ElementsMatch(t, []string{"1", "2", "3"}, bodies, "the messages still held are visible again at once")
}

// sentBody signals once a request's body was read whole: sent to the server.
type sentBody struct {
	io.ReadCloser
	once *sync.Once
	sent chan struct{}
}

func (b sentBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.once.Do(func() { close(b.sent) })
	}
	return n, err
}

type signalSent struct {
	rt   http.RoundTripper
	once sync.Once
	sent chan struct{}
}

func (s *signalSent) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body = sentBody{r.Body, &s.once, s.sent}
	}
	return s.rt.RoundTrip(r)
}

// TestSQSReceiveInFlightAtStopHandsItsMessagesBack: a receive waiting on
// SQS (a long poll) when the subscription stops is not cut off: the long
// poll goes on on SQS's side and gives the next message published to
// nobody, invisible to every worker until its visibility timeout ran out
// (a SIGTERMed delivery worker left metric batches in flight behind it:
// late, and one receive nearer the redrive policy). The receive ends, and
// what it brings is made visible again at once.
func TestSQSReceiveInFlightAtStopHandsItsMessagesBack(t *testing.T) {
	awsCfg := motoAWS(t)
	ctx := context.Background()
	plain := sqs.NewFromConfig(awsCfg)
	q, err := plain.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("inflight"), Attributes: map[string]string{"VisibilityTimeout": "60"}})
	require.NoError(t, err)
	l := newLeases(plain, 60*time.Second, watermill.NopLogger{})
	sent := &signalSent{rt: http.DefaultTransport, sent: make(chan struct{})}
	worker := sqs.NewFromConfig(awsCfg, l.option, func(o *sqs.Options) { o.HTTPClient = &http.Client{Transport: sent} })

	recvCtx, stop := context.WithCancel(ctx)
	returned := make(chan error, 1)
	go func() {
		_, err := worker.ReceiveMessage(recvCtx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: int32(receiveWait / time.Second)})
		returned <- err
	}()
	<-sent.sent // the receive waits on SQS
	l.stopReceiving()
	stop() // the subscription stops
	_, err = plain.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("late")})
	require.NoError(t, err)
	<-returned
	l.close()

	again, err := plain.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	require.NoError(t, err)
	require.Len(t, again.Messages, 1, "the message the receive took is visible again at once")
	assert.Equal(t, "late", aws.ToString(again.Messages[0].Body))
}

// A message handed out max_receive_count times without being deleted moves
// to its queue's -dlq, where no worker reads it: the transport tells how
// many wait there, for the stage's transport.dead_letter_backlog.
func TestSQSDeadLetterBacklog(t *testing.T) {
	awsCfg := motoAWS(t)
	tr, err := NewSQS(context.Background(), SQSConfig{AWS: awsCfg, TopicPrefix: "parked-", MaxReceiveCount: 2,
		Consumers: map[string][]string{"raw": {"decode"}}}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	ctx := context.Background()
	n, err := tr.DeadLetterBacklog(ctx, "decode", "raw")
	require.NoError(t, err)
	assert.Zero(t, n)

	msg, err := tr.Codec().Marshal(ctx, &record.Batch{ID: "b1", Records: []record.Record{{EventID: "e", Message: []byte("x")}}})
	require.NoError(t, err)
	require.NoError(t, tr.Publisher().Publish("raw", msg))
	client := sqs.NewFromConfig(awsCfg)
	url, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(tr.QueueName("decode", "raw"))})
	require.NoError(t, err)
	// Received and never deleted, visible again at once: a worker that
	// dies with it, twice; the third receive moves it aside.
	received := 0
	for i := 0; i < 100; i++ {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: url.QueueUrl})
		require.NoError(t, err)
		for _, m := range out.Messages {
			received++
			_, err := client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: url.QueueUrl, ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
			require.NoError(t, err)
		}
		n, err := tr.DeadLetterBacklog(ctx, "decode", "raw")
		require.NoError(t, err)
		if n == 1 {
			break
		}
	}
	n, err = tr.DeadLetterBacklog(ctx, "decode", "raw")
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "moved to the dead-letter queue")
	assert.Equal(t, 2, received, "after max_receive_count receives")
	n, err = tr.Backlog(ctx, "decode", "raw")
	require.NoError(t, err)
	assert.Zero(t, n, "no longer in the stage's queue")
	_, err = tr.DeadLetterBacklog(ctx, "nobody", "raw")
	assert.Error(t, err, "a group that does not exist has no dead-letter queue")
}
