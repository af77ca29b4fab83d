package pipeline

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/runtime/lease"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/sources/cwpoller"
)

// SourcePoller is the stats name of the CloudWatch poller's output.
const SourcePoller = "cwpoller"

// pollerSource runs the CloudWatch GetMetricData poller for the accounts
// that have no metric stream. A period counts as fetched only once the
// metrics API accepted its points.
type pollerSource struct {
	p      *cwpoller.Poller
	out    stage.Output
	stop   chan struct{}      // closed by Stop: no new poll
	cancel context.CancelFunc // abandons the poll under way
	wg     sync.WaitGroup
	log    func(msg string, args ...any)
}

// newPollerSource builds the poller (metrics.poller.accounts is set).
func (p *Pipeline) newPollerSource(ctx context.Context) (Source, error) {
	pc := p.cfg.Metrics.Poller
	awsCfg, err := loadAWS(ctx, p.cfg.Enrich.DefaultRegion)
	if err != nil {
		return nil, fmt.Errorf("metrics.poller: %w", err)
	}
	// Polled points are named as streamed ones are.
	mapper, err := metricstream.NewMapper(p.cfg.Metrics.Streams.Config)
	if err != nil {
		return nil, fmt.Errorf("metrics.poller: %w", err)
	}
	cfg := pc
	cfg.Mapper, cfg.Logger = mapper, p.log.With("source", "cwpoller")
	if e := p.cfg.Enrich; e.RoleTemplate != "" || len(e.RoleOverrides) > 0 {
		cfg.CredentialsFor = cwpoller.RoleCredentials(sts.NewFromConfig(awsCfg), e.RoleFor, e.ExternalID)
	}
	if err := p.pollerState(ctx, &cfg); err != nil {
		return nil, err
	}
	poller, err := cwpoller.New(cfg, awsCfg)
	if err != nil {
		return nil, fmt.Errorf("metrics.poller: %w", err)
	}
	poller.RegisterMetrics(p.metrics)
	// Through enrichment, for the stages' console tags.
	return &pollerSource{p: poller, out: p.entryOutput(SourcePoller), log: p.log.Warn}, nil
}

// pollerState opens the poller's state when the fleet shares it (s3://…,
// nats-kv://…), with each target's lease in the same store, so that
// exactly one worker polls a target; a local file the poller opens itself.
func (p *Pipeline) pollerState(ctx context.Context, cfg *cwpoller.Config) error {
	url, _ := cfg.StateLocation()
	if !cwpoller.Shared(url) {
		return nil
	}
	store, err := p.casStore(ctx, url)
	if err != nil {
		return fmt.Errorf("metrics.poller.state_url: %w", err)
	}
	holder, lc := p.fleet.name(), cfg.Lease
	cfg.State = cwpoller.NewStoreState(store)
	cfg.Leases = func(t cwpoller.Target) *lease.Lease {
		return lease.New(store, t.Account+"-"+t.Region+".lease", holder, lc)
	}
	return nil
}

func (s *pollerSource) Name() string { return SourcePoller }

func (s *pollerSource) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.stop = cancel, make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.p.Run(ctx, s.stop, s.emit); err != nil && ctx.Err() == nil {
			s.log("CloudWatch poller stopped", "error", err)
		}
	}()
	return nil
}

// emit sends the points through enrichment (for the console tags) and
// waits until the metrics API accepted them.
func (s *pollerSource) emit(ctx context.Context, ms []record.Metric) error {
	if len(ms) == 0 {
		return nil
	}
	tr := ack.New()
	if err := s.out.Emit(ctx, &record.Batch{ID: "cwpoller", Metrics: ms, Ack: tr}); err != nil {
		tr.Fail(err)
		return err
	}
	tr.Done()
	return tr.Wait(ctx)
}

// Stop starts no new poll and waits, within ctx, for the poll under way:
// its points are acknowledged (or handed back) before its periods are
// marked fetched.
func (s *pollerSource) Stop(ctx context.Context) error {
	if s.cancel == nil {
		return nil
	}
	close(s.stop)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		return fmt.Errorf("cloudwatch poller still running: %w", ctx.Err())
	}
}
