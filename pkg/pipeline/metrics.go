package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/gwpipe/gwpipe/pkg/stages/parse"
)

// startLoops starts the background work that time, not data, drives.
func (p *Pipeline) startLoops() {
	ctx, cancel := context.WithCancel(context.Background())
	p.stopLoops = cancel
	if p.parse != nil {
		out := p.entryOutput(StageParse)
		every := parse.ExpiryInterval(p.cfg.Parse.Correlation.MaxAge)
		p.loop(func() { p.parse.RunExpiry(ctx, out, every, p.log) })
	}
	if p.deriver != nil {
		out := p.entryOutput(StageDerive)
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
	inProcess := p.rt.InProcess()
	if p.parse != nil && p.runs(StageEnrich) {
		if lost, err := p.parse.Flush(ctx, p.entryOutput(StageParse)); err != nil {
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
		if err := p.deriver.Flush(ctx, p.entryOutput(StageDerive)); err != nil && !errors.Is(err, context.Canceled) {
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
