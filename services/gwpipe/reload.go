package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/pipeline"
)

// logLevel is the level of the process's logger (newLogger): a reload of
// log.level sets it.
var logLevel slog.LevelVar

// hangup handles SIGHUP, which must never kill the process (its default
// action): it is how operators ask a daemon to reload, and a terminal
// hanging up sends it too. Until a reload is set each one is logged: when
// the command will reload once running (deferred), the latest is kept and
// done then — the file may have changed after start read it —, otherwise
// it is ignored.
type hangup struct {
	mu       sync.Mutex
	reload   func()
	why      string // logged when there is no reload
	deferred bool   // a reload will be set: keep one SIGHUP for it
	pending  bool
}

// handleHangup starts handling SIGHUP; why says, when it is ignored or
// deferred, why.
func handleHangup(why string, deferred bool) *hangup {
	h := &hangup{why: why, deferred: deferred}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	go func() {
		for range ch {
			h.mu.Lock()
			r := h.reload
			if r == nil && h.deferred {
				h.pending = true
			}
			h.mu.Unlock()
			if r != nil {
				r()
				continue
			}
			slog.Warn("SIGHUP received: " + h.why)
		}
	}()
	return h
}

// reloadWith makes each SIGHUP from now on run reload, one at a time
// (signals arriving meanwhile are coalesced into one more reload), and runs
// it now for a SIGHUP kept while there was none.
func (h *hangup) reloadWith(reload func()) {
	h.mu.Lock()
	h.reload, h.deferred = reload, false
	pending := h.pending
	h.pending = false
	h.mu.Unlock()
	if pending {
		go reload()
	}
}

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
