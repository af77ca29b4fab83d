// Package pipeline assembles gwpipe from its configuration: the stage
// runtime and transport, the sources, every stage, the dead-letter archive,
// and the admin endpoints; and it shuts them down in the order that loses
// nothing.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/redact"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/runtime/membudget"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddlogs"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddmetrics"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/sources/firehose"
	"github.com/gwpipe/gwpipe/pkg/stages/decode"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
	"github.com/gwpipe/gwpipe/pkg/stages/filter"
	"github.com/gwpipe/gwpipe/pkg/stages/parse"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// Source is an ingest source other than the Firehose endpoint (SQS, S3
// replay): the pipeline starts it after the stages and stops it first.
type Source interface {
	Name() string
	Start(ctx context.Context) error
	// Stop stops taking work and waits, within ctx, until everything it
	// admitted was acknowledged or given back to its sender.
	Stop(ctx context.Context) error
}

// archiveOptions configure the dead-letter archive; tests make its disk fail.
var archiveOptions []dlq.Option

// Pipeline is a running gwpipe process.
type Pipeline struct {
	cfg     config.Config
	log     *slog.Logger
	metrics *telemetry.Registry
	stages  []string
	graph   graph
	memory  *membudget.Budget // event data held by this process

	rt       *stage.Runtime
	logs     *ddlogs.Client
	archive  dlq.Sink
	parser   *apigw.Parser
	parse    *parse.Stage
	tagger   *awstags.Tagger
	deriver  *derive.Deriver
	filters  *filter.Filters // what deliver-logs scrubs and drops; Load swaps it
	metricsC *ddmetrics.Client
	selfTel  *ddmetrics.SelfTelemetry
	firehose *firehose.Source
	sources  []Source
	fleet    fleetStores // shared stores: state that outlives this worker
	// streams reads CloudWatch metric-stream data (decode stage, S3
	// objects); nil when metric streams are off.
	streams decode.MetricDecoder

	fhLn       net.Listener
	tls        listenerTLS // the listeners that serve HTTPS
	fhSrv      *http.Server
	fhRequests requestGate
	admin      []*adminServer // admin.listen, admin.health_listen
	serveErr   chan error

	loops     sync.WaitGroup // background loops: summary expiry, window ticks, telemetry
	stopLoops context.CancelFunc

	reload reloadState // SIGHUP: see reload.go

	shutdownOnce sync.Once
	shutdownErr  error
	handedBack   atomic.Bool
	draining     atomic.Bool // a shutdown began: /readyz fails
}

// New builds the pipeline from its configuration and the stages this
// process runs (nil: every one). It reaches nothing: no broker, no AWS, no
// file; Start connects.
func New(cfg config.Config, stages []string, log *slog.Logger) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	// Whatever a stage logs (an error quoting the intake's URL, …) is
	// written without the secrets URLs may carry.
	log = slog.New(redact.Handler(log.Handler()))
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	g := theGraph()
	if stages == nil {
		stages = g.names()
	}
	if cfg.Transport.Kind == "memory" {
		for _, s := range g.names() {
			if !slices.Contains(stages, s) {
				return nil, fmt.Errorf("--stages: the memory transport runs every stage in one process, and %q is missing; split stages across processes with transport.kind sqs or nats", s)
			}
		}
	}
	p := &Pipeline{cfg: cfg, log: log, metrics: telemetry.NewRegistry(), stages: stages, graph: g, serveErr: make(chan error, 3)}
	streams, err := metricStreams(cfg, p.metrics)
	if err != nil {
		return nil, err
	}
	p.streams = streams
	memory, err := membudget.NewBudget(cfg.Pipeline.Config)
	if err != nil {
		return nil, fmt.Errorf("pipeline.max_held_bytes: %w", err)
	}
	p.memory = memory
	memory.RegisterMetrics(p.metrics)
	p.registerReload()
	// /status lists the stages in graph order: the entry points, then the
	// stages.
	for _, e := range g.entries {
		if p.runs(e.runBy) && e.on != nil && e.on(cfg) && !p.isStage(e.name) {
			p.metrics.Stage(e.name)
		}
	}
	for _, s := range g.stages {
		if p.mounts(s) {
			p.metrics.Stage(s.name)
		}
	}
	return p, nil
}

// connect reaches what the pipeline runs on, within ctx: the transport,
// the dead-letter archive (a directory or S3), AWS, the stores the fleet
// shares (NATS key-value, S3); then it builds and mounts every stage of
// the graph this process runs, in graph order, and the sources.
func (p *Pipeline) connect(ctx context.Context) error {
	cfg := p.cfg
	tr, err := newTransport(ctx, cfg, p.log)
	if err != nil {
		return fmt.Errorf("connect the transport (transport.kind %s): %w", cfg.Transport.Kind, err)
	}
	topics := cfg.Pipeline.Topics
	rc := cfg.Pipeline.Runtime
	rc.DLQTopic, rc.CloseTimeout, rc.Topology = topics.DLQ, cfg.Pipeline.DrainTimeout, p.graph.topology(cfg)
	if p.rt, err = stage.New(rc, tr, p.log, p.metrics); err != nil {
		return errors.Join(err, tr.Close())
	}
	if p.archive, err = dlq.OpenSink(ctx, cfg.DLQ, p.s3Store, archiveOptions...); err != nil {
		return fmt.Errorf("dlq.%w", err)
	}
	p.archive.RegisterMetrics(p.metrics)
	for _, s := range p.graph.stages {
		if !p.mounts(s) {
			continue
		}
		h, err := s.build(p, ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		st := stage.Stage{Name: s.name, Input: s.in.name(topics), Handler: h}
		if s.out != "" {
			st.Output = s.out.name(topics)
		}
		if s.maxInFlight != nil {
			st.MaxInFlight = s.maxInFlight(cfg)
		}
		if err := p.rt.Add(st); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if p.filters == nil {
		// A worker without deliver-logs scrubs what its taps show as the
		// deliverer does (tap.Config.Scrub); counted nowhere, nothing is
		// delivered here, and reloaded as the deliverer's filters are.
		if p.filters, err = filter.New(cfg.Filters, nil); err != nil {
			return err
		}
	}
	if err := p.newSelfTelemetry(); err != nil {
		return err
	}
	if !p.runs(StageIngest) {
		return nil
	}
	if cfg.Sources.Firehose.Enabled {
		fh := cfg.Sources.Firehose
		// Records bound for a decode stage in another process cross the
		// broker with their base64 undone: a quarter fewer bytes.
		fh.DecodeRecords = !p.rt.InProcess() && !p.runs(StageDecode)
		fh.DecodeMaxBytes = cfg.Decode.MaxRecordBytes
		p.firehose = firehose.New(fh, p.entryOutput(StageIngest), p.Ready, p.log.With("source", "firehose"), p.metrics).WithMemory(p.memory)
		// Behind a load balancer, a retry can reach another worker than
		// its first attempt: request ids are claimed fleet-wide.
		requests, err := p.fleetRequests(ctx)
		if err != nil {
			return err
		}
		if requests != nil {
			p.firehose.WithFleet(requests, p.metrics)
		}
	}
	var sources []Source
	for _, e := range p.graph.entries {
		if e.source == nil || e.on == nil || !e.on(cfg) {
			continue
		}
		src, err := e.source(p, ctx)
		if err != nil {
			return err
		}
		sources = append(sources, src)
	}
	// Before those added with AddSource.
	p.sources = append(sources, p.sources...)
	return nil
}

// mounts reports whether this process runs stage s.
func (p *Pipeline) mounts(s stageNode) bool {
	return (s.on == nil || s.on(p.cfg)) && (s.everywhere || p.runs(s.name))
}

func (p *Pipeline) isStage(name string) bool {
	return slices.ContainsFunc(p.graph.stages, func(s stageNode) bool { return s.name == name })
}

// entryOutput is where the entry point named name publishes: the topic
// the graph says it enters, its figures kept under its name.
func (p *Pipeline) entryOutput(name string) stage.Output {
	return p.rt.Source(name, p.graph.entry(name).enters.name(p.cfg.Pipeline.Topics))
}

func (p *Pipeline) runs(s string) bool { return slices.Contains(p.stages, s) }

// Config is the configuration the pipeline runs with.
func (p *Pipeline) Config() config.Config { return p.cfg }

// Logger is the pipeline's logger.
func (p *Pipeline) Logger() *slog.Logger { return p.log }

// AddSource adds a source before Start (replay builds its pipeline so):
// Start starts it once the stages run.
func (p *Pipeline) AddSource(s Source) { p.sources = append(p.sources, s) }

// Metrics is the process's telemetry.
func (p *Pipeline) Metrics() *telemetry.Registry { return p.metrics }

// Memory is the process's memory budget for event data.
func (p *Pipeline) Memory() *membudget.Budget { return p.memory }

// errDraining is why a draining pipeline is not ready.
var errDraining = errors.New("shutting down: draining what was admitted, taking no new work")

// readiness is what /readyz and /status say: nil when the pipeline takes
// work and can deliver.
func (p *Pipeline) readiness() error {
	if p.draining.Load() {
		return errDraining
	}
	return p.Ready()
}

// Ready is nil when the pipeline can deliver.
func (p *Pipeline) Ready() error {
	if p.logs != nil {
		if err := p.logs.Healthy(); err != nil {
			return err
		}
	}
	if p.metricsC != nil {
		if err := p.metricsC.Healthy(); err != nil {
			return err
		}
	}
	return nil
}

// Start connects (the transport, the dead-letter archive, AWS, the stores
// the fleet shares), opens the listeners and starts every stage, then the
// sources. Its errors name what could not be reached; ctx ending
// interrupts it. After an error, Shutdown releases what was connected.
func (p *Pipeline) Start(ctx context.Context) error {
	// The certificates first: a file that cannot be read stops the start
	// before anything is connected.
	if err := p.openTLS(); err != nil {
		return err
	}
	if err := p.connect(ctx); err != nil {
		return err
	}
	if err := p.rt.Start(ctx); err != nil {
		return fmt.Errorf("start stages: %w", err)
	}
	if p.firehose != nil {
		ln, err := listen(ctx, p.cfg.Sources.Firehose.Listen, p.cfg.Sources.Firehose.ReusePort)
		if err != nil {
			return fmt.Errorf("sources.firehose.listen: %w", err)
		}
		p.fhLn = ln
		p.fhSrv = &http.Server{Handler: p.fhRequests.wrap(p.firehose), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute,
			ErrorLog: p.serverLog("sources.firehose")}
		go p.serve(p.fhSrv, p.withTLS("sources.firehose.tls", ln), "firehose")
		p.log.Info("firehose endpoint listening", "addr", ln.Addr().String(), "tls", p.tls["sources.firehose.tls"] != nil)
	}
	p.startLoops()
	for _, src := range p.sources {
		if err := src.Start(ctx); err != nil {
			return fmt.Errorf("start source %s: %w", src.Name(), err)
		}
	}
	return p.startAdmin()
}

func (p *Pipeline) serve(srv *http.Server, ln net.Listener, name string) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		p.serveErr <- fmt.Errorf("%s server: %w", name, err)
	}
}

// Err reports a listener that failed while running.
func (p *Pipeline) Err() <-chan error { return p.serveErr }

// FirehoseAddr is the address the Firehose endpoint listens on.
func (p *Pipeline) FirehoseAddr() string {
	if p.fhLn == nil {
		return ""
	}
	return p.fhLn.Addr().String()
}

// Shutdown (safe to call more than once) stops taking work, finishes what
// is in flight and stops, all within ctx's deadline: the sources refuse new
// work (the endpoint answers 503, so Firehose retries elsewhere or later),
// what they admitted is delivered, every stage drains, open metric windows
// and request summaries are flushed, the router and the delivery clients
// stop.
//
// What is not finished when the deadline nears is handed back: the stages
// give up their batches (no retry, no dead letter), each source gives its
// unit of work back to its sender unacknowledged (a waiting Firehose request
// gets a retryable 503, an SQS message becomes visible again, a broker
// redelivers a stage's input), and each is counted (StageStats.HandedBack).
// The last part of the time (teardownShare) is kept for that and for
// closing, so that the whole shutdown ends by the deadline. Handing back
// loses nothing and is not an error: Shutdown returns an error only for a
// piece that failed or was still running at the deadline.
func (p *Pipeline) Shutdown(ctx context.Context) error {
	p.shutdownOnce.Do(func() { p.shutdownErr = p.shutdown(ctx) })
	return p.shutdownErr
}

// teardownShare is the part of a shutdown of length d kept for handing back
// what is unfinished and for closing: answering the requests still waiting,
// stopping the router, closing the transport, the clients and the archive.
func teardownShare(d time.Duration) time.Duration { return min(d/5, time.Second) }

// closeShare is the part of a shutdown of length d kept, after the
// sources, for closing: the sources' own calls (an SQS delete or
// visibility change to an API that does not answer) end before it, so
// that the router, the clients, the archive and the admin endpoint close
// in time. With the sources stopped at the deadline itself, a stalled SQS
// API took the whole of it and every part after them was reported still
// running, the process exiting past its time.
func closeShare(d time.Duration) time.Duration { return teardownShare(d) / 4 }

// HandedBack reports whether the last Shutdown had to hand work back.
func (p *Pipeline) HandedBack() bool { return p.handedBack.Load() }

func (p *Pipeline) shutdown(hard context.Context) error {
	if p.rt == nil {
		// Never connected: nothing runs, nothing is open.
		return nil
	}
	// sources ends the sources' own calls; sourcesDone, a moment later,
	// the wait for them to return.
	work, sources, sourcesDone := hard, hard, hard
	if dl, ok := hard.Deadline(); ok {
		d := time.Until(dl)
		var cancel, cancelSources, cancelDone context.CancelFunc
		work, cancel = context.WithDeadline(hard, dl.Add(-teardownShare(d)))
		defer cancel()
		sources, cancelSources = context.WithDeadline(hard, dl.Add(-closeShare(d)))
		defer cancelSources()
		sourcesDone, cancelDone = context.WithDeadline(hard, dl.Add(-closeShare(d)/2))
		defer cancelDone()
	}
	var (
		errs     []error
		handBack bool
		flushed  bool
	)
	// step runs one graceful part of the drain; the work deadline ending
	// during it means handing back, any other failure is an error.
	step := func(errList ...error) {
		for _, err := range errList {
			switch {
			case err == nil:
			case work.Err() != nil || errors.Is(err, ack.ErrHandedBack):
				handBack = true
			default:
				errs = append(errs, err)
			}
		}
	}

	// Stop taking work; each source then waits for what it admitted.
	// /readyz fails from now on: a load balancer or Kubernetes stops
	// sending here.
	p.draining.Store(true)
	if p.firehose != nil {
		p.firehose.Shutdown()
	}
	var stopping []pending
	if p.fhSrv != nil {
		// The listener stays open while admitted requests wait for their
		// records: a new request is answered 503 (retry later, elsewhere)
		// rather than refused a connection, and told to close its
		// connection; idle keep-alive connections are closed now. The
		// requests arriving from here are not waited for.
		p.fhRequests.close()
		p.fhSrv.SetKeepAlivesEnabled(false)
		stopping = append(stopping, async("firehose server", func() error {
			// Wait for the requests themselves (admitted ones wait for
			// their records), then close the listener and what carries
			// no request (http.Server.Shutdown alone notices those only
			// every half second once it has waited a while, and waits 5 s
			// for a connection opened and never used).
			if err := p.fhRequests.wait(hard); err != nil {
				go func() { _ = p.fhSrv.Shutdown(hard) }()
				return err
			}
			closeServer(hard, p.fhSrv)
			return nil
		}))
	}
	for _, src := range p.sources {
		stop := async("source "+src.Name(), func() error { return src.Stop(sources) })
		if s, ok := src.(settler); ok {
			stop.settled = s.Settled()
		}
		stopping = append(stopping, stop)
	}
	inProcess := p.rt.InProcess()
	// A source that settled (all it admitted delivered or given back)
	// and is only tidying up (deleting SQS messages) does not hold the
	// drain: the open windows are flushed meanwhile. Waiting for its
	// deletes, a stalled SQS API kept the stages from draining until the
	// deadline, and the metrics of logs already delivered were lost.
	step(waitSettled(work, stopping)...)
	if !handBack && inProcess {
		step(p.rt.Drain(work))
	}
	if !handBack && inProcess {
		flushed = true
		step(p.flushOpenWork(work)...)
	}
	if !handBack {
		// On a broker this is the drain: the router takes no more input
		// and waits for the handlers still running.
		step(p.rt.Stop(work))
	}
	if !handBack && !inProcess {
		flushed = true
		step(p.flushOpenWork(work)...)
	}
	if !handBack && p.logs != nil {
		step(p.logs.Close(work))
	}

	if handBack {
		p.handedBack.Store(true)
		p.log.Warn("drain deadline reached: handing back what is not delivered yet; its senders will send it again",
			"in_flight_batches", p.rt.InFlight())
		p.rt.HandBack()
		if p.logs != nil {
			// Abort the requests in flight and the retries: their
			// records' batches have just been handed back.
			now, cancel := context.WithCancel(hard)
			cancel()
			errs = append(errs, waitAll(hard, []pending{async("deliver-logs", func() error {
				if err := p.logs.Close(now); err != nil {
					p.log.Info("deliver-logs stopped", "outcome", err)
				}
				return nil
			})})...)
		}
		if inProcess {
			if err := p.rt.Drain(hard); err != nil {
				errs = append(errs, err)
			}
		}
		if !flushed {
			// The open windows and summaries cannot be delivered now:
			// flushing them with no time left counts them as lost (on a
			// broker, publishing still gets them out).
			now, cancel := context.WithCancel(hard)
			cancel()
			for _, err := range p.flushOpenWork(now) {
				p.log.Debug("open work not flushed at shutdown", "error", err)
			}
		}
	}
	// The sources still tidying up (deletes) end by their own deadline.
	errs = append(errs, waitAll(sourcesDone, stopping)...)
	if p.deriver != nil {
		// Points derive could not emit before the end die with the process.
		p.metrics.Stage(StageDerive).Lost.Add(p.deriver.Stats().PendingPoints)
	}

	// Close, within what is left.
	if err := p.rt.Shutdown(hard); err != nil {
		errs = append(errs, err)
	}
	var closing []pending
	if p.metricsC != nil {
		closing = append(closing, async("deliver-metrics", p.metricsC.Close))
	}
	if p.tagger != nil {
		closing = append(closing, async("enrich", p.tagger.Close))
	}
	if p.archive != nil {
		closing = append(closing, async("dead-letter archive", p.archive.Close))
	}
	errs = append(errs, waitAll(hard, closing)...)
	// The sources and stages above settle their claims and leases through
	// the shared state: it closes after them.
	errs = append(errs, waitAll(hard, []pending{async("shared state", p.closeFleet)})...)
	if p.selfTel != nil {
		// Every figure is final now: the last report carries what the
		// shutdown handed back or lost.
		errs = append(errs, waitAll(hard, []pending{async("telemetry", p.selfTel.Close)})...)
	}
	// Last: probes and scrapers see the process until it is gone.
	errs = append(errs, waitAll(hard, []pending{async("admin", func() error { p.stopAdmin(hard); return nil })})...)
	return joinShutdownErrs(errs)
}

// stillRunningError is a part of the shutdown still running at the
// deadline.
type stillRunningError struct {
	name string
	err  error // the context's
}

func (e *stillRunningError) Error() string {
	return fmt.Sprintf("%s: still running at the shutdown deadline: %v", e.name, e.err)
}
func (e *stillRunningError) Unwrap() error { return e.err }

// joinShutdownErrs joins the errors of a shutdown, the parts still running
// at the deadline in one: once it passed, every part waited for after it
// said the same thing on a line of its own.
func joinShutdownErrs(errs []error) error {
	var names []string
	var cause error
	out := make([]error, 0, len(errs))
	for _, err := range errs {
		if sr, ok := err.(*stillRunningError); ok {
			names = append(names, sr.name)
			cause = sr.err
			continue
		}
		out = append(out, err)
	}
	if len(names) > 0 {
		out = append(out, fmt.Errorf("still running at the shutdown deadline: %s: %w", strings.Join(names, ", "), cause))
	}
	return errors.Join(out...)
}

// pending is a part of the shutdown running in the background.
type pending struct {
	name string
	done chan error
	// settled, when not nil, is closed once the part holds nothing the
	// stages need: see settler.
	settled <-chan struct{}
}

// settler is a Source whose Stop, once what it admitted is delivered or
// given back, may still have calls to make (deleting SQS messages) that
// no stage waits for: Settled is closed then.
type settler interface {
	Settled() <-chan struct{}
}

// waitSettled is waitAll for parts that may settle before they finish: a
// settled part is left to finish (waitAll takes its result later).
func waitSettled(ctx context.Context, ps []pending) []error { return wait(ctx, ps, true) }

func async(name string, f func() error) pending {
	p := pending{name: name, done: make(chan error, 1)}
	go func() { p.done <- f() }()
	return p
}

// waitAll waits for every part within ctx and returns their errors, and
// one for each part still running when ctx ended. A part's result is
// taken once: waiting again later gets only the parts not yet reported.
func waitAll(ctx context.Context, ps []pending) []error { return wait(ctx, ps, false) }

// wait is waitAll, and waitSettled when untilSettled: a part's settled
// channel ends its wait only then (a nil channel never does).
func wait(ctx context.Context, ps []pending, untilSettled bool) []error {
	var errs []error
	for i := range ps {
		if ps[i].done == nil {
			continue
		}
		var settled <-chan struct{}
		if untilSettled {
			settled = ps[i].settled
		}
		var err error
		select {
		case err = <-ps[i].done:
		case <-settled:
			continue
		case <-ctx.Done():
			select {
			case err = <-ps[i].done: // finished at the same moment
			case <-settled:
				continue
			default:
				errs = append(errs, &stillRunningError{name: ps[i].name, err: ctx.Err()})
				continue
			}
		}
		ps[i].done = nil
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ps[i].name, err))
		}
	}
	return errs
}

// closeServer shuts srv down once its requests are answered: connections
// still open a moment later carry no request (idle, or opened and never
// used, which Shutdown would wait 5 s for) and are closed.
func closeServer(ctx context.Context, srv *http.Server) {
	grace, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if srv.Shutdown(grace) != nil {
		_ = srv.Close()
	}
}

// requestGate counts the requests a server is handling, so that a shutdown
// can wait for them to be answered.
type requestGate struct {
	mu     sync.Mutex
	n      int
	idle   chan struct{} // closed when n drops to 0; nil while n is 0
	closed bool          // requests from now on are not counted
}

// close stops counting: the requests arriving from now on are answered
// at once (the server is shutting down) and nothing waits for them.
func (g *requestGate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func (g *requestGate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			h.ServeHTTP(w, r)
			return
		}
		if g.n == 0 {
			g.idle = make(chan struct{})
		}
		g.n++
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			if g.n--; g.n == 0 {
				close(g.idle)
				g.idle = nil
			}
			g.mu.Unlock()
		}()
		h.ServeHTTP(w, r)
	})
}

// wait returns once no request is being handled, or ctx's error.
func (g *requestGate) wait(ctx context.Context) error {
	g.mu.Lock()
	idle := g.idle
	g.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("requests still waiting: %w", ctx.Err())
	}
}
