package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddmetrics"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
	"github.com/gwpipe/gwpipe/pkg/stages/parse"
)

// addMetricStages mounts derive and deliver-metrics when metrics are on.
func (p *Pipeline) addMetricStages() error {
	m := p.cfg.Metrics
	topics := p.cfg.Pipeline.Topics
	if !m.Enabled {
		return nil
	}
	if p.runs(StageDerive) {
		dc := m.Config
		dc.Logger = p.log.With("stage", StageDerive)
		d, err := derive.New(dc, p.metrics)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		p.deriver = d
		if err := p.rt.Add(stage.Stage{Name: StageDerive, Input: topics.Enriched, Output: topics.Metrics, Handler: derive.NewStage(d)}); err != nil {
			return err
		}
	}
	if p.runs(StageDeliverMetrics) {
		lat := p.metrics.Histogram("deliver_metrics.request_latency", "Time of each HTTP request to the metrics API, every attempt.")
		mc := p.cfg.MetricsClient()
		mc.Logger = p.log.With("stage", StageDeliverMetrics)
		mc.OnResult = func(r ddmetrics.Result) { lat.Observe(r.Latency) }
		c, err := ddmetrics.New(mc)
		if err != nil {
			return fmt.Errorf("deliver-metrics: %w", err)
		}
		p.metricsC = c
		c.RegisterMetrics(p.metrics)
		if err := p.rt.Add(stage.Stage{Name: StageDeliverMetrics, Input: topics.Metrics, Handler: ddmetrics.NewStage(c)}); err != nil {
			return err
		}
	}
	if t := m.Telemetry; t.Enabled {
		st, err := ddmetrics.NewSelfTelemetry(ddmetrics.SelfTelemetryConfig{
			Addr: t.DogStatsDAddr, Interval: t.Interval, Tags: t.Tags, Registry: p.metrics, Logger: p.log.With("component", "telemetry"),
		})
		if err != nil {
			return fmt.Errorf("metrics.telemetry: %w", err)
		}
		p.selfTel = st
	}
	return nil
}

// startLoops starts the background work that time, not data, drives.
func (p *Pipeline) startLoops() {
	ctx, cancel := context.WithCancel(context.Background())
	p.stopLoops = cancel
	topics := p.cfg.Pipeline.Topics
	if p.parse != nil {
		out := p.rt.Source(StageParse, topics.Parsed)
		every := parse.ExpiryInterval(p.cfg.Parse.Correlation.MaxAge)
		p.loop(func() { p.parse.RunExpiry(ctx, out, every, p.log) })
	}
	if p.deriver != nil {
		out := p.rt.Source(StageDerive, topics.Metrics)
		p.loop(func() { p.deriver.Run(ctx, out, p.cfg.Metrics.Tick) })
	}
	if p.selfTel != nil {
		p.loop(func() { p.selfTel.Run(ctx) })
	}
}

func (p *Pipeline) loop(f func()) {
	p.loops.Add(1)
	go func() {
		defer p.loops.Done()
		f()
	}()
}

// flushOpenWork runs at shutdown once the sources are quiet: the requests
// still open in the correlator become summaries, every open metric window
// is flushed, and both are delivered (in one process, Drain waits for
// them) before the process exits. Summaries it cannot emit are lost and
// counted (StageStats.Lost of parse); metric points it cannot emit stay
// pending in derive, which Shutdown counts.
func (p *Pipeline) flushOpenWork(ctx context.Context) []error {
	if p.stopLoops != nil {
		p.stopLoops()
		p.loops.Wait()
	}
	var errs []error
	topics := p.cfg.Pipeline.Topics
	inProcess := p.rt.InProcess()
	if p.parse != nil && p.runs(StageEnrich) {
		if lost, err := p.parse.Flush(ctx, p.rt.Source(StageParse, topics.Parsed)); err != nil {
			p.metrics.Stage(StageParse).Lost.Add(int64(lost))
			errs = append(errs, fmt.Errorf("flush request summaries: %w", err))
		}
		if inProcess {
			if err := p.rt.Drain(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if p.deriver != nil {
		if err := p.deriver.Flush(ctx, p.rt.Source(StageDerive, topics.Metrics)); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("flush metric windows: %w", err))
		}
		if inProcess {
			if err := p.rt.Drain(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}
