package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/pipeline"
)

// logLevel is the level of the process's logger (newLogger): a reload of
// log.level sets it.
var logLevel slog.LevelVar

// hangup handles SIGHUP, which must never kill the process (its default
// action): it is how operators ask a daemon to reload, and a terminal
// hanging up sends it too. Until a reload is set (the pipeline is not
// running yet, or the command does not reload) each one is logged and
// ignored.
type hangup struct {
	reload atomic.Pointer[func()]
	why    string // logged when there is no reload
}

// handleHangup starts handling SIGHUP; why says, when it is ignored, why.
func handleHangup(why string) *hangup {
	h := &hangup{why: why}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	go func() {
		for range ch {
			if r := h.reload.Load(); r != nil {
				(*r)()
				continue
			}
			slog.Warn("SIGHUP received and ignored: " + h.why)
		}
	}()
	return h
}

// reloadWith makes each SIGHUP from now on run reload (one at a time:
// signals arriving meanwhile are coalesced into one more reload).
func (h *hangup) reloadWith(reload func()) { h.reload.Store(&reload) }

// reloadRun reads the configuration again as `gwpipe run` read it at start
// (the defaults, the --config file, the environment, then the flags) and
// reloads the running pipeline with it. What it cannot read is rejected
// like what is invalid: logged with the reason, counted, shown in /status,
// and the running configuration stays.
func reloadRun(ctx context.Context, p *pipeline.Pipeline, cfgPath string, flags func(*config.Config)) {
	slog.Info("SIGHUP received: reloading the configuration", "config", cfgPath)
	c, err := load(cfgPath)
	if err != nil {
		p.RejectReload(fmt.Errorf("read the configuration: %w", err))
		return
	}
	flags(&c)
	_, _ = p.Reload(ctx, c) // logged, counted and shown by Reload
}
