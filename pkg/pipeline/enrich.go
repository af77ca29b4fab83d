package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/record"
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
func (p *Pipeline) enricher(ctx context.Context) (stage.Handler, error) {
	e := p.cfg.Enrich
	cfg := e.Config
	cfg.Logger = p.log.With("stage", StageEnrich)
	if !e.AWSTags {
		t, err := awstags.NewOffline(cfg)
		if err != nil {
			return nil, err
		}
		p.reload.mappings = t
		// Offline, no format is learned: what parse could not route stays so.
		return p.enrichStage(t, e.MaxWait, cfg.Logger, nil)
	}
	awsCfg, err := loadAWS(ctx, e.DefaultRegion)
	if err != nil {
		return nil, fmt.Errorf("enrich.aws_tags: %w", err)
	}
	if p.parser == nil {
		// A worker without the parse stage (a fleet's enrich tier) learns
		// the formats too: enrich parses again what parse, elsewhere,
		// could not route (see enrich.Config.Reparse). parse.* reloads
		// reach this parser as they reach the parse stage's.
		if p.parser, err = apigw.New(p.cfg.Parse.Config); err != nil {
			return nil, fmt.Errorf("parse: %w", err)
		}
	}
	// A stage's own access-log format teaches the parser its layout.
	cfg.OnFormat = func(logGroup, format string) {
		if err := p.parser.SetFormat(logGroup, format); err != nil {
			p.log.Warn("access-log format from AWS not understood", "log_group", logGroup, "error", err)
		}
	}
	t, err := awstags.New(ctx, cfg, awsCfg)
	if err != nil {
		return nil, err
	}
	p.tagger = t
	p.reload.mappings = t
	t.RegisterMetrics(p.metrics)
	return p.enrichStage(t, e.MaxWait, cfg.Logger, p.parser.Parse)
}

func (p *Pipeline) enrichStage(t enrich.Tagger, maxWait time.Duration, log *slog.Logger, reparse func(*record.Batch, *record.Record)) (stage.Handler, error) {
	s, err := enrich.New(t, enrich.Config{MaxWait: maxWait, Logger: log, Reparse: reparse})
	if err != nil {
		return nil, err
	}
	s.RegisterMetrics(p.metrics)
	return s, nil
}
