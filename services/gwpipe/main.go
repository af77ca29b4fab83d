// Command gwpipe moves Amazon API Gateway logs into Datadog: it ingests
// CloudWatch Logs subscription data, decodes and parses it, enriches it and
// delivers it, acknowledging each source only after Datadog accepted it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/pipeline"
	"github.com/gwpipe/gwpipe/pkg/redact"
)

func main() {
	err := rootCmd().Execute()
	var quiet exitError // the command said it all already
	if err != nil && !(errors.As(err, &quiet) && quiet.err == nil) {
		fmt.Fprintln(os.Stderr, "gwpipe:", redact.Err(err))
	}
	os.Exit(exitCode(err))
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "gwpipe",
		Short:         "Amazon API Gateway logs into Datadog, parsed, enriched and acknowledged end to end",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       currentBuild().Version,
	}
	root.SetVersionTemplate(currentBuild().String() + "\n")
	var cfgPath string
	root.PersistentFlags().StringVar(&cfgPath, "config", "", "YAML configuration file (optional: built-in defaults apply; every key a.b.c can be set as GWPIPE_A_B_C)")
	root.AddCommand(runCmd(&cfgPath), demoCmd(&cfgPath), validateCmd(&cfgPath), replayCmd(), versionCmd(), topCmd(), tapCmd(),
		parseCmd(&cfgPath), testCmd(&cfgPath))
	return root
}

func load(path string) (config.Config, error) {
	return config.Load(path, os.Environ())
}

// warnEnv logs each GWPIPE_ variable that names no configuration key.
func warnEnv(log *slog.Logger, environ []string) {
	for _, w := range config.EnvWarnings(environ) {
		log.Warn(w)
	}
}

func newLogger(c config.Config) *slog.Logger { return newLoggerTo(c, os.Stderr) }

// newLoggerTo is newLogger writing to w.
func newLoggerTo(c config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Log.Level))
	logLevel.Set(lvl)
	opts := &slog.HandlerOptions{Level: &logLevel}
	// Every line goes out without the secrets URLs may carry (a key in
	// datadog.logs_url, a password in a broker URL).
	if c.Log.Format == "json" {
		return slog.New(redact.Handler(slog.NewJSONHandler(w, opts)))
	}
	return slog.New(redact.Handler(slog.NewTextHandler(w, opts)))
}

func runCmd(cfgPath *string) *cobra.Command {
	var stages string
	var report time.Duration
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the pipeline (every stage by default)",
		Long: `Run the pipeline. With no broker configured (transport.kind: memory) every stage
runs in this process. The event data it holds is bounded by
pipeline.max_held_bytes; the Go runtime's soft memory limit is set to twice
that unless GOMEMLIMIT is set.

SIGTERM or SIGINT drains, within pipeline.drain_timeout: the sources stop
taking work (the Firehose endpoint answers 503 to new requests), every stage
finishes what is in flight, open metric windows are flushed, then the process
prints a summary and exits 0. What is not delivered when the time is up is
handed back unacknowledged (a waiting Firehose request gets a 503 and is
retried, an SQS message becomes visible again, a broker redelivers) and
counted in the summary: that is still a clean exit, 0. The whole shutdown,
router and transport included, ends within drain_timeout. A second signal
only warns; a third exits at once (1), losing nothing acknowledged.

SIGHUP reloads the configuration (the --config file and the environment,
read again) without stopping: static tags (enrich.tags, DD_TAGS),
datadog.service, parse formats, enrich mappings and role settings, the
metric tag allow-list, filters and sampling, and log.level apply to the work
taken after it, the work in flight finishing with the old settings. Keys read
only at start (listen addresses, transport, topics, stages, clients, sizes)
are reported in one log line and keep their value until a restart. An
invalid configuration is rejected with the reasons, each naming its key, and
the running one stays. Reloads are counted (config.reloads) and the last is
shown in /status (last_reload). The TLS certificates (sources.firehose.tls,
admin.tls) are read again too (and whenever their files change). SIGHUP
never stops the process. The README's "Reloading the configuration" lists
every key that reloads.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hup := handleHangup("gwpipe is starting: the configuration is reloaded once it runs", true)
			flags := func(c *config.Config) {
				if cmd.Flags().Changed("report") {
					c.Admin.ReportInterval = report
				}
			}
			c, err := load(*cfgPath)
			if err != nil {
				return err
			}
			flags(&c)
			list, err := pipeline.ParseStages(stages)
			if err != nil {
				return fmt.Errorf("--stages: %w", err)
			}
			log := newLogger(c)
			slog.SetDefault(log)
			warnEnv(log, os.Environ())
			p, err := pipeline.New(c, list, log)
			if err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			p.SetLogLevel(&logLevel)
			// The memory budget bounds what is live; the limit keeps the
			// collector from letting garbage double it (see
			// config.Pipeline.SoftMemoryLimit).
			tuneGC(c.Pipeline.SoftMemoryLimit(), runGCPercent)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := p.Start(ctx); err != nil {
				// Release what was connected before the failure.
				sctx, cancel := context.WithTimeout(context.Background(), c.Pipeline.DrainTimeout)
				defer cancel()
				return errors.Join(err, p.Shutdown(sctx))
			}
			hup.reloadWith(func() { reloadRun(context.Background(), p, *cfgPath, flags) })
			log.Info("gwpipe running", "version", currentBuild().Version, "revision", currentBuild().Revision, "stages", list, "transport", c.Transport.Kind, "logs_url", c.LogsURL())
			if c.Admin.ReportInterval > 0 {
				go p.Report(ctx, os.Stdout, c.Admin.ReportInterval)
			}
			var runErr error
			select {
			case <-ctx.Done():
			case runErr = <-p.Err():
			}
			stop()
			hup.reloadWith(func() { log.Warn("SIGHUP received and ignored: gwpipe is draining") })
			// A terminal's Ctrl-C reaches every process of the group and a
			// supervisor may follow with SIGTERM: one more signal does not
			// cut the drain short; a third one does.
			more := make(chan os.Signal, 2)
			signal.Notify(more, os.Interrupt, syscall.SIGTERM)
			go func() {
				<-more
				log.Warn("still draining; signal again to exit at once: what was not acknowledged yet is sent again by its sender")
				<-more
				os.Exit(1)
			}()
			log.Info("shutting down: draining in-flight work", "timeout", c.Pipeline.DrainTimeout)
			sctx, cancel := context.WithTimeout(context.Background(), c.Pipeline.DrainTimeout)
			defer cancel()
			err = errors.Join(runErr, p.Shutdown(sctx))
			p.Summary(os.Stdout)
			return err
		},
	}
	cmd.Flags().StringVar(&stages, "stages", "all", "comma-separated stages to run: "+strings.Join(pipeline.StageNames(), ", "))
	cmd.Flags().DurationVar(&report, "report", 0, "print a flow report at this interval (overrides admin.report_interval)")
	return cmd
}

func validateCmd(cfgPath *string) *cobra.Command {
	var keys, strict, connect bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the configuration and exit (--keys lists every key; --connect tries what it names)",
		Long: `Validate loads the configuration as run does (the defaults, the --config file,
then the environment) and reports every problem at once, each with the full
key that fixes it, without starting anything, reading other files or calling
the network:

  - the file: a key gwpipe does not have (with its line and the closest key),
    a value of the wrong type;
  - the environment: a GWPIPE_A_B_C value that does not fit key a.b.c;
  - every section as run checks it: parse.formats templates compiled,
    enrich mappings, role template and role overrides, metric-stream
    and poller settings, transport settings, the Datadog clients' settings;
  - values no setting makes sense with: a negative duration, a port out of
    range in a listen or DogStatsD address or a URL, DD_SITE given as a URL
    rather than a site (datadoghq.eu) or host name, sizes that must be
    positive.

A GWPIPE_ variable that names no key is ignored by run (other software sets
such variables too, e.g. Kubernetes service links) and reported here as a
warning with the closest key ("did you mean ..."); --strict makes it an
error.

--connect then checks, one line each with ✓ or ✗ and the reason, that what
the configuration names can be reached and used (reading only: no log,
message or object is written), and exits 1 when one cannot:

  - datadog.api_key: GET /api/v1/validate on datadog.api_url (the site's API);
  - datadog.logs_url: the logs intake answers an empty payload without
    refusing the key;
  - with enrich.aws_tags, each account enrich.role_overrides and
    enrich.mappings name (or the pipeline's own account): the role assumed,
    apigateway:GET and tag:GetResources allowed;
  - each SQS queue of sources.sqs.queue_urls; the S3 buckets of
    replay.bucket, replay.dlq and transport.sqs.claim_check_bucket;
  - with transport.kind nats, the NATS server and its JetStream.

--keys lists every key with its environment variable. In the environment
numbers, durations ("90s") and booleans are written as in the file, a list of
strings comma-separated or as JSON, and a map or a list of structs as JSON,
e.g. GWPIPE_ENRICH_MAPPINGS='[{"log_group":"/aws/x/*","api_id":"a1b2c3"}]'.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keys {
				for _, k := range config.Keys() {
					fmt.Fprintf(cmd.OutOrStdout(), "%-45s %s\n", k[0], k[1])
				}
				return nil
			}
			c, err := load(*cfgPath)
			if err != nil {
				return err
			}
			warnings := config.EnvWarnings(os.Environ())
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			if err := c.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			if strict && len(warnings) > 0 {
				return fmt.Errorf("%d GWPIPE_ variable(s) name no configuration key (--strict)", len(warnings))
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration is valid")
			if connect {
				return connectChecks(cmd.Context(), c, timeout, cmd.OutOrStdout())
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&keys, "keys", false, "list every configuration key and its environment variable")
	cmd.Flags().BoolVar(&strict, "strict", false, "fail on a GWPIPE_ variable that names no configuration key")
	cmd.Flags().BoolVar(&connect, "connect", false, "also check that Datadog, the AWS accounts, queues and buckets, and NATS can be reached and used")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "time allowed to each --connect check")
	return cmd
}

func replayCmd() *cobra.Command {
	var (
		r        config.Replay
		dlqURL   string
		dryRun   bool
		progress bool
	)
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Replay a time range of an S3 archive, or the dead-letter archive, into Datadog",
		Long: `Replay reads an archive again and sends its events through the whole pipeline,
tagged replay:true: the objects of a bucket and prefix that hold a time range
(Firehose objects of CloudWatch envelopes, direct access logs and metric
streams, in any mix, read item by item; CloudWatch Logs export-task objects;
Firehose error backups), or gwpipe's dead-letter archive (--dlq-dir DIR, or
--dlq s3://bucket/prefix/ for an archive in S3), so that "fix and replay" is
one command.

Objects are streamed, whatever their size. --checkpoint FILE (or
s3://bucket/key, for a replay running in a pod) records what was delivered:
run the same command again after an interruption and it resumes without
sending anything twice. A checkpoint in S3 is guarded by a lease
(<key>.lease): a second replay with the same checkpoint is refused while the
first runs, and takes over once the first is dead (replay.lease.ttl). A
dead-letter archive keeps that record itself, a ledger beside each file or
object (<file>.replayed): the same --dlq-dir / --dlq command, run again,
sends only the letters not yet settled. Letters that fail again go to a new
archive inside the one read (DIR/replay-<time>-… or
s3://bucket/prefix/replay-<time>-…/, printed at the end), never into the
files read. Datadog drops logs older than 18 hours: they
are skipped and counted (--old-logs skip) or sent with the replay time
(--old-logs retimestamp). Metric-stream data goes to the metrics API as
points; points more than 55 minutes old are skipped and counted (the API
drops them after an hour). --dry-run only reads and counts.

Every flag has a configuration key under replay. (e.g. replay.rate).
SIGHUP is logged and ignored: a replay does not reload its configuration.

  gwpipe replay --bucket logs --prefix firehose/ --from 2026-11-28T00:00:00Z --to 2026-11-28T06:00:00Z --checkpoint r.ckpt
  gwpipe replay --bucket logs --prefix firehose/ --from -6h --dry-run
  gwpipe replay --dlq-dir data/dlq
  gwpipe replay --dlq s3://gwpipe-dlq/prod/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			handleHangup("ignored: gwpipe replay does not reload its configuration (SIGINT or SIGTERM stops it; run the same command again to resume with --checkpoint)", false)
			cfgPath, _ := cmd.Flags().GetString("config")
			c, err := load(cfgPath)
			if err != nil {
				return err
			}
			// Flags override the file and the environment only when given.
			f := cmd.Flags()
			set := func(name string, apply func()) {
				if f.Changed(name) {
					apply()
				}
			}
			set("bucket", func() { c.Replay.Bucket = r.Bucket })
			set("prefix", func() { c.Replay.Prefix = r.Prefix })
			set("from", func() { c.Replay.From = r.From })
			set("to", func() { c.Replay.To = r.To })
			set("select-by", func() { c.Replay.SelectBy = r.SelectBy })
			set("key-slack", func() { c.Replay.KeySlack = r.KeySlack })
			set("concurrency", func() { c.Replay.Concurrency = r.Concurrency })
			set("rate", func() { c.Replay.Rate = r.Rate })
			set("checkpoint", func() { c.Replay.Checkpoint = r.Checkpoint })
			set("old-logs", func() { c.Replay.OldLogs = r.OldLogs })
			set("max-age", func() { c.Replay.MaxAge = r.MaxAge })
			if f.Changed("dlq") && f.Changed("dlq-dir") {
				return errors.New("--dlq and --dlq-dir name the same archive to replay: give one")
			}
			set("dlq-dir", func() { c.Replay.DLQ = r.DLQ })
			set("dlq", func() { c.Replay.DLQ = dlqURL })
			set("region", func() { c.Replay.Region = r.Region })
			set("events-per-batch", func() { c.Replay.EventsPerBatch = r.EventsPerBatch })
			set("max-inflight-events", func() { c.Replay.MaxInFlightEvents = r.MaxInFlightEvents })
			if c.Replay.DLQ != "" && !f.Changed("bucket") {
				c.Replay.Bucket = "" // --dlq-dir replaces a bucket from the configuration
			}

			log := newLogger(c)
			slog.SetDefault(log)
			warnEnv(log, os.Environ())
			// A replay is a batch job whose live heap is a few tens of
			// MiB (the in-flight window, the stages' state): a soft limit
			// makes the collector keep the process near 200 MiB instead of
			// letting the heap grow between collections. GOMEMLIMIT
			// overrides it (e.g. for a large --concurrency).
			tuneGC(replayMemoryLimit, 0)
			opts := pipeline.ReplayOptions{DryRun: dryRun}
			if !f.Changed("progress") {
				progress = isTerminal(os.Stderr)
			}
			if progress {
				opts.Progress = os.Stderr
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := pipeline.Replay(ctx, c, opts, log)
			if res.Source != "" && (err == nil || res.DidSomething()) { // say what it did, even when it failed
				res.Write(cmd.OutOrStdout())
			}
			return err
		},
	}
	d := config.DefaultConfig().Replay
	f := cmd.Flags()
	f.StringVar(&r.Bucket, "bucket", "", "bucket of the archive (replay.bucket)")
	f.StringVar(&r.Prefix, "prefix", "", "key prefix of the archive (replay.prefix)")
	f.StringVar(&r.From, "from", "", "start of the event time range: RFC 3339, a date, or relative such as -2h or -3d; required with --bucket (replay.from)")
	f.StringVar(&r.To, "to", "", "end of the event time range, exclusive; default: when the replay starts, kept in the checkpoint (replay.to)")
	f.StringVar(&r.SelectBy, "select-by", d.SelectBy, "how objects are chosen: key (Firehose YYYY/MM/DD/HH), modified (object time), auto or none (replay.select_by)")
	f.DurationVar(&r.KeySlack, "key-slack", d.KeySlack, "widen the key-time window on both sides (replay.key_slack)")
	f.IntVar(&r.Concurrency, "concurrency", d.Concurrency, "objects read at once (replay.concurrency)")
	f.IntVar(&r.Rate, "rate", d.Rate, "events per second; 0 is unlimited (replay.rate)")
	f.BoolVar(&dryRun, "dry-run", false, "only read and count; send nothing")
	f.StringVar(&r.Checkpoint, "checkpoint", "", "checkpoint file, or s3://bucket/key: resume an interrupted replay without sending anything twice (replay.checkpoint)")
	f.StringVar(&r.OldLogs, "old-logs", d.OldLogs, "events older than --max-age (Datadog drops logs older than 18h): skip or retimestamp (replay.old_logs)")
	f.DurationVar(&r.MaxAge, "max-age", d.MaxAge, "age beyond which --old-logs applies (replay.max_age)")
	f.StringVar(&r.DLQ, "dlq-dir", "", "replay the dead-letter archive in a directory (replay.dlq)")
	f.StringVar(&dlqURL, "dlq", "", "replay the dead-letter archive: s3://bucket/prefix/ (dlq.url), or a directory (replay.dlq)")
	f.StringVar(&r.Region, "region", "", "region of the bucket; default: the AWS SDK's (replay.region)")
	f.IntVar(&r.EventsPerBatch, "events-per-batch", d.EventsPerBatch, "events per batch sent down the pipeline (replay.events_per_batch)")
	f.IntVar(&r.MaxInFlightEvents, "max-inflight-events", d.MaxInFlightEvents, "events sent and not yet acknowledged, at most: bounds memory (replay.max_inflight_events)")
	f.BoolVar(&progress, "progress", false, "show a progress bar on stderr (default: when stderr is a terminal)")
	return cmd
}

// replayMemoryLimit is the soft memory limit of `gwpipe replay`.
const replayMemoryLimit = 230 << 20

// isTerminal reports whether f is a character device (a terminal), where
// a progress bar can redraw itself.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// runGCPercent is the collector's pace below the soft memory limit in
// `gwpipe run`: a collection when the heap has grown by twice what was
// live, not once. The limit bounds the heap whatever the pace, so this
// trades only headroom under the limit for fewer collections: on make
// bench, 3-4 % more events per CPU-second (medians of 7 alternated runs of
// scripts/bench-ab.sh) for 3 MiB more peak RSS there, 20 MiB more under
// make bench-memory's floods (238 MiB). Not for replay: its live
// heap is small against its limit, and its RSS, flat at the default pace,
// climbed to the limit at this one (make bench-replay, 2 GiB object).
const runGCPercent = 200

// tuneGC sets the collector of a pipeline process, except what the
// environment sets (GOMEMLIMIT, GOGC): a soft memory limit, and the GC
// percent unless it is 0 (the runtime's default).
func tuneGC(limit int64, percent int) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit)
	}
	if percent > 0 && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
}
