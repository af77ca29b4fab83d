// Package sqssource is the SQS source: it long-polls several queues for S3
// event notifications (direct, through SNS, or from EventBridge) and for
// CloudWatch Logs subscription payloads, streams the objects announced
// through package s3obj, and deletes a message only once everything it
// carried was delivered to Datadog or dead-lettered (package ack).
//
// While a message is worked on its visibility is renewed, so a 5 GB object
// is not handed to a second worker half-way. A message that cannot be
// understood, or whose work fails, is not deleted: it comes back after a
// backoff and, after the queue's maxReceiveCount, its redrive policy moves
// it to the queue's dead-letter queue. Each failure is logged with its
// reason and the message's receive count.
package sqssource

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/sync/semaphore"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
	"github.com/gwpipe/gwpipe/pkg/runtime/membudget"
	"github.com/gwpipe/gwpipe/pkg/runtime/recent"
	"github.com/gwpipe/gwpipe/pkg/runtime/sqsvis"
	"github.com/gwpipe/gwpipe/pkg/sources/s3obj"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// API is the part of the SQS client the source uses (*sqs.Client).
type API interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// Emitter is where the source publishes (a stage.Output): Emit blocks while
// the pipeline is saturated, which pauses the polling.
type Emitter interface {
	Emit(ctx context.Context, b *record.Batch) error
	DeadLetter(ctx context.Context, b *record.Batch) error
}

// maxRetryDelay caps the backoff before a failed message is seen again.
const maxRetryDelay = 15 * time.Minute

// Source polls the queues.
type Source struct {
	cfg     Config
	sqs     API
	objects s3obj.Getter
	raw     Emitter
	decoded Emitter
	log     *slog.Logger

	slots  *semaphore.Weighted
	queues []*queue
	memory *membudget.Budget // the process's memory budget; nil: none

	pollCancel context.CancelFunc
	workCtx    context.Context
	workCancel context.CancelFunc
	receivers  sync.WaitGroup
	handlers   sync.WaitGroup
	services   sync.WaitGroup
	stopOnce   sync.Once
	stopErr    error
	// idle is closed once no message is being worked on any more, which
	// ends the visibility extenders.
	idle chan struct{}
	// stopCtx is Stop's context: once set, the calls that give messages
	// back or delete them fit in it too.
	stopMu  sync.Mutex
	stopCtx context.Context
	// calls bounds every call that settles messages: it ends with Stop's
	// context, the calls begun before Stop included (a delete under way
	// when SQS stopped answering held Stop, and the whole shutdown, to
	// its deadline: the call had 30 s of its own).
	calls   context.Context
	endCall context.CancelFunc

	received *telemetry.Counter
	deleted  *telemetry.Counter
	skipped  *telemetry.Counter
	failed   *telemetry.Counter
	handBack *telemetry.Counter
	poison   *telemetry.Counter
	extended *telemetry.Counter
	objRead  *telemetry.Counter
	objBytes *telemetry.Counter
	objDead  *telemetry.Counter
	objCtrl  *telemetry.Counter
	objBad   *telemetry.Counter
	objDups  *telemetry.Counter
	apiErrs  *telemetry.Counter
	dups     *telemetry.Counter
	latency  *telemetry.Histogram
	// Receipts of messages delivered (or copies of delivered ones) waiting
	// for their delete, and those whose delete failed for good: SQS gives
	// them out again, and their content is delivered again.
	deletesPending *telemetry.Gauge
	notDeleted     *telemetry.Counter
	// Objects delivered of messages handed back at shutdown: the message
	// comes back whole to the next process, which reads them again.
	handBackDone *telemetry.Counter
	// handBackStuck counts the messages handed back that SQS could not
	// be told to show again: the summary must not call them visible.
	handBackStuck *telemetry.Counter
}

// New returns a source. raw receives CloudWatch and Firehose payloads for
// the decode stage; decoded receives the events read from S3 objects.
func New(cfg Config, q API, objects s3obj.Getter, raw, decoded Emitter, log *slog.Logger, metrics *telemetry.Registry) (*Source, error) {
	cfg.setDefaults()
	if len(cfg.QueueURLs) == 0 {
		return nil, errors.New("sqs source: no queue URLs")
	}
	if log == nil {
		log = slog.Default()
	}
	if metrics == nil {
		metrics = telemetry.NewRegistry()
	}
	calls, endCalls := context.WithCancel(context.Background())
	return &Source{
		cfg: cfg, sqs: q, objects: objects, raw: raw, decoded: decoded, log: log,
		calls: calls, endCall: endCalls,
		slots:          semaphore.NewWeighted(int64(cfg.MaxConcurrentMessages)),
		received:       metrics.Counter("sqs.messages_received", "SQS messages received (a redelivered message again)."),
		deleted:        metrics.Counter("sqs.messages_deleted", "SQS messages deleted: their content delivered or dead-lettered."),
		skipped:        metrics.Counter("sqs.messages_skipped", "SQS messages that announce nothing to read (S3 test events), deleted."),
		failed:         metrics.Counter("sqs.messages_failed", "SQS messages whose content could not be delivered: left to become visible again (counted once per message, however often it comes back)."),
		handBack:       metrics.Counter("sqs.messages_handed_back", "SQS messages made visible again at shutdown, unfinished."),
		poison:         metrics.Counter("sqs.messages_unrecognised", "SQS messages that are neither data nor an S3 notification: not deleted, left to the redrive policy (counted once per message)."),
		extended:       metrics.Counter("sqs.visibility_extensions", "Visibility timeouts extended for messages still being worked on."),
		objRead:        metrics.Counter("sqs.objects_read", "S3 objects read for the notifications received."),
		objBytes:       metrics.Counter("sqs.object_bytes", "Bytes of those S3 objects, as stored."),
		objDead:        metrics.Counter("sqs.object_dead_letters", "Records of those S3 objects returned as dead letters."),
		objCtrl:        metrics.Counter("sqs.object_control_messages", "CloudWatch CONTROL_MESSAGE documents in those S3 objects, dropped."),
		objBad:         metrics.Counter("sqs.objects_unreadable", "S3 objects announced that S3 will not give (no such key, bucket or version; access denied): dead-lettered by name, the rest of the message delivered."),
		objDups:        metrics.Counter("sqs.duplicate_objects", "S3 objects announced again by a copy of their S3 event (another SQS message) while read or recently delivered: not read twice."),
		apiErrs:        metrics.Counter("sqs.api_errors", "SQS and S3 calls that failed."),
		dups:           metrics.Counter("sqs.duplicate_messages", "Copies of SQS messages in flight or delivered recently, not processed twice."),
		latency:        metrics.Histogram("sqs.message_latency", "Time from receiving an SQS message to its content being delivered or dead-lettered."),
		deletesPending: metrics.Gauge("sqs.deletes_pending", "SQS messages delivered (or dead-lettered) whose delete is queued or under way; at exit, those left are delivered again when SQS gives them out again."),
		handBackStuck:  metrics.Counter("sqs.handed_back_not_visible", "SQS messages handed back at shutdown that could not be made visible again (SQS did not answer in time): they come back only when their visibility timeout ends."),
		handBackDone:   metrics.Counter("sqs.handed_back_objects_delivered", "S3 objects delivered (or dead-lettered) of SQS messages handed back at shutdown: the message comes back whole, and the process that takes it delivers them again."),
		notDeleted:     metrics.Counter("sqs.messages_not_deleted", "SQS messages delivered (or dead-lettered) whose delete failed for good (SQS errors, the receipt handle expired, the shutdown deadline): SQS gives them out again and their content is delivered again."),
	}, nil
}

// WithMemory makes the source count what it holds in the process's memory
// budget: a message's payload waits for room below the budget's
// high-water mark before it is published, and the events read from an S3
// object are held like decode's output until they are delivered.
func (s *Source) WithMemory(b *membudget.Budget) *Source {
	s.memory = b
	return s
}

// Name implements pipeline.Source.
func (s *Source) Name() string { return "sqs" }

// queue is one polled queue with its deleter and visibility extender.
type queue struct {
	url, arn, region string

	mu       sync.Mutex
	inflight map[string]*flight       // by receipt handle: what the extender renews
	active   map[string]*work         // by message id
	recent   *recent.Memory[struct{}] // delivered message ids
	// retry holds, by message id, what became of a message released to
	// come back: which of its objects were delivered, so that a
	// redelivery reads only the others.
	retry *recent.Memory[*progress]
	// objects are the S3 events whose object was delivered recently,
	// objFlight those whose object is being read (Event keys).
	objects   *recent.Memory[struct{}]
	objFlight map[string]*objClaim
	deletes   chan string // receipt handles
}

type flight struct {
	id       string
	received time.Time
}

// Start resolves every queue (failing fast on a wrong URL or missing
// permission) and starts polling. Polling stops when ctx ends or at Stop;
// work already received continues until Stop.
func (s *Source) Start(ctx context.Context) error {
	for _, u := range s.cfg.QueueURLs {
		out, err := s.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(u), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
		})
		if err != nil {
			return fmt.Errorf("sqs queue %s: %w", u, err)
		}
		q := &queue{
			url: u, arn: out.Attributes[string(types.QueueAttributeNameQueueArn)],
			inflight: map[string]*flight{}, active: map[string]*work{},
			recent:  recent.New[struct{}](recentTTL(s.cfg.VisibilityTimeout), maxRecent),
			retry:   recent.New[*progress](retryTTL, maxRecent),
			objects: recent.New[struct{}](objectTTL, maxRecent), objFlight: map[string]*objClaim{},
			deletes: make(chan string, 1024),
		}
		// arn:aws:sqs:region:account:name
		if parts := strings.SplitN(q.arn, ":", 6); len(parts) == 6 {
			q.region = parts[3]
		}
		if q.region == "" {
			q.region = s.cfg.DefaultRegion
		}
		s.queues = append(s.queues, q)
	}
	s.idle = make(chan struct{})
	pollCtx, pollCancel := context.WithCancel(ctx)
	s.pollCancel = pollCancel
	s.workCtx, s.workCancel = context.WithCancel(context.WithoutCancel(ctx))

	// Enough receivers per queue to keep every slot busy with 10-message
	// receives, at least one each.
	per := max(1, min(8, s.cfg.MaxConcurrentMessages/10/len(s.queues)))
	for _, q := range s.queues {
		s.services.Add(2)
		go s.deleter(q)
		go s.extender(q)
		for range per {
			s.receivers.Add(1)
			go s.receive(pollCtx, q)
		}
	}
	s.log.Info("sqs source polling", "queues", len(s.queues), "receivers_per_queue", per,
		"max_concurrent_messages", s.cfg.MaxConcurrentMessages, "visibility_timeout", s.cfg.VisibilityTimeout)
	return nil
}

// Stop stops polling and waits, within ctx, for the messages being worked
// on: those delivered are deleted; those that are not when ctx ends are
// made visible again for another worker. A receive in flight is let
// finish (up to the wait time), and what it brings is made visible again
// at once.
func (s *Source) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		if s.pollCancel == nil {
			return // never started
		}
		s.stopMu.Lock()
		s.stopCtx = ctx
		s.stopMu.Unlock()
		context.AfterFunc(ctx, s.endCall)
		s.pollCancel()
		s.receivers.Wait()
		done := make(chan struct{})
		go func() { s.handlers.Wait(); close(done) }()
		// The work still under way is given up before ctx ends, by its
		// last fifth (a second at most): making those messages visible
		// again takes a call each, which ctx must still have time for.
		// Given up when ctx ended, every such call failed at once, and the
		// messages the summary counted handed back (visible again) came
		// back only after their visibility timeout.
		work := ctx
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			work, cancel = context.WithDeadline(ctx, dl.Add(-min(time.Until(dl)/5, time.Second)))
			defer cancel()
		}
		select {
		case <-done:
		case <-work.Done():
			s.stopErr = fmt.Errorf("sqs source: messages still being worked on at shutdown (they will be redelivered): %w", work.Err())
			s.workCancel()
			<-done
		}
		close(s.idle)
		for _, q := range s.queues {
			close(q.deletes)
		}
		s.services.Wait()
		s.workCancel()
	})
	return s.stopErr
}

// Settled is closed, once Stop was called, when no message is being worked
// on any more: everything the source admitted was delivered (or
// dead-lettered) or given back. Stop may still be deleting the delivered
// ones; those deletes concern nothing the stages hold, so a drain need
// not wait for them. Nil before Start.
func (s *Source) Settled() <-chan struct{} { return s.idle }

// receive long-polls one queue while there is room for more messages.
func (s *Source) receive(ctx context.Context, q *queue) {
	defer s.receivers.Done()
	pace := receiveBackoff.Start()
	for {
		if err := s.slots.Acquire(ctx, 1); err != nil {
			return
		}
		n := int64(1)
		for n < 10 && s.slots.TryAcquire(1) {
			n++
		}
		rctx, done := s.receiveContext(ctx, time.Now())
		out, err := s.sqs.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(q.url), MaxNumberOfMessages: int32(n),
			WaitTimeSeconds:   int32(s.cfg.WaitTime / time.Second),
			VisibilityTimeout: int32(s.cfg.VisibilityTimeout / time.Second),
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{
				types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameSentTimestamp,
			},
		})
		done()
		if err != nil {
			s.slots.Release(n)
			if ctx.Err() != nil {
				return
			}
			s.apiErrs.Inc()
			d := pace.Next()
			s.log.Warn("sqs receive failed; retrying", "queue", q.url, "error", err, "retry_in", d)
			if pace.Sleep(ctx, d) != nil {
				return
			}
			continue
		}
		pace.Reset()
		s.slots.Release(n - int64(len(out.Messages)))
		stopping := ctx.Err() != nil
		for _, m := range out.Messages {
			s.received.Inc()
			w, dup := q.admit(m)
			switch {
			case dup == dupInFlight:
				// A second copy of a message being worked on: its receipt
				// handle is kept alive and settled with the first copy.
				s.dups.Inc()
				s.slots.Release(1)
			case dup == dupRecent:
				// A copy of a message already delivered and deleted.
				s.dups.Inc()
				s.slots.Release(1)
				s.deletesPending.Inc()
				q.deletes <- aws.ToString(m.ReceiptHandle)
			case stopping:
				// The receive in flight when polling stopped brought it:
				// made visible again at once, for another worker, rather
				// than started now.
				s.handBack.Inc()
				s.handBackStuck.Add(s.release(q, q.settle(w, false), 0, s.log.With("queue", q.url, "message_id", aws.ToString(m.MessageId))))
				s.slots.Release(1)
			default:
				s.handlers.Add(1)
				go s.handle(q, m, w)
			}
		}
	}
}

// receiveMargin is how long past its long-polling wait a receive may take
// to answer (the network, SQS itself).
const receiveMargin = 2 * time.Second

// receiveContext is the context of a receive begun at start. When polling
// stops (ctx ends) the receive goes on until its long poll is over — the
// wait time and receiveMargin after start — or until Stop's context ends:
// a receive cut short goes on on SQS's side, and the messages it takes
// then reach no one, invisible to every worker for the visibility timeout
// and one receive nearer the redrive policy. Finished, its messages are
// made visible again at once (see receive).
func (s *Source) receiveContext(ctx context.Context, start time.Time) (context.Context, func()) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		var stopping <-chan struct{}
		s.stopMu.Lock()
		if s.stopCtx != nil {
			stopping = s.stopCtx.Done()
		}
		s.stopMu.Unlock()
		t := time.NewTimer(time.Until(start.Add(s.cfg.WaitTime + receiveMargin)))
		defer t.Stop()
		select {
		case <-t.C:
		case <-stopping:
		case <-rctx.Done():
		}
		cancel()
	})
	return rctx, func() { stop(); cancel() }
}

// work is one message being worked on, with the receipt handles of every
// copy of it received meanwhile.
type work struct {
	id      string
	handles []string
	// done is what earlier receives of the message delivered; retried
	// says one of them failed (the message was counted failed then).
	done    *progress
	retried bool
}

// progress is the indices of a message's objects delivered or
// dead-lettered, completed as their acknowledgements arrive.
type progress struct {
	mu   sync.Mutex
	done map[int]bool
}

func (p *progress) add(i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		p.done = map[int]bool{}
	}
	p.done[i] = true
}

func (p *progress) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.done)
}

func (p *progress) has(i int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done[i]
}

type dupKind uint8

const (
	dupNone     dupKind = iota
	dupInFlight         // the message is being worked on
	dupRecent           // the message was delivered a short while ago
)

// admit registers a received message. SQS standard queues deliver at least
// once: the same message may come twice, even to two concurrent receives.
// Working on both copies would deliver every event twice, so a copy joins
// the work already under way, and a copy of a message delivered recently
// is deleted at once.
func (q *queue) admit(m types.Message) (*work, dupKind) {
	id, h := aws.ToString(m.MessageId), aws.ToString(m.ReceiptHandle)
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.recent.Get(id, now); ok {
		return nil, dupRecent
	}
	q.inflight[h] = &flight{id: id, received: now}
	if w, ok := q.active[id]; ok {
		w.handles = append(w.handles, h)
		return w, dupInFlight
	}
	w := &work{id: id, handles: []string{h}, done: &progress{}}
	if p, ok := q.retry.Get(id, now); ok {
		w.done, w.retried = p, true
	}
	q.active[id] = w
	return w, dupNone
}

// settle ends a message's work and returns the receipt handles of all its
// copies. A delivered message is remembered for a while, to recognise
// late copies.
func (q *queue) settle(w *work, delivered bool) []string {
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.active, w.id)
	for _, h := range w.handles {
		delete(q.inflight, h)
	}
	if delivered {
		q.recent.Put(w.id, struct{}{}, now)
		q.retry.Forget(w.id)
	} else {
		q.retry.Put(w.id, w.done, now)
	}
	return w.handles
}

// maxRecent bounds each memory of a queue: message ids, S3 events.
const maxRecent = 100_000

// retryTTL is how long what a released message delivered is remembered:
// it comes back within its retry delay (at most maxRetryDelay) unless
// another worker took it, and a day is far beyond any redrive policy's
// receive count at that pace.
const retryTTL = 24 * time.Hour

// objectTTL is how long a delivered object's S3 event is remembered: S3
// sends a copy of an event within moments as a rule, later only rarely.
const objectTTL = time.Hour

// recentTTL is how long a delivered message's id is remembered: a copy
// arrives within a visibility timeout or two of the original.
func recentTTL(vt time.Duration) time.Duration { return max(2*vt, 5*time.Minute) }

// handle works on one message and settles it: deleted once everything it
// carried is delivered or dead-lettered, otherwise left to come back.
func (s *Source) handle(q *queue, m types.Message, w *work) {
	defer s.handlers.Done()
	defer s.slots.Release(1)
	start := time.Now()
	recv, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	log := s.log.With("queue", q.url, "message_id", aws.ToString(m.MessageId), "receive_count", recv)

	err := s.process(s.workCtx, q, m, w, log)
	handles := q.settle(w, err == nil)
	switch {
	case err == nil:
		s.latency.Observe(time.Since(start))
		s.deletesPending.Add(int64(len(handles)))
		for _, h := range handles {
			q.deletes <- h
		}
	case s.workCtx.Err() != nil || errors.Is(err, ack.ErrHandedBack):
		// Shutting down before it was delivered: another worker can take
		// it at once. What of it was delivered is remembered only by this
		// process: the next one delivers it again.
		s.handBack.Inc()
		s.handBackDone.Add(int64(w.done.count()))
		s.handBackStuck.Add(s.release(q, handles, 0, log))
	default:
		// Counted once per message: it comes back until its redrive
		// policy takes it, and each receive is not another message.
		first := !w.retried
		if first {
			s.failed.Inc()
		}
		delay := min(s.cfg.VisibilityTimeout<<min(max(recv-1, 0), 20), maxRetryDelay)
		if errors.Is(err, ErrUnrecognised) {
			if first {
				s.poison.Inc()
			}
			log.Error("poison message: not deleted, left to the queue's redrive policy", "reason", err, "retry_in", delay)
		} else {
			log.Warn("message not fully delivered: not deleted; it will be retried, then redriven by the queue's policy", "reason", err, "retry_in", delay)
		}
		s.release(q, handles, delay, log)
	}
}

// release makes a message visible again after delay. It returns 1 when
// it could not (no copy of the message was released), 0 otherwise.
func (s *Source) release(q *queue, handles []string, delay time.Duration, log *slog.Logger) int64 {
	ctx, cancel := s.apiContext(10 * time.Second)
	defer cancel()
	failed := 0
	for _, h := range handles {
		_, err := s.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(q.url), ReceiptHandle: aws.String(h), VisibilityTimeout: int32(delay / time.Second),
		})
		if err != nil {
			s.apiErrs.Inc()
			log.Warn("could not change the message's visibility; it returns when its visibility timeout ends", "error", err)
			failed++
		}
	}
	if len(handles) > 0 && failed == len(handles) {
		return 1
	}
	return 0
}

// process ingests what a message carries and waits until it was delivered.
func (s *Source) process(ctx context.Context, q *queue, m types.Message, w *work, log *slog.Logger) error {
	body, err := ParseBody([]byte(aws.ToString(m.Body)))
	if err != nil {
		return err
	}
	if body.Kind == KindSkip {
		s.skipped.Inc()
		log.Info("message skipped: nothing to ingest", "reason", body.Skip)
		return nil
	}
	if body.Skip != "" {
		log.Info("part of the notification ignored", "reason", body.Skip)
	}
	tr := ack.New()
	var failure error
	switch body.Kind {
	case KindS3:
		failure = s.readObjects(ctx, q, w, body.Objects, tr, log)
	default:
		failure = s.emitRaw(ctx, q, m, body, tr)
	}
	if failure != nil {
		tr.Fail(failure)
	} else {
		tr.Done()
	}
	// Even after a failure, wait for what was published: releasing the
	// message while its first batches are in flight would only make a
	// second worker send them again.
	if err := tr.Wait(ctx); err != nil {
		return err
	}
	return nil
}

// errPublish marks a failure to hand what was read to the pipeline (it is
// shutting down): reading the message's other objects would fail alike.
var errPublish = errors.New("publish")

// readObjects reads a notification's objects, each on its own: one that
// fails does not stop the others, and each is remembered as delivered
// (for the message, and by its S3 event for the queue) once its own
// acknowledgement completed, so that a receive of the message again reads
// only what failed, and a copy of the event in another message nothing.
// An object S3 will never give (Permanent) is dead-lettered by name: the
// message is deleted all the same.
func (s *Source) readObjects(ctx context.Context, q *queue, w *work, refs []ObjectRef, tr *ack.Tracker, log *slog.Logger) error {
	var failures []error
	for i, ref := range refs {
		name := objectName(ref)
		if ref.Unreadable != "" {
			if w.done.has(i) {
				continue
			}
			if err := s.deadRecord(ctx, i, ref, w, tr, log); err != nil {
				failures = append(failures, err)
				break
			}
			continue
		}
		if reason, skip := s3obj.Skip(ref.Key, ref.Size); skip {
			log.Info("object skipped", "object", name, "reason", reason)
			continue
		}
		if w.done.has(i) {
			log.Info("object skipped: delivered at an earlier receive of this message", "object", name)
			continue
		}
		claim, dup, err := q.claimObject(ctx, ref.Event())
		if err != nil {
			failures = append(failures, err)
			break
		}
		if dup {
			s.objDups.Inc()
			w.done.add(i)
			log.Info("object skipped: a copy of an S3 event whose object was delivered (S3 sends notifications at least once)",
				"object", name, "sequencer", ref.Sequencer, "etag", ref.ETag)
			continue
		}
		var dead atomic.Bool // dead-lettered by name: counted once the archive wrote it
		ot := ack.Child(tr, func(err error) {
			ok := err == nil
			if ok {
				w.done.add(i)
				if dead.Load() {
					s.objBad.Inc()
				}
			}
			q.settleObject(claim, ok)
		})
		err = s.readObject(ctx, ref, ot, log)
		if err != nil && s3obj.Permanent(err) && ctx.Err() == nil {
			if err = s.deadObject(ctx, ref, err, ot, log); err == nil {
				dead.Store(true)
			}
		}
		if err == nil {
			ot.Done()
			continue
		}
		ot.Fail(err)
		failures = append(failures, err)
		if ctx.Err() != nil || errors.Is(err, errPublish) {
			break
		}
	}
	return errors.Join(failures...)
}

// deadObject dead-letters an object S3 will not give, by name and with
// S3's answer: the object stays where it is (a replay of its key reads
// it, should it become readable).
func (s *Source) deadObject(ctx context.Context, ref ObjectRef, cause error, ot *ack.Tracker, log *slog.Logger) error {
	name := objectName(ref)
	b := s3obj.Unreadable(s.object(ref), fmt.Sprintf("object %s cannot be read: %v; not retried: S3 gives the same answer every time", name, cause))
	b.Ack = ot
	if err := s.decoded.DeadLetter(ctx, b); err != nil {
		return fmt.Errorf("%w: dead letter of %s: %w", errPublish, name, err)
	}
	log.Warn("object cannot be read: dead-lettered by name, the rest of the message delivered", "object", name, "reason", cause)
	return nil
}

// deadRecord dead-letters a notification's record that names no object
// to read (ObjectRef.Unreadable), beside others that do: the message is
// deleted once they are delivered, not left to the redrive policy with
// them unread.
func (s *Source) deadRecord(ctx context.Context, i int, ref ObjectRef, w *work, tr *ack.Tracker, log *slog.Logger) error {
	// Counted by the archive, as the stage's dead letters are.
	ot := ack.Child(tr, func(err error) {
		if err == nil {
			w.done.add(i)
		}
	})
	b := s3obj.Unreadable(s.object(ref), fmt.Sprintf("S3 notification: %s: no object to read; the notification's other objects were read", ref.Unreadable))
	b.Ack = ot
	if err := s.decoded.DeadLetter(ctx, b); err != nil {
		err = fmt.Errorf("%w: dead letter of %s: %w", errPublish, ref.Unreadable, err)
		ot.Fail(err)
		return err
	}
	ot.Done()
	log.Warn("notification record names no object to read: dead-lettered, the rest of the message delivered", "reason", ref.Unreadable)
	return nil
}

// objectName is an object's URL, with the version the notification named.
func objectName(ref ObjectRef) string {
	if ref.Version != "" {
		return "s3://" + ref.Bucket + "/" + ref.Key + "?versionId=" + ref.Version
	}
	return "s3://" + ref.Bucket + "/" + ref.Key
}

// object describes an announced object for the reader.
func (s *Source) object(ref ObjectRef) s3obj.Object {
	return s3obj.Object{Bucket: ref.Bucket, Key: ref.Key, Size: ref.Size, ETag: ref.ETag, Region: cmp.Or(ref.Region, s.cfg.DefaultRegion), Source: "s3"}
}

// objClaim is an S3 event whose object a message is reading; done is
// closed when its acknowledgement completed.
type objClaim struct {
	event string
	done  chan struct{}
}

// claimObject takes an S3 event for a message to read its object: dup
// when its object was delivered recently; while another message reads
// it, it waits for that read, then takes the event over if the read
// failed. An object with no Event key is always read.
func (q *queue) claimObject(ctx context.Context, event string) (c *objClaim, dup bool, err error) {
	if event == "" {
		return &objClaim{}, false, nil
	}
	for {
		q.mu.Lock()
		if _, ok := q.objects.Get(event, time.Now()); ok {
			q.mu.Unlock()
			return nil, true, nil
		}
		other := q.objFlight[event]
		if other == nil {
			c := &objClaim{event: event, done: make(chan struct{})}
			q.objFlight[event] = c
			q.mu.Unlock()
			return c, false, nil
		}
		q.mu.Unlock()
		select {
		case <-other.done:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// settleObject ends a claim: a delivered object's event is remembered.
func (q *queue) settleObject(c *objClaim, ok bool) {
	if c.event == "" {
		return
	}
	q.mu.Lock()
	delete(q.objFlight, c.event)
	if ok {
		q.objects.Put(c.event, struct{}{}, time.Now())
	}
	q.mu.Unlock()
	close(c.done)
}

// readObject streams one object into decoded batches.
func (s *Source) readObject(ctx context.Context, ref ObjectRef, tr *ack.Tracker, log *slog.Logger) error {
	var opts []func(*s3.Options)
	if ref.Region != "" {
		opts = append(opts, func(o *s3.Options) { o.Region = ref.Region })
	}
	body, err := s3obj.OpenVersion(ctx, s.objects, ref.Bucket, ref.Key, ref.Version, opts...)
	if err != nil {
		return err
	}
	defer body.Close()
	obj := s.object(ref)
	obj.Size, obj.ETag, obj.LastModified = body.Size, body.ETag, body.LastModified
	r := s3obj.NewReader(body, obj, s.cfg.Object)
	defer r.Close()
	for {
		c, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		c.Batch.Ack = tr
		if c.Dead {
			err = s.decoded.DeadLetter(ctx, c.Batch)
		} else {
			err = s.emitEvents(ctx, c.Batch)
		}
		if err != nil {
			return fmt.Errorf("%w events of %s: %w", errPublish, obj.Name(), err)
		}
	}
	st := r.Stats()
	s.objRead.Inc()
	s.objBytes.Add(st.BytesIn)
	s.objDead.Add(st.DeadLetters)
	s.objCtrl.Add(st.Control)
	lvl := slog.LevelDebug
	if st.DeadLetters > 0 {
		lvl = slog.LevelWarn
	}
	log.Log(ctx, lvl, "object read", "object", obj.Name(), "layout", st.Layout.String(), "compression", st.Compression,
		"bytes", st.BytesIn, "events", st.Events, "dead_letters", st.DeadLetters, "control_messages", st.Control)
	return nil
}

// emitEvents publishes events read from an object, holding their
// footprint in the memory budget until they are delivered.
func (s *Source) emitEvents(ctx context.Context, b *record.Batch) error {
	done, err := s.memory.Hold(ctx, b, membudget.Footprint(b))
	if err != nil {
		return err
	}
	defer done()
	return s.decoded.Emit(ctx, b)
}

// emitRaw publishes a message's CloudWatch or Firehose records to the raw
// topic, for the decode stage. They count in the memory budget until the
// message is settled; decode bounds what they decompress to together.
func (s *Source) emitRaw(ctx context.Context, q *queue, m types.Message, body Body, tr *ack.Tracker) error {
	var size int64
	for _, r := range body.Records {
		size += int64(len(r.Data))
	}
	if err := s.memory.Admit(ctx, size); err != nil {
		return err
	}
	tr.OnComplete(func(error) { s.memory.Discharge(size) })
	unit := new(record.Unit)
	ts := time.Now().UnixMilli()
	if v, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		ts = v
	}
	id := aws.ToString(m.MessageId)
	// The account is left to the data: the queue's account need not be the
	// account whose logs it carries, and a wrong aws_account tag is worse
	// than none.
	origin := &record.Origin{Source: "sqs", RequestID: id, SourceARN: q.arn, Region: q.region}
	per := s.cfg.RecordsPerBatch
	for i := 0; i < len(body.Records); i += per {
		part := body.Records[i:min(i+per, len(body.Records))]
		b := &record.Batch{ID: fmt.Sprintf("%s/%d", id, i/per), Origin: origin, Ack: tr, Unit: unit, Records: make([]record.Record, len(part))}
		for j, r := range part {
			b.Records[j] = record.Record{Origin: origin, Timestamp: ts, Kind: r.Kind, Message: r.Data}
		}
		if err := s.raw.Emit(ctx, b); err != nil {
			return fmt.Errorf("publish records: %w", err)
		}
	}
	return nil
}

// deleter deletes settled messages ten at a time, waiting a moment for a
// batch to fill.
func (s *Source) deleter(q *queue) {
	defer s.services.Done()
	const linger = 20 * time.Millisecond
	for {
		h, ok := <-q.deletes
		if !ok {
			return
		}
		batch := []string{h}
		t := time.NewTimer(linger)
	fill:
		for len(batch) < 10 {
			select {
			case h, ok := <-q.deletes:
				if !ok {
					break fill
				}
				batch = append(batch, h)
			case <-t.C:
				break fill
			}
		}
		t.Stop()
		s.deleteBatch(q, batch)
	}
}

func (s *Source) deleteBatch(q *queue, handles []string) {
	entries := make([]types.DeleteMessageBatchRequestEntry, len(handles))
	for i, h := range handles {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(h)}
	}
	pace := deleteBackoff.Start()
	for attempt := 1; ; attempt++ {
		ctx, cancel := s.apiContext(30 * time.Second)
		out, err := s.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
		cancel()
		if err == nil {
			s.deleted.Add(int64(len(out.Successful)))
			s.deletesPending.Add(-int64(len(out.Successful)))
			if len(out.Failed) == 0 {
				return
			}
			var retry []types.DeleteMessageBatchRequestEntry
			for _, f := range out.Failed {
				if f.SenderFault {
					// The receipt handle expired: the message came back
					// and another receive owns it now.
					s.notDeleted.Inc()
					s.deletesPending.Dec()
					s.log.Warn("sqs delete refused: the message will be delivered again", "queue", q.url, "code", aws.ToString(f.Code), "reason", aws.ToString(f.Message))
					continue
				}
				for _, e := range entries {
					if aws.ToString(e.Id) == aws.ToString(f.Id) {
						retry = append(retry, e)
					}
				}
			}
			if entries = retry; len(entries) == 0 {
				return
			}
			err = fmt.Errorf("%d entries failed", len(entries))
		}
		s.apiErrs.Inc()
		if attempt == 5 {
			s.gaveUpDeleting(entries)
			s.log.Error("sqs delete failed: the messages will be delivered again", "queue", q.url, "messages", len(entries), "error", err)
			return
		}
		// Deleting must outlive the work context: these messages were
		// delivered, and every failed delete is a duplicate later. Only
		// the end of Stop's time cuts it short.
		ctx, cancel = s.apiContext(time.Minute)
		waitErr := pace.Wait(ctx)
		cancel()
		if waitErr != nil {
			s.gaveUpDeleting(entries)
			s.log.Error("sqs delete cut short by the shutdown deadline: the messages will be delivered again", "queue", q.url, "messages", len(entries), "error", err)
			return
		}
	}
}

// gaveUpDeleting counts the deletes given up.
func (s *Source) gaveUpDeleting(entries []types.DeleteMessageBatchRequestEntry) {
	s.notDeleted.Add(int64(len(entries)))
	s.deletesPending.Add(-int64(len(entries)))
}

// extender renews the visibility of every message being worked on, every
// third of the visibility timeout, so that none reappears for a second
// worker while the first still streams its object.
func (s *Source) extender(q *queue) {
	defer s.services.Done()
	vt := s.cfg.VisibilityTimeout
	t := time.NewTicker(max(vt/3, 200*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.idle:
			return
		}
		s.extend(q, vt)
	}
}

func (s *Source) extend(q *queue, vt time.Duration) {
	q.mu.Lock()
	held := make([]sqsvis.Held, 0, len(q.inflight))
	for h, f := range q.inflight {
		held = append(held, sqsvis.Held{Handle: h, Received: f.received})
	}
	q.mu.Unlock()
	o := sqsvis.Change(s.workCtx, s.sqs, q.url, held, vt, max(vt/3, time.Second), time.Now())
	s.extended.Add(int64(o.Changed))
	if o.Err != nil && s.workCtx.Err() == nil {
		s.apiErrs.Inc()
		s.log.Warn("sqs visibility extension failed; retrying at the next tick", "queue", q.url, "messages", o.Failed, "error", o.Err)
	}
	for _, f := range o.Refused {
		// Typically the message was deleted or released meanwhile.
		s.log.Debug("sqs visibility extension refused", "queue", q.url, "code", aws.ToString(f.Code), "reason", aws.ToString(f.Message))
	}
}

// apiContext bounds an SQS call that settles messages: by d, and once Stop
// was called, by Stop's context as well, whenever the call began.
func (s *Source) apiContext(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.calls, d)
}

// The pacing of failed receives (reset by a success) and of the retries of
// one delete.
var (
	receiveBackoff = backoff.Exponential(time.Second, 30*time.Second)
	deleteBackoff  = backoff.Exponential(200*time.Millisecond, 5*time.Second)
)
