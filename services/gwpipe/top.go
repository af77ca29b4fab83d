package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/spf13/cobra"

	"github.com/gwpipe/gwpipe/pkg/ops/top"
)

func topCmd() *cobra.Command {
	var (
		admins   []string
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Live view of running gwpipe workers: rates, queues, errors and latencies per stage",
		Long: `Top shows, full screen and redrawn in place, what running gwpipe workers are
doing, read from the /metrics of their admin endpoints (admin.listen) every
--interval:

  Stages      per stage: events in and out per second, batches in flight and
              queued, errors and dead letters since start, p99 time to handle
              a batch over the last interval
  Sources     requests (SQS messages) per second, refusals by status since
              start, p99 time to acknowledge over the last interval
  Delivery    logs and metric points Datadog accepted (per second and since
              start), refused, logs filtered (dropped or sampled out by
              filters.*), requests retried, bytes, p99 request time
  Enrichment  share of tag lookups answered from the cache, records that went
              on with partial tags

Several --admin flags show a fleet: one row per worker and stage, and a total
per stage. q quits. When stdout is not a terminal, top prints the same figures
as plain key=value lines every --interval instead, until interrupted.

  gwpipe top
  gwpipe top --admin 10.0.0.7:8089 --admin 10.0.0.8:8089`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval < 100*time.Millisecond {
				return fmt.Errorf("--interval: want at least 100ms, got %s", interval)
			}
			p := &top.Poller{Addrs: admins, Scrape: top.HTTPScraper(http.DefaultClient, max(interval, time.Second))}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if !interactive(cmd.OutOrStdout()) {
				return top.RunPlain(ctx, cmd.OutOrStdout(), p, interval)
			}
			return runTop(ctx, p, interval, "gwpipe top — "+strings.Join(admins, ", "))
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&admins, "admin", []string{"127.0.0.1:8089"}, "admin endpoint of a worker (admin.listen); repeat for a fleet")
	f.DurationVar(&interval, "interval", time.Second, "refresh interval")
	return cmd
}

// interactive reports whether out is a terminal a full-screen view can
// take over (and stdin one to read q from).
func interactive(out io.Writer) bool {
	f, ok := out.(*os.File)
	return ok && isTerminal(f) && isTerminal(os.Stdin)
}

// runTop runs the full-screen view until q, or ctx ends.
func runTop(ctx context.Context, p *top.Poller, interval time.Duration, title string) error {
	prog := tea.NewProgram(top.NewModel(ctx, p, interval, title), tea.WithContext(ctx))
	_, err := prog.Run()
	if err != nil && ctx.Err() != nil {
		return nil // interrupted: a normal end
	}
	return err
}

// runDemoTop is the demo's live view of its own admin endpoint, until q
// (nil) or ctx ends (nil). The demo handles the signals itself.
func runDemoTop(ctx context.Context, out io.Writer, admin, title string) error {
	p := &top.Poller{Addrs: []string{admin}, Scrape: top.HTTPScraper(http.DefaultClient, time.Second)}
	prog := tea.NewProgram(top.NewModel(ctx, p, time.Second, title), tea.WithContext(ctx), tea.WithOutput(out), tea.WithoutSignalHandler())
	_, err := prog.Run()
	if err != nil && ctx.Err() != nil {
		return nil
	}
	return err
}
