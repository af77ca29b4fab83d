package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gwpipe/gwpipe/pkg/ops/tap"
)

func tapCmd() *cobra.Command {
	var (
		admin string
		topic string
		limit int64
	)
	cmd := &cobra.Command{
		Use:   "tap",
		Short: "Print live events sampled at a stage boundary of a running gwpipe, as JSON lines",
		Long: `Tap samples the events a running gwpipe publishes to one topic and prints them
as JSON lines on stdout, one event a line:

  raw       the records as a source received them (decompressed, as text)
  decoded   the log lines decoded from them
  parsed    the Datadog logs after parsing, exactly as they would be delivered
  enriched  the same after enrichment (tags from AWS, static tags)
  metrics   the metric points derived from the logs or metric streams
  dlq       the dead letters, with the stage and the reason

With --limit it exits after that many events; without, it streams until
Ctrl-C. A tap never slows or blocks the pipeline: when this reader falls
behind, the pipeline drops samples instead of waiting, and tap says on
stderr how many events it missed. API keys, AWS access keys and secrets are
masked. It reads GET /tap on the admin endpoint (admin.listen).

  gwpipe tap --topic parsed --limit 5
  gwpipe tap --admin 10.0.0.7:8089 --topic dlq | jq .reason`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(tap.Topics, topic) {
				return fmt.Errorf("--topic: want one of %s, got %q", strings.Join(tap.Topics, ", "), topic)
			}
			if limit < 0 || limit > tap.MaxLimit {
				return fmt.Errorf("--limit: want 0 (stream until Ctrl-C) to %d, got %d", tap.MaxLimit, limit)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// Unbuffered: each line reaches a pipe (| jq) as it comes.
			st, err := tap.Read(ctx, http.DefaultClient, admin, topic, limit, cmd.OutOrStdout())
			interrupted := errors.Is(err, context.Canceled)
			if err != nil && !interrupted {
				return err
			}
			noun := "events"
			if st.Events == 1 {
				noun = "event"
			}
			msg := fmt.Sprintf("tap: %d %s of %s", st.Events, noun, topic)
			if st.Dropped > 0 {
				msg += fmt.Sprintf(", %d more dropped: this reader was slower than the pipeline", st.Dropped)
			}
			fmt.Fprintln(cmd.ErrOrStderr(), msg)
			if st.End == "stopped" && limit > 0 && st.Events < limit {
				return fmt.Errorf("the pipeline stopped after %d of the %d events asked for", st.Events, limit)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&admin, "admin", "127.0.0.1:8089", "admin endpoint of the running gwpipe (admin.listen)")
	f.StringVar(&topic, "topic", "parsed", "stage boundary to sample: "+strings.Join(tap.Topics, ", "))
	f.Int64Var(&limit, "limit", 0, "exit after this many events; 0 streams until Ctrl-C")
	return cmd
}
