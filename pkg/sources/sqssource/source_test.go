package sqssource

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/awsconf"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/runtime/membudget"
	"github.com/gwpipe/gwpipe/pkg/sources/s3obj"
	"github.com/gwpipe/gwpipe/pkg/sources/s3obj/s3objtest"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

// sink stands in for the pipeline: it keeps what it is given and settles
// each batch's acknowledgement as the stage runtime would, at once or
// when the test releases it.
type sink struct {
	mu     sync.Mutex
	events []record.Record
	dead   []record.Record
	raw    []record.Record
	hold   bool
	held   []*record.Batch
}

type sinkOut struct {
	s   *sink
	raw bool
}

func (o sinkOut) Emit(_ context.Context, b *record.Batch) error { return o.s.take(b, o.raw, false) }
func (o sinkOut) DeadLetter(_ context.Context, b *record.Batch) error {
	return o.s.take(b, o.raw, true)
}

func (s *sink) take(b *record.Batch, raw, dead bool) error {
	b.Ack.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range b.Records {
		r.Message = bytes.Clone(r.Message)
		switch {
		case dead:
			s.dead = append(s.dead, r)
		case raw:
			s.raw = append(s.raw, r)
		default:
			s.events = append(s.events, r)
		}
	}
	if s.hold {
		s.held = append(s.held, b)
		return nil
	}
	b.Ack.Done()
	return nil
}

// handBack fails the held batches as the stage runtime does when a
// shutdown's time is up.
func (s *sink) handBack() {
	s.mu.Lock()
	held := s.held
	s.held = nil
	s.mu.Unlock()
	for _, b := range held {
		b.Ack.Fail(fmt.Errorf("stage deliver-logs: %w", ack.ErrHandedBack))
	}
}

func (s *sink) release() {
	s.mu.Lock()
	held := s.held
	s.held, s.hold = nil, false
	s.mu.Unlock()
	for _, b := range held {
		b.Ack.Done()
	}
}

func (s *sink) snapshot() (events, dead, raw []record.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]record.Record(nil), s.events...), append([]record.Record(nil), s.dead...), append([]record.Record(nil), s.raw...)
}

type env struct {
	moto    *s3objtest.Moto
	sqs     *sqs.Client
	s3      *s3.Client
	sns     *sns.Client
	metrics *telemetry.Registry
	sink    *sink
	objects s3obj.Getter // what start reads objects with; nil: s3
}

func newEnv(t *testing.T) *env {
	m := s3objtest.StartMoto(t)
	cfg := m.AWSConfig()
	return &env{
		moto: m, sqs: sqs.NewFromConfig(cfg), sns: sns.NewFromConfig(cfg),
		s3:      awsconf.S3(cfg),
		metrics: telemetry.NewRegistry(), sink: &sink{},
	}
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (e *env) queue(t *testing.T, name string, attrs map[string]string) (url, arn string) {
	t.Helper()
	ctx := context.Background()
	out, err := e.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	require.NoError(t, err)
	a, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	require.NoError(t, err)
	return *out.QueueUrl, a.Attributes["QueueArn"]
}

func (e *env) start(t *testing.T, cfg Config) *Source {
	t.Helper()
	if cfg.VisibilityTimeout == 0 {
		cfg.VisibilityTimeout = 5 * time.Second
	}
	if cfg.MaxConcurrentMessages == 0 {
		// One receiver per queue (the default, 20, starts two): moto checks
		// that a message is visible and marks it received without a lock,
		// so two receives at once on a queue may both be handed it. SQS
		// delivers at least once too, and the source works on such copies
		// once (TestDuplicateDeliveriesAreWorkedOnOnce, on a fake that
		// serves copies on purpose), but a copy by chance here would change
		// the counts these tests hold the source to.
		cfg.MaxConcurrentMessages = 10
	}
	cfg.WaitTime = time.Second
	cfg.DefaultRegion = s3objtest.Region
	var objects s3obj.Getter = e.s3
	if e.objects != nil {
		objects = e.objects
	}
	src, err := New(cfg, e.sqs, objects, sinkOut{e.sink, true}, sinkOut{e.sink, false}, testLogger(), e.metrics)
	require.NoError(t, err)
	require.NoError(t, src.Start(context.Background()))
	t.Cleanup(func() {
		e.sink.release()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, src.Stop(ctx))
	})
	return src
}

// waitQueueEmpty waits until a queue holds no message, visible or in
// flight, as SQS reports it.
func (e *env) waitQueue(t *testing.T, url string, cond func(visible, inflight int) bool) {
	t.Helper()
	var v, nv int
	until(t, 60*time.Second, 20*time.Millisecond, func(ctx context.Context) bool {
		out, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		}})
		require.NoError(t, err)
		fmt.Sscan(out.Attributes["ApproximateNumberOfMessages"], &v)
		fmt.Sscan(out.Attributes["ApproximateNumberOfMessagesNotVisible"], &nv)
		return cond(v, nv)
	}, func() string { return fmt.Sprintf("queue %s: %d visible, %d in flight", url, v, nv) })
}

// until asks done every period until it reports true. When within has
// passed (done's context ends then too), the test fails with what says,
// and the deadline.
func until(t *testing.T, within, every time.Duration, done func(ctx context.Context) bool, says func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !done(ctx) {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", says(), ctx.Err())
		case <-tick.C:
		}
	}
}

func empty(v, nv int) bool { return v == 0 && nv == 0 }

// waitCounter waits for one of the source's own counters.
func waitCounter(t *testing.T, m *telemetry.Registry, name string, atLeast int64) {
	t.Helper()
	until(t, 60*time.Second, 10*time.Millisecond, func(context.Context) bool { return m.Value(name) >= atLeast },
		func() string { return fmt.Sprintf("%s = %d, want ≥ %d", name, m.Value(name), atLeast) })
}

// waitDeleted waits until the source has deleted messages, and the copies
// of them SQS handed it besides (sqs.duplicate_messages: each copy's
// receipt handle is deleted too), and checks it deleted no more.
func waitDeleted(t *testing.T, m *telemetry.Registry, messages int64) {
	t.Helper()
	until(t, 60*time.Second, 10*time.Millisecond, func(context.Context) bool {
		return m.Value("sqs.messages_deleted") >= messages+m.Value("sqs.duplicate_messages")
	}, func() string {
		return fmt.Sprintf("sqs.messages_deleted = %d, want %d and %d copies", m.Value("sqs.messages_deleted"), messages, m.Value("sqs.duplicate_messages"))
	})
	assert.Equal(t, messages+m.Value("sqs.duplicate_messages"), m.Value("sqs.messages_deleted"),
		"%d messages deleted, with %d copies", messages, m.Value("sqs.duplicate_messages"))
}

func (e *env) bucket(t *testing.T, name string) {
	t.Helper()
	_, err := e.s3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)})
	require.NoError(t, err)
}

func (e *env) put(t *testing.T, bucket, key string, data []byte) {
	t.Helper()
	_, err := e.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)})
	require.NoError(t, err)
}

func TestS3NotificationsDirectAndThroughSNS(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	direct, directARN := e.queue(t, "direct", nil)
	viaSNS, viaSNSARN := e.queue(t, "via-sns", nil)
	viaRaw, viaRawARN := e.queue(t, "via-sns-raw", nil)
	topic, err := e.sns.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("logs")})
	require.NoError(t, err)
	_, err = e.sns.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(viaSNSARN)})
	require.NoError(t, err)
	_, err = e.sns.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(viaRawARN),
		Attributes: map[string]string{"RawMessageDelivery": "true"}})
	require.NoError(t, err)
	e.bucket(t, "archive")
	_, err = e.s3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String("archive"),
		NotificationConfiguration: &s3types.NotificationConfiguration{
			QueueConfigurations: []s3types.QueueConfiguration{{QueueArn: aws.String(directARN), Events: []s3types.Event{"s3:ObjectCreated:*"}}},
			TopicConfigurations: []s3types.TopicConfiguration{{TopicArn: topic.TopicArn, Events: []s3types.Event{"s3:ObjectCreated:*"}}},
		},
	})
	require.NoError(t, err)

	at := time.Now().UTC()
	a, err := s3objtest.FirehoseArchive(7, 3000, 1000, at)
	require.NoError(t, err)
	// Keys with characters the notification form-encodes.
	keys := []string{"fh/2026/11/29/06/gw stream-1-2026-11-29-06-00-00-a+b", "fh/2026/11/29/06/gw-stream-1-2026-11-29-06-00-01-c%d", "fh/2026/11/29/06/plain"}
	for i, obj := range a.Objects {
		e.put(t, "archive", keys[i%len(keys)]+fmt.Sprint(i), obj)
	}

	e.start(t, Config{QueueURLs: []string{direct, viaSNS, viaRaw}, MaxConcurrentMessages: 10})
	for _, q := range []string{direct, viaSNS, viaRaw} {
		e.waitQueue(t, q, empty)
	}
	events, dead, _ := e.sink.snapshot()
	assert.Empty(t, dead)
	// Every object was announced on the three queues: read three times.
	require.Len(t, events, 3*len(a.Events))
	seen := map[string]int{}
	for _, ev := range events {
		seen[ev.EventID]++
		assert.Equal(t, "s3", ev.Origin.Source)
		assert.Equal(t, "arn:aws:s3:::archive", ev.Origin.SourceARN)
		assert.Equal(t, s3objtest.Region, ev.Origin.Region)
		assert.NotEmpty(t, ev.Origin.LogGroup)
	}
	for _, want := range a.Events {
		assert.Equal(t, 3, seen[want.ID], "event %s", want.ID)
	}
	assert.EqualValues(t, 3*len(a.Objects), e.metrics.Value("sqs.objects_read"))
	// moto sends s3:TestEvent when notifications are configured: to the
	// queue and to the topic (so to both of its subscribers).
	assert.EqualValues(t, 3, e.metrics.Value("sqs.messages_skipped"), "the test events are skipped and deleted")
	assert.Zero(t, e.metrics.Value("sqs.messages_failed"))
}

func TestCloudWatchAndFirehosePayloadsGoToTheRawTopic(t *testing.T) {
	e := newEnv(t)
	q, _ := e.queue(t, "payloads", nil)
	envelope := []byte(`{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":1,"message":"m"}]}`)
	b64 := base64.StdEncoding.EncodeToString(corpus.Gzip(envelope))
	bodies := map[string]struct {
		kind record.Kind
		n    int
	}{
		b64:                                  {record.KindRaw, 1},
		string(envelope):                     {record.KindLine, 1},
		`{"awslogs":{"data":"` + b64 + `"}}`: {record.KindRaw, 1},
		`{"requestId":"r","timestamp":1,"records":[{"data":"` + b64 + `"},{"data":"` + b64 + `"}]}`: {record.KindRaw, 2},
	}
	for body := range bodies {
		_, err := e.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(body)})
		require.NoError(t, err)
	}
	e.start(t, Config{QueueURLs: []string{q}})
	e.waitQueue(t, q, empty)
	_, _, raw := e.sink.snapshot()
	require.Len(t, raw, 5)
	for _, r := range raw {
		assert.Equal(t, "sqs", r.Origin.Source)
		assert.Contains(t, r.Origin.SourceARN, ":payloads")
		assert.NotZero(t, r.Timestamp, "the message's sent time")
	}
}

// TestPoisonMessageIsLeftToTheRedrivePolicy: a message of no known shape
// comes back until the queue's redrive policy takes it, and is counted
// once, however often it was received.
func TestPoisonMessageIsLeftToTheRedrivePolicy(t *testing.T) {
	e := newEnv(t)
	dlq, dlqARN := e.queue(t, "poison-dlq", nil)
	q, _ := e.queue(t, "poison", map[string]string{"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"3"}`, dlqARN)})
	e.bucket(t, "bkt")
	e.put(t, "bkt", "good", corpus.Gzip(envelopeDoc("ok")))
	e.send(t, q, "this is not a notification")
	e.send(t, q, notification(ref{bucket: "bkt", key: "good"}))
	e.start(t, Config{QueueURLs: []string{q}, VisibilityTimeout: time.Second})
	// The poison message fails three times, then the queue moves it to
	// its dead-letter queue on the next receive.
	e.waitQueue(t, dlq, func(v, nv int) bool { return v == 1 })
	e.waitQueue(t, q, empty)
	events, dead, _ := e.sink.snapshot()
	assert.Len(t, events, 1, "the good message was delivered")
	assert.Empty(t, dead)
	assert.EqualValues(t, 4, e.metrics.Value("sqs.messages_received"), "the poison message three times")
	assert.EqualValues(t, 1, e.metrics.Value("sqs.messages_unrecognised"), "one message, however often received")
	assert.EqualValues(t, 1, e.metrics.Value("sqs.messages_failed"))
	waitDeleted(t, e.metrics, 1)
}

// ref is an object as a notification names it.
type ref struct{ bucket, key, version, etag, sequencer string }

// notification is the S3 event notification of objects, as S3 sends it.
func notification(refs ...ref) string {
	var recs []string
	for _, r := range refs {
		obj := fmt.Sprintf(`"key":%q,"size":1`, r.key)
		if r.version != "" {
			obj += fmt.Sprintf(`,"versionId":%q`, r.version)
		}
		if r.etag != "" {
			obj += fmt.Sprintf(`,"eTag":%q`, r.etag)
		}
		if r.sequencer != "" {
			obj += fmt.Sprintf(`,"sequencer":%q`, r.sequencer)
		}
		recs = append(recs, `{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"`+s3objtest.Region+`","eventTime":"2026-12-03T19:00:00.000Z","eventName":"ObjectCreated:Put",`+
			`"s3":{"s3SchemaVersion":"1.0","bucket":{"name":"`+r.bucket+`","arn":"arn:aws:s3:::`+r.bucket+`"},"object":{`+obj+`}}}`)
	}
	return `{"Records":[` + strings.Join(recs, ",") + `]}`
}

func (e *env) send(t *testing.T, q, body string) {
	t.Helper()
	_, err := e.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(body)})
	require.NoError(t, err)
}

// TestUnreadableObjectsAreDeadLetteredAndTheOthersDeliveredOnce: one
// notification names objects S3 will never give (no such key, no such
// bucket) among readable ones. The readable ones are delivered once, each
// missing one is dead-lettered by name with S3's answer, and the message
// is deleted: it is not received again to deliver the others again.
func TestUnreadableObjectsAreDeadLetteredAndTheOthersDeliveredOnce(t *testing.T) {
	e := newEnv(t)
	q, _ := e.queue(t, "mixed", nil)
	e.bucket(t, "bkt")
	e.put(t, "bkt", "one", corpus.Gzip(envelopeDoc("one")))
	e.put(t, "bkt", "two", corpus.Gzip(envelopeDoc("two")))
	e.send(t, q, notification(ref{bucket: "bkt", key: "one"}, ref{bucket: "bkt", key: "deleted-since"},
		ref{bucket: "no-such-bucket", key: "k"}, ref{bucket: "bkt", key: "two"}))
	e.start(t, Config{QueueURLs: []string{q}, VisibilityTimeout: time.Second})
	e.waitQueue(t, q, empty)
	waitCounter(t, e.metrics, "sqs.messages_deleted", 1)
	events, dead, _ := e.sink.snapshot()
	assert.Equal(t, []string{"one", "two"}, msgs(events))
	require.Len(t, dead, 2)
	assert.Contains(t, dead[0].Reason, "s3://bkt/deleted-since")
	assert.Contains(t, dead[0].Reason, "NoSuchKey")
	assert.Contains(t, dead[1].Reason, "s3://no-such-bucket/k")
	assert.Contains(t, dead[1].Reason, "NoSuchBucket")
	for _, d := range dead {
		assert.Equal(t, "s3", d.Origin.Source)
		assert.Empty(t, d.Message, "named, not copied")
	}
	assert.EqualValues(t, 1, e.metrics.Value("sqs.messages_received"))
	assert.EqualValues(t, 2, e.metrics.Value("sqs.objects_unreadable"))
	assert.EqualValues(t, 2, e.metrics.Value("sqs.objects_read"))
	assert.Zero(t, e.metrics.Value("sqs.messages_failed"))
}

// flakyGetter refuses the first GET of one key with a 503, as S3 does
// when it sheds load, and passes everything else to S3.
type flakyGetter struct {
	s3obj.Getter
	key    string
	failed atomic.Bool
}

func (f *flakyGetter) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if aws.ToString(in.Key) == f.key && f.failed.CompareAndSwap(false, true) {
		return nil, &smithy.GenericAPIError{Code: "SlowDown", Message: "Please reduce your request rate."}
	}
	return f.Getter.GetObject(ctx, in, opts...)
}

// TestARetryReadsOnlyTheObjectsThatFailed: one object of a notification
// fails for a reason that may pass (S3 throttling); the message comes
// back, and the receive reads that object alone: the others were
// delivered the first time.
func TestARetryReadsOnlyTheObjectsThatFailed(t *testing.T) {
	e := newEnv(t)
	q, _ := e.queue(t, "retried", nil)
	e.bucket(t, "bkt")
	for _, k := range []string{"one", "flaky", "two"} {
		e.put(t, "bkt", k, corpus.Gzip(envelopeDoc(k)))
	}
	e.send(t, q, notification(ref{bucket: "bkt", key: "one"}, ref{bucket: "bkt", key: "flaky"}, ref{bucket: "bkt", key: "two"}))
	e.objects = &flakyGetter{Getter: e.s3, key: "flaky"}
	e.start(t, Config{QueueURLs: []string{q}, VisibilityTimeout: time.Second})
	e.waitQueue(t, q, empty)
	waitCounter(t, e.metrics, "sqs.messages_deleted", 1)
	events, dead, _ := e.sink.snapshot()
	assert.ElementsMatch(t, []string{"one", "flaky", "two"}, msgs(events), "each object once")
	assert.Empty(t, dead)
	assert.EqualValues(t, 2, e.metrics.Value("sqs.messages_received"))
	assert.EqualValues(t, 1, e.metrics.Value("sqs.messages_failed"))
	assert.EqualValues(t, 3, e.metrics.Value("sqs.objects_read"))
}

func TestPoisonObjectIsDeadLetteredAndTheMessageDeleted(t *testing.T) {
	e := newEnv(t)
	q, qARN := e.queue(t, "objects", nil)
	e.bucket(t, "bkt")
	_, err := e.s3.PutBucketNotificationConfiguration(context.Background(), &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String("bkt"),
		NotificationConfiguration: &s3types.NotificationConfiguration{
			QueueConfigurations: []s3types.QueueConfiguration{{QueueArn: aws.String(qARN), Events: []s3types.Event{"s3:ObjectCreated:*"}}},
		},
	})
	require.NoError(t, err)
	// Good envelopes, then bytes that are not gzip: the first part is
	// delivered, the rest dead-lettered with the reason.
	e.put(t, "bkt", "poison.gz", append(corpus.Gzip(envelopeDoc("a", "b")), []byte("\x00garbage that is not a gzip member")...))
	e.put(t, "bkt", "binary.bin", []byte("\x1f\x8b\x08\x00 definitely broken"))
	e.put(t, "bkt", "exports/aws-logs-write-test", []byte("Permission Check Successful"))
	e.start(t, Config{QueueURLs: []string{q}})
	e.waitQueue(t, q, empty)
	events, dead, _ := e.sink.snapshot()
	assert.Equal(t, []string{"a", "b"}, msgs(events))
	require.Len(t, dead, 2)
	for _, d := range dead {
		assert.Contains(t, d.Reason, "unreadable")
		assert.Contains(t, d.Origin.RequestID, "s3://bkt/")
	}
	// The test event, the two poison objects and the write test.
	waitDeleted(t, e.metrics, 4)
}

func TestVisibilityIsExtendedWhileAMessageIsWorkedOn(t *testing.T) {
	e := newEnv(t)
	q, _ := e.queue(t, "slow", nil)
	e.bucket(t, "bkt")
	e.put(t, "bkt", "k", corpus.Gzip(envelopeDoc("x")))
	_, err := e.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(
		`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"bkt"},"object":{"key":"k","size":1}}}]}`)})
	require.NoError(t, err)
	e.sink.hold = true // delivery "takes" until released
	e.start(t, Config{QueueURLs: []string{q}, VisibilityTimeout: time.Second})
	// Several visibility timeouts pass while the message is held…
	waitCounter(t, e.metrics, "sqs.visibility_extensions", 6)
	e.waitQueue(t, q, func(v, nv int) bool { return v == 0 && nv == 1 })
	assert.EqualValues(t, 1, e.metrics.Value("sqs.messages_received"), "…and it was never received again")
	e.sink.release()
	e.waitQueue(t, q, empty)
	// The queue empties when SQS deletes; the counter moves when the answer
	// is read, a moment later.
	waitCounter(t, e.metrics, "sqs.messages_deleted", 1)
	assert.EqualValues(t, 1, e.metrics.Value("sqs.messages_deleted"))
	events, _, _ := e.sink.snapshot()
	assert.Len(t, events, 1)
}

func envelopeDoc(msgs ...string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/api-gateway/x/prod","logStream":"s","subscriptionFilters":["f"],"logEvents":[`)
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"%d","timestamp":%d,"message":%q}`, i, time.Now().UnixMilli(), m)
	}
	b.WriteString("]}")
	return b.Bytes()
}

func msgs(recs []record.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Message))
	}
	return out
}

// fakeSQS serves a fixed sequence of receives, then long-polls forever.
type fakeSQS struct {
	mu       sync.Mutex
	receives [][]types.Message
	deleted  []string
	released map[string]int32 // receipt handle → the visibility timeout it was given
	hang     bool             // ChangeMessageVisibility waits for its context
	polled   chan struct{}    // closed when polling stops (Stop has begun), if not nil
	once     sync.Once
}

func (f *fakeSQS) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{"QueueArn": "arn:aws:sqs:us-east-1:123456789012:q"}}, nil
}

func (f *fakeSQS) ReceiveMessage(ctx context.Context, _ *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	f.mu.Lock()
	if len(f.receives) > 0 {
		r := f.receives[0]
		f.receives = f.receives[1:]
		f.mu.Unlock()
		return &sqs.ReceiveMessageOutput{Messages: r}, nil
	}
	f.mu.Unlock()
	<-ctx.Done()
	if f.polled != nil {
		f.once.Do(func() { close(f.polled) })
	}
	return nil, ctx.Err()
}

func (f *fakeSQS) DeleteMessageBatch(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &sqs.DeleteMessageBatchOutput{}
	for _, e := range in.Entries {
		f.deleted = append(f.deleted, aws.ToString(e.ReceiptHandle))
		out.Successful = append(out.Successful, types.DeleteMessageBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

func (f *fakeSQS) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	f.mu.Lock()
	hang := f.hang
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released == nil {
		f.released = map[string]int32{}
	}
	f.released[aws.ToString(in.ReceiptHandle)] = in.VisibilityTimeout
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

func (f *fakeSQS) ChangeMessageVisibilityBatch(context.Context, *sqs.ChangeMessageVisibilityBatchInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	return &sqs.ChangeMessageVisibilityBatchOutput{}, nil
}

func (f *fakeSQS) deletedHandles() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.deleted...)
}

// TestDuplicateDeliveriesAreWorkedOnOnce: SQS delivers at least once, and
// two receives may get the same message. Its events go down the pipeline
// once; every receipt handle is deleted.
func TestDuplicateDeliveriesAreWorkedOnOnce(t *testing.T) {
	t.Parallel()
	body := aws.String(string(envelopeDoc("only once")))
	msg := func(handle string) types.Message {
		return types.Message{MessageId: aws.String("m-1"), ReceiptHandle: aws.String(handle), Body: body}
	}
	f := &fakeSQS{receives: [][]types.Message{{msg("h1"), msg("h2")}, {msg("h3")}}}
	s := &sink{hold: true}
	metrics := telemetry.NewRegistry()
	src, err := New(Config{QueueURLs: []string{"https://sqs.us-east-1.amazonaws.com/123456789012/q"}, VisibilityTimeout: time.Second},
		f, nil, sinkOut{s, true}, sinkOut{s, false}, testLogger(), metrics)
	require.NoError(t, err)
	require.NoError(t, src.Start(context.Background()))
	waitCounter(t, metrics, "sqs.duplicate_messages", 2) // h2 and h3 join h1's work
	s.release()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, src.Stop(ctx))
	_, _, raw := s.snapshot()
	assert.Len(t, raw, 1, "worked on once")
	assert.ElementsMatch(t, []string{"h1", "h2", "h3"}, f.deletedHandles())
}

// TestHandedBackMessageIsVisibleAgainAtOnce: a message whose records the
// pipeline hands back at shutdown is neither deleted nor counted failed:
// it is made visible again at once (for another worker) and counted as
// handed back.
func TestHandedBackMessageIsVisibleAgainAtOnce(t *testing.T) {
	t.Parallel()
	f := &fakeSQS{}
	src, s, metrics := startHeld(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- src.Stop(ctx) }()
	waitHeld(t, s)
	<-f.polled // Stop has begun
	s.handBack()
	require.NoError(t, <-stopped)
	assert.Empty(t, f.deletedHandles(), "not delivered: not deleted")
	f.mu.Lock()
	assert.Equal(t, map[string]int32{"h1": 0}, f.released, "visible again at once")
	f.mu.Unlock()
	assert.EqualValues(t, 1, metrics.Value("sqs.messages_handed_back"))
	assert.Zero(t, metrics.Value("sqs.messages_failed"))
}

// TestStopEndsWithItsContext: giving messages back is bounded by Stop's
// context too, however slowly SQS answers.
func TestStopEndsWithItsContext(t *testing.T) {
	t.Parallel()
	f := &fakeSQS{hang: true}
	src, s, _ := startHeld(t, f)
	waitHeld(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- src.Stop(ctx) }()
	<-f.polled // Stop has begun
	s.handBack()
	cancel() // the shutdown's time is up while SQS still has not answered
	select {
	case <-stopped:
	case <-time.After(5 * time.Second): // far beyond the 10 s a release waited for before
		t.Fatal("Stop did not end with its context")
	}
}

// startHeld starts a source on f with one message, m-1 (receipt handle
// h1), whose batches the pipeline holds, and waits until it is received.
func startHeld(t *testing.T, f *fakeSQS) (*Source, *sink, *telemetry.Registry) {
	t.Helper()
	body := aws.String(string(envelopeDoc("in flight at shutdown")))
	f.polled = make(chan struct{})
	f.receives = [][]types.Message{{{MessageId: aws.String("m-1"), ReceiptHandle: aws.String("h1"), Body: body}}}
	s := &sink{hold: true}
	metrics := telemetry.NewRegistry()
	src, err := New(Config{QueueURLs: []string{"https://sqs.us-east-1.amazonaws.com/123456789012/q"}, VisibilityTimeout: 30 * time.Second},
		f, nil, sinkOut{s, true}, sinkOut{s, false}, testLogger(), metrics)
	require.NoError(t, err)
	require.NoError(t, src.Start(context.Background()))
	waitCounter(t, metrics, "sqs.messages_received", 1)
	return src, s, metrics
}

// waitHeld waits until the sink holds a batch.
func waitHeld(t *testing.T, s *sink) {
	t.Helper()
	until(t, 10*time.Second, 5*time.Millisecond, func(context.Context) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.held) > 0
	}, func() string { return "no batch reached the pipeline" })
}

func TestWhatAMessageCarriesCountsInTheMemoryBudget(t *testing.T) {
	e := newEnv(t)
	q, _ := e.queue(t, "budgeted", nil)
	e.bucket(t, "objects")
	a, err := s3objtest.FirehoseArchive(3, 300, 300, time.Now().UTC())
	require.NoError(t, err)
	e.put(t, "objects", "fh/one", a.Objects[0])
	payload := base64.StdEncoding.EncodeToString(corpus.Gzip(envelopeDoc("a", "b")))
	notification := `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"` + s3objtest.Region +
		`","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"objects"},"object":{"key":"fh/one","size":1}}}]}`
	for _, body := range []string{payload, notification} {
		_, err := e.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(body)})
		require.NoError(t, err)
	}

	budget, err := membudget.New(64<<20, 32<<20)
	require.NoError(t, err)
	e.sink.hold = true // delivery takes its time
	src, err := New(Config{QueueURLs: []string{q}, WaitTime: time.Second, VisibilityTimeout: 5 * time.Second, DefaultRegion: s3objtest.Region},
		e.sqs, e.s3, sinkOut{e.sink, true}, sinkOut{e.sink, false}, testLogger(), e.metrics)
	require.NoError(t, err)
	require.NoError(t, src.WithMemory(budget).Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, src.Stop(ctx))
	})

	require.Eventually(t, func() bool {
		events, _, raw := e.sink.snapshot()
		return len(events) == a.PerObj[0] && len(raw) == 1
	}, 30*time.Second, 10*time.Millisecond, "%d events of %d", func() int { ev, _, _ := e.sink.snapshot(); return len(ev) }(), a.PerObj[0])
	st := budget.Stats()
	assert.Equal(t, int64(len(payload)), st.AdmittedBytes, "the payload counts until the message is settled")
	assert.Positive(t, st.FlowingBytes, "the object's events count until they are delivered")

	e.sink.release()
	e.waitQueue(t, q, empty)
	assert.Eventually(t, func() bool { return budget.Stats().HeldBytes == 0 }, 10*time.Second, time.Millisecond)
}

// TestTheNotifiedVersionIsRead: in a versioned bucket a key written twice
// has two versions, and each notification names its own (versionId in S3's
// notification, version-id in EventBridge's). Each version is read once,
// the first one included although it is no longer the current one; a
// version deleted since is dead-lettered by name.
func TestTheNotifiedVersionIsRead(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q, _ := e.queue(t, "versions", nil)
	e.bucket(t, "ver")
	_, err := e.s3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("ver"),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}})
	require.NoError(t, err)
	var versions []string
	for _, m := range []string{"first", "second", "third", "deleted"} {
		out, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("ver"), Key: aws.String("fh/obj.gz"), Body: bytes.NewReader(corpus.Gzip(envelopeDoc(m)))})
		require.NoError(t, err)
		versions = append(versions, aws.ToString(out.VersionId))
	}
	_, err = e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("ver"), Key: aws.String("fh/obj.gz"), VersionId: aws.String(versions[3])})
	require.NoError(t, err)
	e.send(t, q, notification(ref{bucket: "ver", key: "fh/obj.gz", version: versions[0]}))
	e.send(t, q, `{"version":"0","id":"1","detail-type":"Object Created","source":"aws.s3","account":"123456789012","time":"2026-12-03T19:00:00Z","region":"`+s3objtest.Region+
		`","resources":["arn:aws:s3:::ver"],"detail":{"version":"0","bucket":{"name":"ver"},"object":{"key":"fh/obj.gz","size":1,"version-id":"`+versions[1]+`"},"reason":"PutObject"}}`)
	e.send(t, q, notification(ref{bucket: "ver", key: "fh/obj.gz", version: versions[2]}))
	e.send(t, q, notification(ref{bucket: "ver", key: "fh/obj.gz", version: versions[3]}))
	e.start(t, Config{QueueURLs: []string{q}})
	e.waitQueue(t, q, empty)
	waitCounter(t, e.metrics, "sqs.messages_deleted", 4)
	events, dead, _ := e.sink.snapshot()
	assert.ElementsMatch(t, []string{"first", "second", "third"}, msgs(events))
	require.Len(t, dead, 1)
	assert.Contains(t, dead[0].Reason, "s3://ver/fh/obj.gz?versionId="+versions[3])
	assert.EqualValues(t, 1, e.metrics.Value("sqs.objects_unreadable"))
}

// TestACopyOfAnS3EventIsReadOnce: S3 delivers event notifications at least
// once, so one event may arrive in two SQS messages (two message ids), even
// wrapped differently (direct and through SNS). Recognised by bucket, key,
// eTag and sequencer, the object is read once and the copies counted; a
// new write of the key (another sequencer) is read again.
func TestACopyOfAnS3EventIsReadOnce(t *testing.T) {
	e := newEnv(t)
	q, _ := e.queue(t, "copies", nil)
	e.bucket(t, "bkt")
	e.put(t, "bkt", "k", corpus.Gzip(envelopeDoc("once")))
	event := notification(ref{bucket: "bkt", key: "k", etag: "d41d8cd98f00b204e9800998ecf8427e", sequencer: "0055AED6DCD90281E5"})
	for _, body := range []string{event, event, snsWrap(event)} {
		e.send(t, q, body)
	}
	e.start(t, Config{QueueURLs: []string{q}})
	e.waitQueue(t, q, empty)
	waitCounter(t, e.metrics, "sqs.messages_deleted", 3)
	events, _, _ := e.sink.snapshot()
	assert.Equal(t, []string{"once"}, msgs(events))
	assert.EqualValues(t, 2, e.metrics.Value("sqs.duplicate_objects"))
	assert.EqualValues(t, 1, e.metrics.Value("sqs.objects_read"))

	e.put(t, "bkt", "k", corpus.Gzip(envelopeDoc("rewritten")))
	e.send(t, q, notification(ref{bucket: "bkt", key: "k", etag: "d41d8cd98f00b204e9800998ecf8427e", sequencer: "0055AED6DCD90281E6"}))
	e.waitQueue(t, q, empty)
	waitCounter(t, e.metrics, "sqs.messages_deleted", 4)
	events, _, _ = e.sink.snapshot()
	assert.Equal(t, []string{"once", "rewritten"}, msgs(events))
	assert.EqualValues(t, 2, e.metrics.Value("sqs.duplicate_objects"))
}

// watchedSQS is the SQS client, telling when a receive's request has been
// written to SQS: its long poll is then under way on SQS's side.
type watchedSQS struct {
	*sqs.Client
	polling chan struct{}
}

func (w *watchedSQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) {
		select {
		case w.polling <- struct{}{}:
		default:
		}
	}})
	return w.Client.ReceiveMessage(ctx, in, opts...)
}

// TestAReceiveInFlightWhenPollingStopsIsGivenBackAtOnce: polling stops
// while a long poll waits on an empty queue, and a message arrives then.
// The receive is let finish, and the message it brings is made visible
// again at once, for another worker: it does not wait out the 60 s
// visibility timeout, as it did when the receive was cut short (the long
// poll went on on SQS's side and gave the message to no one).
func TestAReceiveInFlightWhenPollingStopsIsGivenBackAtOnce(t *testing.T) {
	e := newEnv(t)
	url, _ := e.queue(t, "stopping", nil)
	api := &watchedSQS{Client: e.sqs, polling: make(chan struct{}, 1)}
	src, err := New(Config{QueueURLs: []string{url}, MaxConcurrentMessages: 1, VisibilityTimeout: time.Minute, WaitTime: 10 * time.Second, DefaultRegion: s3objtest.Region},
		api, e.s3, sinkOut{e.sink, true}, sinkOut{e.sink, false}, testLogger(), e.metrics)
	require.NoError(t, err)
	polling, stopPolling := context.WithCancel(context.Background())
	require.NoError(t, src.Start(polling))
	select {
	case <-api.polling:
	case <-time.After(10 * time.Second):
		t.Fatal("the source never polled")
	}
	stopPolling() // as Stop does first
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = e.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(string(envelopeDoc("arrives at the stop")))})
	require.NoError(t, err)
	require.NoError(t, src.Stop(ctx))

	out, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 0,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount}})
	require.NoError(t, err)
	require.Len(t, out.Messages, 1, "the message is visible again at once")
	assert.Equal(t, "2", out.Messages[0].Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)], "the source's receive took it")
	assert.EqualValues(t, 1, e.metrics.Value("sqs.messages_received"))
	assert.EqualValues(t, 1, e.metrics.Value("sqs.messages_handed_back"))
	events, dead, raw := e.sink.snapshot()
	assert.Empty(t, append(append(events, dead...), raw...), "not started once polling stopped")
}

// TestABadlyNamedObjectIsDeadLetteredAndTheOthersRead: a notification
// names, beside readable objects, one whose key is not form-encoded as S3
// writes keys. The readable ones are delivered, the other dead-lettered
// with why, and the message deleted: the whole message was left to the
// redrive policy, the readable objects with it, never read.
func TestABadlyNamedObjectIsDeadLetteredAndTheOthersRead(t *testing.T) {
	e := newEnv(t)
	q, _ := e.queue(t, "badly-named", nil)
	e.bucket(t, "bkt")
	e.put(t, "bkt", "one", corpus.Gzip(envelopeDoc("one")))
	e.put(t, "bkt", "two", corpus.Gzip(envelopeDoc("two")))
	e.send(t, q, notification(ref{bucket: "bkt", key: "one"}, ref{bucket: "bkt", key: "100%zz"}, ref{bucket: "bkt", key: "two"}))
	e.start(t, Config{QueueURLs: []string{q}, VisibilityTimeout: time.Second})
	e.waitQueue(t, q, empty)
	waitCounter(t, e.metrics, "sqs.messages_deleted", 1)
	events, dead, _ := e.sink.snapshot()
	assert.Equal(t, []string{"one", "two"}, msgs(events))
	require.Len(t, dead, 1)
	assert.Contains(t, dead[0].Reason, `object key "100%zz"`)
	assert.Contains(t, dead[0].Origin.RequestID, "s3://bkt/100%zz")
	assert.Zero(t, e.metrics.Value("sqs.messages_unrecognised"))
	assert.Zero(t, e.metrics.Value("sqs.messages_failed"))
	assert.EqualValues(t, 2, e.metrics.Value("sqs.objects_read"))
}
