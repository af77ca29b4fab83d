package pipeline

import (
	"context"
	"fmt"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
)

// enricher builds the enrich stage: the stage tags read from AWS across
// accounts, or, with enrich.aws_tags off, only what the records carry
// (account and region of their origin; API and stage of an execution log
// group, of an access log's own apiId and stage fields, or of a mapping).
// Both name and tag records by the same rules (awstags), so a log's own
// tags never depend on the AWS settings.
func (p *Pipeline) enricher() (stage.Handler, error) {
	e := p.cfg.Enrich
	cfg := awstags.Config{
		RoleTemplate: e.RoleTemplate, RoleOverrides: e.RoleOverrides, ExternalID: e.ExternalID,
		DefaultRegion: e.DefaultRegion, TTL: e.TTL, NegativeTTL: e.NegativeTTL, MaxStages: e.MaxStages,
		RatePerSecond: e.RatePerSecond, Burst: e.Burst, MaxWait: e.MaxWait,
		Logger: p.log.With("stage", StageEnrich),
	}
	for _, m := range e.Mappings {
		cfg.Mappings = append(cfg.Mappings, awstags.Mapping{LogGroup: m.LogGroup, APIID: m.APIID, Stage: m.Stage, Account: m.Account, Region: m.Region})
	}
	if !e.AWSTags {
		t, err := awstags.NewOffline(cfg)
		if err != nil {
			return nil, err
		}
		return enrich.New(t, enrich.Config{MaxWait: e.MaxWait, Logger: cfg.Logger})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var opts []func(*awsconfig.LoadOptions) error
	if e.DefaultRegion != "" {
		opts = append(opts, awsconfig.WithRegion(e.DefaultRegion))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if p.parser != nil {
		// A stage's own access-log format teaches the parser its layout.
		cfg.OnFormat = func(logGroup, format string) {
			if err := p.parser.SetFormat(logGroup, format); err != nil {
				p.log.Warn("access-log format from AWS not understood", "log_group", logGroup, "error", err)
			}
		}
	}
	t, err := awstags.New(ctx, cfg, awsCfg)
	if err != nil {
		return nil, err
	}
	p.tagger = t
	return enrich.New(t, enrich.Config{MaxWait: e.MaxWait, Logger: cfg.Logger})
}
