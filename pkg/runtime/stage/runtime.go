// Package stage runs gwpipe's stages on Watermill.
//
// A stage is a plain value with a handler from one batch to batches; it knows
// nothing about the transport. The Runtime mounts stages on a Watermill
// router, bounds the batches in flight per stage, retries failed batches with
// backoff, sends what cannot be handled to the dead-letter topic with the
// reason, and keeps the source's acknowledgement accounting (package ack)
// when stages run in one process.
package stage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"golang.org/x/time/rate"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// Handler handles one batch. It emits its results through out and returns
// nil once the input is fully dealt with. An error makes the runtime retry
// the whole batch (unless the error is Permanent) and finally dead-letter it.
type Handler interface {
	Handle(ctx context.Context, in *record.Batch, out Output) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, in *record.Batch, out Output) error

func (f HandlerFunc) Handle(ctx context.Context, in *record.Batch, out Output) error {
	return f(ctx, in, out)
}

// Output is where a stage (or a source) sends batches. Both calls block
// while the consumers downstream are saturated: that is the back-pressure.
type Output interface {
	// Emit sends a batch to the stage's output topic.
	Emit(ctx context.Context, b *record.Batch) error
	// DeadLetter sends records that cannot go on to the dead-letter topic.
	// Set b.Reason, or Reason on each record.
	DeadLetter(ctx context.Context, b *record.Batch) error
}

// Stage describes one stage to mount.
type Stage struct {
	Name    string
	Input   string // topic consumed
	Output  string // topic produced; empty for a terminal stage
	Handler Handler
	// MaxInFlight bounds the batches of this stage being handled or queued
	// for it at once; 0 takes Config.MaxInFlight.
	MaxInFlight int
}

// Config tunes the runtime; its keys are part of the pipeline section of
// gwpipe's configuration.
type Config struct {
	// MaxInFlight bounds the batches queued for or handled by each stage
	// at once; 0 means 4 per CPU (GOMAXPROCS).
	MaxInFlight int `yaml:"max_inflight_batches"`
	// MaxRetries is how often a failing batch is retried before it is
	// dead-lettered; 0: never.
	MaxRetries      int           `yaml:"max_retries"`
	InitialInterval time.Duration `yaml:"retry_initial"` // first retry delay
	MaxInterval     time.Duration `yaml:"retry_max"`     // retry delay cap

	DLQTopic string `yaml:"-"` // set from the pipeline's topics
	// CloseTimeout is how long Close (not Shutdown, which takes a context)
	// waits for running handlers.
	CloseTimeout time.Duration `yaml:"-"`
	// BacklogInterval is how often a broker transport that can tell (a
	// Backlogger) is asked for each stage's backlog, the queue depth on a
	// broker.
	BacklogInterval time.Duration `yaml:"-"`
	// Topology lists, per topic, every stage that consumes it in the whole
	// deployment. On a broker, a consumer of a topic that runs in this
	// process gets the batch in memory: the worker publishes only at the
	// end of its run of stages, and acknowledges its input only once that
	// last publish is durable. When some consumers of a topic run here and
	// others elsewhere, a transport that can address one group (a
	// GroupAddresser) publishes to the others only; without one, the topic
	// goes through the broker for all. Nil: every hop goes through the
	// broker.
	Topology map[string][]string `yaml:"-"`
}

// DefaultConfig retries a failing batch 5 times, from 100ms to 5s apart.
func DefaultConfig() Config {
	return Config{
		MaxRetries: 5, InitialInterval: 100 * time.Millisecond, MaxInterval: 5 * time.Second,
		DLQTopic: "dlq", CloseTimeout: 30 * time.Second, BacklogInterval: 10 * time.Second,
	}
}

// Validate reports every field out of range.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, fmt.Errorf(key+": "+format, a...)) }
	if c.MaxInFlight < 0 {
		bad("max_inflight_batches", "must not be negative (0: 4 per CPU), got %d", c.MaxInFlight)
	}
	if c.MaxRetries < 0 {
		bad("max_retries", "must not be negative, got %d", c.MaxRetries)
	}
	if c.InitialInterval <= 0 {
		bad("retry_initial", "must be positive, got %s", c.InitialInterval)
	}
	if c.MaxInterval < c.InitialInterval {
		bad("retry_max", "must be at least retry_initial (%s), got %s", c.InitialInterval, c.MaxInterval)
	}
	return errors.Join(errs...)
}

// setDefaults fills the fields left zero whose zero is no setting (a
// configured MaxRetries of 0 means no retry).
func (c *Config) setDefaults() {
	d := DefaultConfig()
	if c.DLQTopic == "" {
		c.DLQTopic = d.DLQTopic
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 4 * runtime.GOMAXPROCS(0)
	}
	c.MaxRetries = max(c.MaxRetries, 0)
	if c.InitialInterval <= 0 {
		c.InitialInterval = d.InitialInterval
	}
	if c.MaxInterval <= 0 {
		c.MaxInterval = d.MaxInterval
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = d.CloseTimeout
	}
	if c.BacklogInterval <= 0 {
		c.BacklogInterval = d.BacklogInterval
	}
}

// Backlogger is a broker transport that can tell how many messages of a
// topic wait for a consumer group: published, not yet delivered to any of
// its workers.
type Backlogger interface {
	Backlog(ctx context.Context, group, topic string) (int64, error)
}

// LastDeliveryKey marks, in a message's metadata, the last time a broker
// hands the message out, with how many times a worker had it before: the
// runtime dead-letters it without handling it, since the broker would
// otherwise keep it where no worker reads it.
const LastDeliveryKey = "gwpipe_last_delivery"

// DeadLetterBacklogger is a broker transport that moves a message handed
// out too often aside (SQS's redrive policy), and can tell how many wait
// there: undelivered, and read by no worker.
type DeadLetterBacklogger interface {
	DeadLetterBacklog(ctx context.Context, group, topic string) (int64, error)
}

type consumer struct {
	stage string
	topic string
	slots chan struct{}
	// queued is the stage's queue-depth gauge: in process, the batches
	// that hold a slot and whose handling has not started.
	queued *telemetry.Gauge
	// parked is the stage's transport dead-letter queue depth; nil where
	// the transport has none.
	parked *telemetry.Gauge

	handler Handler
	out     *output // where the stage's own results go
	// latency is the time of each handling attempt.
	latency *telemetry.Histogram
	// failures paces the warning of a failed attempt: a stage that keeps
	// failing (an archive that cannot be written, an intake down) says so
	// in the log, once per failureLogEvery, instead of retrying in
	// silence; stage.errors counts every attempt.
	failures rate.Sometimes
}

// failureLogEvery is how often a stage that keeps failing says so.
const failureLogEvery = 10 * time.Second

// Runtime mounts stages on one Watermill router.
type Runtime struct {
	cfg     Config
	tr      Transport
	codec   Codec
	router  *message.Router
	log     *slog.Logger
	metrics *telemetry.Registry

	mu        sync.Mutex
	consumers map[string][]*consumer // by topic
	inflight  int64
	idle      []chan struct{}

	runCancel context.CancelFunc
	runExited chan struct{} // closed when the router has stopped
	runErr    error         // the router's, once runExited is closed
	watchers  sync.WaitGroup

	// handBack is cancelled by HandBack: every handler's context ends
	// with it, retries and dead-lettering stop, and what is in flight
	// goes back to its sender unacknowledged.
	handBack     context.Context
	handBackNow  context.CancelFunc
	handBackOnce sync.Once

	taps *taps // gwpipe tap's samples of what is published
}

// New returns a runtime on the given transport.
func New(cfg Config, tr Transport, log *slog.Logger, metrics *telemetry.Registry) (*Runtime, error) {
	cfg.setDefaults()
	if log == nil {
		log = slog.Default()
	}
	if metrics == nil {
		metrics = telemetry.NewRegistry()
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.CloseTimeout}, QuietLogger(log.With("component", "watermill")))
	if err != nil {
		return nil, fmt.Errorf("create router: %w", err)
	}
	hb, hbNow := context.WithCancel(context.Background())
	r := &Runtime{
		cfg: cfg, tr: tr, codec: tr.Codec(), router: router, log: log, metrics: metrics,
		consumers: map[string][]*consumer{}, handBack: hb, handBackNow: hbNow, taps: newTaps(metrics),
	}
	shared := int64(1)
	if tr.InProcess() {
		shared = 0
	}
	metrics.Gauge("transport.shared", "1 when the stages' topics are on a broker (NATS JetStream, SQS/SNS) that the fleet's workers share: every worker of a stage reads the same backlog (stage.queue_depth, transport.dead_letter_backlog), so a fleet's total is one of them, not their sum; 0 when the stages are joined in this process.").Set(shared)
	metrics.GaugeFunc("runtime.in_flight_batches", "Batches published in this process and not yet handled by every stage of this process that consumes them.", r.InFlight)
	return r, nil
}

// InProcess reports whether the stages are joined in memory (one process),
// where the sources' acknowledgements travel with the batches.
func (r *Runtime) InProcess() bool { return r.tr.InProcess() }

// DLQTopic is the dead-letter topic's name.
func (r *Runtime) DLQTopic() string { return r.cfg.DLQTopic }

// Add mounts a stage. Call it before Start.
func (r *Runtime) Add(st Stage) error {
	if st.Name == "" || st.Input == "" || st.Handler == nil {
		return errors.New("stage: a stage needs a name, an input topic and a handler")
	}
	n := st.MaxInFlight
	if n <= 0 {
		n = r.cfg.MaxInFlight
	}
	out := &output{r: r, name: st.Name, stats: r.metrics.Stage(st.Name), topic: st.Output}
	c := &consumer{stage: st.Name, topic: st.Input, slots: make(chan struct{}, n), queued: &out.stats.QueueDepth, handler: st.Handler, out: out,
		failures: rate.Sometimes{First: 1, Interval: failureLogEvery},
		latency:  r.metrics.Histogram("runtime.handle_latency", "Time a stage took to handle one batch, every attempt (a delivery stage: until the intake accepted it).", telemetry.L(telemetry.StageLabel, st.Name))}
	if r.tr.InProcess() {
		c.queued.Set(0) // known exactly from here on
	} else if _, ok := r.tr.(DeadLetterBacklogger); ok {
		c.parked = r.metrics.Gauge("transport.dead_letter_backlog",
			"Messages in the stage's transport dead-letter queue (<queue>-dlq on SQS): handed out transport.sqs.max_receive_count times without being deleted. No worker reads them: their records are missing at Datadog until moved back. -1 until the broker answers.",
			telemetry.L(telemetry.StageLabel, st.Name))
		c.parked.Set(-1)
	}
	r.mu.Lock()
	r.consumers[st.Input] = append(r.consumers[st.Input], c)
	r.mu.Unlock()

	sub, err := r.tr.Subscriber(st.Name)
	if err != nil {
		return fmt.Errorf("stage %s: subscriber: %w", st.Name, err)
	}
	stats := out.stats
	h := r.router.AddConsumerHandler(st.Name, st.Input, sub, func(msg *message.Message) error {
		b, err := r.batchOf(msg)
		if err != nil {
			return err
		}
		if reason := msg.Metadata.Get(middleware.ReasonForPoisonedKey); reason != "" && b.Reason == "" {
			// A poisoned batch may still be read by a sibling consumer of
			// its topic: describe it on a copy.
			c := *b
			c.Stage = msg.Metadata.Get(middleware.PoisonedHandlerKey)
			c.Reason = reason
			b = &c
		}
		if n := msg.Metadata.Get(LastDeliveryKey); n != "" && st.Input != r.cfg.DLQTopic {
			// Not handled once more (what made every worker before drop
			// it may do so again): the archive keeps it for a replay.
			return Permanent(fmt.Errorf("stage %s: batch given to a worker %s times and never settled, the broker's max deliveries (each worker died or stopped holding it): dead-lettered rather than left on the broker, where no worker would read it again", st.Name, n))
		}
		stats.Batches.Inc()
		stats.RecordsIn.Add(int64(b.Len()))
		start := time.Now()
		err = st.Handler.Handle(msg.Context(), b, out)
		c.latency.Observe(time.Since(start))
		if err != nil {
			if rest, ok := remainder(err); ok {
				// Whatever follows — a retry, the dead-letter topic, a
				// hand-back, the count of what is lost — deals with the
				// rest only.
				keepRest(msg, rest)
			}
			stats.Errors.Inc()
			if !r.handingBack() {
				c.failures.Do(func() {
					r.log.Warn("stage failed a batch: it is tried again, then dead-lettered or handed back (further failures of this stage are logged at most every 10s; stage.errors counts them all)",
						"stage", st.Name, "batch", b.ID, "records", b.Len(), "permanent", IsPermanent(err), "error", err)
				})
			}
			return fmt.Errorf("stage %s: %w", st.Name, err)
		}
		return nil
	})

	mws := []message.HandlerMiddleware{r.complete(st, c), middleware.Recoverer}
	if st.Input != r.cfg.DLQTopic {
		// A batch given up at shutdown goes back to its sender, not to the
		// dead-letter archive: it is not bad, only unfinished.
		poison, err := middleware.PoisonQueueWithFilter(&publisher{r: r}, r.cfg.DLQTopic, func(error) bool { return !r.handingBack() })
		if err != nil {
			return fmt.Errorf("stage %s: poison queue: %w", st.Name, err)
		}
		mws = append(mws, poison)
	}
	mws = append(mws, middleware.Retry{
		MaxRetries:          r.cfg.MaxRetries,
		InitialInterval:     r.cfg.InitialInterval,
		MaxInterval:         r.cfg.MaxInterval,
		Multiplier:          2,
		RandomizationFactor: 0.2,
		ShouldRetry:         func(p middleware.RetryParams) bool { return !IsPermanent(p.Err) && !r.handingBack() },
	}.Middleware)
	h.AddMiddleware(mws...)
	return nil
}

// complete is the outermost middleware: it gives the handler chain a
// context that HandBack ends, settles the batch's acknowledgement once the
// chain is finished with it, and frees the stage's in-flight slot.
func (r *Runtime) complete(st Stage, c *consumer) message.HandlerMiddleware {
	stats := r.metrics.Stage(st.Name)
	return func(next message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if r.tr.InProcess() {
				c.queued.Add(-1) // out of the queue, into the handler (or handed back)
			}
			started := !r.handingBack()
			var err error
			if started {
				// Only a hand-back ends a handler: a transport ending the
				// message's context (its subscription stopping, its own
				// ack deadline) would fail a batch that is not bad, and
				// the poison queue would dead-letter it.
				ctx, cancel := context.WithCancel(context.WithoutCancel(msg.Context()))
				stop := context.AfterFunc(r.handBack, cancel)
				msg.SetContext(ctx)
				stats.InFlight.Add(1)
				_, err = next(msg)
				stats.InFlight.Add(-1)
				stop()
				cancel()
			} else {
				// Handed back before it started: a broker's redelivery
				// arriving while the router stops. Not counted again.
				err = fmt.Errorf("stage %s: %w", st.Name, ack.ErrHandedBack)
			}
			if err != nil && r.handingBack() && !errors.Is(err, ack.ErrHandedBack) {
				err = fmt.Errorf("%w: %w", ack.ErrHandedBack, err)
			}
			if !r.tr.InProcess() {
				// A durable transport redelivers on error: the input stays
				// on the broker for another worker.
				if err != nil && started && errors.Is(err, ack.ErrHandedBack) {
					if n, ok := r.leaveRest(st, msg); ok {
						stats.HandedBack.Add(int64(n))
						return nil, nil // the rest replaces it on the broker
					}
					if b, uerr := r.codec.Unmarshal(msg); uerr == nil {
						stats.HandedBack.Add(int64(b.Len()))
					}
				}
				return nil, err
			}
			defer r.release(c)
			b, uerr := r.batchOf(msg)
			if uerr != nil {
				r.log.Error("stage input is not a batch", "stage", st.Name, "error", uerr)
				return nil, nil
			}
			if err != nil {
				// Neither handled nor dead-lettered: the source must not
				// acknowledge, so that its sender retries. Without a
				// source (data derived in the pipeline) nothing will.
				switch {
				case b.Ack != nil:
					b.Ack.Fail(err)
				default:
					stats.Lost.Add(int64(b.Len()))
				}
				if errors.Is(err, ack.ErrHandedBack) {
					r.log.Debug("batch handed back at shutdown", "stage", st.Name, "batch", b.ID, "records", b.Len(), "error", err)
				} else {
					r.log.Error("batch failed and could not be dead-lettered", "stage", st.Name, "batch", b.ID, "error", err)
				}
				return nil, nil
			}
			if b.Ack != nil {
				b.Ack.Done()
			}
			return nil, nil
		}
	}
}

// restKey keys, in a message's context, what a failed attempt left undone
// of its batch (Remaining).
type restKey struct{}

// rest is what remains of one message's batch. The message's id keeps it
// to that message: the context is passed on to what the handler emits.
type rest struct {
	msg string // message UUID
	b   *record.Batch
}

// keepRest records that only b remains of msg's batch.
func keepRest(msg *message.Message, b *record.Batch) {
	msg.SetContext(context.WithValue(msg.Context(), restKey{}, rest{msg: msg.UUID, b: b}))
}

// restOf returns what remains of msg's batch after a failed attempt that
// finished part of it (Remaining), if one did.
func restOf(msg *message.Message) (*record.Batch, bool) {
	r, ok := msg.Context().Value(restKey{}).(rest)
	if !ok || r.msg != msg.UUID {
		return nil, false
	}
	return r.b, true
}

// batchOf returns msg's batch, or what remains of it (restOf).
func (r *Runtime) batchOf(msg *message.Message) (*record.Batch, error) {
	if b, ok := restOf(msg); ok {
		return b, nil
	}
	return r.codec.Unmarshal(msg)
}

// leaveRest, on a broker, replaces a handed-back message whose handler
// finished part of it (Remaining) by what remains: it publishes the rest
// for this stage alone, and the caller then acknowledges the message. The
// broker's redelivery of the whole message would have the next worker do
// again what was done, e.g. send accepted distribution values a second
// time. It returns the records left for the next worker, and false when
// the message must stay for redelivery as it is: no rest, no topic reaching
// this stage alone (its input has other consumers and the transport cannot
// address one group), or the publish failed.
func (r *Runtime) leaveRest(st Stage, msg *message.Message) (int, bool) {
	b, ok := restOf(msg)
	if !ok {
		return 0, false
	}
	if b.Len() == 0 {
		return 0, true
	}
	var topic string
	if groups := r.cfg.Topology[st.Input]; len(groups) == 1 && groups[0] == st.Name {
		topic = st.Input
	} else if addr, ok := r.tr.(GroupAddresser); ok {
		topic = addr.GroupTopic(st.Input, st.Name)
	} else {
		return 0, false
	}
	// The handler's context has ended (the hand-back); the publish must
	// not.
	if err := r.send(context.WithoutCancel(msg.Context()), topic, b); err != nil {
		r.log.Warn("could not publish what remains of a batch handed back: the broker redelivers it whole", "stage", st.Name, "batch", b.ID, "error", err)
		return 0, false
	}
	return b.Len(), true
}

// send publishes one batch to a topic. In process, it first takes a slot
// from every consumer of the topic (blocking while they are saturated) and
// adds one acknowledgement fragment per consumer.
func (r *Runtime) send(ctx context.Context, topic string, b *record.Batch) error {
	msg, err := r.codec.Marshal(ctx, b)
	if errors.Is(err, ErrTooLarge) && b.Len() > 1 {
		// Over the broker's message size: send it in halves.
		first, second := split(b)
		if err := r.send(ctx, topic, first); err != nil {
			return err
		}
		return r.send(ctx, topic, second)
	}
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			err = Permanent(err)
		}
		return fmt.Errorf("encode batch for %s: %w", topic, err)
	}
	return r.publishMsg(ctx, topic, msg, b)
}

// ErrTooLarge is returned by a codec whose transport cannot carry a batch
// that big; the runtime then splits the batch.
var ErrTooLarge = errors.New("batch too large for the transport")

// split cuts a batch in two halves sharing its identity.
func split(b *record.Batch) (*record.Batch, *record.Batch) {
	a, c := *b, *b
	if n := len(b.Records); n > 1 {
		a.Records, c.Records = b.Records[:n/2:n/2], b.Records[n/2:]
		a.Metrics, c.Metrics = b.Metrics, nil
	} else {
		n := len(b.Metrics)
		a.Metrics, c.Metrics = b.Metrics[:n/2:n/2], b.Metrics[n/2:]
		c.Records = nil
	}
	return &a, &c
}

func (r *Runtime) publishMsg(ctx context.Context, topic string, msg *message.Message, b *record.Batch) error {
	if !r.tr.InProcess() {
		if err := r.tr.Publisher().Publish(topic, msg); err != nil {
			return fmt.Errorf("publish to %s: %w", topic, err)
		}
		return nil
	}
	r.mu.Lock()
	cs := r.consumers[topic]
	r.mu.Unlock()
	if len(cs) == 0 {
		// In one process nothing would ever read it: refuse rather than lose.
		return Permanent(fmt.Errorf("no stage consumes topic %q", topic))
	}
	for i, c := range cs {
		if err := r.acquire(ctx, c); err != nil {
			for _, taken := range cs[:i] {
				r.release(taken)
			}
			return err
		}
	}
	if b.Ack != nil {
		b.Ack.Add(len(cs))
	}
	// Counted queued before the message exists, so that the consumer's
	// handler never takes it out of the queue first.
	for _, c := range cs {
		c.queued.Add(1)
	}
	if err := r.tr.Publisher().Publish(topic, msg); err != nil {
		for _, c := range cs {
			c.queued.Add(-1)
			r.release(c)
			if b.Ack != nil {
				b.Ack.Done()
			}
		}
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

func (r *Runtime) acquire(ctx context.Context, c *consumer) error {
	if r.handingBack() {
		return fmt.Errorf("publish to stage %s: %w", c.stage, ack.ErrHandedBack)
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting for stage %s: %w", c.stage, ctx.Err())
	case <-r.handBack.Done():
		return fmt.Errorf("waiting for stage %s: %w", c.stage, ack.ErrHandedBack)
	}
	r.mu.Lock()
	r.inflight++
	r.mu.Unlock()
	return nil
}

func (r *Runtime) release(c *consumer) {
	<-c.slots
	r.mu.Lock()
	r.inflight--
	var wake []chan struct{}
	if r.inflight == 0 {
		wake, r.idle = r.idle, nil
	}
	r.mu.Unlock()
	for _, ch := range wake {
		close(ch)
	}
}

// InFlight is the number of batches published and not yet handled.
func (r *Runtime) InFlight() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight
}

// Drain waits until no batch is in flight, or ctx ends.
func (r *Runtime) Drain(ctx context.Context) error {
	r.mu.Lock()
	if r.inflight == 0 {
		r.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	r.idle = append(r.idle, ch)
	r.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain: %d batches still in flight: %w", r.InFlight(), ctx.Err())
	}
}

// Source returns the Output a source publishes through. stats are kept under
// the given stage name.
func (r *Runtime) Source(name, topic string) Output {
	return &output{r: r, name: name, stats: r.metrics.Stage(name), topic: topic}
}

// Start runs the router in the background and waits until it is running.
func (r *Runtime) Start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.runCancel = cancel
	r.runExited = make(chan struct{})
	go func() {
		r.runErr = r.router.Run(runCtx)
		close(r.runExited)
	}()
	select {
	case <-r.router.Running():
		if bl, ok := r.tr.(Backlogger); ok && !r.tr.InProcess() {
			r.watchers.Go(func() { r.watchBacklog(runCtx, bl) })
		}
		return nil
	case <-r.runExited:
		cancel()
		return fmt.Errorf("router: %w", r.runErr)
	case <-ctx.Done():
		cancel()
		return ctx.Err()
	}
}

// watchBacklog keeps the queue depth of every stage of a broker
// transport: its consumer group's backlog, asked every BacklogInterval.
// A failed answer makes the depth unknown (-1) rather than stale.
func (r *Runtime) watchBacklog(ctx context.Context, bl Backlogger) {
	r.mu.Lock()
	var cs []*consumer
	for _, group := range r.consumers {
		cs = append(cs, group...)
	}
	r.mu.Unlock()
	t := time.NewTicker(r.cfg.BacklogInterval)
	defer t.Stop()
	warned := map[string]bool{}
	ask := func(c *consumer, what string, g *telemetry.Gauge, backlog func(context.Context, string, string) (int64, error)) {
		qctx, cancel := context.WithTimeout(ctx, r.cfg.BacklogInterval)
		n, err := backlog(qctx, c.stage, c.topic)
		cancel()
		if err != nil {
			g.Set(-1)
			if ctx.Err() == nil && !warned[what+c.stage] {
				warned[what+c.stage] = true // once per stage: the broker's own metrics say more
				r.log.Warn(what+" unknown", "stage", c.stage, "topic", c.topic, "error", err)
			}
			return
		}
		g.Set(n)
	}
	dl, _ := bl.(DeadLetterBacklogger)
	for {
		for _, c := range cs {
			ask(c, "stage backlog", c.queued, bl.Backlog)
			if dl != nil && c.parked != nil {
				ask(c, "stage dead-letter queue depth", c.parked, dl.DeadLetterBacklog)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// HandBack gives up the work in flight, for a shutdown whose time is up:
// every handler's context ends, failed batches are neither retried nor
// dead-lettered, and publishing to a stage fails. In one process the
// sources' acknowledgements fail with ack.ErrHandedBack, so that each
// source hands its unit of work back to its sender (and counts it); on a
// broker the stages' inputs are left there for redelivery (counted in
// StageStats.HandedBack). Then Drain returns as soon as the handlers have,
// and Stop does not wait for retries.
func (r *Runtime) HandBack() { r.handBackOnce.Do(r.handBackNow) }

func (r *Runtime) handingBack() bool { return r.handBack.Err() != nil }

// Stop stops consuming: the router takes no more input and waits, within
// ctx, for the handlers still running. Calling it again (say after
// HandBack) waits again for the same stop. In one process, Drain first:
// a batch published and not yet handled when the router stops is lost to
// its acknowledgement.
func (r *Runtime) Stop(ctx context.Context) error {
	if r.runCancel == nil {
		// Never started (Start was not called, or failed before): no
		// handler ran, so there is nothing to wait for. Watermill's Close
		// would wait out its whole close timeout for handlers that never
		// began, past the caller's shutdown budget.
		return nil
	}
	r.runCancel()
	stopped := make(chan struct{})
	go func() {
		<-r.runExited
		r.watchers.Wait() // the backlog watcher uses the transport
		close(stopped)
	}()
	select {
	case <-stopped:
		if r.runErr != nil {
			return fmt.Errorf("router: %w", r.runErr)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop stages: handlers still running: %w", ctx.Err())
	}
}

// Shutdown stops the router (Stop) and closes the transport, within ctx.
func (r *Runtime) Shutdown(ctx context.Context) error {
	defer r.taps.closeAll() // nothing more will be published
	if err := r.Stop(ctx); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- r.tr.Close() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("transport: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close transport: %w", ctx.Err())
	}
}

// Close is Shutdown within Config.CloseTimeout. Call Drain first to finish
// the work in flight.
func (r *Runtime) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.CloseTimeout)
	defer cancel()
	return r.Shutdown(ctx)
}

type output struct {
	r     *Runtime
	name  string // the stage's (or source's)
	stats *telemetry.StageStats
	topic string
}

func (o *output) Emit(ctx context.Context, b *record.Batch) error {
	if o.topic == "" {
		return Permanent(errors.New("stage has no output topic"))
	}
	// Both before publishing: once published, the consumer may change b.
	o.r.tap(o.topic, o.name, b)
	n := b.Len()
	local, remote := o.r.route(o.topic)
	if local == nil {
		if err := o.r.send(ctx, o.topic, b); err != nil {
			return err
		}
		o.stats.RecordsOut.Add(int64(n))
		return nil
	}
	// The groups elsewhere first: a full broker (back-pressure) then fails
	// the batch before a local stage has counted it, so a retry does not
	// count it twice.
	for _, topic := range remote {
		if err := o.r.send(ctx, topic, b); err != nil {
			return err
		}
	}
	for _, c := range local {
		st := c.out.stats
		st.Batches.Inc()
		st.RecordsIn.Add(int64(b.Len()))
		start := time.Now()
		err := c.handler.Handle(ctx, b, c.out)
		c.latency.Observe(time.Since(start))
		if err != nil {
			st.Errors.Inc()
			wrapped := fmt.Errorf("stage %s: %w", c.stage, err)
			if rest, ok := remainder(err); ok && len(local) == 1 && len(remote) == 0 {
				// The stage alone got the batch and finished part of it:
				// the caller sends the rest again, not the batch. With
				// other consumers, which got the whole batch (or none of
				// it), there is no one rest for them all.
				o.stats.RecordsOut.Add(int64(n - rest.Len()))
				return &emitRestError{err: wrapped, rest: rest}
			}
			return wrapped
		}
	}
	o.stats.RecordsOut.Add(int64(n))
	return nil
}

// emitRestError is Emit's failure after the one stage it called in memory
// finished part of the batch (see EmitRest).
type emitRestError struct {
	err  error
	rest *record.Batch
}

func (e *emitRestError) Error() string { return e.err.Error() }
func (e *emitRestError) Unwrap() error { return e.err }

// EmitRest returns what remains undone of the batch given to Emit, when
// Emit failed with err after part of it was done for good: on a broker, a
// topic consumed in this worker alone hands the batch to its stage in
// memory (a fused topic), and that stage returned Remaining. The caller
// then sends the rest again, or passes it on as what remains of its own
// input (Remaining), instead of the whole batch: what was done, accepted
// distribution values say, is not done twice. False: nothing is known
// done, the whole batch remains.
//
// Ask with the error as Emit returned it, not wrapped: a stage further
// down, called in memory by the one Emit called, may have said what
// remains of its own input, which is not the caller's batch.
func EmitRest(err error) (*record.Batch, bool) {
	e, ok := err.(*emitRestError) //nolint:errorlint // only Emit's own error (see above)
	if !ok {
		return nil, false
	}
	return e.rest, true
}

// GroupAddresser is a transport that can publish to one consumer group of
// a topic, so that a worker running some of a topic's consumers hands the
// batch to them in memory and publishes it for the others only.
type GroupAddresser interface {
	// GroupTopic is the topic to publish to for group alone.
	GroupTopic(topic, group string) string
}

// route returns the consumers of topic to call in memory and the topics to
// publish to for the groups that run elsewhere; no local consumers means
// the batch goes through the transport to topic as usual. In process the
// transport is memory already; on a broker a topic is fused when all its
// consumers run here, or when some do and the transport can address the
// others.
func (r *Runtime) route(topic string) (local []*consumer, remote []string) {
	if r.tr.InProcess() || r.cfg.Topology == nil || topic == r.cfg.DLQTopic {
		return nil, nil
	}
	groups := r.cfg.Topology[topic]
	if len(groups) == 0 {
		return nil, nil
	}
	r.mu.Lock()
	here := r.consumers[topic]
	r.mu.Unlock()
	var elsewhere []string
	for _, g := range groups {
		found := false
		for _, c := range here {
			if c.stage == g {
				local, found = append(local, c), true
				break
			}
		}
		if !found {
			elsewhere = append(elsewhere, g)
		}
	}
	if len(local) == 0 {
		return nil, nil
	}
	if len(elsewhere) == 0 {
		return local, nil
	}
	addr, ok := r.tr.(GroupAddresser)
	if !ok {
		return nil, nil
	}
	for _, g := range elsewhere {
		remote = append(remote, addr.GroupTopic(topic, g))
	}
	return local, remote
}

// DeadLetter sends b to the dead-letter topic. It is counted (StageStats.Dead
// of b.Stage) when the archive has written it, not here: a dead letter
// published and never written must not be reported as kept.
func (o *output) DeadLetter(ctx context.Context, b *record.Batch) error {
	if o.r.taps.n.Load() != 0 {
		by := o.name
		if b.Stage != "" {
			by = b.Stage
		}
		o.r.taps.offer(o.r.cfg.DLQTopic, by, b)
	}
	if err := o.r.send(ctx, o.r.cfg.DLQTopic, b); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	return nil
}

// publisher lets Watermill's poison middleware publish through the runtime's
// accounting.
type publisher struct{ r *Runtime }

func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	for _, msg := range msgs {
		b, err := p.r.batchOf(msg)
		if err != nil {
			return err
		}
		if p.r.taps.n.Load() != 0 {
			c := *b
			c.Stage = msg.Metadata.Get(middleware.PoisonedHandlerKey)
			c.Reason = msg.Metadata.Get(middleware.ReasonForPoisonedKey)
			p.r.taps.offer(topic, c.Stage, &c)
		}
		if !p.r.tr.InProcess() {
			// A broker carries no metadata we rely on: the reason goes into
			// the dead-letter batch itself.
			c := *b
			c.Stage = msg.Metadata.Get(middleware.PoisonedHandlerKey)
			c.Reason = msg.Metadata.Get(middleware.ReasonForPoisonedKey)
			if err := p.r.send(msg.Context(), topic, &c); err != nil {
				return err
			}
			continue
		}
		// The dead letter outlives the failed handler's context, which
		// ends when that handler returns; waiting for a slot does not.
		ctx := msg.Context()
		if _, ok := restOf(msg); ok {
			// What the handler left undone, not its whole input: the
			// message carries that in memory, so a new one carries the rest.
			rest, err := p.r.codec.Marshal(ctx, b)
			if err != nil {
				return err
			}
			maps.Copy(rest.Metadata, msg.Metadata)
			msg = rest
		}
		msg.SetContext(context.WithoutCancel(ctx))
		if err := p.r.publishMsg(ctx, topic, msg, b); err != nil {
			return err
		}
	}
	return nil
}

func (p *publisher) Close() error { return nil }

// QuietLogger adapts log for Watermill, keeping its per-message chatter
// out of the logs: only its warnings and errors get through.
func QuietLogger(log *slog.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLogger(slog.New(quiet{log.Handler()}))
}

// quiet passes only warnings and errors.
type quiet struct{ slog.Handler }

func (q quiet) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && q.Handler.Enabled(ctx, l)
}
func (q quiet) WithAttrs(a []slog.Attr) slog.Handler { return quiet{q.Handler.WithAttrs(a)} }
func (q quiet) WithGroup(n string) slog.Handler      { return quiet{q.Handler.WithGroup(n)} }
