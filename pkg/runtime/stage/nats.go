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
	var subs []*wmjs.Subscriber
	for i := 0; i < t.cfg.Subscribers; i++ {
		s, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{
			Conn: nc, Logger: t.logger, AckWaitTimeout: t.cfg.AckWait,
			ConsumeOptions: []jetstream.PullConsumeOpt{jetstream.PullMaxMessages(t.cfg.Prefetch)},
			ResourceInitializer: func(ctx context.Context, js jetstream.JetStream, topic string) (jetstream.Consumer, func(context.Context, watermill.LoggerAdapter), error) {
				c, err := js.Consumer(ctx, topic, ConsumerName(group, topic))
				if err != nil {
					return nil, nil, fmt.Errorf("consumer %s on %s (is the stage in the topology?): %w", group, topic, err)
				}
				return c, nil, nil
			},
		})
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("nats transport: subscriber %s: %w", group, err)
		}
		subs = append(subs, s)
	}
	m := &fanIn{subs: subs}
	t.mu.Lock()
	t.subs = append(t.subs, m)
	t.mu.Unlock()
	return m, nil
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

// fanIn merges several subscriptions of one group into one channel, so that
// a stage handles several messages at once while each pull loop waits for
// its message's acknowledgement.
type fanIn struct {
	subs []*wmjs.Subscriber
}

func (f *fanIn) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	out := make(chan *message.Message)
	var wg sync.WaitGroup
	for _, s := range f.subs {
		ch, err := s.Subscribe(ctx, topic)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range ch {
				select {
				case out <- m:
				case <-ctx.Done():
					return // unacknowledged: the broker redelivers it
				}
			}
		}()
	}
	go func() { wg.Wait(); close(out) }()
	return out, nil
}

// Close closes every pull loop. Each drains the loops' shared connection:
// the first starts the drain, and a later one may find it closed already.
func (f *fanIn) Close() error {
	var errs []error
	for _, s := range f.subs {
		if err := s.Close(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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
