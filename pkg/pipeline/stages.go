package pipeline

import (
	"context"
	"fmt"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/runtime/dedup"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddlogs"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddmetrics"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/stages/decode"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich"
	"github.com/gwpipe/gwpipe/pkg/stages/filter"
	"github.com/gwpipe/gwpipe/pkg/stages/parse"
)

// The constructors of the graph's stages (theGraph), run by Start in graph
// order: each gives its stage's package what it needs from the
// configuration and the process.

func (p *Pipeline) newDecode(context.Context) (stage.Handler, error) {
	d := decode.New(p.cfg.Decode, p.metrics).WithMemory(p.memory)
	if p.streams != nil {
		d.WithMetricStreams(p.streams)
	} else {
		// Metric-stream data is still recognised, and dead-lettered
		// with the reason rather than delivered as logs.
		d.WithMetricStreams(decode.RefusedMetricStreams())
	}
	return d, nil
}

func (p *Pipeline) newParse(context.Context) (stage.Handler, error) {
	var err error
	if p.parser, err = apigw.New(p.cfg.Parse.Config); err != nil {
		return nil, err
	}
	corr := apigw.NewCorrelator(p.cfg.Parse.Correlation.CorrelatorConfig)
	corr.RegisterMetrics(p.metrics)
	p.parse = parse.New(p.parser, corr)
	return p.parse, nil
}

func (p *Pipeline) newEnrich(ctx context.Context) (stage.Handler, error) {
	h, err := p.enricher(ctx)
	if err != nil {
		return nil, err
	}
	if p.tagger != nil {
		h = enrich.WithMetricTags(h, p.tagger)
	}
	return h, nil
}

func (p *Pipeline) newDerive(context.Context) (stage.Handler, error) {
	dc := p.cfg.Metrics.Config
	dc.Logger = p.log.With("stage", StageDerive)
	d, err := derive.New(dc, p.metrics)
	if err != nil {
		return nil, err
	}
	// metrics.tag_allowlist copies enrichment tags, and enrich.tags and
	// DD_TAGS are enrichment tags too, though only the logs deliverer adds
	// them to a log.
	d.SetStaticTags(p.cfg.Enrich.Tags)
	p.deriver = d
	return derive.NewStage(d), nil
}

func (p *Pipeline) newDeliverLogs(ctx context.Context) (stage.Handler, error) {
	deliveries := p.metrics.Histogram("deliver_logs.request_latency", "Time of each HTTP request to the logs intake, every attempt.")
	lc := p.cfg.LogsClient()
	lc.Logger = p.log.With("stage", StageDeliverLogs)
	lc.OnResult = func(r ddlogs.Result) { deliveries.Observe(r.Latency) }
	var err error
	if p.logs, err = ddlogs.New(lc); err != nil {
		return nil, err
	}
	p.logs.RegisterMetrics(p.metrics)
	// Redeliveries after a crash come from a broker. In one process a
	// Firehose retry is recognised by its request id instead, so the
	// window would only cost CPU.
	//
	// A replay of dead letters may read a letter archived twice (its
	// worker killed between writing it and acknowledging its batch, which
	// the broker then redelivered): the window delivers its events once.
	var seen *dedup.Window
	if p.cfg.Transport.Kind != "memory" || p.cfg.Replay.DLQ != "" {
		seen = dedup.New(p.cfg.Transport.DedupWindow)
	}
	// Logs are filtered as they leave; derive counted them already.
	if p.filters, err = filter.New(p.cfg.Filters, p.metrics); err != nil {
		return nil, err
	}
	opts := ddlogs.StageOptions{
		Summaries: p.cfg.Parse.Correlation.DeliverSummaries, Seen: seen, Filter: p.filters,
		Duplicates: p.metrics.Counter("deliver_logs.duplicates_dropped", "Logs a broker delivered again after they were delivered (transport.dedup_window): not sent twice."),
		MaxAge:     ddlogs.MaxLogAge,
		TooOld: p.metrics.Counter("deliver_logs.logs_too_old",
			"Logs older than the logs intake's 18-hour limit when delivered (the intake would accept and drop them): dead-lettered, to replay with --old-logs retimestamp."),
	}
	if p.cfg.Datadog.Logs.KeepOldLogs {
		opts.MaxAge = 0
	}
	// A batch the broker redelivers to another worker is recognised
	// fleet-wide, where the transport has a store for it.
	fleet, err := p.fleetBatches(ctx)
	if err != nil {
		return nil, err
	}
	if fleet != nil {
		opts.Fleet, opts.Logger = fleet, lc.Logger
		opts.FleetDuplicates = p.metrics.Counter("deliver_logs.fleet.duplicates_dropped",
			"Logs of batches a broker delivered again, on any worker, after one had delivered them (transport.fleet_dedup): not sent twice.")
		opts.FleetErrors = p.metrics.Counter("deliver_logs.fleet.errors",
			"Look-ups and marks of delivered batches the fleet-wide store could not answer: the batch was handled as if this worker were alone.")
	}
	return ddlogs.NewStage(p.logs, opts), nil
}

func (p *Pipeline) newDeliverMetrics(context.Context) (stage.Handler, error) {
	lat := p.metrics.Histogram("deliver_metrics.request_latency", "Time of each HTTP request to the metrics API, every attempt.")
	mc := p.cfg.MetricsClient()
	mc.Logger = p.log.With("stage", StageDeliverMetrics)
	mc.OnResult = func(r ddmetrics.Result) { lat.Observe(r.Latency) }
	c, err := ddmetrics.New(mc)
	if err != nil {
		return nil, err
	}
	p.metricsC = c
	c.RegisterMetrics(p.metrics)
	return ddmetrics.NewStage(c), nil
}

func (p *Pipeline) newDLQ(context.Context) (stage.Handler, error) {
	return dlq.NewStage(p.archive, p.metrics), nil
}

// newSelfTelemetry builds the DogStatsD self-telemetry, when asked for.
func (p *Pipeline) newSelfTelemetry() error {
	t := p.cfg.Metrics.Telemetry
	if !p.cfg.Metrics.Enabled || !t.Enabled {
		return nil
	}
	st, err := ddmetrics.NewSelfTelemetry(ddmetrics.SelfTelemetryConfig{
		Addr: t.DogStatsDAddr, Interval: t.Interval, Tags: t.Tags, Registry: p.metrics, Logger: p.log.With("component", "telemetry"),
	})
	if err != nil {
		return fmt.Errorf("metrics.telemetry: %w", err)
	}
	p.selfTel = st
	return nil
}
