package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
)

// Topology lists, per topic, the stages that consume it. Broker transports
// create every consumer group up front, whichever stages this process runs,
// so that nothing published before a group's workers start is lost.
func Topology(cfg config.Config) map[string][]string {
	t := cfg.Pipeline.Topics
	m := map[string][]string{
		t.Raw:      {StageDecode},
		t.Decoded:  {StageParse},
		t.Parsed:   {StageEnrich},
		t.Enriched: {StageDeliverLogs},
		t.DLQ:      {StageDLQ},
	}
	if cfg.Metrics.Enabled {
		m[t.Enriched] = append(m[t.Enriched], StageDerive)
		m[t.Metrics] = []string{StageDeliverMetrics}
	}
	return m
}

func newTransport(cfg config.Config, log *slog.Logger) (stage.Transport, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wlog := stage.QuietLogger(log.With("component", "transport"))
	tc := stage.TransportConfig{Kind: cfg.Transport.Kind}
	switch cfg.Transport.Kind {
	case "nats":
		n := cfg.Transport.NATS
		compression, err := stage.ParseCompression(n.Compression)
		if err != nil {
			return nil, fmt.Errorf("transport.nats.compression: %w", err)
		}
		tc.NATS = stage.NATSConfig{URL: n.URL, Consumers: Topology(cfg), Subscribers: cfg.Transport.Subscribers,
			AckWait: n.AckWait, StreamMaxBytes: n.StreamMaxBytes, Replicas: n.Replicas, Compression: compression}
	case "sqs":
		q := cfg.Transport.SQS
		var opts []func(*awsconfig.LoadOptions) error
		if q.Region != "" {
			opts = append(opts, awsconfig.WithRegion(q.Region))
		}
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("AWS configuration: %w", err)
		}
		tc.SQS = stage.SQSConfig{AWS: awsCfg, TopicPrefix: q.TopicPrefix, Consumers: Topology(cfg), Subscribers: cfg.Transport.Subscribers,
			VisibilityTimeout: q.VisibilityTimeout, MaxReceiveCount: q.MaxReceiveCount, MessageLimit: q.MessageLimit, ClaimCheckBucket: q.ClaimCheckBucket}
	}
	return stage.NewTransport(ctx, tc, wlog)
}
