package stage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
	"github.com/gwpipe/gwpipe/pkg/testkit/moto"
)

// collector remembers every record id it saw, and can fail on demand.
type collector struct {
	mu   sync.Mutex
	ids  map[string]int
	got  chan struct{}
	fail func(b *record.Batch) error
}

func newCollector() *collector {
	return &collector{ids: map[string]int{}, got: make(chan struct{}, 1_000_000)}
}

func (c *collector) Handle(_ context.Context, in *record.Batch, _ Output) error {
	if c.fail != nil {
		if err := c.fail(in); err != nil {
			return err
		}
	}
	c.mu.Lock()
	for _, r := range in.Records {
		c.ids[r.EventID]++
	}
	c.mu.Unlock()
	for range in.Records {
		c.got <- struct{}{}
	}
	return nil
}

func (c *collector) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-c.got:
		case <-deadline:
			t.Fatalf("received %d of %d records", i, n)
		}
	}
}

// brokerRoundTrip runs a two-stage pipeline on a broker transport: batches
// published by a source reach the stage with their records, origins and
// attributes; a batch over the broker's message limit is split; a batch
// that fails permanently reaches the dead-letter stage with its reason
// inside the payload; and the source is acknowledged once the broker holds
// the batch.
func brokerRoundTrip(t *testing.T, tr Transport) {
	rt, err := New(Config{InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, MaxRetries: 1}, tr, nil, telemetry.NewRegistry())
	require.NoError(t, err)
	decode := newCollector()
	decode.fail = func(b *record.Batch) error {
		if b.ID == "poison" {
			return Permanent(errors.New("not a CloudWatch envelope"))
		}
		return nil
	}
	dead := newCollector()
	var deadBatches []*record.Batch
	var mu sync.Mutex
	require.NoError(t, rt.Add(Stage{Name: "decode", Input: "raw", Handler: decode}))
	require.NoError(t, rt.Add(Stage{Name: "dlq", Input: "dlq", Handler: HandlerFunc(func(ctx context.Context, in *record.Batch, out Output) error {
		mu.Lock()
		deadBatches = append(deadBatches, in)
		mu.Unlock()
		return dead.Handle(ctx, in, out)
	})}))
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() { _ = rt.Close() })

	src := rt.Source("ingest", "raw")
	o := &record.Origin{Source: "firehose", RequestID: "r1", Account: "123456789012", LogGroup: "g"}
	total := 0
	for i := 0; i < 5; i++ {
		b := &record.Batch{ID: fmt.Sprintf("b%d", i), Origin: o}
		for j := 0; j < 100; j++ {
			b.Records = append(b.Records, record.Record{Origin: o, EventID: fmt.Sprintf("%d-%d", i, j), Timestamp: int64(j), Message: []byte("hello"),
				Attrs: []record.Attr{record.IntAttr("http.status_code", 200)}})
		}
		tr := ack.New()
		b.Ack = tr
		require.NoError(t, src.Emit(context.Background(), b))
		tr.Done()
		require.NoError(t, tr.Wait(context.Background()), "acknowledged once the broker holds the batch")
		total += b.Len()
	}
	// Larger than any broker message: incompressible records.
	big := &record.Batch{ID: "big", Origin: o}
	for j := 0; j < 600; j++ {
		big.Records = append(big.Records, record.Record{Origin: o, EventID: fmt.Sprintf("big-%d", j), Message: []byte(strings.Repeat(watermill.NewUUID(), 60))})
	}
	require.NoError(t, src.Emit(context.Background(), big))
	total += big.Len()
	decode.wait(t, total)
	decode.mu.Lock()
	assert.Len(t, decode.ids, total)
	for id, n := range decode.ids {
		assert.Equal(t, 1, n, "record %s", id)
	}
	decode.mu.Unlock()

	require.NoError(t, src.Emit(context.Background(), &record.Batch{ID: "poison", Origin: o, Records: []record.Record{{EventID: "p1", Message: []byte("x")}}}))
	dead.wait(t, 1)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, deadBatches, 1)
	assert.Equal(t, "decode", deadBatches[0].Stage)
	assert.Contains(t, deadBatches[0].Reason, "not a CloudWatch envelope")
}

// natsServer starts an embedded JetStream server for the test.
func natsServer(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second))
	t.Cleanup(s.Shutdown)
	return s
}

// motoAWS starts moto_server and returns the SDK configuration reaching
// it; the test is skipped with -short.
func motoAWS(t *testing.T) aws.Config {
	t.Helper()
	return moto.Config(t)
}

func TestNATSTransport(t *testing.T) {
	s := natsServer(t)
	tr, err := NewNATS(context.Background(), NATSConfig{URL: s.ClientURL(), Consumers: map[string][]string{"raw": {"decode"}, "dlq": {"dlq"}}, AckWait: 5 * time.Second}, nil)
	require.NoError(t, err)
	brokerRoundTrip(t, tr)
}

func TestSQSTransport(t *testing.T) {
	awsCfg := motoAWS(t)
	tr, err := NewSQS(context.Background(), SQSConfig{AWS: awsCfg, Consumers: map[string][]string{"raw": {"decode"}, "dlq": {"dlq"}},
		VisibilityTimeout: 10 * time.Second}, nil)
	require.NoError(t, err)
	brokerRoundTrip(t, tr)
}

// brokerBacklog publishes to a topic read by two groups, none of them
// running, and to one group alone where the transport can address one
// (groupTopic not nil): each group's backlog counts what waits for it.
func brokerBacklog(t *testing.T, tr Transport, groupTopic func(topic, group string) string) {
	t.Helper()
	bl, ok := tr.(Backlogger)
	require.True(t, ok, "the transport tells its backlog")
	codec := tr.Codec()
	publish := func(topic string) {
		msg, err := codec.Marshal(context.Background(), &record.Batch{ID: watermill.NewUUID(), Records: []record.Record{{EventID: "e", Message: []byte("x")}}})
		require.NoError(t, err)
		require.NoError(t, tr.Publisher().Publish(topic, msg))
	}
	for range 3 {
		publish("raw")
	}
	want := map[string]int64{"decode": 3, "other": 3}
	if groupTopic != nil {
		publish(groupTopic("raw", "decode"))
		want["decode"]++
	}
	// A broker may count a stored message for a consumer a moment after
	// acknowledging its publish (JetStream updates a consumer's pending
	// count in the consumer's own goroutine): polled until it does.
	for group, want := range want {
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			n, err := bl.Backlog(context.Background(), group, "raw")
			require.NoError(c, err)
			assert.Equal(c, want, n, group)
		}, 10*time.Second, 10*time.Millisecond)
	}
	_, err := bl.Backlog(context.Background(), "nobody", "raw")
	assert.Error(t, err, "a group that does not exist has no backlog")
}

func TestNATSBacklog(t *testing.T) {
	s := natsServer(t)
	tr, err := NewNATS(context.Background(), NATSConfig{URL: s.ClientURL(), Consumers: map[string][]string{"raw": {"decode", "other"}}}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	brokerBacklog(t, tr, tr.GroupTopic)
}

// TestNATSConsumersLetAFleetFillItsPrefetch: the messages in flight a
// consumer allows are enough for a large fleet of workers each holding what
// it may fetch ahead (with 64 per receive loop, an eighth worker of a stage
// got next to nothing).
func TestNATSConsumersLetAFleetFillItsPrefetch(t *testing.T) {
	s := natsServer(t)
	cfg := NATSConfig{URL: s.ClientURL(), Consumers: map[string][]string{"raw": {"decode"}}}
	tr, err := NewNATS(context.Background(), cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	c, err := tr.js.Consumer(context.Background(), "raw", ConsumerName("decode", "raw"))
	require.NoError(t, err)
	info, err := c.Info(context.Background())
	require.NoError(t, err)
	d := tr.cfg
	perWorker := d.Subscribers * (d.Prefetch + 1)
	assert.GreaterOrEqual(t, info.Config.MaxAckPending, 100*perWorker, "a hundred workers fill their prefetch")
}

func TestSQSBacklog(t *testing.T) {
	awsCfg := motoAWS(t)
	tr, err := NewSQS(context.Background(), SQSConfig{AWS: awsCfg, TopicPrefix: "backlog-", Consumers: map[string][]string{"raw": {"decode", "other"}}}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	brokerBacklog(t, tr, nil)
}
