package pipeline

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/gwpipe/gwpipe/pkg/awsconf"
	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
)

// newTransport connects the configured transport, within a minute at most.
func newTransport(ctx context.Context, cfg config.Config, log *slog.Logger) (stage.Transport, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	wlog := stage.QuietLogger(log.With("component", "transport"))
	tc := cfg.Transport.TransportConfig
	tc.NATS.Consumers, tc.SQS.Consumers = Topology(cfg), Topology(cfg)
	tc.NATS.Subscribers, tc.SQS.Subscribers = tc.Subscribers, tc.Subscribers
	if tc.Kind == "sqs" {
		awsCfg, err := loadAWS(ctx, tc.SQS.Region)
		if err != nil {
			return nil, err
		}
		tc.SQS.AWS = awsCfg
	}
	return stage.NewTransport(ctx, tc, wlog)
}

// loadAWS loads the AWS configuration (region: this use's, "" for the
// chain's), within 30 seconds at most of ctx.
func loadAWS(ctx context.Context, region string) (aws.Config, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return awsconf.Load(ctx, region)
}
