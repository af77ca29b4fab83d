package pipeline

import (
	"context"
	"log/slog"
	"time"

	"github.com/gwpipe/gwpipe/pkg/awsconf"
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
	tc := cfg.Transport.TransportConfig
	tc.NATS.Consumers, tc.SQS.Consumers = Topology(cfg), Topology(cfg)
	tc.NATS.Subscribers, tc.SQS.Subscribers = tc.Subscribers, tc.Subscribers
	if tc.Kind == "sqs" {
		awsCfg, err := awsconf.Load(ctx, tc.SQS.Region)
		if err != nil {
			return nil, err
		}
		tc.SQS.AWS = awsCfg
	}
	return stage.NewTransport(ctx, tc, wlog)
}
