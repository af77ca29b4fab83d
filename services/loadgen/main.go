// Command loadgen sends realistic Amazon API Gateway log traffic to a
// Firehose HTTP endpoint destination (such as gwpipe), the way Amazon Kinesis
// Data Firehose delivers it. See package github.com/gwpipe/gwpipe/pkg/testkit/loadgen.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/gwpipe/gwpipe/pkg/testkit/floor"
	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
	"github.com/gwpipe/gwpipe/pkg/testkit/procstat"
)

func main() {
	os.Exit(run())
}

func run() int {
	cfg := loadgen.DefaultConfig()
	cfg.ControlRate = 0.01
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&cfg.URL, "url", cfg.URL, "Firehose HTTP endpoint destination URL")
	fs.StringVar(&cfg.AccessKey, "access-key", "", "value of X-Amz-Firehose-Access-Key (omitted when empty)")
	fs.Int64Var(&cfg.Events, "events", 0, "total events to send (0 = until Ctrl-C or -duration)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop generating after this long (0 = no limit)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "events per second (0 = as fast as possible)")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "requests in flight")
	fs.IntVar(&cfg.RecordsPerRequest, "records-per-request", cfg.RecordsPerRequest, "Firehose records per request (max)")
	fs.IntVar(&cfg.EventsPerRecord, "events-per-record", cfg.EventsPerRecord, "CloudWatch events per record (max)")
	fs.IntVar(&cfg.Accounts, "accounts", cfg.Accounts, "AWS accounts")
	fs.IntVar(&cfg.APIs, "apis", cfg.APIs, "REST APIs (spread over the accounts)")
	fs.IntVar(&cfg.Stages, "stages", cfg.Stages, "stages per API")
	fs.Int64Var(&cfg.Seed, "seed", 1, "random seed (the universe and traffic are deterministic for a seed)")
	instance := fs.Uint("instance", 0, "instance number, distinguishes event ids of generators sharing a seed (0..65535)")
	fs.BoolVar(&cfg.GzipBody, "gzip-body", false, "send Content-Encoding: gzip bodies")
	fs.BoolVar(&cfg.Direct, "direct", false, "send plain access-log lines as API Gateway's amazon-apigateway-* Firehose streams do")
	fs.Var(&cfg.Mix, "mix", "event mix by weight, e.g. json=6,clf=2,exec=2")
	fs.Float64Var(&cfg.ControlRate, "control-rate", cfg.ControlRate, "probability that a request carries a CONTROL_MESSAGE record")
	fs.IntVar(&cfg.GzipLevel, "gzip-level", cfg.GzipLevel, "gzip level for records and bodies (1 fastest, 9 smallest)")
	fs.DurationVar(&cfg.InitialBackoff, "initial-backoff", cfg.InitialBackoff, "first retry delay (doubles, ±15% jitter)")
	fs.DurationVar(&cfg.MaxBackoff, "max-backoff", cfg.MaxBackoff, "cap of one retry delay")
	fs.DurationVar(&cfg.RetryDuration, "retry-duration", cfg.RetryDuration, "retry budget per request (negative = no retries)")
	fs.DurationVar(&cfg.RequestTimeout, "timeout", cfg.RequestTimeout, "timeout of one attempt")
	bombs := fs.Int("bomb", 0, "instead of traffic, send this many decompression bombs made of valid data (see -bomb-records)")
	bombRecords := fs.Int("bomb-records", 40, "records per bomb")
	bombRecordBytes := fs.Int("bomb-record-bytes", 32<<20, "what each bomb record decompresses to, about")
	report := fs.Bool("report", false, "print a JSON report to stdout at the end")
	watchPID := fs.Int("watch-pid", 0, "measure this process (the pipeline under test): its CPU seconds and peak RSS during the run are reported")
	progressEvery := fs.Duration("progress", 5*time.Second, "progress interval on stderr (0 = off)")
	archiveDir := fs.String("archive", "", "send nothing: write -archive-objects Firehose S3 backup objects (gzip members of CloudWatch envelopes, concatenated) of the traffic the other flags describe into this directory")
	archiveObjects := fs.Int("archive-objects", 1, "objects -archive writes")
	archiveObjectBytes := fs.Int64("archive-object-bytes", 64<<20, "decompressed size of each -archive object, about (it ends between requests)")
	floorContract := fs.Bool("floor-contract", false, "with -floor: write the whole log of gwpipe's output contract (API tags, standard attributes, duration, level from the status), not only the message, its CloudWatch fields and the message's fields")
	floorRun := fs.Bool("floor", false, "send nothing: run the floor probe (package floor) on the traffic the other flags describe, -events events on one core, and report its events per CPU-second")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "loadgen: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *instance > 65535 {
		fmt.Fprintln(os.Stderr, "loadgen: -instance must be in 0..65535")
		return 2
	}
	cfg.Instance = uint16(*instance)
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: invalid configuration:\n%v\n", err)
		return 2
	}

	// The first SIGINT/SIGTERM stops generating and lets requests in flight
	// finish; a second one exits at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "loadgen: stopping; waiting for requests in flight (signal again to quit now)")
		cancel()
		<-sigs
		os.Exit(130)
	}()

	var opts []loadgen.Option
	if *progressEvery > 0 {
		var last loadgen.Report
		opts = append(opts, loadgen.WithProgress(*progressEvery, func(r loadgen.Report) {
			dt := r.ElapsedSeconds - last.ElapsedSeconds
			rate := 0.0
			if dt > 0 {
				rate = float64(r.EventsAcked-last.EventsAcked) / dt
			}
			fmt.Fprintf(os.Stderr, "%7.1fs  requests %d sent %d acked %d failed  events %d acked  %.0f ev/s  attempts %d  %s  ack p50 %.1fms p99 %.1fms\n",
				r.ElapsedSeconds, r.RequestsSent, r.RequestsAcked, r.RequestsFailed, r.EventsAcked, rate, r.Attempts,
				statuses(r.Statuses), r.AckLatency.P50, r.AckLatency.P99)
			last = r
		}))
	}

	if *floorRun {
		return runFloor(cfg, *report, *floorContract)
	}
	if *archiveDir != "" {
		return writeArchive(cfg, *archiveDir, *archiveObjects, *archiveObjectBytes, *report)
	}
	if *bombs > 0 {
		return sendBombs(ctx, cfg, *bombs, *bombRecords, *bombRecordBytes, opts)
	}
	fmt.Fprintf(os.Stderr, "loadgen: %s -> %s (mix %s, direct %v, seed %d)\n", limitText(cfg), cfg.URL, cfg.Mix, cfg.Direct, cfg.Seed)
	var before procstat.Usage
	if *watchPID > 0 {
		var err error
		if before, err = procstat.Of(*watchPID); err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: -watch-pid: %v\n", err)
			return 2
		}
	}
	rep, err := loadgen.Run(ctx, cfg, opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		return 1
	}
	var cost *pipelineCost
	if *watchPID > 0 {
		after, err := procstat.Of(*watchPID)
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: -watch-pid: %v\n", err)
			return 1
		}
		c := pipelineCost{CPUSeconds: (after.CPU - before.CPU).Seconds(), PeakRSSMiB: float64(after.PeakRSS) / (1 << 20)}
		if c.CPUSeconds > 0 {
			c.EventsPerCPUSecond = float64(rep.EventsAcked) / c.CPUSeconds
		}
		cost = &c
		fmt.Fprintf(os.Stderr, "pipeline (pid %d): %.2f CPU seconds, %.0f events per CPU-second, peak RSS %.1f MiB\n",
			*watchPID, c.CPUSeconds, c.EventsPerCPUSecond, c.PeakRSSMiB)
	}
	fmt.Fprintf(os.Stderr, "loadgen: stopped (%s) after %.1fs: %d/%d requests acked, %d failed, %d canceled; %d events acked (%.0f ev/s); ack latency p50 %.1fms p90 %.1fms p99 %.1fms max %.1fms\n",
		rep.Stopped, rep.ElapsedSeconds, rep.RequestsAcked, rep.RequestsSent, rep.RequestsFailed, rep.RequestsCanceled,
		rep.EventsAcked, rep.EventsPerSecond, rep.AckLatency.P50, rep.AckLatency.P90, rep.AckLatency.P99, rep.AckLatency.Max)
	if *report {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			loadgen.Report
			Pipeline *pipelineCost `json:"pipeline,omitempty"`
		}{rep, cost}); err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
			return 1
		}
	}
	if rep.RequestsFailed > 0 {
		return 1
	}
	return 0
}

// pipelineCost is what the watched process spent during the run.
type pipelineCost struct {
	CPUSeconds         float64 `json:"cpu_seconds"`
	EventsPerCPUSecond float64 `json:"events_per_cpu_second"`
	PeakRSSMiB         float64 `json:"peak_rss_mib"`
}

func limitText(cfg loadgen.Config) string {
	var parts []string
	if cfg.Events > 0 {
		parts = append(parts, fmt.Sprintf("%d events", cfg.Events))
	}
	if cfg.Duration > 0 {
		parts = append(parts, "for "+cfg.Duration.String())
	}
	if len(parts) == 0 {
		parts = append(parts, "until interrupted")
	}
	if cfg.Rate > 0 {
		parts = append(parts, fmt.Sprintf("at %g events/s", cfg.Rate))
	}
	return strings.Join(parts, " ")
}

func statuses(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("statuses {")
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", k, m[k])
	}
	b.WriteByte('}')
	return b.String()
}

// sendBombs sends n decompression bombs at once, as Firehose would (with
// its retries), and reports how each was answered.
func sendBombs(ctx context.Context, cfg loadgen.Config, n, records, recordBytes int, opts []loadgen.Option) int {
	sender, err := loadgen.NewSender(cfg, opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		return 2
	}
	reqs := make([]*loadgen.Request, n)
	events := 0
	for i := range reqs {
		req, ev, err := loadgen.Bomb(loadgen.BombConfig{ID: fmt.Sprintf("bomb-%d-%d", cfg.Seed, i), Records: records,
			RecordBytes: recordBytes, AccessKey: cfg.AccessKey})
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
			return 2
		}
		reqs[i], events = req, events+ev
	}
	fmt.Fprintf(os.Stderr, "loadgen: %d bombs of %d records of ~%d bytes (%d bytes on the wire, %d events each) -> %s\n",
		n, records, recordBytes, len(reqs[0].Body), events/n, cfg.URL)
	errs := make(chan error, n)
	for _, req := range reqs {
		go func() { errs <- sender.Send(ctx, req) }()
	}
	failed := 0
	for range reqs {
		if err := <-errs; err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
			failed++
		}
	}
	rep := sender.Report()
	fmt.Fprintf(os.Stderr, "loadgen: bombs: %d acked, %d failed; %s\n", rep.RequestsAcked, failed, statuses(rep.Statuses))
	if failed > 0 {
		return 1
	}
	return 0
}

// runFloor measures the floor on the traffic cfg generates: at least
// cfg.Events events, in passes over a corpus of at most 200,000 (the corpus
// is held in memory; more passes only average more).
func runFloor(cfg loadgen.Config, report, contract bool) int {
	if cfg.Events <= 0 {
		fmt.Fprintln(os.Stderr, "loadgen: -floor needs -events")
		return 2
	}
	corpus, err := floor.NewCorpus(cfg, int(min(cfg.Events, 200_000)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		return 1
	}
	passes := int((cfg.Events + int64(corpus.Events) - 1) / int64(corpus.Events))
	res, err := floor.Run(corpus, passes, contract)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "floor: %d events (%d passes over %d), %.2f CPU seconds, %.0f events per CPU-second, %.0f bytes per log, %.1f gzipped\n",
		res.Events, passes, corpus.Events, res.CPU.Seconds(), res.EventsPerCPUSecond(), float64(res.PlainBytes)/float64(res.Events), float64(res.OutBytes)/float64(res.Events))
	if report {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"floor": map[string]any{
			"events": res.Events, "cpu_seconds": res.CPU.Seconds(), "events_per_cpu_second": res.EventsPerCPUSecond(),
			"out_bytes": res.OutBytes, "plain_bytes": res.PlainBytes}}); err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
			return 1
		}
	}
	return 0
}
