package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddlogs"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddmetrics"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
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
		if err := p.rt.Add(stage.Stage{Name: StageDerive, Input: topics.Enriched, Output: topics.Metrics, Handler: metricsThrough{d}}); err != nil {
			return err
		}
	}
	if p.runs(StageDeliverMetrics) {
		lat := p.metrics.Histogram("deliver-metrics.request_latency")
		mc := p.cfg.MetricsClient()
		mc.Logger = p.log.With("stage", StageDeliverMetrics)
		mc.OnResult = func(r ddmetrics.Result) { lat.Observe(r.Latency) }
		c, err := ddmetrics.New(mc)
		if err != nil {
			return fmt.Errorf("deliver-metrics: %w", err)
		}
		p.metricsC = c
		if err := p.rt.Add(stage.Stage{Name: StageDeliverMetrics, Input: topics.Metrics, Handler: ddmetrics.NewStage(c)}); err != nil {
			return err
		}
	}
	if t := m.Telemetry; t.Enabled {
		clients := []func(*ddmetrics.Snapshot){p.memoryTelemetry}
		if p.metricsC != nil {
			clients = append(clients, ddmetrics.ClientCounters(StageDeliverMetrics, p.metricsC))
		}
		if p.logs != nil {
			clients = append(clients, logsCounters(p.logs))
		}
		snap := ddmetrics.RegistrySnapshot(p.metrics, clients...)
		st, err := ddmetrics.NewSelfTelemetry(ddmetrics.SelfTelemetryConfig{
			Addr: t.DogStatsDAddr, Interval: t.Interval, Tags: t.Tags, Snapshot: snap, Logger: p.log.With("component", "telemetry"),
		})
		if err != nil {
			return fmt.Errorf("metrics.telemetry: %w", err)
		}
		p.selfTel = st
	}
	return nil
}

// logsCounters adds the logs client's counters to a telemetry snapshot,
// named deliver-logs.<counter> as ddmetrics.ClientCounters names the
// metrics client's (e.g. gwpipe.deliver_logs.retries).
func logsCounters(c *ddlogs.Client) func(*ddmetrics.Snapshot) {
	return func(s *ddmetrics.Snapshot) {
		st := c.Stats()
		for k, v := range map[string]uint64{
			"submitted": st.LogsSubmitted, "accepted": st.LogsAccepted, "rejected": st.LogsRejected,
			"dropped": st.LogsDropped, "truncated": st.LogsTruncated, "payloads": st.Payloads,
			"requests": st.Requests, "retries": st.Retries, "splits": st.Splits,
			"bytes_accepted": st.BytesAccepted, "bytes_compressed": st.BytesCompressed,
		} {
			s.Counters[StageDeliverLogs+"."+k] = int64(v)
		}
		s.Gauges[StageDeliverLogs+".pending_payloads"] = float64(st.PendingPayloads)
		s.Gauges[StageDeliverLogs+".requests_in_flight"] = float64(st.InFlight)
	}
}

// startLoops starts the background work that time, not data, drives.
func (p *Pipeline) startLoops() {
	ctx, cancel := context.WithCancel(context.Background())
	p.stopLoops = cancel
	topics := p.cfg.Pipeline.Topics
	if p.corr != nil {
		out := p.rt.Source(StageParse, topics.Parsed)
		every := max(p.cfg.Parse.Correlation.MaxAge/4, 100*time.Millisecond)
		p.loop(func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					if err := emitSummaries(ctx, out, p.corr.Expire(now.UnixMilli())); err != nil && ctx.Err() == nil {
						p.log.Warn("request summaries could not be emitted", "error", err)
					}
				}
			}
		})
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
	if p.corr != nil && p.runs(StageEnrich) {
		sums := p.corr.Flush()
		if err := emitSummaries(ctx, p.rt.Source(StageParse, topics.Parsed), sums); err != nil {
			p.metrics.Stage(StageParse).Lost.Add(int64(len(sums)))
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

// memoryTelemetry reports the memory budget: what it holds now (gauges)
// and how often it refused or made decode wait (counts).
func (p *Pipeline) memoryTelemetry(s *ddmetrics.Snapshot) {
	st := p.memory.Stats()
	s.Gauges["memory.held_bytes"] = float64(st.HeldBytes)
	s.Gauges["memory.admitted_bytes"] = float64(st.AdmittedBytes)
	s.Gauges["memory.flowing_bytes"] = float64(st.FlowingBytes)
	s.Gauges["memory.limit_bytes"] = float64(st.LimitBytes)
	s.Counters["memory.refused"] = st.Refused
	s.Counters["memory.waits"] = st.Waits
}
