package stage

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// natsWorker runs the stage deliver on topic enriched, as a worker of a
// fleet: dead letters go to the dlq topic, which no worker here reads, so
// that the test can count them on the broker.
func natsWorker(t *testing.T, s *server.Server, ackWait time.Duration, h Handler) *Runtime {
	t.Helper()
	rt := natsWorkerOn(t, NATSConfig{URL: s.ClientURL(), AckWait: ackWait}, nil, h)
	t.Cleanup(func() { _ = rt.Close() })
	return rt
}

// natsWorkerOn is natsWorker on the broker and settings of cfg (two
// handlers unless it says otherwise), logging the transport to logger.
func natsWorkerOn(t *testing.T, cfg NATSConfig, logger watermill.LoggerAdapter, h Handler) *Runtime {
	t.Helper()
	if cfg.Subscribers == 0 {
		cfg.Subscribers = 2
	}
	cfg.Consumers = map[string][]string{"enriched": {"deliver"}, "dlq": {"archive"}}
	tr, err := NewNATS(context.Background(), cfg, logger)
	require.NoError(t, err)
	rt, err := New(Config{MaxRetries: 2, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond}, tr, nil, telemetry.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, rt.Add(Stage{Name: "deliver", Input: "enriched", Handler: h}))
	require.NoError(t, rt.Start(context.Background()))
	return rt
}

// emitBatches publishes n batches of size records, ids "<batch>-<record>".
func emitBatches(t *testing.T, rt *Runtime, n, size int) {
	t.Helper()
	src := rt.Source("enrich", "enriched")
	for i := range n {
		b := &record.Batch{ID: fmt.Sprint(i), Origin: &record.Origin{Source: "test"}}
		for j := range size {
			b.Records = append(b.Records, record.Record{EventID: fmt.Sprintf("%d-%d", i, j), Message: []byte("x")})
		}
		require.NoError(t, src.Emit(context.Background(), b))
	}
}

// brokerState is what the broker holds once every worker is gone: the
// deliver group's messages delivered and not acknowledged, and the dead
// letters.
func brokerState(t *testing.T, s *server.Server) (ackPending int, deadLetters uint64) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	c, err := js.Consumer(ctx, "enriched", ConsumerName("deliver", "enriched"))
	require.NoError(t, err)
	ci, err := c.Info(ctx)
	require.NoError(t, err)
	st, err := js.Stream(ctx, "dlq")
	require.NoError(t, err)
	si, err := st.Info(ctx)
	require.NoError(t, err)
	return ci.NumAckPending, si.State.Msgs
}

// TestNATSStopFinishesHandlersInFlight: stopping a worker (SIGTERM's
// drain) lets the batches it is handling finish and acknowledges them; the
// batches it fetched ahead go back to the broker for the next worker.
// Nothing is dead-lettered, nothing is handled twice.
func TestNATSStopFinishesHandlersInFlight(t *testing.T) {
	s := natsServer(t)
	started := make(chan string, 100)
	release := make(chan struct{})
	first := newCollector()
	rt := natsWorker(t, s, neverRedelivered, HandlerFunc(func(ctx context.Context, in *record.Batch, out Output) error {
		started <- in.ID
		select {
		case <-release: // the intake answers
		case <-ctx.Done():
			return fmt.Errorf("intake: %w", ctx.Err())
		}
		return first.Handle(ctx, in, out)
	}))
	emitBatches(t, rt, 10, 10)
	inFlight := []string{<-started, <-started} // one per handler

	stopMidBatch(t, rt, release)

	first.mu.Lock()
	for _, id := range inFlight {
		assert.Equal(t, 1, first.ids[id+"-0"], "batch %s in flight at the stop was finished", id)
	}
	handled := len(first.ids)
	first.mu.Unlock()

	// Within the collector's wait, far less than ack_wait: what the first
	// worker had fetched ahead was handed back at once.
	second := newCollector()
	rt2 := natsWorker(t, s, neverRedelivered, second)
	second.wait(t, 100-handled)
	require.NoError(t, rt2.Shutdown(context.Background()))
	second.mu.Lock()
	defer second.mu.Unlock()
	for id := range first.ids {
		assert.Zero(t, second.ids[id], "record %s handled again", id)
	}
	assert.Len(t, second.ids, 100-handled, "the next worker gets the rest")
	ackPending, dead := brokerState(t, s)
	assert.Zero(t, ackPending, "everything handled is acknowledged")
	assert.Zero(t, dead, "nothing is dead-lettered")
}

// stopMidBatch stops a worker whose handlers wait for release: they are
// released once the router takes no more input (what Stop does first).
func stopMidBatch(t *testing.T, rt *Runtime, release chan struct{}) {
	t.Helper()
	rt.runCancel()
	stopped := make(chan error, 1)
	go func() { stopped <- rt.Stop(context.Background()) }()
	close(release)
	require.NoError(t, <-stopped)
	require.NoError(t, rt.Shutdown(context.Background()))
}

// neverRedelivered is an ack_wait longer than any test: a message the
// broker gives again within a test was handed back, not given up.
const neverRedelivered = 10 * time.Minute

// TestNATSStopUnderLoad: a worker stopped while messages keep arriving
// drains without a panic (watermill-nats' subscriber could send on the
// channel it had closed), and the next worker handles the rest: every
// record once.
func TestNATSStopUnderLoad(t *testing.T) {
	s := natsServer(t)
	const batches, size = 400, 5
	first := newCollector()
	var n atomic.Int64
	halfway := make(chan struct{})
	var once sync.Once
	rt := natsWorker(t, s, neverRedelivered, HandlerFunc(func(ctx context.Context, in *record.Batch, out Output) error {
		if n.Add(1) == batches/4 {
			once.Do(func() { close(halfway) })
		}
		return first.Handle(ctx, in, out)
	}))
	emitBatches(t, rt, batches, size)
	<-halfway
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, rt.Shutdown(ctx))

	first.mu.Lock()
	handled := len(first.ids)
	for id, c := range first.ids {
		assert.Equal(t, 1, c, "record %s", id)
	}
	first.mu.Unlock()

	second := newCollector()
	rt2 := natsWorker(t, s, neverRedelivered, second)
	second.wait(t, batches*size-handled)
	require.NoError(t, rt2.Shutdown(context.Background()))
	second.mu.Lock()
	defer second.mu.Unlock()
	for id := range first.ids {
		assert.Zero(t, second.ids[id], "record %s handled again", id)
	}
	assert.Len(t, second.ids, batches*size-handled)
	ackPending, dead := brokerState(t, s)
	assert.Zero(t, ackPending, "everything handled is acknowledged")
	assert.Zero(t, dead, "nothing is dead-lettered")
}

// slowIntake is a delivery stage whose intake takes hold to answer the
// first delivery of one batch, and which counts every delivery of each.
type slowIntake struct {
	slow  string
	hold  time.Duration
	calls sync.Map      // batch id → *atomic.Int64
	done  chan struct{} // closed when the slow delivery returned
}

func newSlowIntake(slow string, hold time.Duration) *slowIntake {
	return &slowIntake{slow: slow, hold: hold, done: make(chan struct{})}
}

func (s *slowIntake) Handle(ctx context.Context, in *record.Batch, _ Output) error {
	n, _ := s.calls.LoadOrStore(in.ID, new(atomic.Int64))
	if n.(*atomic.Int64).Add(1) == 1 && in.ID == s.slow {
		defer close(s.done)
		select {
		case <-time.After(s.hold):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *slowIntake) assertEachOnce(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		n, ok := s.calls.Load(id)
		if assert.True(t, ok, "batch %s delivered", id) {
			assert.Equal(t, int64(1), n.(*atomic.Int64).Load(), "batch %s delivered once", id)
		}
	}
}

// TestNATSRenewsAckWaitWhileHandling: a batch whose handling outlasts
// ack_wait (an intake slow to answer, retried) is marked in progress, so
// that the broker does not give it to the other worker meanwhile.
func TestNATSRenewsAckWaitWhileHandling(t *testing.T) {
	s := natsServer(t)
	const ackWait = 500 * time.Millisecond
	slow := newSlowIntake("0", 4*ackWait)
	a := natsWorker(t, s, ackWait, slow)
	b := natsWorker(t, s, ackWait, slow)
	emitBatches(t, a, 1, 10)
	<-slow.done
	for _, rt := range []*Runtime{a, b} {
		require.NoError(t, rt.Shutdown(context.Background()))
	}
	slow.assertEachOnce(t, "0")
	ackPending, dead := brokerState(t, s)
	assert.Zero(t, ackPending)
	assert.Zero(t, dead)
}

// outageIntake is a delivery stage behind an intake that is down until
// a while after the first delivery: every delivery until then waits for it
// to come back. It counts the deliveries of each batch.
type outageIntake struct {
	length time.Duration
	once   sync.Once
	up     chan struct{}
	calls  sync.Map // batch id → *atomic.Int64
}

func (o *outageIntake) Handle(ctx context.Context, in *record.Batch, _ Output) error {
	o.once.Do(func() { time.AfterFunc(o.length, func() { close(o.up) }) })
	n, _ := o.calls.LoadOrStore(in.ID, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	select {
	case <-o.up:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestNATSRenewsMessagesFetchedAhead: in an intake outage longer than
// ack_wait, the batches a worker fetched ahead, waiting behind the ones
// its handlers are retrying, stay with it too (they were given to the
// other worker at ack_wait and delivered twice): every batch once.
func TestNATSRenewsMessagesFetchedAhead(t *testing.T) {
	s := natsServer(t)
	const ackWait = 500 * time.Millisecond
	const batches = 12
	intake := &outageIntake{length: 4 * ackWait, up: make(chan struct{})}
	a := natsWorker(t, s, ackWait, intake)
	b := natsWorker(t, s, ackWait, intake)
	emitBatches(t, a, batches, 5)
	<-intake.up
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for i := range batches {
			_, ok := intake.calls.Load(fmt.Sprint(i))
			assert.True(c, ok, "batch %d delivered", i)
		}
	}, 30*time.Second, 20*time.Millisecond)
	for _, rt := range []*Runtime{a, b} {
		require.NoError(t, rt.Shutdown(context.Background()))
	}
	for i := range batches {
		n, _ := intake.calls.Load(fmt.Sprint(i))
		assert.Equal(t, int64(1), n.(*atomic.Int64).Load(), "batch %d delivered once", i)
	}
	ackPending, dead := brokerState(t, s)
	assert.Zero(t, ackPending)
	assert.Zero(t, dead)
}

// TestNATSRenewSkipsMessagesSettledMeanwhile: a message a worker has just
// acknowledged stays held until the worker forgets it (settled runs after
// the ack returns), so the renewal may list it in between: it is not
// reported as a message the broker may redeliver.
func TestNATSRenewSkipsMessagesSettledMeanwhile(t *testing.T) {
	s := natsServer(t)
	ctx := context.Background()
	tr, err := NewNATS(ctx, NATSConfig{URL: s.ClientURL(), AckWait: neverRedelivered,
		Consumers: map[string][]string{"enriched": {"deliver"}}}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	require.NoError(t, tr.Publisher().Publish("enriched", message.NewMessage(watermill.NewUUID(), []byte("x"))))
	ms, err := tr.Subscriber("deliver")
	require.NoError(t, err)
	js := ms.(*jsSubscriber)
	log := &countingLogger{}
	js.logger = log
	c, err := js.js.Consumer(ctx, "enriched", ConsumerName("deliver", "enriched"))
	require.NoError(t, err)
	b, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	acked := <-b.Messages()
	require.NotNil(t, acked)
	sub := &subscription{s: js, c: c, held: map[jetstream.Msg]struct{}{acked: {}}}
	require.NoError(t, acked.DoubleAck(ctx)) // the worker's ack returned; settled not yet called

	sub.renewHeld()
	assert.Empty(t, log.snapshot(), "nothing to report")

	// A message still held is renewed, and its failure still reported.
	require.NoError(t, tr.Publisher().Publish("enriched", message.NewMessage(watermill.NewUUID(), []byte("y"))))
	b, err = c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	pending := <-b.Messages()
	require.NotNil(t, pending)
	sub.held = map[jetstream.Msg]struct{}{pending: {}}
	sub.renewHeld()
	assert.Empty(t, log.snapshot())
	require.NoError(t, js.nc.Drain())
	require.Eventually(t, js.nc.IsClosed, 5*time.Second, time.Millisecond)
	sub.renewHeld()
	assert.Len(t, log.snapshot(), 1, "a renewal that failed is reported")
}

// A batch the broker hands out for the last time (transport.nats max
// deliveries: each worker before died or stopped holding it) is
// dead-lettered, with why, instead of handled: JetStream would otherwise
// keep it in the stream after that delivery, where no worker reads it and
// no figure counts it.
func TestNATSLastDeliveryIsDeadLettered(t *testing.T) {
	s := natsServer(t)
	const maxDeliver = 3
	tr, err := NewNATS(context.Background(), NATSConfig{URL: s.ClientURL(), MaxDeliver: maxDeliver, AckWait: 5 * time.Second,
		Consumers: map[string][]string{"raw": {"decode"}, "dlq": {"dlq"}}}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	ctx := context.Background()
	msg, err := tr.Codec().Marshal(ctx, &record.Batch{ID: "held", Records: []record.Record{{EventID: "e1", Message: []byte("x")}}})
	require.NoError(t, err)
	require.NoError(t, tr.Publisher().Publish("raw", msg))
	// Handed out, and given back unsettled, max deliveries times.
	c, err := tr.js.Consumer(ctx, "raw", ConsumerName("decode", "raw"))
	require.NoError(t, err)
	for i := 1; i <= maxDeliver; i++ {
		b, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		n := 0
		for m := range b.Messages() {
			n++
			require.NoError(t, m.Nak())
		}
		require.Equal(t, 1, n, "delivery %d", i)
	}

	rt, err := New(Config{InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, MaxRetries: 1}, tr, nil, telemetry.NewRegistry())
	require.NoError(t, err)
	decode := newCollector()
	dead := make(chan *record.Batch, 10)
	require.NoError(t, rt.Add(Stage{Name: "decode", Input: "raw", Handler: decode}))
	require.NoError(t, rt.Add(Stage{Name: "dlq", Input: "dlq", Handler: HandlerFunc(func(_ context.Context, in *record.Batch, _ Output) error {
		dead <- in
		return nil
	})}))
	require.NoError(t, rt.Start(ctx))
	t.Cleanup(func() { _ = rt.Close() })
	select {
	case b := <-dead:
		assert.Equal(t, "held", b.ID)
		assert.Equal(t, "decode", b.Stage)
		assert.Contains(t, b.Reason, "given to a worker 3 times and never settled")
		require.Len(t, b.Records, 1)
		assert.Equal(t, "e1", b.Records[0].EventID)
	case <-time.After(30 * time.Second):
		t.Fatal("the batch was not dead-lettered")
	}
	decode.mu.Lock()
	assert.Empty(t, decode.ids, "not handled once more")
	decode.mu.Unlock()
	// Settled on the broker: nothing left in the stream for anyone.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		info, err := c.Info(ctx)
		require.NoError(ct, err)
		assert.Zero(ct, info.NumAckPending+int(info.NumPending))
		st, err := tr.js.Stream(ctx, "raw")
		require.NoError(ct, err)
		sinfo, err := st.Info(ctx)
		require.NoError(ct, err)
		assert.Zero(ct, sinfo.State.Msgs, "acknowledged: the interest stream dropped it")
	}, 10*time.Second, 20*time.Millisecond)
}
