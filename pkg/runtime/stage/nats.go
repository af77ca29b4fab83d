package stage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/redact"
	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
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

// maxAckPending bounds the messages of one consumer group delivered and
// not yet acknowledged, across the fleet. Each worker holds at most
// Subscribers × (Prefetch+1) of them (36 by default), so this lets about
// 270 workers of a stage keep their prefetch full; 64 × Subscribers let
// seven, and an eighth worker of a slow stage (delivery to a distant
// intake) got next to nothing. What it still bounds is the redelivery at
// ack_wait after a whole fleet is lost.
const maxAckPending = 10_000

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
				// One delivery beyond MaxDeliver: the subscriber marks it,
				// and the runtime dead-letters the batch then (JetStream
				// would keep it after its last delivery, read by nobody).
				AckWait: t.cfg.AckWait, MaxDeliver: t.cfg.MaxDeliver + 1, MaxAckPending: maxAckPending,
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

// Subscriber returns the group's subscriber: Subscribers handlers fed by
// one fetcher per topic on the group's durable consumer, sharing one
// connection: a connection per handler cost the broker and the worker a
// connection's setup and upkeep each (measured: bench-fleet.sh's CPU
// before the load).
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
		ackWait: t.cfg.AckWait, maxDeliver: t.cfg.MaxDeliver, logger: t.logger, closing: make(chan struct{})}
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
// ack_wait while its handler still ran. Here every message fetched is held
// by the subscription until settled, and every held message — handled or
// waiting for a handler — is marked in progress a few times per ack_wait, so
// that the broker gives none to another worker while this one has it (an
// intake outage longer than ack_wait no longer duplicates what was fetched
// ahead: nats.go's Consume buffers messages where they cannot be renewed,
// so messages are fetched explicitly, only when there is room). When the
// subscription ends, the messages handed to the router are still
// acknowledged once their handlers return, and those not handed over go
// back to the broker at once (Nak).
type jsSubscriber struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	group    string
	loops    int
	prefetch int
	ackWait  time.Duration
	// maxDeliver is how many times a message is handed to a worker before
	// its next delivery, the consumer's last, is marked LastDeliveryKey.
	maxDeliver int
	logger     watermill.LoggerAdapter

	closing   chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	subs      []*subscription
}

// fetchWait bounds one pull request: how long an idle subscription waits
// for messages before asking again, and how long a stop waits for the
// request in flight to end (what it brings is handed back). A request cannot
// be withdrawn: the client's inbox may be dropped, but a message handed
// back before the server learnt of it would be sent to it, and stay there
// until ack_wait. An idle subscription's four requests a second cost the
// broker and the worker next to nothing.
const fetchWait = 250 * time.Millisecond

func (s *jsSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	c, err := s.js.Consumer(ctx, topic, ConsumerName(s.group, topic))
	if err != nil {
		return nil, fmt.Errorf("nats transport: consumer %s on %s (is the stage in the topology?): %w", s.group, topic, err)
	}
	capacity := s.loops * (s.prefetch + 1) // each loop's message and what it fetched ahead
	sub := &subscription{s: s, c: c, capacity: capacity, out: make(chan *message.Message),
		queue: make(chan jetstream.Msg, capacity), room: make(chan struct{}, 1),
		held: map[jetstream.Msg]struct{}{}, stop: make(chan struct{}), done: make(chan struct{}),
		fields: watermill.LogFields{"topic": topic, "group": s.group},
		// A handler's context must outlive the subscription: the router
		// ends the subscription to stop taking input, and the handlers in
		// flight then finish (only a hand-back cancels them).
		msgCtx: context.WithoutCancel(ctx)}
	sub.fetching.Add(1)
	go sub.fetch()
	sub.working.Add(s.loops)
	for range s.loops {
		go sub.work()
	}
	renewed := make(chan struct{})
	go sub.renew(renewed)
	s.mu.Lock()
	s.subs = append(s.subs, sub)
	s.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.closing:
		}
		sub.end()
		<-renewed
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
	deadline := time.NewTimer(s.ackWait + fetchWait)
	defer deadline.Stop()
	var errs []error
wait:
	for _, sub := range subs {
		select {
		case <-sub.done:
		case <-deadline.C:
			errs = append(errs, fmt.Errorf("nats transport: subscriber %s: messages still held after %s", s.group, s.ackWait+fetchWait))
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

// subscription is one Subscribe call: a fetcher keeps up to capacity
// messages held, and loops workers hand them to the router one at a time.
type subscription struct {
	s        *jsSubscriber
	c        jetstream.Consumer
	capacity int
	out      chan *message.Message
	msgCtx   context.Context
	fields   watermill.LogFields

	queue chan jetstream.Msg // fetched, waiting for a worker
	room  chan struct{}      // signalled when a held message is settled

	mu       sync.Mutex
	held     map[jetstream.Msg]struct{} // fetched and not settled: renewed
	stopped  bool
	stop     chan struct{}
	sending  sync.WaitGroup // workers sending on out
	fetching sync.WaitGroup
	working  sync.WaitGroup
	done     chan struct{} // closed once every message is settled or handed back
}

// fetch pulls messages while there is room for them. It asks only when a
// loop's worth of room is free (or nothing waits for a worker), so that a
// busy subscription does not make one pull request per message.
func (sub *subscription) fetch() {
	defer sub.fetching.Done()
	s := sub.s
	retry := backoff.Exponential(100*time.Millisecond, 5*time.Second).Start()
	for {
		n := sub.free()
		if n == 0 {
			return // stopped
		}
		b, err := sub.c.Fetch(n, jetstream.FetchMaxWait(fetchWait))
		if err == nil {
			for jm := range b.Messages() {
				sub.hold(jm)
				sub.queue <- jm // never blocks: the queue holds capacity
			}
			err = b.Error()
		}
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			s.logger.Error("cannot fetch messages; retrying", err, sub.fields)
			select {
			case <-time.After(retry.Next()):
			case <-sub.stop:
				return
			}
			continue
		}
		retry.Reset()
	}
}

// free waits until there is room worth a pull request and returns how many
// messages fit, or 0 once stopped.
func (sub *subscription) free() int {
	for {
		sub.mu.Lock()
		n := sub.capacity - len(sub.held)
		stopped := sub.stopped
		sub.mu.Unlock()
		if stopped {
			return 0
		}
		if n > 0 && (n >= sub.s.prefetch || len(sub.queue) == 0) {
			return n
		}
		select {
		case <-sub.room:
		case <-sub.stop:
			return 0
		}
	}
}

func (sub *subscription) hold(jm jetstream.Msg) {
	sub.mu.Lock()
	sub.held[jm] = struct{}{}
	sub.mu.Unlock()
}

// settled forgets a message and makes room for another.
func (sub *subscription) settled(jm jetstream.Msg) {
	sub.mu.Lock()
	delete(sub.held, jm)
	sub.mu.Unlock()
	select {
	case sub.room <- struct{}{}:
	default:
	}
}

// work hands queued messages to the router, one at a time, each until it
// is settled: the workers bound the messages handled at once.
func (sub *subscription) work() {
	defer sub.working.Done()
	for {
		select {
		case <-sub.stop:
			return // what is queued is handed back by end
		case jm := <-sub.queue:
			sub.deliver(jm)
		}
	}
}

func (sub *subscription) deliver(jm jetstream.Msg) {
	s := sub.s
	m, err := wmjs.DefaultUnmarshaler{}.Unmarshal(jm)
	if err != nil {
		s.logger.Error("message cannot be read: terminated", err, sub.fields)
		sub.settle(jm.Term, "term")
		sub.settled(jm)
		return
	}
	m.SetContext(sub.msgCtx)
	if md, err := jm.Metadata(); err == nil && s.maxDeliver > 0 && md.NumDelivered > uint64(s.maxDeliver) {
		// JetStream would keep it in the stream where no worker reads it
		// and no figure counts it: the runtime dead-letters it instead.
		m.Metadata.Set(LastDeliveryKey, strconv.FormatUint(md.NumDelivered-1, 10))
	}
	sub.mu.Lock()
	if sub.stopped {
		sub.mu.Unlock()
		return // still held: handed back by end
	}
	sub.sending.Add(1)
	sub.mu.Unlock()
	select {
	case sub.out <- m:
		sub.sending.Done()
	case <-sub.stop:
		sub.sending.Done()
		return
	}
	select {
	case <-m.Acked():
		sub.settle(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), s.ackWait)
			defer cancel()
			return jm.DoubleAck(ctx)
		}, "ack")
	case <-m.Nacked():
		sub.settle(jm.Nak, "nak")
	}
	sub.settled(jm)
}

// renew marks every held message in progress every renewEvery, until the
// subscription is done.
func (sub *subscription) renew(renewed chan struct{}) {
	defer close(renewed)
	t := time.NewTicker(sub.s.renewEvery())
	defer t.Stop()
	for {
		select {
		case <-sub.done:
			return
		case <-t.C:
		}
		sub.renewHeld()
	}
}

// renewHeld marks the messages held now in progress. A message settled
// (acknowledged, handed back, terminated) after it was listed here has
// nothing left to renew: the client refuses it (ErrMsgAlreadyAckd) without
// a word to the broker, which is no error to report (it was, on a busy
// subscription, a false "the broker may redeliver it" now and then).
func (sub *subscription) renewHeld() {
	sub.mu.Lock()
	held := make([]jetstream.Msg, 0, len(sub.held))
	for jm := range sub.held {
		held = append(held, jm)
	}
	sub.mu.Unlock()
	for _, jm := range held {
		if err := jm.InProgress(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			sub.s.logger.Error("cannot mark message in progress: the broker may redeliver it", err, sub.fields)
		}
	}
}

// end stops the subscription: no more fetches, out is closed once nothing
// sends on it, the messages handed to the router are left to their
// handlers, and what was fetched and not handed over goes back to the
// broker.
func (sub *subscription) end() {
	s := sub.s
	defer close(sub.done)
	sub.mu.Lock()
	sub.stopped = true
	close(sub.stop)
	sub.mu.Unlock()
	// The pull request in flight ends by its expiry (fetchWait); what it
	// brings is held. Handed back only after that: a message refused while
	// a pull request of ours is open would be redelivered to it.
	sub.fetching.Wait()
	sub.sending.Wait()
	close(sub.out)
	sub.working.Wait()
	sub.mu.Lock()
	back := make([]jetstream.Msg, 0, len(sub.held))
	for jm := range sub.held {
		back = append(back, jm)
	}
	sub.held = map[jetstream.Msg]struct{}{}
	sub.mu.Unlock()
	for _, jm := range back {
		sub.settle(jm.Nak, "nak")
	}
	if len(back) > 0 {
		// A Nak is only buffered: the broker must have it before the
		// process may end.
		if err := s.nc.FlushTimeout(s.ackWait); err != nil {
			s.logger.Error("messages handed back may reach the broker only at ack_wait", err, nil)
		}
	}
}

func (sub *subscription) settle(f func() error, what string) {
	if err := f(); err != nil {
		sub.s.logger.Error("cannot "+what+" message: the broker redelivers it after ack_wait", err, sub.fields)
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
