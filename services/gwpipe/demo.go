package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/pipeline"
	"github.com/gwpipe/gwpipe/pkg/redact"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
)

// demoOptions are the flags of gwpipe demo.
type demoOptions struct {
	real     bool
	rate     float64
	events   int64
	firehose string
	admin    string
	intake   string
	dir      string
	report   time.Duration
	// top shows the live view (gwpipe top) instead of the periodic
	// report; the logs then go to a file under dir.
	top bool
}

// demoPort is an address the demo serves, with what changes it: the flag
// and the make variable (make run passes one to the other).
type demoPort struct {
	what, flag, makeVar string
	addr                string
}

func (d demoPort) change() string {
	return fmt.Sprintf("choose another with %s=host:port (make run %s=127.0.0.1:PORT, or gwpipe demo %s)", d.makeVar, d.makeVar, d.flag)
}

// listen opens d's address, with an error that names the port and how to
// change it.
func (d demoPort) listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", d.addr)
	switch {
	case err == nil:
		return ln, nil
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("%s: port %s is already in use (%s): stop what holds it, or %s", d.what, portOf(d.addr), d.addr, d.change())
	default:
		return nil, fmt.Errorf("%s: cannot listen on %s: %w; %s", d.what, d.addr, err, d.change())
	}
}

func portOf(addr string) string {
	if _, p, err := net.SplitHostPort(addr); err == nil {
		return p
	}
	return addr
}

func demoCmd(cfgPath *string) *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the pipeline fed by generated traffic, delivering to a local fake Datadog intake (make run)",
		Long: `Demo runs, in this one process, the whole pipeline on its embedded defaults,
a load generator sending realistic API Gateway traffic to its Firehose
endpoint, and a fake Datadog intake that checks and records what it receives
(logs.jsonl, series.jsonl, distribution_points.jsonl under --dir/intake).
No AWS account and no Datadog API key are needed.

The traffic is synthetic: even when DD_API_KEY is set, it goes to the fake
intake unless --real (make run REAL=1) asks to deliver it to your Datadog
account (DD_SITE) with DD_API_KEY. The screen says which one is happening.

In a terminal it shows the live view of gwpipe top (--top; the logs then go
to --dir/gwpipe.log); otherwise it prints a flow report every --report.

Ctrl-C (SIGINT), q in the live view, SIGTERM, or closing the terminal
(SIGHUP) stops the traffic, drains the pipeline into the intake, prints the
summary and exits 0; a second Ctrl-C exits at once. Every port is opened before anything starts: a port in
use is an error naming it and the variable that changes it.

make run passes REAL, RATE, FIREHOSE_ADDR, ADMIN_ADDR and INTAKE_ADDR to the
flags below. The configuration (--config, GWPIPE_ variables) applies, except
what the demo owns: the transport (memory), the sources, the listen addresses
and, without --real, the Datadog destination and self-telemetry.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// One handler for every signal that means "stop", installed
			// before anything starts, so that nothing outlives it.
			sigs := make(chan os.Signal, 4)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
			defer signal.Stop(sigs)
			// Closing the terminal may also close the pipe the output goes
			// through: writes then fail instead of killing the process
			// before it has drained.
			signal.Ignore(syscall.SIGPIPE)
			if !cmd.Flags().Changed("top") {
				o.top = interactive(cmd.OutOrStdout())
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), *cfgPath, o, os.Environ(), sigs)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.real, "real", false, "deliver the synthetic traffic to Datadog (DD_API_KEY, DD_SITE) instead of the fake intake (make run REAL=1)")
	f.Float64Var(&o.rate, "rate", 5000, "events per second generated (make run RATE=…); 0 is as fast as the pipeline takes them")
	f.Int64Var(&o.events, "events", 0, "stop after this many events were generated and acknowledged; 0 runs until interrupted")
	f.StringVar(&o.firehose, "firehose-listen", "127.0.0.1:8088", "address of the Firehose endpoint (make run FIREHOSE_ADDR=…)")
	f.StringVar(&o.admin, "admin-listen", "127.0.0.1:8089", "address of the admin endpoint, /status and /metrics (make run ADMIN_ADDR=…)")
	f.StringVar(&o.intake, "intake-listen", "127.0.0.1:8080", "address of the fake Datadog intake (make run INTAKE_ADDR=…)")
	f.StringVar(&o.dir, "dir", filepath.Join("data", "run"), "directory for the intake's recordings and the dead-letter archive")
	f.DurationVar(&o.report, "report", 5*time.Second, "print a flow report at this interval, without --top; 0 for none")
	f.BoolVar(&o.top, "top", false, "show the live view of gwpipe top, logs to --dir/gwpipe.log (default: when stdout is a terminal)")
	return cmd
}

// demoIntakeKeep bounds the logs (and, separately, metric points) the fake
// intake keeps in memory; the JSONL recordings keep everything.
const demoIntakeKeep = 100_000

// runDemo runs the demo until a signal arrives on sigs, the requested
// events were delivered, or something fails; then it stops everything it
// started, in the order that loses nothing, and prints the summary.
func runDemo(ctx context.Context, out io.Writer, cfgPath string, o demoOptions, environ []string, sigs <-chan os.Signal) error {
	c, err := config.Load(cfgPath, environ)
	if err != nil {
		return err
	}
	if o.real && c.Datadog.APIKey == "" {
		return errors.New("--real (make run REAL=1) delivers to your Datadog account and needs DD_API_KEY")
	}
	userKey := c.Datadog.APIKey != ""
	accessKey, err := randomKey("demo-")
	if err != nil {
		return err
	}

	// The demo owns its sources, its transport and its addresses.
	c.Transport.Kind = "memory"
	c.Sources.Firehose.Enabled = true
	c.Sources.Firehose.Listen = o.firehose
	c.Sources.Firehose.ReusePort = false
	c.Sources.Firehose.AccessKeys = []string{accessKey}
	c.Sources.Firehose.AllowUnauthenticated = false
	c.Sources.SQS.QueueURLs = nil
	c.Metrics.Poller.Accounts = nil
	c.Admin.Listen = o.admin
	c.Admin.ReportInterval = o.report
	if c.DLQ.Dir == config.DefaultConfig().DLQ.Dir {
		c.DLQ.Dir = filepath.Join(o.dir, "dlq")
	}
	if _, set := lookupEnv(environ, "GWPIPE_ENRICH_AWS_TAGS"); !set {
		// No AWS account: the logs carry the tags their origin gives
		// (account, region, API, stage).
		c.Enrich.AWSTags = false
	}

	ports := []demoPort{
		{what: "the Firehose endpoint", flag: "--firehose-listen", makeVar: "FIREHOSE_ADDR", addr: o.firehose},
		{what: "the admin endpoint", flag: "--admin-listen", makeVar: "ADMIN_ADDR", addr: o.admin},
	}
	if !o.real {
		ports = append(ports, demoPort{what: "the fake Datadog intake", flag: "--intake-listen", makeVar: "INTAKE_ADDR", addr: o.intake})
	}
	// Every port is taken before anything starts, all at once so that two
	// of them cannot name the same one. The pipeline opens its own again
	// right after (it owns its listeners); the intake keeps its listener.
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	for _, p := range ports {
		ln, err := p.listen()
		if err != nil {
			closeAll()
			return err
		}
		lns = append(lns, ln)
	}
	var intakeLn net.Listener
	if !o.real {
		intakeLn, lns = lns[2], lns[:2]
	}
	closeAll()

	logTo := io.Writer(os.Stderr)
	logFile := filepath.Join(o.dir, "gwpipe.log")
	if o.top {
		// The live view owns the screen: the logs go to a file.
		if err := os.MkdirAll(o.dir, 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("--top: log file: %w", err)
		}
		defer f.Close()
		logTo = f
	}
	log := newLoggerTo(c, logTo)
	slog.SetDefault(log)
	warnEnv(log, environ)

	// The fake intake, unless --real.
	ictx, intakeStop := context.WithCancel(context.WithoutCancel(ctx))
	defer intakeStop()
	var (
		intake     *fakeintake.Server
		intakeDone = make(chan error, 1)
	)
	stopIntake := func() error {
		if intake == nil {
			return nil
		}
		intakeStop()
		intake = nil
		return <-intakeDone
	}
	intakeDir := filepath.Join(o.dir, "intake")
	if !o.real {
		key, err := randomKey("demo-")
		if err != nil {
			_ = intakeLn.Close()
			return err
		}
		srv, err := fakeintake.New(fakeintake.Config{APIKeys: []string{key}, OutDir: intakeDir, Keep: demoIntakeKeep, Logger: log.With("component", "fakeintake")})
		if err != nil {
			_ = intakeLn.Close()
			return err
		}
		base := "http://" + intakeLn.Addr().String()
		c.Datadog.APIKey = key
		c.Datadog.LogsURL = base + "/api/v2/logs"
		c.Datadog.APIURL = base
		// Nothing of the demo may reach a local Agent, which would forward
		// it to the account behind it.
		c.Metrics.Delivery.Mode = "api"
		c.Metrics.Telemetry.Enabled = false
		intake = srv
		go func() { intakeDone <- errors.Join(srv.Serve(ictx, intakeLn), srv.Close()) }()
	}

	p, err := pipeline.New(c, nil, log)
	if err != nil {
		return errors.Join(fmt.Errorf("invalid configuration:\n%w", err), stopIntake())
	}
	if err := p.Start(ctx); err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.Pipeline.DrainTimeout)
		defer cancel()
		return errors.Join(err, p.Shutdown(sctx), stopIntake())
	}

	firehoseURL := "http://" + p.FirehoseAddr() + "/"
	fmt.Fprintf(out, "gwpipe demo: generated API Gateway traffic (%s) -> Firehose endpoint %s\n", rateText(o), firehoseURL)
	switch {
	case o.real:
		fmt.Fprintf(out, "  REAL=1: delivering this synthetic traffic to your Datadog account (site %s) with DD_API_KEY: logs %s, metrics %s\n",
			c.Datadog.Site, redact.URL(c.LogsURL()), redact.URL(c.APIURL()))
	case userKey:
		fmt.Fprintf(out, "  DD_API_KEY is set, but nothing goes to your Datadog account: delivering to a local fake Datadog intake %s\n", c.APIURL())
		fmt.Fprintf(out, "  (to send this synthetic traffic to Datadog instead: make run REAL=1, or gwpipe demo --real)\n")
	default:
		fmt.Fprintf(out, "  delivering to a local fake Datadog intake %s (no Datadog account needed)\n", c.APIURL())
	}
	if !o.real {
		fmt.Fprintf(out, "  intake recordings %s (logs.jsonl, series.jsonl, distribution_points.jsonl)\n", intakeDir)
	}
	fmt.Fprintf(out, "  status http://%s/status   dead letters %s\n", p.AdminAddr(), c.DLQ.Dir)
	if o.top {
		fmt.Fprintf(out, "  logs %s\n", logFile)
	}
	fmt.Fprintf(out, "  Ctrl-C stops everything and prints a summary\n")

	reportCtx, stopReport := context.WithCancel(context.WithoutCancel(ctx))
	reportDone := make(chan struct{})
	viewQuit := make(chan error, 1) // the live view ended: q, or it failed
	go func() {
		defer close(reportDone)
		switch {
		case o.top:
			viewQuit <- runDemoTop(reportCtx, out, p.AdminAddr(), "gwpipe demo — "+rateText(o)+" — q or Ctrl-C drains and stops")
		case o.report > 0:
			p.Report(reportCtx, out, o.report)
		}
	}()

	lg := loadgen.DefaultConfig()
	lg.URL, lg.AccessKey, lg.Rate, lg.Events = firehoseURL, accessKey, o.rate, o.events
	lg.ControlRate = 0.01
	lgCtx, abandonTraffic := context.WithCancel(context.WithoutCancel(ctx))
	defer abandonTraffic()
	trafficStop := make(chan struct{})
	type lgResult struct {
		rep loadgen.Report
		err error
	}
	lgDone := make(chan lgResult, 1)
	go func() {
		rep, err := loadgen.Run(lgCtx, lg, loadgen.WithStop(trafficStop))
		lgDone <- lgResult{rep, err}
	}()

	var (
		runErr  error
		traffic *lgResult
	)
	select {
	case sig := <-sigs:
		log.Info("stopping: the traffic stops, the pipeline drains into the intake", "signal", sig.String(), "timeout", c.Pipeline.DrainTimeout)
	case <-ctx.Done():
	case runErr = <-p.Err():
	case err := <-intakeDone:
		intake = nil
		runErr = fmt.Errorf("fake intake: %w", err)
	case r := <-lgDone:
		traffic = &r
		if r.err != nil {
			runErr = fmt.Errorf("load generator: %w", r.err)
		}
	case err := <-viewQuit:
		if err != nil {
			runErr = fmt.Errorf("live view: %w", err)
		}
		log.Info("stopping: the traffic stops, the pipeline drains into the intake", "reason", "live view quit", "timeout", c.Pipeline.DrainTimeout)
	}
	// The live view gives the screen back before anything more is printed.
	stopReport()
	<-reportDone
	// A second Ctrl-C or SIGTERM gives up on the drain. A terminal that
	// closes may send SIGHUP more than once: that is not impatience.
	go func() {
		for sig := range sigs {
			if sig != syscall.SIGHUP {
				fmt.Fprintln(os.Stderr, "gwpipe demo: interrupted again: exiting without draining")
				os.Exit(1)
			}
		}
	}()

	// The traffic stops first; the requests in flight are answered while
	// the pipeline drains, then the intake it drained into stops.
	close(trafficStop)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.Pipeline.DrainTimeout)
	defer cancel()
	shutdownErr := p.Shutdown(sctx)
	if traffic == nil {
		// Every request in flight has had its answer; what is left is a
		// retry of one handed back, which has nowhere to go now. It may
		// finish within what is left of the drain's time, no longer: two
		// more seconds, as it had, took the demo past drain_timeout (6.0 s
		// of 5 s with the intake stalled).
		select {
		case r := <-lgDone:
			traffic = &r
		case <-sctx.Done():
			abandonTraffic()
			r := <-lgDone
			traffic = &r
		}
	}

	p.Summary(out)
	if traffic != nil {
		r := traffic.rep
		fmt.Fprintf(out, "  traffic generated       %d events in %d Firehose requests: %d acknowledged, %d failed, %d canceled\n",
			r.EventsSent, r.RequestsSent, r.RequestsAcked, r.RequestsFailed, r.RequestsCanceled)
	} else {
		fmt.Fprintf(out, "  traffic generated       unknown: requests were still waiting when the drain timed out\n")
	}
	var intakeErr error
	if intake != nil {
		srv := intake
		intakeErr = stopIntake()
		st := srv.Stats()
		fmt.Fprintf(out, "  fake intake accepted    %d logs, %d series points, %d distribution points (recorded in %s)\n",
			st.LogsAccepted, st.SeriesPointsAccepted, st.DistributionPointsAccepted, intakeDir)
	}
	return errors.Join(runErr, shutdownErr, intakeErr)
}

func rateText(o demoOptions) string {
	var parts []string
	if o.rate > 0 {
		parts = append(parts, fmt.Sprintf("%g events/s", o.rate))
	} else {
		parts = append(parts, "as fast as it is taken")
	}
	if o.events > 0 {
		parts = append(parts, fmt.Sprintf("%d events", o.events))
	}
	return strings.Join(parts, ", ")
}

func lookupEnv(environ []string, name string) (string, bool) {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// randomKey is a fresh secret for one run: nothing outside this process
// can guess it, so nothing else can post to its endpoints.
func randomKey(prefix string) (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random key: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}
