package stage

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsqs "github.com/ThreeDotsLabs/watermill-aws/sqs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/gwpipe/gwpipe/pkg/runtime/sqsvis"
)

// receiptKey carries a message's receipt handle in its metadata, from the
// unmarshaler to the subscriber that settles it.
const receiptKey = "_gwpipe_sqs_receipt"

// leases keeps the messages a worker received invisible to the others
// while it holds them: watermill-aws hands the messages of one receive to
// the router one at a time, and a message waiting behind a slow one, or
// handled longer than the visibility timeout, would otherwise become
// visible and be handled by a second worker too. Every held message's
// visibility is extended every third of the timeout, from the receive
// until the router settles it.
type leases struct {
	sqs        *sqs.Client
	visibility time.Duration
	logger     watermill.LoggerAdapter

	// changing orders the visibility changes: a release waits for a
	// renewal in flight, whose snapshot may include the released message,
	// so that the release is the last word and the message is visible at
	// once, not renewed for another timeout.
	changing sync.Mutex

	mu       sync.Mutex
	held     map[string]*lease        // by receipt handle
	deleting map[string]chan struct{} // acknowledged, closed once deleted
	stopped  chan struct{}            // set when the subscription stops
	stop     chan struct{}
	once     sync.Once
	ended    chan struct{}
}

type lease struct {
	queue    string
	handle   string
	received time.Time
	batch    []*lease // the receive it came in, in the order it is handled
	index    int
}

func newLeases(client *sqs.Client, visibility time.Duration, logger watermill.LoggerAdapter) *leases {
	l := &leases{sqs: client, visibility: visibility, logger: logger, held: map[string]*lease{}, deleting: map[string]chan struct{}{},
		stop: make(chan struct{}), ended: make(chan struct{})}
	go l.renew()
	return l
}

// option adds the receive hook to watermill-aws' SQS client.
func (l *leases) option(o *sqs.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("gwpipeLeases", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			callCtx := ctx
			if _, ok := in.Parameters.(*sqs.ReceiveMessageInput); ok {
				if l.receiving() != nil {
					// The subscription stopped: no new message, until
					// watermill-aws' receive loop ends with its context.
					<-ctx.Done()
					return middleware.InitializeOutput{}, middleware.Metadata{}, ctx.Err()
				}
				var stop func()
				callCtx, stop = receiveContext(ctx)
				defer stop()
			}
			out, md, err := next.HandleInitialize(callCtx, in)
			if del, ok := in.Parameters.(*sqs.DeleteMessageInput); ok {
				handle := aws.ToString(del.ReceiptHandle)
				l.deleted(handle)
				if err != nil && !alreadyDeleted(err) {
					// watermill-aws gives up the rest of the receive after
					// a failed delete, without a word to the router.
					l.giveUp(handle)
				}
			}
			if err != nil {
				return out, md, err
			}
			req, ok := in.Parameters.(*sqs.ReceiveMessageInput)
			res, ok2 := out.Result.(*sqs.ReceiveMessageOutput)
			if ok && ok2 && len(res.Messages) > 0 {
				l.hold(aws.ToString(req.QueueUrl), res.Messages)
			}
			return out, md, err
		}), middleware.After)
	})
}

// receiveWait is how long a receive waits on an empty queue (SQS long
// polling), and receiveGrace how long a receive in flight when its
// subscription stops may still run: all of it. A receive cut off may have
// taken messages SQS already counts as received — a long poll goes on on
// SQS's side after its caller left, and gives the next message published
// to nobody — which no worker then sees before their visibility timeout
// ends, one receive nearer the redrive policy. Finished, its messages are
// held, then made visible again at once (releaseAll). So a stop waits up to
// receiveWait for the receives in flight, and a receive waits no longer than
// that.
const (
	receiveWait  = 5 * time.Second
	receiveGrace = receiveWait + 2*time.Second
)

// receiveContext is ctx for a receive, ending receiveGrace after ctx does.
func receiveContext(ctx context.Context) (context.Context, func()) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(receiveGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-rctx.Done():
		}
	})
	return rctx, func() { stop(); cancel() }
}

// receiving is nil while the subscription takes messages.
func (l *leases) receiving() chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stopped
}

func (l *leases) stopReceiving() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped == nil {
		l.stopped = make(chan struct{})
	}
}

// awaitDelete returns a channel closed once watermill-aws deleted the
// message (once acknowledged).
func (l *leases) awaitDelete(handle string) chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan struct{})
	l.deleting[handle] = ch
	return ch
}

func (l *leases) deleted(handle string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ch, ok := l.deleting[handle]; ok {
		close(ch)
		delete(l.deleting, handle)
	}
}

func (l *leases) hold(queue string, msgs []sqstypes.Message) {
	batch := make([]*lease, len(msgs))
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, m := range msgs {
		batch[i] = &lease{queue: queue, handle: aws.ToString(m.ReceiptHandle), received: now, batch: batch, index: i}
		l.held[batch[i].handle] = batch[i]
	}
}

// settle ends the lease of a message the router acknowledged or refused.
// watermill-aws gives up the rest of a receive after a refused message: their
// leases end with it, and they are made visible at once for another worker.
func (l *leases) settle(handle string, acked bool) {
	l.mu.Lock()
	le, ok := l.held[handle]
	delete(l.held, handle)
	var back []*lease
	if ok && !acked {
		back = append(l.after(le), le)
	}
	l.mu.Unlock()
	l.release(back)
}

// giveUp ends the leases of the messages watermill-aws will never hand
// over: those received after handle in its receive, made visible at once for
// another worker (they would otherwise be renewed, and held, for as long as
// this worker runs).
func (l *leases) giveUp(handle string) {
	l.mu.Lock()
	var back []*lease
	// handle itself may be settled already (acknowledged, then its delete
	// failed): its receive is found through the others it came with.
	for _, le := range l.held {
		if i := slices.IndexFunc(le.batch, func(o *lease) bool { return o.handle == handle }); i >= 0 {
			back = l.after(le.batch[i])
			break
		}
	}
	l.mu.Unlock()
	l.release(back)
}

// after takes out of held the leases received after le in its receive.
func (l *leases) after(le *lease) []*lease {
	var back []*lease
	for _, o := range le.batch[le.index+1:] {
		if _, ok := l.held[o.handle]; ok {
			delete(l.held, o.handle)
			back = append(back, o)
		}
	}
	return back
}

// release makes leases' messages visible at once.
func (l *leases) release(ls []*lease) {
	if len(ls) == 0 {
		return
	}
	l.changing.Lock()
	defer l.changing.Unlock()
	l.change(ls, 0)
}

// alreadyDeleted is the error watermill-aws counts as a delete that
// succeeded (it goes on with the receive).
func alreadyDeleted(err error) bool {
	var oe *smithy.GenericAPIError
	return errors.As(err, &oe) && oe.Message == "The specified queue does not contain the message specified."
}

func (l *leases) renew() {
	defer close(l.ended)
	t := time.NewTicker(max(l.visibility/3, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.changing.Lock()
		l.mu.Lock()
		all := make([]*lease, 0, len(l.held))
		for _, le := range l.held {
			all = append(all, le)
		}
		l.mu.Unlock()
		l.change(all, l.visibility)
		l.changing.Unlock()
	}
}

// change sets the visibility of leases.
func (l *leases) change(ls []*lease, visibility time.Duration) {
	byQueue := map[string][]sqsvis.Held{}
	for _, le := range ls {
		byQueue[le.queue] = append(byQueue[le.queue], sqsvis.Held{Handle: le.handle, Received: le.received})
	}
	now := time.Now()
	for queue, held := range byQueue {
		o := sqsvis.Change(context.Background(), l.sqs, queue, held, visibility, max(l.visibility/3, time.Second), now)
		if o.Err != nil {
			l.logger.Error("cannot change the visibility of messages held: another worker may receive them", o.Err, watermill.LogFields{"queue": queue, "messages": o.Failed})
		}
		for _, f := range o.Refused {
			l.logger.Debug("visibility not changed", watermill.LogFields{"queue": queue, "code": aws.ToString(f.Code), "message": aws.ToString(f.Message)})
		}
	}
}

// releaseAll ends every lease still held and makes its message visible at
// once: once the subscription has ended, nothing held is being handled
// (every message handed over was settled), and what watermill-aws received
// but never handed over (it drops the message it was handing over when its
// subscription ends, and the rest of that receive with it) would otherwise
// stay invisible to every worker until its timeout ran out.
func (l *leases) releaseAll() {
	l.mu.Lock()
	all := make([]*lease, 0, len(l.held))
	for h, le := range l.held {
		all = append(all, le)
		delete(l.held, h)
	}
	l.mu.Unlock()
	l.release(all)
}

// close ends every lease, making what is still held visible at once.
func (l *leases) close() {
	l.once.Do(func() { close(l.stop) })
	<-l.ended
	l.releaseAll()
}

// receiptUnmarshaler is watermill-aws' unmarshaler, keeping the receipt
// handle for the lease.
type receiptUnmarshaler struct {
	wsqs.DefaultMarshalerUnmarshaler
}

// Unmarshal never fails (watermill-aws' default does not), so watermill-aws
// never gives up a receive on an unmarshalling error.
func (u receiptUnmarshaler) Unmarshal(m *sqstypes.Message) (*message.Message, error) {
	msg, err := u.DefaultMarshalerUnmarshaler.Unmarshal(m)
	if err != nil {
		return nil, err
	}
	msg.Metadata.Set(receiptKey, aws.ToString(m.ReceiptHandle))
	return msg, nil
}

// leasedSubscriber settles each message's lease when the router is done
// with it.
type leasedSubscriber struct {
	message.Subscriber
	leases *leases
}

func (s *leasedSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	// watermill-aws drops the deletion of a message whose handler ends
	// after its context did: its context outlives the router's stop until
	// every message handed over is settled (deleted once acknowledged).
	innerCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	in, err := s.Subscriber.Subscribe(innerCtx, topic)
	if err != nil {
		cancel()
		return nil, err
	}
	out := make(chan *message.Message)
	var handed sync.WaitGroup
	go func() {
		defer close(out)
		for {
			var m *message.Message
			select {
			case m = <-in:
			case <-ctx.Done():
			}
			if m == nil {
				break
			}
			handle := m.Metadata.Get(receiptKey)
			deleted := s.leases.awaitDelete(handle)
			handed.Add(1)
			settled := func() {
				select {
				case <-m.Acked():
					s.leases.settle(handle, true)
					select {
					case <-deleted:
					case <-time.After(s.leases.visibility):
						s.leases.deleted(handle) // not seen deleted: forget it
					}
				case <-m.Nacked():
					s.leases.settle(handle, false)
					s.leases.deleted(handle) // never will be: forget it
				}
				handed.Done()
			}
			select {
			case out <- m:
				go settled()
			case <-ctx.Done():
				m.Nack()
				settled()
			}
		}
		// Stopped: no more receives; what was received meanwhile is
		// handed back, and the subscription ends once every message
		// handed over is settled.
		s.leases.stopReceiving()
		drained := make(chan struct{})
		go func() {
			handed.Wait()
			cancel()
			close(drained)
		}()
		for m := range in {
			m.Nack()
			s.leases.settle(m.Metadata.Get(receiptKey), false)
		}
		<-drained
		s.leases.releaseAll()
	}()
	return out, nil
}

func (s *leasedSubscriber) Close() error {
	err := s.Subscriber.Close()
	s.leases.close()
	return err
}
