package stage

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/gwpipe/gwpipe/pkg/config/check"
	"github.com/gwpipe/gwpipe/pkg/runtime/sqsvis"
)

// TransportConfig chooses and configures a transport; it is the transport
// section of gwpipe's configuration.
type TransportConfig struct {
	Kind string     `yaml:"kind"` // memory, nats or sqs
	NATS NATSConfig `yaml:"nats"`
	SQS  SQSConfig  `yaml:"sqs"`
	// Subscribers is how many messages of one stage a worker handles at
	// once on a broker (NATSConfig's and SQSConfig's when they set none).
	Subscribers int `yaml:"subscribers"`
}

// NATSConfig configures the NATS JetStream transport.
type NATSConfig struct {
	URL string `yaml:"url"`
	// AckWait is how long a message may be handled before the broker
	// redelivers it (to this or another worker).
	AckWait time.Duration `yaml:"ack_wait"`
	// StreamMaxBytes bounds each topic's backlog on the broker; when it is
	// full, publishing fails and the failure travels back to the source as
	// a retryable status (back-pressure instead of unbounded growth).
	StreamMaxBytes int64 `yaml:"stream_max_bytes"`
	// Replicas of each stream in a NATS cluster.
	Replicas int `yaml:"replicas"`
	// Compression of the batches published (see BinaryCodec): S2 cuts the
	// bytes the broker stores and moves by ~4x, which saves nats-server and
	// the workers more CPU than S2 costs.
	Compression Compression `yaml:"compression"`

	// Consumers lists, per topic, the consumer groups (stage names) that
	// read it. Every process creates every group's durable consumer, so a
	// message published before its readers start is kept for them.
	Consumers map[string][]string `yaml:"-"`
	// Subscribers is how many messages of one stage a process handles at
	// once.
	Subscribers int `yaml:"-"`
	// MaxDeliver bounds redeliveries of a message that keeps failing. The
	// stage's own retries and poison path come first.
	MaxDeliver int `yaml:"-"`
	// Prefetch is how many messages are fetched ahead per handler. More
	// hides the broker's round trips; fewer strands less work on a worker
	// that dies (until AckWait) and spreads a trickle more evenly.
	Prefetch int `yaml:"-"`
}

// SQSConfig configures the SQS/SNS transport.
type SQSConfig struct {
	// Region of the topics and queues; empty takes the AWS SDK's default
	// chain (AWS_REGION). The assembler loads AWS from it.
	Region string `yaml:"region"`
	// TopicPrefix starts every SNS topic and SQS queue name.
	TopicPrefix string `yaml:"topic_prefix"`
	// VisibilityTimeout is how long a received message is hidden from other
	// workers while it is handled.
	VisibilityTimeout time.Duration `yaml:"visibility_timeout"`
	// MaxReceiveCount: after this many receives a message moves to its
	// queue's dead-letter queue (the redrive policy), which gwpipe does not
	// read. A message handed back at a stop, or held by a killed worker, is
	// received again: at least 2.
	MaxReceiveCount int `yaml:"max_receive_count"`
	// MessageLimit is the largest message published, its SNS message
	// attributes included (at most SNSMessageLimit: SNS refuses more,
	// whatever SQS takes); a larger batch is split, and a single record
	// still too large is stored in ClaimCheckBucket with only its
	// reference sent.
	MessageLimit int `yaml:"message_limit"`
	// ClaimCheckBucket is an S3 bucket for batches over MessageLimit.
	ClaimCheckBucket string `yaml:"claim_check_bucket"`

	AWS aws.Config `yaml:"-"`
	// Consumers lists, per topic, the consumer groups (stage names) that
	// read it. Every process creates every group's queue and subscription,
	// so nothing published before a group's workers start is lost.
	Consumers map[string][]string `yaml:"-"`
	// Subscribers is how many receive loops a process runs per stage.
	Subscribers int `yaml:"-"`
}

// DefaultTransportConfig runs every stage in one process; the broker
// transports' defaults are set for when they are chosen.
func DefaultTransportConfig() TransportConfig {
	return TransportConfig{Kind: "memory", NATS: DefaultNATSConfig(), SQS: DefaultSQSConfig(), Subscribers: 4}
}

// DefaultNATSConfig: a 60s ack wait, 1 GiB per stream, one replica, S2.
func DefaultNATSConfig() NATSConfig {
	return NATSConfig{AckWait: 60 * time.Second, StreamMaxBytes: 1 << 30, Replicas: 1, Compression: CompressS2,
		Subscribers: 4, MaxDeliver: 20, Prefetch: 8}
}

// DefaultSQSConfig: names prefixed gwpipe-, 120s visibility, 5 receives
// before the dead-letter queue, SNS's 256 KiB message limit.
func DefaultSQSConfig() SQSConfig {
	return SQSConfig{TopicPrefix: "gwpipe-", VisibilityTimeout: 120 * time.Second, MaxReceiveCount: 5, MessageLimit: 256 << 10, Subscribers: 4}
}

func (c *NATSConfig) setDefaults() {
	d := DefaultNATSConfig()
	for _, f := range []struct{ v, d *int }{{&c.Subscribers, &d.Subscribers}, {&c.MaxDeliver, &d.MaxDeliver}, {&c.Replicas, &d.Replicas}, {&c.Prefetch, &d.Prefetch}} {
		if *f.v <= 0 {
			*f.v = *f.d
		}
	}
	if c.AckWait <= 0 {
		c.AckWait = d.AckWait
	}
	if c.StreamMaxBytes <= 0 {
		c.StreamMaxBytes = d.StreamMaxBytes
	}
}

func (c *SQSConfig) setDefaults() {
	d := DefaultSQSConfig()
	if c.TopicPrefix == "" {
		c.TopicPrefix = d.TopicPrefix
	}
	for _, f := range []struct{ v, d *int }{{&c.Subscribers, &d.Subscribers}, {&c.MaxReceiveCount, &d.MaxReceiveCount}, {&c.MessageLimit, &d.MessageLimit}} {
		if *f.v <= 0 {
			*f.v = *f.d
		}
	}
	if c.VisibilityTimeout <= 0 {
		c.VisibilityTimeout = d.VisibilityTimeout
	}
}

// Validate reports every problem of the chosen transport's settings (and
// the ranges of the other's).
func (c TransportConfig) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, fmt.Errorf(key+": "+format, a...)) }
	switch c.Kind {
	case "memory", "nats", "sqs":
	default:
		bad("kind", "must be memory, sqs or nats, not %q", c.Kind)
	}
	if c.Subscribers < 1 {
		bad("subscribers", "must be at least 1, got %d", c.Subscribers)
	}
	n := c.NATS
	if c.Kind == "nats" && n.URL == "" {
		bad("nats.url", "is required with transport.kind nats (e.g. nats://127.0.0.1:4222)")
	}
	if n.URL != "" {
		// A server list, as nats.Connect takes it.
		for _, u := range strings.Split(n.URL, ",") {
			if err := check.URL(strings.TrimSpace(u), "nats", "tls", "ws", "wss"); err != nil {
				bad("nats.url", "%v", err)
			}
		}
	}
	if n.AckWait <= 0 {
		bad("nats.ack_wait", "must be positive, got %s", n.AckWait)
	}
	if n.StreamMaxBytes <= 0 {
		bad("nats.stream_max_bytes", "must be a positive number of bytes, got %d", n.StreamMaxBytes)
	}
	if n.Replicas < 1 || n.Replicas > 5 {
		bad("nats.replicas", "must be 1 to 5 (JetStream's limit), got %d", n.Replicas)
	}
	q := c.SQS
	if q.MessageLimit < 16<<10 || q.MessageLimit > SNSMessageLimit {
		bad("sqs.message_limit", "must be 16 KiB to 256 KiB (the SNS limit: every batch is published through SNS), got %d", q.MessageLimit)
	}
	if q.VisibilityTimeout < time.Second || q.VisibilityTimeout > sqsvis.MaxVisibility {
		bad("sqs.visibility_timeout", "must be 1s to 12h (the SQS limits), got %s", q.VisibilityTimeout)
	}
	if q.MaxReceiveCount < 2 || q.MaxReceiveCount > 1000 {
		// 1 moves to the dead-letter queue every message received again:
		// each one a worker held when it stopped or was killed.
		bad("sqs.max_receive_count", "must be 2 to 1000 (1 dead-letters every message a stopped worker hands back; 1000 is the SQS redrive limit), got %d", q.MaxReceiveCount)
	}
	if strings.Trim(q.TopicPrefix, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
		bad("sqs.topic_prefix", "may hold only letters, digits, '-' and '_' (SNS and SQS names), got %q", q.TopicPrefix)
	}
	if b := q.ClaimCheckBucket; strings.Contains(b, "/") || strings.Contains(b, ":") {
		bad("sqs.claim_check_bucket", "must be a bucket name, got %q", b)
	}
	return errors.Join(errs...)
}

// MarshalText names the compression as the configuration does.
func (c Compression) MarshalText() ([]byte, error) {
	switch c {
	case CompressS2:
		return []byte("s2"), nil
	case CompressNone:
		return []byte("none"), nil
	}
	return nil, fmt.Errorf("unknown compression %d", c)
}

// UnmarshalText reads a configured compression name.
func (c *Compression) UnmarshalText(b []byte) error {
	v, err := ParseCompression(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}
