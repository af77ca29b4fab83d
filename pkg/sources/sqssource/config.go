package sqssource

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gwpipe/gwpipe/pkg/config/check"
	"github.com/gwpipe/gwpipe/pkg/runtime/sqsvis"
	"github.com/gwpipe/gwpipe/pkg/sources/s3obj"
)

// Config tunes the source; it is the sources.sqs section of gwpipe's
// configuration. The source is enabled by listing at least one queue.
type Config struct {
	// QueueURLs are the queues that carry S3 event notifications (direct,
	// through SNS, or from EventBridge) or CloudWatch Logs subscription
	// payloads.
	QueueURLs []string `yaml:"queue_urls"`
	// MaxConcurrentMessages bounds the messages worked on at once, across
	// queues; polling pauses while they are all busy.
	MaxConcurrentMessages int `yaml:"max_concurrent_messages"`
	// VisibilityTimeout is asked for on receive and renewed every third of
	// it while a message is worked on (SQS allows 1s to 12h), so a short
	// value costs only API calls while a crashed worker's messages come
	// back quickly.
	VisibilityTimeout time.Duration `yaml:"visibility_timeout"`
	// WaitTime is the long-polling wait of one receive (0 to 20s).
	WaitTime time.Duration `yaml:"wait_time"`
	// DefaultRegion is the region of the queues and of the S3 client's
	// default (empty: the AWS SDK's default chain, AWS_REGION); it fills the
	// origin of records whose notification names no region. The assembler
	// sets it to the region the AWS configuration resolved.
	DefaultRegion string `yaml:"region"`
	// RecordsPerBatch bounds the raw records of one batch.
	RecordsPerBatch int `yaml:"-"`
	// Object configures the object reader.
	Object s3obj.Config `yaml:"-"`
}

// DefaultConfig polls no queue; once queues are listed, 20 messages at
// once, 60s visibility, 20s long polling.
func DefaultConfig() Config {
	return Config{MaxConcurrentMessages: 20, VisibilityTimeout: 60 * time.Second, WaitTime: 20 * time.Second, RecordsPerBatch: 250}
}

// Validate reports every field out of range.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, fmt.Errorf(key+": "+format, a...)) }
	for _, u := range c.QueueURLs {
		if pu, err := url.Parse(u); err == nil && pu.User != nil || err != nil && strings.Contains(u, "@") {
			// The SDK would ignore them and sign with the credential chain.
			bad("queue_urls", "%q carries credentials (user:password@, not shown): SQS takes none in a queue URL; gwpipe signs its requests with the AWS credential chain (environment, profile, role)", check.Shown(u))
		} else if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || strings.Trim(pu.Path, "/") == "" {
			bad("queue_urls", "%q is not a queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>)", check.Shown(u))
		}
	}
	if c.MaxConcurrentMessages < 1 || c.MaxConcurrentMessages > 10_000 {
		bad("max_concurrent_messages", "must be 1 to 10000, got %d", c.MaxConcurrentMessages)
	}
	if c.VisibilityTimeout < time.Second || c.VisibilityTimeout > sqsvis.MaxVisibility {
		bad("visibility_timeout", "must be 1s to 12h (the SQS limits), got %s", c.VisibilityTimeout)
	}
	if c.WaitTime < 0 || c.WaitTime > 20*time.Second {
		bad("wait_time", "must be 0 to 20s (the SQS long-polling limit), got %s", c.WaitTime)
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	d := DefaultConfig()
	if c.MaxConcurrentMessages <= 0 {
		c.MaxConcurrentMessages = d.MaxConcurrentMessages
	}
	if c.VisibilityTimeout <= 0 {
		c.VisibilityTimeout = d.VisibilityTimeout
	}
	c.VisibilityTimeout = max(c.VisibilityTimeout, time.Second).Round(time.Second)
	if c.WaitTime < 0 || c.WaitTime > 20*time.Second {
		c.WaitTime = d.WaitTime
	}
	if c.RecordsPerBatch <= 0 {
		c.RecordsPerBatch = d.RecordsPerBatch
	}
}
