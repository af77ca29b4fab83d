package stage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/redact"
)

// NATS is the JetStream transport: a stream per topic with interest
// retention (a message is kept until every consumer group acknowledged it)
// and a durable pull consumer per consumer group, which any number of
// worker processes share.
//
// It uses watermill-nats' jetstream package (pull consumers) rather than
// its push-based nats package: durable pull consumers can be created up
// front, idempotently, for every group, so interest retention never drops
// a message published while a group has no running worker.
type NATS struct {
	cfg    NATSConfig
	nc     *nats.Conn
	js     jetstream.JetStream
	pub    *wmjs.Publisher
	logger watermill.LoggerAdapter

	mu   sync.Mutex
	subs []message.Subscriber
}

// ConsumerName is the durable consumer of a group on a topic.
func ConsumerName(group, topic string) string { return group + "_" + topic }

// NewNATS connects and makes sure every stream and durable consumer exists.
func NewNATS(ctx context.Context, cfg NATSConfig, logger watermill.LoggerAdapter) (*NATS, error) {
	cfg.setDefaults()
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	if cfg.URL == "" {
		return nil, errors.New("nats transport: transport.nats.url is required")
	}
	nc, err := nats.Connect(cfg.URL, nats.Name("gwpipe"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false))
	if err != nil {
		return nil, fmt.Errorf("nats transport: connect %s: %w", redact.URL(cfg.URL), redact.Err(err))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats transport: jetstream: %w", err)
	}
	t := &NATS{cfg: cfg, nc: nc, js: js, logger: logger}
	if err := t.provision(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	t.pub, err = wmjs.NewPublisher(wmjs.PublisherConfig{Conn: nc, Logger: logger})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats transport: publisher: %w", err)
	}
	return t, nil
}

func (t *NATS) provision(ctx context.Context) error {
	topics := make([]string, 0, len(t.cfg.Consumers))
	for topic := range t.cfg.Consumers {
		topics = append(topics, topic)
	}
	sort.Strings(topics)
	for _, topic := range topics {
		// topic carries a batch to every group; topic.to.<group> to one
		// (GroupTopic), when a worker runs the other groups itself.
		st, err := t.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: topic, Subjects: []string{topic, topic + ".to.*"},
			Retention: jetstream.InterestPolicy, Storage: jetstream.FileStorage,
			MaxBytes: t.cfg.StreamMaxBytes, Discard: jetstream.DiscardNew,
			Replicas: t.cfg.Replicas, Duplicates: 2 * time.Minute,
		})
		if err != nil {
			return fmt.Errorf("nats transport: stream %s: %w", topic, err)
		}
		for _, group := range t.cfg.Consumers[topic] {
			_, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
				Durable: ConsumerName(group, topic), AckPolicy: jetstream.AckExplicitPolicy,
				FilterSubjects: []string{topic, t.GroupTopic(topic, group)},
				AckWait:        t.cfg.AckWait, MaxDeliver: t.cfg.MaxDeliver, MaxAckPending: 64 * t.cfg.Subscribers,
				DeliverPolicy: jetstream.DeliverAllPolicy,
			})
			if err != nil {
				return fmt.Errorf("nats transport: consumer %s on %s: %w", group, topic, err)
			}
		}
	}
	return nil
}

func (t *NATS) Publisher() message.Publisher { return t.pub }

// GroupTopic is the subject that reaches one group's consumer of topic
// (see provision); the publisher uses a topic as its subject.
func (t *NATS) GroupTopic(topic, group string) string { return topic + ".to." + group }
func (t *NATS) Codec() Codec {
	return sizedCodec{BinaryCodec: BinaryCodec{Compression: t.cfg.Compression}, limit: int(t.nc.MaxPayload()) - 4096}
}
func (t *NATS) InProcess() bool { return false }

// Backlog is the group's durable consumer's num_pending: the messages of
// topic not yet delivered to any of its workers (what KEDA's NATS
// JetStream scaler reads too). Delivered and unacknowledged messages are
// in flight on the worker holding them.
func (t *NATS) Backlog(ctx context.Context, group, topic string) (int64, error) {
	c, err := t.js.Consumer(ctx, topic, ConsumerName(group, topic))
	if err != nil {
		return 0, fmt.Errorf("nats transport: consumer %s on %s: %w", group, topic, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("nats transport: consumer %s on %s: %w", group, topic, err)
	}
	return int64(info.NumPending), nil
}

// Subscriber returns the group's subscriber: Subscribers pull loops on the
// group's durable consumer, merged, sharing one connection: a connection
// per loop cost the broker and the worker a connection's setup and upkeep
// each (measured: bench-fleet.sh's CPU before the load).
func (t *NATS) Subscriber(group string) (message.Subscriber, error) {
	nc, err := nats.Connect(t.cfg.URL, nats.Name("gwpipe-"+group), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false))
	if err != nil {
		return nil, fmt.Errorf("nats transport: subscriber %s: connect %s: %w", group, redact.URL(t.cfg.URL), redact.Err(err))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats transport: subscriber %s: %w", group, err)
	}
	s := &jsSubscriber{nc: nc, js: js, group: group, loops: t.cfg.Subscribers, prefetch: t.cfg.Prefetch,
		ackWait: t.cfg.AckWait, logger: t.logger, closing: make(chan struct{})}
	t.mu.Lock()
	t.subs = append(t.subs, s)
	t.mu.Unlock()
	return s, nil
}

// Close closes the subscribers, then the connection (draining it).
func (t *NATS) Close() error {
	var errs []error
	t.mu.Lock()
	for _, s := range t.subs {
		errs = append(errs, s.Close())
	}
	t.mu.Unlock()
	if err := t.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// jsSubscriber is a group's subscriber on its durable pull consumer.
//
// It replaces watermill-nats' jetstream Subscriber, whose message contexts
// end with the subscription (a stopping router cancelled the handlers in
// flight, whose batches were then dead-lettered and their acks dropped),
// whose pull callbacks could send on the channel it had closed ("send on
// closed channel" at a SIGTERM under load), and which gave a message up at
// ack_wait while its handler still ran. Here, when the subscription ends,
// the messages already handed to the router are still acknowledged once
// their handlers return, those not handed over yet go back to the broker
// at once (Nak), and a message held longer than a fraction of ack_wait is
// marked in progress so that the broker does not give it to another
// worker meanwhile.
type jsSubscriber struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	group    string
	loops    int
	prefetch int
	ackWait  time.Duration
	logger   watermill.LoggerAdapter

	closing   chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	subs      []*subscription
}

func (s *jsSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	c, err := s.js.Consumer(ctx, topic, ConsumerName(s.group, topic))
	if err != nil {
		return nil, fmt.Errorf("nats transport: consumer %s on %s (is the stage in the topology?): %w", s.group, topic, err)
	}
	sub := &subscription{s: s, out: make(chan *message.Message), stop: make(chan struct{}), done: make(chan struct{}),
		// A handler's context must outlive the subscription: the router
		// ends the subscription to stop taking input, and the handlers in
		// flight then finish (only a hand-back cancels them).
		msgCtx: context.WithoutCancel(ctx)}
	var ccs []jetstream.ConsumeContext
	for range s.loops {
		cc, err := c.Consume(sub.handle, jetstream.PullMaxMessages(s.prefetch))
		if err != nil {
			// The loops started may have fetched messages already: they
			// go back to the broker (a sender waiting on out sees stop).
			sub.end(ccs)
			return nil, fmt.Errorf("nats transport: consume %s on %s: %w", s.group, topic, err)
		}
		ccs = append(ccs, cc)
	}
	s.mu.Lock()
	s.subs = append(s.subs, sub)
	s.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.closing:
		}
		sub.end(ccs)
	}()
	return sub.out, nil
}

// Close stops the subscriptions, waits (up to ack_wait, after which the
// broker redelivers anyway) until every message held is acknowledged or
// handed back, then drains the connection.
func (s *jsSubscriber) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.mu.Lock()
	subs := s.subs
	s.mu.Unlock()
	deadline := time.NewTimer(s.ackWait)
	defer deadline.Stop()
	var errs []error
wait:
	for _, sub := range subs {
		select {
		case <-sub.done:
		case <-deadline.C:
			errs = append(errs, fmt.Errorf("nats transport: subscriber %s: messages still held after %s", s.group, s.ackWait))
			break wait
		}
	}
	if err := s.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// renewEvery is how often a held message is marked in progress: a third
// of ack_wait leaves two attempts before the broker would redeliver it.
func (s *jsSubscriber) renewEvery() time.Duration { return max(s.ackWait/3, 10*time.Millisecond) }

// subscription is one Subscribe call: its pull loops feed out.
type subscription struct {
	s      *jsSubscriber
	out    chan *message.Message
	msgCtx context.Context

	mu      sync.Mutex
	stopped bool
	stop    chan struct{}
	back    []jetstream.Msg // fetched ahead, handed back once the loops are closed
	sending sync.WaitGroup
	done    chan struct{} // closed once every message is settled
}

// handle runs in a pull loop for each message, and holds the loop until
// the message is settled: the loops bound the messages handled at once.
// end stops the subscription's pull loops: what they fetched ahead goes
// back to the broker, the messages handed to the router are left to their
// handlers, and out is closed once nothing can send on it.
func (sub *subscription) end(ccs []jetstream.ConsumeContext) {
	s := sub.s
	defer close(sub.done)
	sub.mu.Lock()
	sub.stopped = true
	close(sub.stop)
	sub.mu.Unlock()
	for _, cc := range ccs {
		cc.Drain() // what the loops fetched ahead reaches handle, which sets it aside
	}
	// No callback sends any more once stopped is set and the senders
	// counted before it are gone: only then may out be closed.
	sub.sending.Wait()
	close(sub.out)
	for _, cc := range ccs {
		<-cc.Closed()
	}
	// Handed back only now: a message refused while its pull loop was
	// still subscribed would be redelivered to that same loop's pull
	// request, over and over, and the last time to no one.
	sub.mu.Lock()
	back := sub.back
	sub.back = nil
	sub.mu.Unlock()
	for _, jm := range back {
		sub.settle(jm.Nak, "nak", watermill.LogFields{"subject": jm.Subject(), "group": s.group})
	}
	if len(back) > 0 {
		// A Nak is only buffered: the broker must have it before the
		// process may end.
		if err := s.nc.FlushTimeout(s.ackWait); err != nil {
			s.logger.Error("messages handed back may reach the broker only at ack_wait", err, nil)
		}
	}
}

func (sub *subscription) handle(jm jetstream.Msg) {
	s := sub.s
	fields := watermill.LogFields{"subject": jm.Subject(), "group": s.group}
	sub.mu.Lock()
	if sub.stopped {
		sub.back = append(sub.back, jm)
		sub.mu.Unlock()
		return
	}
	sub.sending.Add(1)
	sub.mu.Unlock()

	m, err := wmjs.DefaultUnmarshaler{}.Unmarshal(jm)
	if err != nil {
		sub.sending.Done()
		s.logger.Error("message cannot be read: terminated", err, fields)
		sub.settle(jm.Term, "term", fields)
		return
	}
	m.SetContext(sub.msgCtx)
	renew := time.NewTicker(s.renewEvery())
	defer renew.Stop()
	for sent := false; !sent; {
		select {
		case <-sub.stop:
			sub.sending.Done()
			sub.mu.Lock()
			sub.back = append(sub.back, jm)
			sub.mu.Unlock()
			return
		default:
		}
		select {
		case <-sub.stop:
		case sub.out <- m:
			sent = true
		case <-renew.C:
			sub.inProgress(jm, fields)
		}
	}
	sub.sending.Done()
	for {
		select {
		case <-m.Acked():
			sub.settle(func() error {
				ctx, cancel := context.WithTimeout(context.Background(), s.ackWait)
				defer cancel()
				return jm.DoubleAck(ctx)
			}, "ack", fields)
			return
		case <-m.Nacked():
			sub.settle(jm.Nak, "nak", fields)
			return
		case <-renew.C:
			sub.inProgress(jm, fields)
		}
	}
}

func (sub *subscription) inProgress(jm jetstream.Msg, fields watermill.LogFields) {
	if err := jm.InProgress(); err != nil {
		sub.s.logger.Error("cannot mark message in progress: the broker may redeliver it", err, fields)
	}
}

func (sub *subscription) settle(f func() error, what string, fields watermill.LogFields) {
	if err := f(); err != nil {
		sub.s.logger.Error("cannot "+what+" message: the broker redelivers it after ack_wait", err, fields)
	}
}

// sizedCodec refuses payloads over the broker's limit, so that the runtime
// splits the batch.
type sizedCodec struct {
	BinaryCodec
	limit int
}

func (c sizedCodec) Marshal(ctx context.Context, b *record.Batch) (*message.Message, error) {
	msg, err := c.BinaryCodec.Marshal(ctx, b)
	if err != nil {
		return nil, err
	}
	if len(msg.Payload) > c.limit {
		return nil, fmt.Errorf("%w: %d bytes over the broker's %d", ErrTooLarge, len(msg.Payload), c.limit)
	}
	return msg, nil
}
