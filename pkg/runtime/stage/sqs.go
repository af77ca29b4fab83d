package stage

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsns "github.com/ThreeDotsLabs/watermill-aws/sns"
	wsqs "github.com/ThreeDotsLabs/watermill-aws/sqs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/gwpipe/gwpipe/pkg/awsconf"
	"github.com/gwpipe/gwpipe/pkg/record"
)

// SQS is the AWS-native transport through watermill-aws: an SNS topic per
// pipeline topic, an SQS queue per consumer group subscribed to it (raw
// delivery), and a dead-letter queue per queue through its redrive policy.
// Payloads are the binary batch encoding in base64 (SNS and SQS carry
// text); every piece of metadata is inside the payload.
type SQS struct {
	cfg      SQSConfig
	pub      *wsns.Publisher
	resolver wsns.TopicResolver
	logger   watermill.LoggerAdapter
	s3       *s3.Client
	sqs      *sqs.Client

	mu        sync.Mutex
	subs      []message.Subscriber
	queueURLs map[string]string // by queue name, for the backlogs
}

// NewSQS resolves the account, then creates every topic, queue, dead-letter
// queue and subscription of the topology.
func NewSQS(ctx context.Context, cfg SQSConfig, logger watermill.LoggerAdapter) (*SQS, error) {
	cfg.setDefaults()
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	id, err := sts.NewFromConfig(cfg.AWS).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return nil, fmt.Errorf("sqs transport: who am I (sts:GetCallerIdentity): %w", err)
	}
	resolver, err := wsns.NewGenerateArnTopicResolver(aws.ToString(id.Account), cfg.AWS.Region)
	if err != nil {
		return nil, fmt.Errorf("sqs transport: %w", err)
	}
	t := &SQS{cfg: cfg, resolver: prefixed{resolver, cfg.TopicPrefix}, logger: logger, s3: awsconf.S3(cfg.AWS),
		sqs: sqs.NewFromConfig(cfg.AWS), queueURLs: map[string]string{}}
	t.pub, err = wsns.NewPublisher(wsns.PublisherConfig{AWSConfig: cfg.AWS, TopicResolver: t.resolver}, logger)
	if err != nil {
		return nil, fmt.Errorf("sqs transport: publisher: %w", err)
	}
	snsClient := awssns.NewFromConfig(cfg.AWS)
	for topic, groups := range cfg.Consumers {
		if _, err := snsClient.CreateTopic(ctx, &awssns.CreateTopicInput{Name: aws.String(cfg.TopicPrefix + topic)}); err != nil {
			return nil, fmt.Errorf("sqs transport: topic %s: %w", cfg.TopicPrefix+topic, err)
		}
		for _, g := range groups {
			s, err := t.newSubscriber(g, nil)
			if err != nil {
				return nil, err
			}
			if err := s.SubscribeInitializeWithContext(ctx, topic); err != nil {
				return nil, fmt.Errorf("sqs transport: queue of %s on %s: %w", g, topic, err)
			}
			_ = s.Close()
		}
	}
	return t, nil
}

// prefixed puts the prefix on SNS topic names.
type prefixed struct {
	wsns.TopicResolver
	prefix string
}

func (p prefixed) ResolveTopic(ctx context.Context, topic string) (wsns.TopicArn, error) {
	return p.TopicResolver.ResolveTopic(ctx, p.prefix+topic)
}

// QueueName is the SQS queue of a group on a topic.
func (t *SQS) QueueName(group, topic string) string { return t.cfg.TopicPrefix + group + "-" + topic }

func (t *SQS) newSubscriber(group string, l *leases) (*wsns.Subscriber, error) {
	cfg := t.cfg
	queueFor := func(_ context.Context, arn wsns.TopicArn) (string, error) {
		name, err := wsns.ExtractTopicNameFromTopicArn(arn)
		if err != nil {
			return "", err
		}
		return t.QueueName(group, strings.TrimPrefix(string(name), cfg.TopicPrefix)), nil
	}
	sqsCfg := wsqs.SubscriberConfig{
		AWSConfig:      cfg.AWS,
		ConsumeWorkers: cfg.Subscribers,
		QueueConfigAttributes: wsqs.QueueConfigAttributes{
			VisibilityTimeout: fmt.Sprint(int(cfg.VisibilityTimeout.Seconds())),
		},
		GenerateCreateQueueInput: func(ctx context.Context, name wsqs.QueueName, attrs wsqs.QueueConfigAttributes) (*sqs.CreateQueueInput, error) {
			return t.createQueueWithDLQ(ctx, string(name), attrs)
		},
		Unmarshaler: receiptUnmarshaler{},
		GenerateReceiveMessageInput: func(_ context.Context, url wsqs.QueueURL) (*sqs.ReceiveMessageInput, error) {
			return &sqs.ReceiveMessageInput{
				QueueUrl: aws.String(string(url)), MaxNumberOfMessages: 10, WaitTimeSeconds: int32(receiveWait / time.Second),
				MessageAttributeNames: []string{"All"},
			}, nil
		},
	}
	if l != nil {
		sqsCfg.OptFns = append(sqsCfg.OptFns, l.option)
	}
	return wsns.NewSubscriber(wsns.SubscriberConfig{
		AWSConfig: cfg.AWS, TopicResolver: t.resolver, GenerateSqsQueueName: queueFor,
	}, sqsCfg, t.logger)
}

// createQueueWithDLQ creates the queue's dead-letter queue first and points
// the queue's redrive policy at it.
func (t *SQS) createQueueWithDLQ(ctx context.Context, name string, attrs wsqs.QueueConfigAttributes) (*sqs.CreateQueueInput, error) {
	client := sqs.NewFromConfig(t.cfg.AWS)
	dlq, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq"),
		Attributes: map[string]string{"MessageRetentionPeriod": "1209600"}})
	if err != nil {
		return nil, fmt.Errorf("create dead-letter queue %s-dlq: %w", name, err)
	}
	got, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return nil, fmt.Errorf("dead-letter queue %s-dlq: %w", name, err)
	}
	m, err := attrs.Attributes()
	if err != nil {
		return nil, err
	}
	m["RedrivePolicy"] = fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`, got.Attributes["QueueArn"], t.cfg.MaxReceiveCount)
	return &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: m}, nil
}

// Backlog is the ApproximateNumberOfMessages of the group's queue on
// topic: visible messages, not yet received by any worker (KEDA's
// aws-sqs-queue scaler, in the shipped ScaledObjects, adds the in-flight
// ones: its scaleOnInFlight default).
func (t *SQS) Backlog(ctx context.Context, group, topic string) (int64, error) {
	return t.visible(ctx, t.QueueName(group, topic))
}

// DeadLetterBacklog is the ApproximateNumberOfMessages of the group's
// dead-letter queue on topic: messages received max_receive_count times
// without being deleted, which no worker reads.
func (t *SQS) DeadLetterBacklog(ctx context.Context, group, topic string) (int64, error) {
	return t.visible(ctx, t.QueueName(group, topic)+"-dlq")
}

// visible is the ApproximateNumberOfMessages of the queue name.
func (t *SQS) visible(ctx context.Context, name string) (int64, error) {
	t.mu.Lock()
	url, ok := t.queueURLs[name]
	t.mu.Unlock()
	if !ok {
		out, err := t.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
		if err != nil {
			return 0, fmt.Errorf("sqs transport: queue %s: %w", name, err)
		}
		url = aws.ToString(out.QueueUrl)
		t.mu.Lock()
		t.queueURLs[name] = url
		t.mu.Unlock()
	}
	out, err := t.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		return 0, fmt.Errorf("sqs transport: queue %s: %w", name, err)
	}
	n, err := strconv.ParseInt(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("sqs transport: queue %s: ApproximateNumberOfMessages: %w", name, err)
	}
	return n, nil
}

func (t *SQS) Publisher() message.Publisher { return snsPublisher{t.pub, t.cfg.MessageLimit} }

// snsPublisher publishes to SNS without the receipt handle a received
// message carries in its metadata (a dead letter is the message received,
// with its metadata; watermill-aws sends every metadata entry as an SNS
// attribute, and SNS counts attributes in its 256 KiB), and refuses, with
// the size, a message SNS would refuse as "too long".
type snsPublisher struct {
	message.Publisher
	limit int
}

func (p snsPublisher) Publish(topic string, msgs ...*message.Message) error {
	out := make([]*message.Message, len(msgs))
	for i, m := range msgs {
		if _, ok := m.Metadata[receiptKey]; ok {
			m = m.Copy() // the received message stays as it is for its handler
			m.SetContext(msgs[i].Context())
			delete(m.Metadata, receiptKey)
		}
		if size := snsSize(m); size > p.limit {
			return fmt.Errorf("%w: %d bytes (attributes included) over the %d-byte message limit", ErrTooLarge, size, p.limit)
		}
		out[i] = m
	}
	return p.Publisher.Publish(topic, out...)
}

// snsSize is a message's size as SNS counts it: the body, and each
// attribute's name, type and value (the UUID and every metadata entry, all
// String attributes in watermill-aws' marshaller).
func snsSize(m *message.Message) int {
	n := len(m.Payload) + snsAttributeBytes(m.UUID)
	for k, v := range m.Metadata {
		n += len(k) + len("String") + len(v)
	}
	return n
}
func (t *SQS) InProcess() bool { return false }
func (t *SQS) Codec() Codec    { return claimCodec{t: t} }

// Subscriber returns the group's subscriber.
func (t *SQS) Subscriber(group string) (message.Subscriber, error) {
	l := newLeases(t.sqs, t.cfg.VisibilityTimeout, t.logger)
	inner, err := t.newSubscriber(group, l)
	if err != nil {
		l.close()
		return nil, fmt.Errorf("sqs transport: subscriber %s: %w", group, err)
	}
	s := &leasedSubscriber{Subscriber: inner, leases: l}
	t.mu.Lock()
	t.subs = append(t.subs, s)
	t.mu.Unlock()
	return s, nil
}

// MaxMessageBytes is the largest payload published.
func (t *SQS) MaxMessageBytes() int { return t.cfg.MessageLimit }

// Close closes the subscribers and the publisher.
func (t *SQS) Close() error {
	var errs []error
	t.mu.Lock()
	for _, s := range t.subs {
		errs = append(errs, s.Close())
	}
	t.mu.Unlock()
	errs = append(errs, t.pub.Close())
	return errors.Join(errs...)
}

// SNSMessageLimit is the largest message SNS publishes, its message
// attributes included (SNS answers "Message too long" beyond it). Every
// batch goes through SNS, so SQS's larger limit (1 MiB) does not apply.
const SNSMessageLimit = 256 << 10

// snsAttributeBytes is what the message attributes of a message with this
// UUID add to its size: watermill-aws' SNS marshaller sends the UUID as a
// String attribute, and SNS counts each attribute's name, type and value.
func snsAttributeBytes(uuid string) int {
	return len(wsqs.UUIDAttribute) + len("String") + len(uuid)
}

// claimPrefix marks a payload that is only a reference to S3.
const claimPrefix = "claim:s3://"

// claimCodec is the binary codec in base64, with a claim check to S3 for
// payloads over the message limit.
type claimCodec struct{ t *SQS }

func (c claimCodec) Marshal(ctx context.Context, b *record.Batch) (*message.Message, error) {
	raw, err := EncodeBatch(b)
	if err != nil {
		return nil, err
	}
	payload := make([]byte, base64.StdEncoding.EncodedLen(len(raw)))
	base64.StdEncoding.Encode(payload, raw)
	uuid := watermill.NewUUID()
	if size := len(payload) + snsAttributeBytes(uuid); size > c.t.cfg.MessageLimit {
		if b.Len() > 1 || c.t.cfg.ClaimCheckBucket == "" {
			return nil, fmt.Errorf("%w: %d bytes (attributes included) over the %d-byte message limit", ErrTooLarge, size, c.t.cfg.MessageLimit)
		}
		key := "claims/" + watermill.NewUUID()
		if _, err := c.t.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(c.t.cfg.ClaimCheckBucket), Key: aws.String(key), Body: bytes.NewReader(raw)}); err != nil {
			return nil, fmt.Errorf("claim check to s3://%s/%s: %w", c.t.cfg.ClaimCheckBucket, key, err)
		}
		payload = []byte(claimPrefix + c.t.cfg.ClaimCheckBucket + "/" + key)
	}
	msg := message.NewMessage(uuid, payload)
	msg.SetContext(ctx)
	return msg, nil
}

func (c claimCodec) Unmarshal(msg *message.Message) (*record.Batch, error) {
	p := msg.Payload
	if ref, ok := bytes.CutPrefix(p, []byte(claimPrefix)); ok {
		bucket, key, _ := strings.Cut(string(ref), "/")
		obj, err := c.t.s3.GetObject(msg.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			return nil, fmt.Errorf("claim check s3://%s/%s: %w", bucket, key, err) // retryable
		}
		defer obj.Body.Close()
		raw, err := io.ReadAll(obj.Body)
		if err != nil {
			return nil, fmt.Errorf("claim check s3://%s/%s: %w", bucket, key, err)
		}
		b, err := DecodeBatch(raw)
		if err != nil {
			return nil, Permanent(err)
		}
		return b, nil
	}
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(p)))
	n, err := base64.StdEncoding.Decode(raw, p)
	if err != nil {
		return nil, Permanent(fmt.Errorf("decode batch: base64: %w", err))
	}
	b, err := DecodeBatch(raw[:n])
	if err != nil {
		return nil, Permanent(err)
	}
	return b, nil
}
